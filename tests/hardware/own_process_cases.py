"""Run by tests/hardware/test_own_process.py as a pytest run of its own (the name keeps it out of the
suite): tests in processes of their own that pass, crash, hang in a native call, or stop dead."""
from __future__ import annotations

import ctypes
import os
import signal
import threading

import pytest

@pytest.fixture(scope="module")
def set_up_in_the_run_process():
    return os.getpid()


def test_in_the_run_process(set_up_in_the_run_process):
    """Its module fixture is torn down after the isolated tests below, before the next module runs."""
    assert "CHROMESTHESIA_TEST_REPORTS" not in os.environ


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_passes_in_its_own_process():
    assert os.environ.get("CHROMESTHESIA_TEST_REPORTS")


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_crashes():
    ctypes.string_at(0)  # a null pointer read: SIGSEGV


def stuck_in_a_native_call() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # pytest-timeout's alarm never lands
    threading.Event().wait()


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_hangs():
    stuck_in_a_native_call()


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_stops_dead():
    os.kill(os.getpid(), signal.SIGSTOP)  # not even its watchdog runs


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_crashes_under_a_jack_server(jack_server):
    with open(os.environ["OWN_PROCESS_CASES_SERVER"], "w") as said:
        said.write(jack_server)  # the server's name: the outer test checks it was stopped with its test
    ctypes.string_at(0)


@pytest.mark.own_process
@pytest.mark.timeout(1)
def test_after_the_others():
    pass
