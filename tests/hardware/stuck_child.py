"""Run as a child process by tests/hardware/test_child_scenario.py: a scenario that hangs or crashes
(`hang` or `crash` after the timeout argument), as a native call in a JACK or PortAudio test might."""
from __future__ import annotations

import ctypes
import faulthandler
import sys
import threading

faulthandler.enable()
faulthandler.dump_traceback_later(float(sys.argv[1]), exit=True)


def stuck_in_a_native_call() -> None:
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[2] == "crash":
        ctypes.string_at(0)  # a null pointer read: SIGSEGV
    stuck_in_a_native_call()
