"""OSC over UDP: the operators' control server (in) and a small client (out).

`OscControlServer` runs one python-osc `BlockingOSCUDPServer` on its own thread. Cheap checks
come first, before a packet is even parsed: the sender's network must be in the allowlist and its
token bucket must hold a token, so a flood costs one dictionary lookup per packet. Then the packet
is parsed, each message is validated (the `validate` callable injected by installation.control
says yes or why not), enqueued as a `Command`, and answered with `/reply/<address> <json>` (the
QLab convention). `/status` is answered from `status_fn()`; `/subscribe <port>` sends `/status`
to the sender's host at that port `feedback_hz` times a second until the subscription expires.
Nothing a sender does can stop the thread: every failure is counted in `stats`.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import socket
import struct
import threading
from typing import Any, Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message import ParseError as OscParseError
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from installation.errors import UserError
from installation.mailbox import DropOldest
from installation.records import Command

log = logging.getLogger(__name__)

COMMAND_ADDRESSES = frozenset({"/scene", "/crossfade", "/blackout", "/freeze", "/prompt", "/tempo"})
"""Addresses that become Commands; `/param/<path>` is one too. Semantics live in installation.control."""
QUERY_ADDRESSES = frozenset({"/status", "/get_status", "/subscribe", "/unsubscribe", "/ping"})
"""Addresses the server answers itself, without the main thread."""


def _known_command(address: str) -> bool:
    """The default command addresses when no route table is injected."""
    return address in COMMAND_ADDRESSES or (address.startswith("/param/") and len(address) > 7)


MAX_SENDERS = 4096
"""Rate-limit buckets kept; the least recently seen sender is forgotten first."""


def build_message(address: str, *args: Any) -> bytes:
    """An OSC datagram; numpy scalars become Python numbers, dicts and lists JSON strings."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if hasattr(arg, "item") and not isinstance(arg, (str, bytes)):
            arg = arg.item()
        if isinstance(arg, (dict, list, tuple)):
            arg = json.dumps(arg, separators=(",", ":"))
        elif arg is None:
            arg = "none"
        elif isinstance(arg, float) and not math.isfinite(arg):
            arg = 0.0
        builder.add_arg(arg)
    return builder.build().dgram


class ParseError(ValueError):
    """A datagram that is not a well-formed OSC message or bundle."""


MAX_BUNDLE_DEPTH = 8


TYPE_TAGS = frozenset(b"ihfdsbrmtTFN[]")
"""Argument types python-osc parses; anything else it logs on the root logger per packet,
which a flood would turn into a log storm, so such packets are refused here first."""


def _check_type_tags(dgram: bytes) -> None:
    if not dgram.startswith(b"/"):
        raise ParseError("not an OSC message or bundle")
    end = dgram.find(b"\x00")
    if end < 0:
        raise ParseError("address is not terminated")
    start = (end + 4) & ~3
    if start >= len(dgram):
        return  # no type tag string: a message without arguments
    if dgram[start:start + 1] != b",":
        raise ParseError("missing type tag string")
    stop = dgram.find(b"\x00", start)
    if stop < 0 or not TYPE_TAGS.issuperset(dgram[start + 1:stop]):
        raise ParseError("unknown argument type")


def split_packet(dgram: bytes, depth: int = 0) -> list[bytes]:
    """The message datagrams inside a packet, bundles unpacked (their time tags are ignored:
    every command applies at once).

    Walks bundles itself because python-osc 1.10's bundle parser loops forever on a negative
    element size; here every size is checked before it is used.
    """
    if not dgram.startswith(b"#bundle\x00"):
        _check_type_tags(dgram)
        return [dgram]
    if depth >= MAX_BUNDLE_DEPTH:
        raise ParseError("bundles nested too deeply")
    index, messages = 16, []  # "#bundle\0" + 8-byte time tag
    if len(dgram) < index:
        raise ParseError("bundle too short")
    while index < len(dgram):
        if index + 4 > len(dgram):
            raise ParseError("truncated bundle element size")
        (size,) = struct.unpack_from(">i", dgram, index)
        index += 4
        if size <= 0 or size % 4 or index + size > len(dgram):
            raise ParseError(f"bad bundle element size {size}")
        messages.extend(split_packet(dgram[index:index + size], depth + 1))
        index += size
    return messages


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


