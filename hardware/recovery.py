"""One device's health as a small state machine: waiting -> open -> lost -> open ... -> closed.

The device decides what "lost" means (a probe that no longer finds its port, a server that is not
the one it joined, a stream that stopped); this records it once, says when to try again (back-off
capped low, so sound returns within seconds of the device), and reports for /status and /metrics.
Every loss is logged once, with one line again when the device is back.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("chromesthesia.devices")

BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
"""Waits between reopen tries; the last repeats. Capped at 2 s: a device back is heard within 2 s."""

STATES = ("waiting", "open", "lost", "closed")


class DeviceHealth:
    """Thread-safe: the device's own thread reports, any thread reads `snapshot()`."""

    def __init__(self, name: str, kind: str, now_s: Callable[[], float] = time.monotonic,
                 backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
        self.name = name
        self.kind = kind
        self._now_s = now_s
        self._backoff_s = backoff_s
        self._lock = threading.Lock()
        self.state = "waiting"
        self.losses = 0
        self.reopens = 0
        self.reopen_failures = 0
        self.reason = ""
        self._since_s = now_s()
        self._tries = 0
        self._next_try_s = self._since_s

    def opened(self) -> None:
        """The device works (first open or a reopen)."""
        with self._lock:
            if self.state == "open":
                return
            back = self.state == "lost"
            down_s = self._now_s() - self._since_s
            self._enter("open", "")
            if back:
                self.reopens += 1
        if back:
            log.info("%s %s is back after %.1f s", self.kind, self.name, down_s)

    def lost(self, reason: str) -> bool:
        """The device stopped working; True (and one warning) only on the change from open."""
        with self._lock:
            if self.state in ("lost", "closed"):
                return False
            was_open = self.state == "open"
            self._enter("lost", reason)
            self._next_try_s = self._since_s + self._backoff_s[0]
            if was_open:
                self.losses += 1
        if was_open:
            log.warning("%s %s lost (%s); reopening it when it returns", self.kind, self.name, reason)
        return was_open

    def reopen_due(self) -> bool:
        """Whether a reopen should be tried now (waiting or lost, and the back-off has passed)."""
        with self._lock:
            return self.state in ("waiting", "lost") and self._now_s() >= self._next_try_s

    def reopen_failed(self, reason: str) -> None:
        """A reopen try failed: the next one after the back-off; logged at debug only."""
        with self._lock:
            self._tries += 1
            self.reopen_failures += 1
            self._next_try_s = self._now_s() + self._backoff_s[min(self._tries, len(self._backoff_s) - 1)]
            if self.state == "waiting":
                self.reason = reason
        log.debug("%s %s: reopen failed (%s)", self.kind, self.name, reason)

    def waiting(self) -> None:
        """Opened again after a close: tries are due at once, and the loss count goes on."""
        with self._lock:
            self._enter("waiting", "")
            self._next_try_s = self._since_s

    def closed(self) -> None:
        with self._lock:
            self._enter("closed", "")

    def _enter(self, state: str, reason: str) -> None:
        self.state, self.reason, self._since_s, self._tries = state, reason, self._now_s(), 0

    def snapshot(self) -> dict:
        with self._lock:
            return {"kind": self.kind, "state": self.state, "since_s": round(self._now_s() - self._since_s, 1),
                    "losses": self.losses, "reopens": self.reopens, "reopen_failures": self.reopen_failures,
                    **({"reason": self.reason} if self.reason else {})}
