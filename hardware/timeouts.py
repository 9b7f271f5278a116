"""A device call that may never return (a driver waiting on a device that went away) run with a
deadline: the caller goes on after `timeout_s`, and the call is abandoned on a daemon thread."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


def call_abandoning(fn: Callable[[], object], timeout_s: float, what: str) -> bool:
    """Run `fn()` for at most `timeout_s`; True when it returned in time (its exception, if any,
    is logged, not raised), False when it was abandoned still running."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - closing a broken device may fail again
            log.exception("%s failed", what)
        finally:
            done.set()

    threading.Thread(target=run, name=f"abandonable: {what}", daemon=True).start()
    if done.wait(timeout_s):
        return True
    log.error("%s did not return within %.1f s; abandoned, going on without it", what, timeout_s)
    return False
