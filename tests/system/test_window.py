"""The projector window stays up: a window on a real X server (Xvfb, whose GL is Mesa's llvmpipe),
then the sentence model's late import of triton, in child processes, so a native crash fails the
test (exit code, stacks in crash.log) instead of taking the test run down."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from installation.showlog.writer import read_show_log
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

WINDOW_THEN_TRITON = textwrap.dedent("""
    import importlib.util, os, numpy as np
    from hardware.video.display import PygameDisplay
    display = PygameDisplay("window", 320, 180)
    display.open()
    display.show(np.full((180, 320, 3), 90, np.uint8))
    if importlib.util.find_spec("triton") is not None:
        import triton  # what torch._dynamo does seconds into a show, under transformers
    display.show(np.full((180, 320, 3), 120, np.uint8))
    display.close()
    print("shown", display.stats["frames"])
""")


def child_env(display: str) -> dict[str, str]:
    import os
    env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
    env["DISPLAY"] = display
    return env


def test_triton_imported_after_a_window_opened_does_not_crash(xvfb):
    done = subprocess.run([sys.executable, "-c", WINDOW_THEN_TRITON], cwd=ROOT, env=child_env(xvfb),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert "shown 2" in done.stdout


@pytest.mark.slow
def test_windowed_installation_runs_and_exits_cleanly(xvfb, tmp_path):
    """The embedded default (synth, slideshow, procedural, composer with its sentence model) in a
    real window for 30 s: exit code 0, no crash stack, frames shown, stopped by its duration."""
    log_path = tmp_path / "show.jsonl"
    command = [sys.executable, str(ROOT / "run.py"), "--quiet", "--duration", "30",
               "--set", 'display.mode="window"', "--set", "osc.port=0", "--set", 'synth.speakers="off"',
               "--set", f'showlog.path="{log_path}"']
    proc = subprocess.Popen(command, cwd=ROOT, env=child_env(xvfb), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"the windowed run did not end within 240 s: {stderr[-2000:]}")
    crash_log = tmp_path / "crash.log"
    stacks = crash_log.read_text(errors="replace") if crash_log.exists() else ""
    assert proc.returncode == 0, f"exit {proc.returncode}; crash.log:\n{stacks[-4000:]}\nstderr:\n{stderr[-2000:]}"
    assert not stacks and "Fatal Python error" not in stderr
    show = read_show_log(log_path)
    start = next(r for r in show if r["kind"] == "start")
    stop = show[-1]
    assert start["sources"]["display"] == "window"
    assert stop["kind"] == "stop" and stop["reason"] == "duration reached"
    assert stop["counters"]["frames_shown"] > 30


def test_a_native_crash_leaves_every_threads_stack_in_the_log_and_on_stderr(tmp_path):
    """SIGSEGV sent to a running show: faulthandler writes every thread's stack to stderr and to
    crash.log beside the show log, and the copy to the file outlives the process."""
    command = [sys.executable, str(ROOT / "run.py"), "--headless", "--quiet", "--duration", "120",
               "--record", str(tmp_path)]
    for item in ["osc.enabled=false", 'audio.source="synth"', 'camera.source="photos"', 'render.backend="procedural"',
                 'synth.speakers="off"', "compose.enabled=false", "render.width=320", "render.height=180"]:
        command += ["--set", item]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = wait_for(lambda: any(r["kind"] == "start" for r in read_show_log(tmp_path / "show.jsonl"))
                           if (tmp_path / "show.jsonl").exists() else proc.poll() is not None, 120)
        assert started and proc.poll() is None, "the show did not start"
        proc.send_signal(signal.SIGSEGV)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGSEGV
    # communicate() returned: the copier (which shares the stderr pipe) has finished the file too.
    stacks = (tmp_path / "crash.log").read_text(errors="replace")
    assert "Fatal Python error: Segmentation fault" in stacks
    assert "installation/workers.py" in stacks  # the stages' threads, not only the one that crashed
    assert stacks.count("hread 0x") >= 3  # "Current thread" only when the signal landed on a Python thread
    assert "Fatal Python error: Segmentation fault" in stderr


def test_the_soaks_virtual_x_server_picks_a_free_display_and_stops():
    import shutil
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb); `make test` installs it")
    from hardware.video.virtual_display import xvfb as virtual_x
    with virtual_x(320, 240) as display:
        socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
        assert display.startswith(":") and socket.exists()
        with virtual_x(320, 240) as other:
            assert other != display
    assert wait_for(lambda: not socket.exists(), 10)


def test_nothing_is_preloaded_for_a_driver_without_gl(monkeypatch):
    from hardware.video.load_order import load_before_gl
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert load_before_gl(("json",)) == []
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    assert load_before_gl(("json", "no_such_module_here")) == ["json"]
