"""Run by tests/hardware/test_own_process.py as a pytest run of its own (the name keeps it out of the
suite): tests in processes of their own that pass, crash, hang in a native call, or stop dead."""
from __future__ import annotations

import ctypes
import os
import signal
import threading

import pytest

pytestmark = [pytest.mark.own_process, pytest.mark.timeout(1)]


def test_passes_in_its_own_process():
    assert os.environ.get("CHROMESTHESIA_TEST_REPORTS")


def test_crashes():
    ctypes.string_at(0)  # a null pointer read: SIGSEGV


def stuck_in_a_native_call() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # pytest-timeout's alarm never lands
    threading.Event().wait()


def test_hangs():
    stuck_in_a_native_call()


def test_stops_dead():
    os.kill(os.getpid(), signal.SIGSTOP)  # not even its watchdog runs


def test_crashes_under_a_jack_server(jack_server):
    ctypes.string_at(0)


def test_after_the_others():
    pass
