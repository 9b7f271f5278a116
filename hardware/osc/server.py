"""OSC over UDP: the operators' control server (in) and a small client (out).

`OscControlServer`: a reader thread drains the socket into per-host rings (hardware.osc.ingress);
the control thread serves the hosts in turn, limits each host per message (a bundle's messages
count one by one), parses with python-osc, validates each message (the injected `validate` says
yes or why not), hands it on as a `Command` and answers `/reply/<address> <json>` (the QLab
convention) only once the command is queued. Fader values over the limit are coalesced (newest
per address and sender), never dropped. `/status` is answered from `status_fn()`, by the reader
thread itself from an answer kept ready while anyone asks (hardware.osc.ready_status);
`/subscribe <port>` sends `/status` to the sender's host at that port `feedback_hz` times a
second until the subscription expires. Nothing a sender does can stop the threads: every failure
is counted in `stats`.
"""
from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import math
import os
import socket
import struct
import threading
from typing import Any, Callable, Iterator

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message import ParseError as OscParseError
from pythonosc.osc_message_builder import OscMessageBuilder

from hardware.osc.limits import MAX_SENDERS, HostLimits
from hardware.osc.ready_status import ReadyStatus
from hardware.osc.replies import Feedback, to_json
from hardware.osc.settings import CommandSpace, OscSettings
from hardware.osc.wakeup import request_short_slice
from installation.errors import UserError
from installation.records import Command

log = logging.getLogger(__name__)

QUERY_ADDRESSES = frozenset({"/status", "/get_status", "/subscribe", "/unsubscribe", "/subscribe/out",
                             "/unsubscribe/out", "/ping"})
"""Addresses the server answers itself, without the main thread (the operators' commands come
from the route table, as a CommandSpace)."""


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


