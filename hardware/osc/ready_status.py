"""The /status answer kept ready, so the reader thread can send it the moment a question arrives.

Answering on the control thread costs a second thread wake-up and `status_fn()` on the way: on a
loaded machine each wake-up can wait for a core, and the status of a whole installation is a
few milliseconds of Python. Instead, while anyone asks (a question in the last `WANTED_S`), the
control thread rebuilds the answer every `REFRESH_S`; the reader sends the newest one, when it
is no older than `FRESH_S`, under a per-host budget of its own. Anything else (a stale answer, a
host over its budget, a host with packets still waiting, OSC over TCP) goes the usual way.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from hardware.osc.limits import HostLimits

REFRESH_S = 0.1
"""How often the answer is rebuilt while wanted."""
FRESH_S = 0.5
"""The oldest answer the reader sends (the main loop's own status rate is 2 Hz); an older one is left to
the control thread."""
WANTED_S = 60.0
"""How long after the last question the answer is kept ready."""
QUESTIONS = frozenset({b"/status\x00,\x00\x00\x00", b"/status\x00", b"/get_status\x00,\x00\x00\x00", b"/get_status\x00"})
"""/status and /get_status without arguments, as datagrams (with or without an empty type tag string)."""


class ReadyStatus:
    """The reader answers (`answer`); the control thread builds (`refresh`, `build_now`).

    `build()` makes the /status datagram; `waiting(host)` says whether the host has packets
    waiting.
    """

    def __init__(self, build: Callable[[], bytes], rate_hz: float, burst: float,
                 waiting: Callable[[str], bool] = lambda host: False) -> None:
        self._build = build
        self._waiting = waiting
        self._lock = threading.Lock()
        self._limits = HostLimits(rate_hz, burst)
        self._dgram: bytes | None = None
        self._built_s = -1e9
        self._wanted_until_s = -1e9
        self.answered = 0
        """Questions the reader answered (written by the reader thread only)."""

    def answer(self, data: bytes, peer: Any, now_s: float, send: Callable[[bytes, Any], Any]) -> bool:
        """Reader thread: True when `data` was /status and the ready answer went back to `peer`
        (`send(dgram, peer)`, from the control port); False leaves it to the control thread (the
        host's earlier packets first, so its replies keep their order)."""
        if data not in QUESTIONS or self._waiting(peer[0]):
            return False
        dgram = self.take(peer[0], now_s)
        if dgram is None:
            return False
        try:
            send(dgram, peer)
        except OSError:
            return False  # the control thread answers it, and counts what goes wrong
        self.answered += 1
        return True

    def take(self, host: str, now_s: float) -> bytes | None:
        """The ready answer for `host`, or None (stale, none yet, or the host over its budget)."""
        with self._lock:
            self._wanted_until_s = now_s + WANTED_S
            if self._dgram is None or now_s - self._built_s > FRESH_S or not self._limits.take(host, now_s):
                return None
            return self._dgram

    def build_now(self, now_s: float) -> bytes:
        """Control thread: a question reached it; the answer, built now and kept ready from now on."""
        with self._lock:
            self._wanted_until_s = now_s + WANTED_S
        dgram = self._build()
        self._keep(dgram, now_s)
        return dgram

    def _keep(self, dgram: bytes, now_s: float) -> None:
        with self._lock:
            self._dgram, self._built_s = dgram, now_s

    def due_s(self) -> float:
        """When `refresh` next has work (infinity while nobody asks)."""
        with self._lock:
            return self._built_s + REFRESH_S if self._wanted_until_s > self._built_s else float("inf")

    def refresh(self, now_s: float) -> None:
        """Control thread: rebuild when wanted and due; forget the answer once nobody asks."""
        with self._lock:
            if now_s >= self._wanted_until_s:
                self._dgram, self._wanted_until_s = None, -1e9
                return
            if now_s - self._built_s < REFRESH_S:
                return
        self._keep(self._build(), now_s)
