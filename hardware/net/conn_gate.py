"""Admission of TCP connections: the allowlist and a cap per server and per host, applied the
moment a connection is accepted, before it costs a buffer, a thread or a parser.

A host outside the allowlist, a host already holding `max_per_host` connections, or any host
while the server holds `max_connections` is closed at once. Without the per-host cap one
client's idle connections lock every other client out; without the total cap a few thousand
half-open connections fill the process's file-descriptor table and OSC, thumbnails and config
reloads fail with it.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0
"""A refused host is named in the log at most this often (a flood must not become a log storm)."""


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds of one TCP server (built from installation.config at the wiring)."""

    max_connections: int = 64
    max_per_host: int = 8
    header_timeout_s: float = 5.0
    """HTTP: the request line and headers must have arrived this long after the connection opened
    (or after the previous response): a slow or silent client is closed."""
    idle_timeout_s: float = 600.0
    """Streams (OSC over TCP): a connection that sends nothing this long is closed."""


def host_key(host: str) -> str:
    """One spelling per host: an IPv4-mapped IPv6 address is its IPv4 address, no zone id."""
    bare = (host or "").split("%")[0]
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return bare
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class ConnectionGate:
    """Counts open connections per host; `admit` says whether a new one may stay. Thread-safe."""

    def __init__(self, limits: ConnectionLimits, allowed: Callable[[str], bool] = lambda host: True,
                 what: str = "a TCP server") -> None:
        self.limits = limits
        self._what = what
        self._warned_s: dict[tuple[str, str], float] = {}
        self._allowed = allowed
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self.stats = {"admitted": 0, "refused_host": 0, "refused_full": 0, "refused_per_host": 0}

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def admit(self, host: str) -> str | None:
        """None when the connection from `host` may stay (it is counted until `release`), else
        the reason it is closed."""
        key = host_key(host)
        if not self._allowed(key):
            reason = "refused_host"
        else:
            with self._lock:
                if sum(self._open.values()) >= self.limits.max_connections:
                    reason = "refused_full"
                elif self._open[key] >= self.limits.max_per_host:
                    reason = "refused_per_host"
                else:
                    self._open[key] += 1
                    self.stats["admitted"] += 1
                    return None
        with self._lock:
            self.stats[reason] += 1
            now_s = time.monotonic()
            if now_s - self._warned_s.get((key, reason), -WARN_EVERY_S) < WARN_EVERY_S:
                return reason
            if len(self._warned_s) >= 1024:
                self._warned_s.clear()
            self._warned_s[(key, reason)] = now_s
        why = {"refused_host": "not in its allowlist", "refused_full": f"{self.limits.max_connections} connections open",
               "refused_per_host": f"{self.limits.max_per_host} connections open from that host"}[reason]
        log.warning("%s: closing connections from %s (%s)", self._what, key, why)
        return reason

    def release(self, host: str) -> None:
        key = host_key(host)
        with self._lock:
            if self._open[key] <= 1:
                self._open.pop(key, None)
            else:
                self._open[key] -= 1
