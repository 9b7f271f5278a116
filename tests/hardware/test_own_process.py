"""A test that touches JACK or PortAudio runs in a pytest process of its own: its crash or hang fails
that test with its stack, within its own limit, and the run goes on (tests/own_process.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import JACKD_NAME
from tests.own_process import HANG_ENV, REPORTS_ENV, START_S

ROOT = Path(__file__).resolve().parents[2]
CASES = "tests/hardware/own_process_cases.py"
NEXT_MODULE = "tests/installation/test_records.py"
"""A module run after the cases, in the run's own process: nothing of the cases' module is left set up."""


def _jackd_names() -> set[str]:
    names = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"jackd") and b"-n" in argv[:-1]:
            names.add(argv[argv.index(b"-n") + 1].decode(errors="replace"))
    return names


@pytest.mark.slow
def test_crashes_and_hangs_fail_their_test_with_a_stack_and_the_run_goes_on(tmp_path):
    server_said = tmp_path / "server"
    env = {k: v for k, v in os.environ.items() if k not in (REPORTS_ENV, HANG_ENV)}
    env["OWN_PROCESS_CASES_SERVER"] = str(server_said)
    started_s = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", CASES, NEXT_MODULE],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    elapsed_s = time.monotonic() - started_s
    said = run.stdout
    outcome = {line.split(" ")[1]: line.split(" ")[0] for line in said.splitlines()
               if line.startswith(("PASSED ", "FAILED ", "ERROR "))}
    cases = {test.split("::")[-1]: result for test, result in outcome.items() if test.startswith(CASES)}
    assert cases == {"test_in_the_run_process": "PASSED", "test_passes_in_its_own_process": "PASSED",
                     "test_crashes": "FAILED", "test_hangs": "FAILED", "test_stops_dead": "FAILED",
                     "test_crashes_under_a_jack_server": "FAILED", "test_after_the_others": "PASSED"}, said[-6000:]
    assert all(result == "PASSED" for test, result in outcome.items() if test.startswith(NEXT_MODULE)), said[-6000:]
    assert "Segmentation fault" in said and "own_process_cases.py" in said
    assert "stuck_in_a_native_call" in said  # the hung test's stack, dumped by its watchdog
    assert f"did not finish within {1 + START_S:g} s and was killed" in said
    assert elapsed_s < 4 * (1 + START_S) + 60
    server = server_said.read_text()
    assert JACKD_NAME.match(server) and server not in _jackd_names(), f"{server} outlived the test that crashed under it"