def iter_packet(dgram: bytes, depth: int = 0) -> Iterator[bytes]:
    """The message datagrams inside a packet, bundles unpacked lazily (their time tags are
    ignored: every command applies at once). Raises ParseError where the packet stops making
    sense; the messages before that point have been yielded.

    Walks bundles itself because python-osc 1.10's bundle parser loops forever on a negative
    element size; here every size is checked before it is used.
    """
    if not dgram.startswith(b"#bundle\x00"):
        _check_type_tags(dgram)
        yield dgram
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise ParseError("bundles nested too deeply")
    index = 16  # "#bundle\0" + 8-byte time tag
    if len(dgram) < index:
        raise ParseError("bundle too short")
    while index < len(dgram):
        if index + 4 > len(dgram):
            raise ParseError("truncated bundle element size")
        (size,) = struct.unpack_from(">i", dgram, index)
        index += 4
        if size <= 0 or size % 4 or index + size > len(dgram):
            raise ParseError(f"bad bundle element size {size}")
        yield from iter_packet(dgram[index:index + size], depth + 1)
        index += size




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


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def set_realtime_priority(priority: int, what: str) -> bool:
    """SCHED_FIFO for the calling thread (Linux), so a busy renderer cannot delay it by more
    than a GIL switch interval. Needs root or CAP_SYS_NICE (the systemd unit grants it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError) as exc:
        log.warning("%s: real-time priority %d refused (%s); running at normal priority", what, priority, exc)
        return False


def prompt_thread(settings: OscSettings, what: str) -> None:
    """On each OSC thread: SCHED_FIFO when osc.realtime_priority asks for it and is allowed, else a
    short CPU slice, so the thread runs the moment a datagram wakes it."""
    if not (settings.realtime_priority and set_realtime_priority(settings.realtime_priority, what)):
        request_short_slice(settings.wakeup_slice_ms / 1000.0, what)


def valid_address(address: str) -> bool:
    """An OSC address with no empty part: "/param//x" and "/param/x/" are not "/param/x"."""
    return address.startswith("/") and len(address) > 1 and "//" not in address and not address.endswith("/")


def _is_fader(dgram: bytes, prefixes: tuple[bytes, ...]) -> bool:
    """A fader message with arguments (a value, not a value query), read without parsing."""
    if not dgram.startswith(prefixes):
        return False
    start = (dgram.find(b"\x00") + 4) & ~3
    return dgram[start:start + 1] == b"," and dgram[start + 1:start + 2] not in (b"", b"\x00")


def admin_refusal(address: str, args: tuple, packet, admin_allow, token: str,
                  source_is_local: Callable[[str], bool]) -> str | None:
    """None when `packet` may run an admin command, else why not. A UDP source address is only
    believed for this machine's own (the kernel drops loopback-sourced packets that come from
    outside); from any other host a datagram must carry osc.admin_token, since anyone can forge
    its source. Over TCP the handshake has proved the address."""
    if packet.host not in admin_allow:
        return f"{address} is only accepted from hosts in osc.admin_allow"
    if not isinstance(packet.peer, tuple) or source_is_local(packet.host):
        return None
    given = args[0] if args and isinstance(args[0], str) else ""
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return None
    return f"{address} over UDP from another machine needs osc.admin_token as its argument (or send it over OSC TCP)"


STATS = ("received", "messages", "accepted", "rejected", "unknown", "malformed", "rate_limited", "coalesced",
         "superseded", "busy", "denied", "queries", "replies", "feedback_sent", "feedback_capped", "send_errors",
         "errors", "subscribers", "kernel_drops", "ring_drops")
"""The server's counters (`stats`, `snapshot()`); `snapshot()` adds "status_at_once", the /status
questions the reader thread answered from the ready answer (not in "queries" and "replies")."""
BUNDLE_QUANTUM = 16
"""Messages of one bundle handled per turn before every other waiting host gets its turn."""


class OscControlServer:
    """The operators' OSC port.

    Threads: `osc-reader` only drains the socket into per-host rings (hardware.osc.ingress);
    `osc-control` takes packets host by host in turn, limits per message (a bundle's messages
    count one by one), parses, validates and hands commands to `commands` (a CommandInbox: `put`
    returns False when full, then the sender hears "busy", never "ok"). Fader messages over the
    limit are coalesced (hardware.osc.limits). Replies, /status feedback and value answers leave
    from the control port (hardware.osc.replies).

    `space` says which addresses are commands (built from the operators' route table).
    `validate(command)` returns None when acceptable or one sentence why not; it runs on the
    control thread and must only read. `values(address)` answers a value query (an address of
    `space.has_value` sent without arguments): the current value, or None when there is none.
    """

    def __init__(self, settings: OscSettings, commands, clock, status_fn: Callable[[], dict],
                 space: CommandSpace = CommandSpace(), validate: Callable[[Command], str | None] | None = None,
                 values: Callable[[str], Any] | None = None) -> None:
        from hardware.osc.ingress import Allowlist, HostRings
        self.settings = settings
        self._commands = commands
        self._put_latest = getattr(commands, "put_latest", None)  # a CommandInbox coalesces faders; a plain queue does not
        self._clock = clock
        self._space = space
        self._faders = tuple(prefix.encode() for prefix in space.fader_prefixes)
        self._validate = validate or (lambda command: None)
        self._values = values
        self._allow = Allowlist(settings.allow)
        self._admin_allow = Allowlist(settings.admin_allow, "osc.admin_allow")
        self.source_is_local: Callable[[str], bool] = is_loopback
        """Whether a UDP source address can only be this machine's (replaced in tests)."""
        self._rings = HostRings()
        self._limits = HostLimits(settings.rate_limit_hz, settings.burst)
        self._last_warning_s: dict[str, float] = {}
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)
        self._feedback = Feedback(settings, clock, status_fn, build_message, self._send, self._reply, self.stats)
        self._ready = ReadyStatus(self._feedback.status_dgram, settings.rate_limit_hz, settings.burst, self._rings.waiting)

    # --- lifecycle (main thread) ---------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); useful with port 0, which picks a free port."""
        if self._sock is None:
            return (self.settings.host, self.settings.port)
        return self._sock.getsockname()[:2]

    @property
    def receive_buffer_bytes(self) -> int:
        return self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) if self._sock is not None else 0

    def start(self) -> None:
        from hardware.osc.ingress import UdpReader, open_udp_socket
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            self._sock = open_udp_socket(self.settings.host, self.settings.port, self.settings.receive_buffer_bytes)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise UserError(f"OSC control cannot listen on {where} ({exc.strerror or exc}); set osc.host to an "
                                f"address of this machine (127.0.0.1, or 0.0.0.0 for every network).") from None
            raise UserError(f"OSC control cannot listen on {where} ({exc.strerror or exc}); another program (or a "
                            f"second copy of this one) is using it: stop it or choose another port with "
                            f"--set osc.port=N.") from None
        self._stop.clear()
        self._reader = UdpReader(self._sock, self._rings, self._clock, self._allow.__contains__, self._on_denied,
                                 lambda: prompt_thread(self.settings, "OSC reader"), self._ready.answer)
        self._reader.start()
        self._thread = threading.Thread(target=self._serve, name="osc-control", daemon=True)
        self._thread.start()
        log.info("OSC control listening on %s:%d (allow %s; receive buffer %d bytes)", *self.address,
                 ", ".join(self.settings.allow), self.receive_buffer_bytes)

    def stop(self, timeout_s: float = 2.0) -> None:
        if self._sock is None:
            return
        self._stop.set()
        self._rings.wake()
        if self._reader is not None:
            self._reader.stop(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self._sock.close()
        self._sock = None

    def snapshot(self) -> dict[str, int]:
        with self._stats_lock:
            stats = dict(self.stats)
        reader = self._reader
        if reader is not None:
            stats["received"] = reader.received
            stats["denied"] = reader.denied
            stats["kernel_drops"] = reader.kernel_drops
        stats["ring_drops"], stats["status_at_once"] = self._rings.dropped, self._ready.answered
        stats["pending_faders"] = len(self._limits.pending)
        stats["queued_packets"] = len(self._rings)
        return stats

    def submit_packet(self, packet) -> None:
        """Another transport (OSC over TCP) hands in a packet from an allowed host: served in
        turn with the UDP senders, under the same per-host limit."""
        self._rings.put(packet)

    def allowed(self, host: str) -> bool:
        return host in self._allow

    def send_out(self, dgram: bytes, targets: tuple = ()) -> int:
        """Any thread: the analysis streams (hardware.osc.replies.Feedback.send_out)."""
        return self._feedback.send_out(dgram, targets)

    def feedback_allowed(self, n: int = 1) -> bool:
        return self._feedback.allowed(n)

    # --- control thread -------------------------------------------------------------------------
    def _serve(self) -> None:
        prompt_thread(self.settings, "OSC control")
        feedback, limits, ready = self._feedback, self._limits, self._ready
        while not self._stop.is_set():
            try:
                due_s = min(feedback.next_s if len(feedback) else math.inf, ready.due_s())
                timeout_s = min(0.005 if limits.pending else 0.05, max(0.0, due_s - self._clock.now_s()))
                packet = self._rings.take(timeout_s)
                if packet is not None:
                    self._handle(packet)
                if limits.pending:
                    for dgram, waiting in limits.release(self._clock.now_s()):
                        self._message(dgram, waiting)
                if len(feedback):
                    feedback.tick()
                ready.refresh(self._clock.now_s())
            except Exception:  # a bug must not close the operators' port: count, keep serving
                self._count("errors")
                log.exception("OSC control loop failed; continuing")

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n  # one writer (the control thread; Feedback.allowed's callers hold its lock)

    def _on_denied(self, host: str) -> None:
        self._warn(host, "OSC: ignoring packets from %s (not in osc.allow)")

    def _warn(self, host: str, message: str) -> bool:
        now_s = self._clock.now_s()
        if now_s - self._last_warning_s.get(host, -math.inf) >= 10.0:
            if len(self._last_warning_s) >= MAX_SENDERS:
                self._last_warning_s.clear()
            self._last_warning_s[host] = now_s
            log.warning(message, host)
            return True
        return False

    def _handle(self, packet) -> None:
        """One turn of one host: a message, or up to BUNDLE_QUANTUM messages of a bundle (the
        rest goes back to the head of the host's ring, behind every other waiting host)."""
        walker = packet.messages
        if walker is None:
            walker = packet.messages = iter_packet(packet.data)
        messages = []
        try:
            for dgram in walker:
                messages.append(dgram)
                if len(messages) >= BUNDLE_QUANTUM:
                    packet.data = b""
                    self._rings.requeue(packet)
                    break
        except (ParseError, ValueError, struct.error):
            self._count("malformed")
            if self._limits.take(packet.host, self._clock.now_s()):  # a flood of bad packets gets no flood of replies
                self._reply(packet.peer, "/reply/error", {"status": "error", "reason": "malformed OSC packet"})
            else:
                self._count("rate_limited")
        if not messages:
            return
        self._count("messages", len(messages))
        now_s = self._clock.now_s()
        for dgram in messages:
            key = (dgram[:dgram.find(b"\x00")], packet.peer)
            fader = _is_fader(dgram, self._faders)
            if self._limits.take(packet.host, now_s):
                if fader and self._limits.pending.pop(key, None) is not None:
                    self._count("superseded")  # a newer value of the same fader: the waiting one is stale
                self._message(dgram, packet)
            elif fader:
                held = self._limits.hold(key, dgram, packet)
                self._count("rate_limited" if held == "full" else held)
                if held == "superseded":
                    self._count("coalesced")
            else:
                self._count("rate_limited")
                if self._warn(packet.host, "OSC: rate-limiting %s (more than osc.rate_limit_hz messages a second)"):
                    self._reply(packet.peer, "/reply/error", {
                        "status": "error", "reason": f"rate limited: more than {self._limits.rate_hz:g} messages a "
                                                     "second from this host; messages over the limit are dropped "
                                                     "(fader values are kept, newest first)"})

    def _message(self, dgram: bytes, packet) -> None:
        try:
            message = OscMessage(dgram)
            address = message.address
            args = tuple(message.params)
        except (OscParseError, ValueError, TypeError, IndexError, OverflowError, UnicodeError, struct.error):
            self._count("malformed")
            self._reply(packet.peer, "/reply/error", {"status": "error", "reason": "malformed OSC message"})
            return
        self._dispatch(address, args, packet)

    def _refuse(self, peer, reply_to: str, address: str, reason: str, counter: str = "rejected") -> None:
        self._count(counter)
        self._reply(peer, reply_to, {"status": "error", "address": address, "reason": reason})

    def _dispatch(self, address: str, args: tuple, packet) -> None:
        peer, space = packet.peer, self._space
        reply_to = "/reply" + address if address.startswith("/") else "/reply/error"
        if not valid_address(address):
            self._refuse(peer, reply_to, address[:80], "address has an empty part (a double or trailing '/')",
                         "malformed")
        elif address in QUERY_ADDRESSES:
            self._count("queries")
            self._query(address, args, packet, reply_to)
        elif not args and self._values is not None and space.has_value(address):
            self._count("queries")
            self._value_query(address, peer, reply_to)
        elif not space.is_command(address):
            self._refuse(peer, reply_to, address, f"unknown address {address[:80]!r}; see docs/osc.md", "unknown")
        else:
            self._command(address, args, packet, reply_to)

    def _command(self, address: str, args: tuple, packet, reply_to: str) -> None:
        peer = packet.peer
        sender = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if self._space.is_admin(address):
            refusal = admin_refusal(address, args, packet, self._admin_allow, self.settings.admin_token,
                                    self.source_is_local)
            if refusal is not None:
                self._refuse(peer, reply_to, address, refusal)
                return
            args = ()  # the token (when sent) is not part of the command
            sender = "admin " + sender  # installation.operators.routes.ADMIN_SENDER: passed osc.admin_allow
        command = Command(t_s=packet.t_s, address=address, args=args, sender=sender)
        try:
            reason = self._validate(command)
        except Exception as exc:  # a validator bug must not take the port down
            self._count("errors")
            log.exception("OSC: validating %s failed", address)
            reason = f"internal error while validating ({type(exc).__name__})"
        if reason:
            self._refuse(peer, reply_to, address, reason)
            return
        if self._put_latest is not None and address.startswith(self._space.fader_prefixes):
            queued = self._put_latest((address, sender), command)
        else:
            queued = self._commands.put(command)
        if queued is False:
            self._refuse(peer, reply_to, address, "busy: too many commands waiting; send it again", "busy")
            return
        self._count("accepted")
        self._reply(peer, reply_to, {"status": "ok", "address": address})

    def _value_query(self, address: str, peer, reply_to: str) -> None:
        try:
            value = self._values(address) if self._values is not None else None
        except Exception as exc:
            self._count("errors")
            log.exception("OSC: value of %s failed", address)
            value, reason = None, f"value unavailable ({type(exc).__name__})"
        else:
            reason = f"no parameter {address[7:][:60]!r}; see docs/osc.md"
        if value is None:
            self._refuse(peer, reply_to, address, reason)
            return
        values = value if isinstance(value, (list, tuple)) else [value]
        self._send(peer, build_message(address, *values), "replies")  # plain values: an OSC In CHOP reads them

    def _query(self, address: str, args: tuple, packet, reply_to: str) -> None:
        if address in ("/status", "/get_status"):
            self._feedback.send_status([packet.peer], reply=True, dgram=self._ready.build_now(self._clock.now_s()))
        elif address == "/ping":
            self._reply(packet.peer, reply_to, {"status": "ok", "address": address})
        else:
            self._feedback.subscribe(address, args, packet.peer, reply_to, self.address)

    def _reply(self, peer, address: str, body: dict) -> None:
        self._send(peer, build_message(address[:200], to_json(body)), "replies")

    def _send(self, peer, dgram: bytes, counter: str) -> None:
        try:
            if isinstance(peer, tuple):
                sock = self._sock
                if sock is None:
                    return
                sock.sendto(dgram, peer)
            else:
                peer.send_packet(dgram)  # OSC over TCP: the connection frames it
            self._count(counter)
        except OSError:
            self._count("send_errors")
