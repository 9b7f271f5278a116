"""Running a JACK or PortAudio scenario in a child process with its own timeout, so that a native
crash or hang fails the one test (with the child's stacks) and never stalls the run.

The scenario module takes its own timeout as its first argument (faulthandler dumps every thread's
stack and exits then) and prints its result as its last JSON line; it runs in a process group of
its own, killed whole (its JACK clients and servers with it) should it outlive the test's timeout.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DUMP_BEFORE_S = 5.0
"""The child dumps its stacks this long before the test gives up on it."""


def run_child(module: str, timeout_s: float, *args: str) -> dict:
    """Run `python -m module` with its own timeout; its last JSON line, or the test fails with its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", module, str(timeout_s - DUMP_BEFORE_S), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{module} did not finish in {timeout_s:g} s:\n{err[-6000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"{module} exited {proc.returncode} without a result:\n{err[-6000:]}"
    return json.loads(lines[-1])
