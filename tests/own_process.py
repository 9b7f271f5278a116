"""Tests that touch JACK, PortAudio on JACK or a GL window run in a pytest process of their own, with
its own time limit.

A native crash (SIGSEGV, an abort in PortAudio's JACK host, Mesa) or a hang inside a native call (a
JACK close waiting on a process thread) then fails that one test, with every thread's stack, and the run
goes on. The parent never loads JACK or PortAudio for these tests: it starts
`python -m pytest NODEID` with the reports file named in the environment, replays the reports the
child wrote (setup, call, teardown) and, if the child died or was killed first, reports the phase it
did not finish as failed with what the child printed. The child's whole process tree (the JACK
servers its fixtures started, scenario children in sessions of their own) is killed past the limit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

REPORTS_ENV = "CHROMESTHESIA_TEST_REPORTS"
"""Set in the child: where it writes its reports (one JSON object a line); unset in the parent."""
HANG_ENV = "CHROMESTHESIA_TEST_HANG_S"
"""Set in the child: when its watchdog dumps every thread's stack and exits (tests/conftest.py)."""
NATIVE_FIXTURES = frozenset({"jack_server", "jack_at_256_frames", "portaudio_on_jack", "xvfb"})
PARENT_HANG_S = 360.0
"""The parent's own watchdog (tests/conftest.py); a child is given up on well before it."""
START_S = 20.0
"""Allowed on top of the test's own timeout for the child's interpreter and collection to start."""
STACKS_BEFORE_KILL_S = 5.0
"""The child's watchdog dumps its stacks and exits this long before the parent kills it."""
SAID_CHARS = 12000

_LIMIT_S = pytest.StashKey[float]()
_config: pytest.Config | None = None


def needs_own_process(item: pytest.Item) -> bool:
    """Marked `jack` or `own_process` (the test or its parameter), or using a fixture that starts JACK or Xvfb."""
    return (item.get_closest_marker("jack") is not None or item.get_closest_marker("own_process") is not None
            or bool(NATIVE_FIXTURES & set(getattr(item, "fixturenames", ()))))


def in_child() -> bool:
    return REPORTS_ENV in os.environ


def child_limit_s(item: pytest.Item) -> float:
    """The test's own timeout (pytest-timeout's, in the child) and some start-up, inside the parent's watchdog."""
    marker = item.get_closest_marker("timeout")
    timeout_s = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 300)
    return min(timeout_s + START_S, PARENT_HANG_S - START_S)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_child():
        return
    for item in items:
        if needs_own_process(item):
            item.stash[_LIMIT_S] = child_limit_s(item)
            # The parent only waits on the child: pytest-timeout's alarm would fire in that wait
            # and end the session; the child's limit is kept by the parent and the child's own alarm.
            item.add_marker(pytest.mark.timeout(0), append=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if in_child() or not needs_own_process(item):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in run_in_own_process(item):
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    # What the runner's teardown would do: end the module and class fixtures the tests before this
    # one set up in this process and the next one does not share (this test set none up here).
    item.session._setupstate.teardown_exact(nextitem)
    return True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get(REPORTS_ENV)
    if path and _config is not None:
        data = _config.hook.pytest_report_to_serializable(config=_config, report=report)
        with open(path, "a", encoding="utf-8") as reports:
            reports.write(json.dumps(data) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config


def run_in_own_process(item: pytest.Item) -> list[pytest.TestReport]:
    """Run the one test in a child pytest; its reports, completed with a failure for the phase it did not finish."""
    limit_s = item.stash.get(_LIMIT_S, None) or child_limit_s(item)
    with tempfile.TemporaryDirectory(prefix="own-process-") as folder:
        reports_path = Path(folder) / "reports.jsonl"
        env = dict(os.environ, **{REPORTS_ENV: str(reports_path), HANG_ENV: str(limit_s - STACKS_BEFORE_KILL_S)})
        started_s = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
                                 "-rN", item.nodeid], cwd=item.config.rootpath, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        timed_out = False
        try:
            said, _ = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_tree(proc.pid)
            said, _ = proc.communicate()
        finally:
            kill_group(proc.pid)  # what it left behind in its group: a JACK server its fixture did not stop
        elapsed_s = time.monotonic() - started_s
        reports = _read_reports(item.config, reports_path)
    whens = {r.when for r in reports}
    if "teardown" in whens and not timed_out:
        return reports
    unfinished = next((w for w in ("setup", "call", "teardown") if w not in whens), "teardown")
    how = (f"did not finish within {limit_s:g} s and was killed with every process below it" if timed_out
           else f"ended with exit status {proc.returncode} before its {unfinished} finished")
    reports.append(_failed(item, unfinished, f"{item.nodeid} ran in a process of its own, which {how}. What it "
                                             f"printed (the last {SAID_CHARS} characters):\n{said[-SAID_CHARS:]}",
                           elapsed_s))
    if unfinished != "teardown":
        reports.append(pytest.TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords}, "passed", None,
                                         "teardown"))
    return reports


def _read_reports(config: pytest.Config, path: Path) -> list[pytest.TestReport]:
    if not path.exists():
        return []
    reports = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            reports.append(config.hook.pytest_report_from_serializable(config=config, data=json.loads(line)))
        except ValueError:  # the last line, torn by a kill
            break
    return [r for r in reports if isinstance(r, pytest.TestReport)]


def _failed(item: pytest.Item, when: str, text: str, elapsed_s: float) -> pytest.TestReport:
    now_s = time.time()
    return pytest.TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords}, "failed", text, when,
                             duration=elapsed_s, start=now_s - elapsed_s, stop=now_s)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it, sessions of their own included."""
    try:
        root = psutil.Process(pid)
        family = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=5)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
