"""One monotonic clock for every timestamp in the process, and a manual clock for tests."""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float: ...

    def sleep_until(self, deadline_s: float, cancel: threading.Event | None = None) -> bool:
        """Sleep until `deadline_s`; return False early if `cancel` is set."""
        ...


class MonotonicClock:
    """`time.monotonic`; never jumps with wall-clock or NTP changes."""

    def now_s(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline_s: float, cancel: threading.Event | None = None) -> bool:
        delay_s = deadline_s - time.monotonic()
        if delay_s <= 0:
            return not (cancel is not None and cancel.is_set())
        if cancel is None:
            time.sleep(delay_s)
            return True
        return not cancel.wait(delay_s)


class ManualClock:
    """A clock that moves only when told; `sleep_until` jumps forward instead of waiting."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()

    def now_s(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, dt_s: float) -> None:
        with self._lock:
            self._now_s += dt_s

    def sleep_until(self, deadline_s: float, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return False
        with self._lock:
            self._now_s = max(self._now_s, deadline_s)
        return True