class UdpOscOut:
    """Sends OSC messages to one host:port (implements hardware.base.OscOut). Thread-safe.

    A send that fails (no route, receiver gone) is counted in `errors` and never raises.
    """

    def __init__(self, host: str, port: int) -> None:
        if not 0 < int(port) <= 65535:
            raise UserError(f"OSC target port {port} is out of range; use 1-65535 (e.g. osc.targets = [\"127.0.0.1:7001\"]).")
        try:
            info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise UserError(f"OSC target host {host!r} cannot be resolved ({exc}); use an IP address or a known host name.") from None
        self.name = f"osc:{host}:{port}"
        self._address = info[4]
        self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.sent = 0
        self.errors = 0

    def send(self, address: str, *args: Any) -> None:
        try:
            self._sock.sendto(build_message(address, *args), self._address)
            self.sent += 1
        except (OSError, ValueError, TypeError) as exc:
            self.errors += 1
            if self.errors in (1, 100) or self.errors % 10000 == 0:
                log.warning("%s: send %s failed (%s); %d failures so far", self.name, address, exc, self.errors)

    def close(self) -> None:
        self._sock.close()


def parse_target(text: str) -> UdpOscOut:
    """"host:port" (or "[v6]:port") from config -> UdpOscOut."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"OSC target {text!r} is not host:port; write it like \"127.0.0.1:7001\".")
    return UdpOscOut(host.strip("[]") or "127.0.0.1", int(port))


def set_realtime_priority(priority: int, what: str) -> bool:
    """SCHED_FIFO for the calling thread (Linux), so a busy renderer cannot delay it by more
    than a GIL switch interval. Needs root or CAP_SYS_NICE (the systemd unit grants it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError) as exc:
        log.warning("%s: real-time priority %d refused (%s); running at normal priority", what, priority, exc)
        return False


class _TokenBucket:
    __slots__ = ("tokens", "t_s")

    def __init__(self, tokens: float, t_s: float) -> None:
        self.tokens = tokens
        self.t_s = t_s


class _Server(BlockingOSCUDPServer):
    """python-osc's blocking server with our gatekeeping and our handling of each datagram."""

    allow_reuse_address = True
    max_packet_size = 65507

    def __init__(self, address, owner: "OscControlServer") -> None:
        self.owner = owner
        super().__init__(address, dispatcher=None)  # routing is ours: see OscControlServer._handle

    def verify_request(self, request, client_address) -> bool:
        return self.owner._admit(client_address)

    def finish_request(self, request, client_address) -> None:
        self.owner._handle(request[0], client_address)

    def service_actions(self) -> None:
        self.owner._feedback()

    def handle_error(self, request, client_address) -> None:
        self.owner._count("errors")
        log.exception("OSC: error handling a packet from %s", client_address)


