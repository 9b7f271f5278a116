"""Waiting on a condition in tests that run real threads, processes or sockets.

Stage logic is tested with ManualClock and no waiting at all; this is for the tests that must
watch something real happen, so they wait for the condition rather than for a fixed time.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02) -> T:
    """The first truthy value of `predicate()`, polled until `timeout_s`; the last value otherwise.

    Timeouts are generous on purpose: a loaded 2-core machine is slow, and a passing test returns
    as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value
