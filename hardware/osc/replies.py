"""What the OSC control server sends back beyond one-off replies: `/status` feedback to
`/subscribe`rs, the analysis streams to `/subscribe/out`rs and `osc.out_targets`, all within
one total budget (`osc.feedback_max_per_s` datagrams a second).

Threads: subscriptions change on the control thread; `send_out` and `allowed` may run on any
thread (the projector loop sends the analysis streams).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any, Callable

from hardware.osc.settings import OscSettings

log = logging.getLogger(__name__)

Send = Callable[[Any, bytes, str], None]
"""(peer, datagram, counter): send and count."""
Reply = Callable[[Any, str, dict], None]
"""(peer, reply address, body): answer one sender."""


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


class TokenBucket:
    __slots__ = ("tokens", "t_s")

    def __init__(self, tokens: float, t_s: float) -> None:
        self.tokens = tokens
        self.t_s = t_s

    def refill(self, now_s: float, rate_hz: float, burst: float) -> float:
        self.tokens = min(burst, self.tokens + (now_s - self.t_s) * rate_hz)
        self.t_s = now_s
        return self.tokens


def is_own_address(host: str, port: int, own: tuple[str, int]) -> bool:
    """True when (host, port) is the server's own socket `own`: feedback would loop back in."""
    own_host, own_port = own
    if port != own_port:
        return False
    if host == own_host:
        return True
    if own_host not in ("0.0.0.0", "::", ""):
        return False
    try:  # a wildcard bind hears on every local address: is `host` one of ours?
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host.split("%")[0], 0))
        return True
    except OSError:
        return False


class Feedback:
    """Subscribers ((host, port, "status" or "out") -> expiry) and the total feedback budget.

    `status_fn` gives what /status answers; `build(address, *args)` makes a datagram; `send`,
    `reply` and `count` are the server's (so every datagram leaves from its control port and is
    counted in its `stats`).
    """

    def __init__(self, settings: OscSettings, clock, status_fn: Callable[[], dict],
                 build: Callable[..., bytes], send: Send, reply: Reply, stats: dict[str, int]) -> None:
        self._clock = clock
        self._status_fn = status_fn
        self._build = build
        self._send = send
        self._reply = reply
        self._stats = stats
        self.period_s = 1.0 / settings.feedback_hz
        self._max_per_s = settings.feedback_max_per_s
        self._ttl_s = settings.subscribe_ttl_s
        self._max_subscribers = settings.max_subscribers
        self._bucket = TokenBucket(self._max_per_s, 0.0)
        self._subscribers: dict[tuple[str, int, str], float] = {}
        self._sub_lock = threading.Lock()
        self._budget_lock = threading.Lock()
        self.next_s = 0.0
        """When /status feedback is next due."""

    def __len__(self) -> int:
        return len(self._subscribers)

    def _refuse(self, peer, reply_to: str, address: str, reason: str) -> None:
        self._stats["rejected"] += 1
        self._reply(peer, reply_to, {"status": "error", "address": address, "reason": reason})

    def subscribe(self, address: str, args: tuple, peer, reply_to: str, own: tuple[str, int]) -> None:
        """/subscribe, /unsubscribe, /subscribe/out, /unsubscribe/out [port] (control thread)."""
        if not isinstance(peer, tuple):
            self._refuse(peer, reply_to, address, "subscribe over UDP: feedback is sent as UDP datagrams")
            return
        port = peer[1]
        if args:
            value = args[0]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
                    or not 1 <= int(value) <= 65535:
                self._refuse(peer, reply_to, address, f"port must be an integer 1-65535, not {value!r}")
                return
            port = int(value)
        key = (peer[0], port, "out" if address.endswith("/out") else "status")
        if address.startswith("/unsubscribe"):
            with self._sub_lock:
                self._subscribers.pop(key, None)
        else:
            if is_own_address(key[0], key[1], own):
                self._refuse(peer, reply_to, address, "that is this installation's own control port; "
                                                      "subscribe a port your program listens on")
                return
            now_s = self._clock.now_s()
            self._expire(now_s)
            if key not in self._subscribers and len(self._subscribers) >= self._max_subscribers:
                self._refuse(peer, reply_to, address, f"too many subscribers ({self._max_subscribers})")
                return
            with self._sub_lock:
                self._subscribers[key] = now_s + self._ttl_s
            self.next_s = min(self.next_s, now_s)
        self._stats["subscribers"] = len(self._subscribers)
        self._reply(peer, reply_to, {"status": "ok", "address": address, "host": key[0], "port": port,
                                     "hz": round(1.0 / self.period_s, 3), "ttl_s": self._ttl_s})

    def _expire(self, now_s: float) -> None:
        with self._sub_lock:
            for key in [k for k, until in self._subscribers.items() if until <= now_s]:
                del self._subscribers[key]

    def tick(self) -> None:
        """Control thread: /status to every status subscriber when it is due."""
        now_s = self._clock.now_s()
        if now_s < self.next_s:
            return
        self.next_s = max(self.next_s + self.period_s, now_s)
        self._expire(now_s)
        self._stats["subscribers"] = len(self._subscribers)
        with self._sub_lock:
            destinations = [key[:2] for key in self._subscribers if key[2] == "status"]
        if destinations:
            self.send_status(destinations, reply=False)

    def send_out(self, dgram: bytes, targets: tuple = ()) -> int:
        """Any thread: `dgram` to every /subscribe/out subscriber and to `targets` ((host, port)
        pairs from config), within the total feedback budget. Returns how many were sent."""
        with self._sub_lock:
            destinations = [key[:2] for key in self._subscribers if key[2] == "out"]
        destinations += [t for t in targets if t not in destinations]
        if not destinations or not self.allowed(len(destinations)):
            return 0
        for destination in destinations:
            self._send(destination, dgram, "feedback_sent")
        return len(destinations)

    def allowed(self, n: int = 1) -> bool:
        """The total feedback budget (osc.feedback_max_per_s datagrams a second over all
        subscribers and streams); False, counted, when it is spent."""
        with self._budget_lock:
            if self._bucket.refill(self._clock.now_s(), self._max_per_s, self._max_per_s) >= n:
                self._bucket.tokens -= n
                return True
            self._stats["feedback_capped"] += n
            return False

    def status_dgram(self) -> bytes:
        """/status with `status_fn()` as JSON (control thread)."""
        try:
            payload = to_json(self._status_fn())
        except Exception as exc:
            self._stats["errors"] += 1
            log.exception("OSC: status_fn failed")
            payload = to_json({"status": "error", "reason": f"status unavailable ({type(exc).__name__})"})
        return self._build("/status", payload)

    def send_status(self, destinations: list, reply: bool, dgram: bytes | None = None) -> None:
        if not reply and not self.allowed(len(destinations)):
            return
        dgram = dgram if dgram is not None else self.status_dgram()
        for destination in destinations:
            self._send(destination, dgram, "replies" if reply else "feedback_sent")