class OscControlServer:
    """The operators' OSC port. One thread; handlers only validate, rate-limit and enqueue.

    `osc_cfg` is installation.config.OscConfig (host, port, allow, rate_limit_hz, burst,
    feedback_hz, subscribe_ttl_s, max_subscribers). `validate(command)` returns None when the
    command is acceptable or one sentence saying why not; it is called on the server thread, so
    it must only read (installation.control.Control.check is made for this).
    """

    def __init__(self, osc_cfg, commands: DropOldest[Command], clock, status_fn: Callable[[], dict],
                 validate: Callable[[Command], str | None] | None = None, realtime_priority: int = 0,
                 accepts: Callable[[str], bool] | None = None) -> None:
        self._cfg = osc_cfg
        self._realtime_priority = realtime_priority or int(getattr(osc_cfg, "realtime_priority", 0))
        self._commands = commands
        self._clock = clock
        self._status_fn = status_fn
        self._validate = validate or (lambda command: None)
        self._accepts = accepts or _known_command
        """address -> True for a command (installation.routes.is_command is injected at the wiring)."""
        try:
            self._networks = [ipaddress.ip_network(n, strict=False) for n in osc_cfg.allow]
        except ValueError as exc:
            raise UserError(f"osc.allow has an invalid network ({exc}); use CIDR like \"192.168.1.0/24\".") from None
        self._rate_hz = float(getattr(osc_cfg, "rate_limit_hz", 200.0))
        self._burst = float(getattr(osc_cfg, "burst", 400))
        self._feedback_period_s = 1.0 / float(getattr(osc_cfg, "feedback_hz", 5.0))
        self._subscribe_ttl_s = float(getattr(osc_cfg, "subscribe_ttl_s", 60.0))
        self._max_subscribers = int(getattr(osc_cfg, "max_subscribers", 16))
        self._allowed: dict[str, bool] = {}
        self._buckets: dict[str, _TokenBucket] = {}
        self._subscribers: dict[tuple[str, int], float] = {}
        self._next_feedback_s = 0.0
        self._last_warning_s: dict[str, float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self.stats: dict[str, int] = dict.fromkeys(
            ("received", "accepted", "rejected", "unknown", "malformed", "rate_limited", "denied",
             "queries", "replies", "feedback_sent", "send_errors", "errors", "subscribers"), 0)

    # --- lifecycle (main thread) ---------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); useful with port 0, which picks a free port."""
        if self._server is None:
            return (self._cfg.host, self._cfg.port)
        return self._server.server_address[:2]

    def start(self) -> None:
        try:
            self._server = _Server((self._cfg.host, self._cfg.port), self)
        except OSError as exc:
            raise UserError(f"OSC control cannot listen on {self._cfg.host}:{self._cfg.port} ({exc.strerror}); "
                            f"choose another port with --set osc.port=N or stop the program using it.") from None
        self._thread = threading.Thread(target=self._serve, name="osc-control", daemon=True)
        self._thread.start()
        log.info("OSC control listening on %s:%d (allow %s)", *self.address, ", ".join(self._cfg.allow))

    def _serve(self) -> None:
        assert self._server is not None
        if self._realtime_priority:
            set_realtime_priority(self._realtime_priority, "OSC control")
        while True:
            try:
                self._server.serve_forever(poll_interval=0.05)
                return
            except Exception:  # serve_forever itself failed: count, keep serving
                self._count("errors")
                log.exception("OSC control loop failed; continuing")

    def stop(self, timeout_s: float = 2.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self._server = None

    def snapshot(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self.stats)

    # --- server thread --------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _admit(self, client_address) -> bool:
        """Allowlist and per-host token bucket, before parsing: a flood costs almost nothing."""
        host = client_address[0]
        allowed = self._allowed.get(host)
        if allowed is None:
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
                allowed = any(ip in net for net in self._networks)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    allowed = allowed or any(ip.ipv4_mapped in net for net in self._networks)
            except ValueError:
                allowed = False
            if len(self._allowed) >= MAX_SENDERS:
                self._allowed.clear()
            self._allowed[host] = allowed
        if not allowed:
            self._count("denied")
            self._warn(host, "OSC: ignoring packets from %s (not in osc.allow)")
            return False
        now_s = self._clock.now_s()
        bucket = self._buckets.pop(host, None)  # pop + set keeps the dict in least-recently-seen order
        if bucket is None:
            bucket = _TokenBucket(self._burst, now_s)
            if len(self._buckets) >= MAX_SENDERS:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[host] = bucket
        bucket.tokens = min(self._burst, bucket.tokens + (now_s - bucket.t_s) * self._rate_hz)
        bucket.t_s = now_s
        if bucket.tokens < 1.0:
            self._count("rate_limited")
            self._warn(host, "OSC: rate-limiting %s (more than osc.rate_limit_hz messages a second)")
            return False
        bucket.tokens -= 1.0
        return True

    def _warn(self, host: str, message: str) -> None:
        now_s = self._clock.now_s()
        if now_s - self._last_warning_s.get(host, -math.inf) >= 10.0:
            if len(self._last_warning_s) >= MAX_SENDERS:
                self._last_warning_s.clear()
            self._last_warning_s[host] = now_s
            log.warning(message, host)

    def _handle(self, data: bytes, client_address) -> None:
        t_s = self._clock.now_s()
        self._count("received")
        try:
            messages = [OscMessage(dgram) for dgram in split_packet(data)]
        except (ParseError, OscParseError, ValueError, TypeError, IndexError, OverflowError, UnicodeError, struct.error):
            self._count("malformed")
            self._reply(client_address, "/reply/error", {"status": "error", "reason": "malformed OSC packet"})
            return
        for message in messages:
            try:
                address = message.address
                args = tuple(message.params)
            except Exception:  # python-osc parses lazily in places
                self._count("malformed")
                self._reply(client_address, "/reply/error", {"status": "error", "reason": "malformed OSC message"})
                continue
            self._dispatch(address, args, client_address, t_s)

    def _dispatch(self, address: str, args: tuple, client_address, t_s: float) -> None:
        reply_to = "/reply" + address if address.startswith("/") else "/reply/error"
        if address in QUERY_ADDRESSES:
            self._count("queries")
            self._query(address, args, client_address, reply_to)
            return
        if not self._accepts(address):
            self._count("unknown")
            self._reply(client_address, reply_to, {"status": "error", "address": address,
                                                   "reason": f"unknown address {address[:80]!r}; see docs/osc.md"})
            return
        command = Command(t_s=t_s, address=address, args=args, sender=f"{client_address[0]}:{client_address[1]}")
        try:
            reason = self._validate(command)
        except Exception as exc:  # a validator bug must not take the port down
            self._count("errors")
            log.exception("OSC: validating %s failed", address)
            reason = f"internal error while validating ({type(exc).__name__})"
        if reason:
            self._count("rejected")
            self._reply(client_address, reply_to, {"status": "error", "address": address, "reason": reason})
            return
        self._commands.put(command)
        self._count("accepted")
        self._reply(client_address, reply_to, {"status": "ok", "address": address})

    def _query(self, address: str, args: tuple, client_address, reply_to: str) -> None:
        if address in ("/status", "/get_status"):
            self._send_status([client_address], reply=True)
            return
        if address == "/ping":
            self._reply(client_address, reply_to, {"status": "ok", "address": address})
            return
        port = client_address[1]
        if args:
            value = args[0]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
                    or not 1 <= int(value) <= 65535:
                self._count("rejected")
                self._reply(client_address, reply_to, {"status": "error", "address": address,
                                                       "reason": f"port must be an integer 1-65535, not {value!r}"})
                return
            port = int(value)
        key = (client_address[0], port)
        if address == "/unsubscribe":
            self._subscribers.pop(key, None)
        else:
            now_s = self._clock.now_s()
            self._expire(now_s)
            if key not in self._subscribers and len(self._subscribers) >= self._max_subscribers:
                self._count("rejected")
                self._reply(client_address, reply_to, {"status": "error", "address": address,
                                                       "reason": f"too many subscribers ({self._max_subscribers})"})
                return
            self._subscribers[key] = now_s + self._subscribe_ttl_s
            self._next_feedback_s = min(self._next_feedback_s, now_s)
        with self._stats_lock:
            self.stats["subscribers"] = len(self._subscribers)
        self._reply(client_address, reply_to, {"status": "ok", "address": address, "host": key[0], "port": port,
                                               "hz": round(1.0 / self._feedback_period_s, 3),
                                               "ttl_s": self._subscribe_ttl_s})

    def _expire(self, now_s: float) -> None:
        for key in [k for k, until in self._subscribers.items() if until <= now_s]:
            del self._subscribers[key]

    def _feedback(self) -> None:
        if not self._subscribers:
            return
        now_s = self._clock.now_s()
        if now_s < self._next_feedback_s:
            return
        self._next_feedback_s = max(self._next_feedback_s + self._feedback_period_s, now_s)
        self._expire(now_s)
        with self._stats_lock:
            self.stats["subscribers"] = len(self._subscribers)
        if self._subscribers:
            self._send_status(list(self._subscribers), reply=False)

    def _send_status(self, destinations: list, reply: bool) -> None:
        try:
            status = self._status_fn()
            payload = _json(status)
        except Exception as exc:
            self._count("errors")
            log.exception("OSC: status_fn failed")
            payload = _json({"status": "error", "reason": f"status unavailable ({type(exc).__name__})"})
        for destination in destinations:
            self._send(destination, build_message("/status", payload), "replies" if reply else "feedback_sent")

    def _reply(self, client_address, address: str, body: dict) -> None:
        self._send(client_address, build_message(address[:200], _json(body)), "replies")

    def _send(self, destination, dgram: bytes, counter: str) -> None:
        server = self._server
        if server is None:
            return
        try:
            server.socket.sendto(dgram, destination)
            self._count(counter)
        except OSError:
            self._count("send_errors")
