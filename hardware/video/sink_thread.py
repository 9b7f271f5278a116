"""A frame sink on its own thread: the one way a slow or failing sink is kept off the projector.

`SinkThread` is itself a hardware.base.FrameSink: `show` (main thread) only overwrites a Latest
slot and never waits; the thread hands the newest frame to the wrapped sink, counts the frames it
skipped, reopens the sink when the frame size changes, and closes and reopens a failing one with a
growing back-off. Its `health` (hardware.recovery.DeviceHealth) says open, lost or closed for
/status, /metrics and the dashboard: the first failure after working is one loss, logged once.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from hardware.base import FrameSink
from hardware.recovery import DeviceHealth
from installation.mailbox import Latest

log = logging.getLogger(__name__)


class SinkThread:
    """Sends the newest frame to `sink` from its own thread (at most `max_fps` a second when > 0;
    at `nice`, which the sink's own threads inherit on Linux)."""

    def __init__(self, sink: FrameSink, max_fps: float = 0.0, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 nice: int = 0, stop_timeout_s: float = 2.0, kind: str = "video out") -> None:
        self.sink = sink
        self.name: str = getattr(sink, "name", type(sink).__name__)
        self.health = DeviceHealth(self.name, kind, time.monotonic)
        self._nice = nice
        self._min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self._latest: Latest[np.ndarray] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stop_timeout_s = stop_timeout_s
        self._size: tuple[int, int] | None = None
        self.opened = False
        self.sent = 0
        self.errors = 0
        self.reopened = 0
        self.last_error = ""

    @property
    def dropped(self) -> int:
        return self._latest.dropped

    # --- FrameSink (main thread) ------------------------------------------------------------------
    def open(self) -> None:
        """Start the thread; the sink itself is opened there, so its own threads get the lower priority."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sink {self.name}", daemon=True)
            self._thread.start()

    def show(self, rgb: np.ndarray) -> None:
        """Hand over the newest frame (not copied: the caller never writes into it again)."""
        self._latest.put(rgb)

    def close(self) -> None:
        self._stop.set()
        self._latest.put(np.zeros((1, 1, 3), np.uint8))  # wake the thread
        if self._thread is not None:
            self._thread.join(self._stop_timeout_s)
        self._close_sink()
        self.health.closed()

    # --- the sink's thread ------------------------------------------------------------------------
    def _run(self) -> None:
        if self._nice:
            try:  # Linux: a thread's nice value is its own, and threads it starts inherit it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except (OSError, AttributeError):
                pass
        delay_s = self._backoff_s
        while not self._stop.is_set():
            rgb = self._latest.take(timeout_s=0.5)
            if rgb is None or self._stop.is_set():
                continue
            try:
                self._send(rgb)
                delay_s = self._backoff_s
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                said = self.health.lost(self.last_error)  # one warning when a working sink fails
                if not said:
                    self.health.reopen_failed(self.last_error)
                if (self.errors == 1 and not said) or self.errors == 10 or self.errors % 1000 == 0:
                    log.warning("frame sink %s failed (%s); retrying in %.1f s", self.name, self.last_error, delay_s)
                self._close_sink()
                if self._stop.wait(delay_s):
                    break
                delay_s = min(self._max_backoff_s, delay_s * 2)
                continue
            if self._min_interval_s and self._stop.wait(self._min_interval_s):
                break

    def _send(self, rgb: np.ndarray) -> None:
        size = (rgb.shape[1], rgb.shape[0])
        if self.opened and self._size != size:
            self._close_sink()
        if not self.opened:
            self.sink.open()
            self._size = size
            if self.errors:
                self.reopened += 1
                log.info("frame sink %s open again", self.name)
            self.opened = True
            self.health.opened()
        self.sink.show(rgb)
        self.sent += 1

    def _close_sink(self) -> None:
        self.opened = False
        try:
            self.sink.close()
        except Exception as exc:
            log.debug("frame sink %s: closing: %s", self.name, exc)

    def stats(self) -> dict:
        return {"sink": self.name, "open": self.opened, "sent": self.sent, "dropped": self.dropped,
                "errors": self.errors, "reopened": self.reopened, "last_error": self.last_error}
