"""The OSC control server's per-host limit: a token bucket per sender host (`osc.rate_limit_hz`
a second, bursts of `osc.burst`), and the fader values that arrived over it, waiting (newest per
address and sender) until their host has budget again, so a fader's final value always lands.

Control thread only.
"""
from __future__ import annotations

from typing import Any, Hashable

from hardware.osc.replies import TokenBucket

MAX_SENDERS = 4096
"""Rate-limit buckets kept; the least recently seen sender is forgotten first."""
MAX_PENDING_FADERS = 4096


class HostLimits:
    def __init__(self, rate_hz: float, burst: float) -> None:
        self.rate_hz = float(rate_hz)
        self.burst = float(burst)
        self._buckets: dict[str, TokenBucket] = {}
        self.pending: dict[Hashable, tuple[bytes, Any]] = {}
        """Coalesced fader messages over the limit: (address bytes, peer) -> (datagram, packet)."""

    def bucket(self, host: str, now_s: float) -> TokenBucket:
        bucket = self._buckets.pop(host, None)  # pop + set keeps the dict in least-recently-seen order
        if bucket is None:
            bucket = TokenBucket(self.burst, now_s)
            if len(self._buckets) >= MAX_SENDERS:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[host] = bucket
        bucket.refill(now_s, self.rate_hz, self.burst)
        return bucket

    def take(self, host: str, now_s: float) -> bool:
        """One message's worth of `host`'s budget, if it has one."""
        bucket = self.bucket(host, now_s)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def hold(self, key: Hashable, dgram: bytes, packet) -> str:
        """Keep a fader value over the limit: "superseded" (it replaced a waiting value of the same
        fader), "coalesced" (now waiting) or "full" (too many faders wait; dropped)."""
        if self.pending.pop(key, None) is not None:
            self.pending[key] = (dgram, packet)
            return "superseded"
        if len(self.pending) >= MAX_PENDING_FADERS:
            return "full"
        self.pending[key] = (dgram, packet)
        return "coalesced"

    def release(self, now_s: float) -> list[tuple[bytes, Any]]:
        """Waiting fader values whose host has budget again, oldest first (taken from the wait)."""
        ready = []
        for key in list(self.pending):
            dgram, packet = self.pending[key]
            if self.take(packet.host, now_s):
                del self.pending[key]
                ready.append((dgram, packet))
        return ready
