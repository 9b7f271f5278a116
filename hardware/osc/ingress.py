"""OSC ingress: the socket, a reader that only drains it, and per-host rings served in turn.

A flood from one host must not cost the others their packets. The kernel keeps a UDP socket's
datagrams in one shared receive buffer, so the defence is to empty that buffer faster than any
flood can fill it and to do the expensive work (parsing, validating, answering) elsewhere:

- `open_udp_socket` binds without SO_REUSEADDR (a second instance cannot share the port), asks for
  a large receive buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF up to net.core.rmem_max) and
  turns on SO_RXQ_OVFL, so every datagram carries the kernel's count of drops on this socket.
- `UdpReader` is one thread doing nothing but `recvmsg` into `HostRings` (and one cached
  allowlist lookup, so unknown hosts never get a ring).
- `HostRings` keeps one bounded ring per sending host and hands packets out round-robin, one host
  at a time: a host sending 10,000 packets a second waits behind a host sending 20, not the other
  way round. A full ring drops that host's oldest packet and counts it; other hosts are untouched.
"""
from __future__ import annotations

import collections
import ipaddress
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from installation.errors import UserError

log = logging.getLogger(__name__)

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
"""Linux: ancillary uint32 with the socket's cumulative drop count (not in Python's socket module)."""
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
MAX_DATAGRAM = 65507
MAX_HOSTS = 4096


def open_udp_socket(host: str, port: int, rcvbuf_bytes: int = 8 << 20) -> socket.socket:
    """A bound UDP socket. Raises OSError when the port is taken (never shares it)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    try:
        # No SO_REUSEADDR / SO_REUSEPORT: with either, a second process could bind the same port
        # and steal the operators' packets.
        for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, int(rcvbuf_bytes))
                break
            except OSError:
                continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            pass  # not Linux: kernel drops are read from /proc or not at all
        sock.bind(info[4])
    except BaseException:
        sock.close()
        raise
    return sock


def proc_udp_drops(sock: socket.socket) -> int | None:
    """The kernel's drop counter for `sock` from /proc/net/udp{,6} (Linux), or None."""
    try:
        inode = str(__import__("os").fstat(sock.fileno()).st_ino)
        for name in ("/proc/net/udp", "/proc/net/udp6"):
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[-1])
    except (OSError, ValueError, StopIteration):
        return None
    return None


class Allowlist:
    """CIDR networks; answers are cached per host (bounded)."""

    def __init__(self, networks: Iterable[str], what: str = "osc.allow") -> None:
        try:
            self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        except ValueError as exc:
            raise UserError(f"{what} has an invalid network ({exc}); use CIDR like \"192.168.1.0/24\".") from None
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: str) -> bool:
        allowed = self._cache.get(host)
        if allowed is None:
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
                allowed = any(ip in net for net in self._networks)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    allowed = allowed or any(ip.ipv4_mapped in net for net in self._networks)
            except ValueError:
                allowed = False
            if len(self._cache) >= MAX_HOSTS:
                self._cache.clear()
            self._cache[host] = allowed
        return allowed


@dataclass(slots=True)
class Packet:
    """One datagram (or SLIP frame) as it arrived; `peer` is where replies go."""

    data: bytes
    host: str
    peer: Any
    t_s: float
    messages: list | None = None
    """Set on a bundle's remainder put back with `requeue` (message datagrams still to handle)."""


@dataclass
class _Ring:
    packets: collections.deque = field(default_factory=collections.deque)
    bytes: int = 0


class HostRings:
    """Bounded per-host rings, handed out round-robin. Any thread may put; one thread takes."""

    def __init__(self, max_packets: int = 32768, max_bytes: int = 8 << 20) -> None:
        self._max_packets = max_packets
        self._max_bytes = max_bytes
        self._rings: dict[str, _Ring] = {}
        self._ready: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self.dropped = 0
        """Packets a full ring dropped (the flooding host's own oldest)."""

    def put(self, packet: Packet) -> None:
        with self._cond:
            ring = self._rings.get(packet.host)
            if ring is None:
                if len(self._rings) >= MAX_HOSTS:
                    self.dropped += 1
                    return
                ring = self._rings[packet.host] = _Ring()
            if not ring.packets:
                self._ready.append(packet.host)
            ring.packets.append(packet)
            ring.bytes += len(packet.data)
            while len(ring.packets) > self._max_packets or ring.bytes > self._max_bytes:
                ring.bytes -= len(ring.packets.popleft().data)
                self.dropped += 1
            self._cond.notify()

    def take(self, timeout_s: float | None) -> Packet | None:
        """The next packet of the next host in turn; None after `timeout_s` with nothing."""
        with self._cond:
            if not self._ready and not self._cond.wait_for(lambda: bool(self._ready), timeout_s):
                return None
            host = self._ready.popleft()
            ring = self._rings[host]
            packet = ring.packets.popleft()
            ring.bytes -= len(packet.data)
            if ring.packets:
                self._ready.append(host)
            else:
                del self._rings[host]
            return packet

    def requeue(self, packet: Packet) -> None:
        """Put the rest of a long bundle back at the head of its host's ring; the host's next
        turn comes after every other waiting host's (so one bundle cannot hold the thread)."""
        with self._cond:
            ring = self._rings.get(packet.host)
            if ring is None:
                ring = self._rings[packet.host] = _Ring()
            if not ring.packets:
                self._ready.append(packet.host)
            ring.packets.appendleft(packet)
            ring.bytes += len(packet.data)
            self._cond.notify()

    def waiting(self, host: str) -> bool:
        """Whether `host` has packets waiting."""
        with self._cond:
            return host in self._rings

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(r.packets) for r in self._rings.values())


class _BatchReceiver:
    """Linux recvmmsg(2) through ctypes: up to `slots` datagrams per system call, and the GIL taken
    back once per call instead of once per datagram. Under a flood, with the control thread and
    the renderer also wanting the GIL, a reader that reads one datagram per GIL turn falls behind
    the flood and every host's packets wait in the kernel behind it; one that reads a batch per
    turn keeps the receive queue short. `available()` is False off Linux (then recvmsg is used)."""

    MSG_WAITFORONE = 0x10000

    def __init__(self, sock: socket.socket, slots: int = 64) -> None:
        import ctypes
        import ctypes.util

        class IoVec(ctypes.Structure):
            _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]

        class MsgHdr(ctypes.Structure):
            _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                        ("msg_iov", ctypes.POINTER(IoVec)), ("msg_iovlen", ctypes.c_size_t),
                        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                        ("msg_flags", ctypes.c_int)]

        class MMsgHdr(ctypes.Structure):
            _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]

        self._ctypes = ctypes
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._recvmmsg = libc.recvmmsg
        self._recvmmsg.restype = ctypes.c_int
        self._recvmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(MMsgHdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        self._sock = sock
        self._slots = slots
        self._data = [ctypes.create_string_buffer(MAX_DATAGRAM + 1) for _ in range(slots)]
        self._names = [ctypes.create_string_buffer(128) for _ in range(slots)]
        self._controls = [ctypes.create_string_buffer(64) for _ in range(slots)]
        self._iovs = (IoVec * slots)()
        self._msgs = (MMsgHdr * slots)()
        for i in range(slots):
            self._iovs[i].iov_base = ctypes.addressof(self._data[i])
            self._iovs[i].iov_len = MAX_DATAGRAM + 1
            hdr = self._msgs[i].msg_hdr
            hdr.msg_name = ctypes.addressof(self._names[i])
            hdr.msg_iov = ctypes.pointer(self._iovs[i])
            hdr.msg_iovlen = 1
            hdr.msg_control = ctypes.addressof(self._controls[i])
        self.overflow: int | None = None

    @staticmethod
    def available() -> bool:
        import ctypes
        import ctypes.util
        try:
            return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "recvmmsg")
        except OSError:
            return False

    def receive(self) -> list[tuple[bytes, tuple]]:
        """Blocks until at least one datagram (or the socket's SO_RCVTIMEO); [] on timeout."""
        ctypes = self._ctypes
        for i in range(self._slots):
            hdr = self._msgs[i].msg_hdr
            hdr.msg_namelen = 128
            hdr.msg_controllen = 64
        n = self._recvmmsg(self._sock.fileno(), self._msgs, self._slots, self.MSG_WAITFORONE, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (11, 4):  # EAGAIN (timeout), EINTR
                return []
            raise OSError(err, __import__("os").strerror(err))
        out = []
        for i in range(n):
            length = self._msgs[i].msg_len
            if length > MAX_DATAGRAM:
                continue  # truncated: larger than any UDP datagram may be
            name = self._names[i].raw
            address: tuple
            family = struct.unpack_from("=H", name, 0)[0]
            if family == socket.AF_INET:
                address = (socket.inet_ntop(socket.AF_INET, name[4:8]), struct.unpack_from(">H", name, 2)[0])
            elif family == socket.AF_INET6:
                address = (socket.inet_ntop(socket.AF_INET6, name[8:24]), struct.unpack_from(">H", name, 2)[0], 0, 0)
            else:
                continue
            out.append((ctypes.string_at(self._data[i], length), address))
            controllen = self._msgs[i].msg_hdr.msg_controllen
            if controllen >= 20:
                control = self._controls[i].raw
                level, kind = struct.unpack_from("=ii", control, 8)
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                    self.overflow = struct.unpack_from("=I", control, 16)[0]
        return out


class UdpReader:
    """The reader thread: `recvmsg` into `HostRings`, nothing else but the questions
    `answer_now` answers on the spot (the server's ready /status).

    `admit(host)` (an Allowlist) is asked once per packet; refused packets are only counted.
    `kernel_drops` is the kernel's count of datagrams it dropped on this socket because the
    receive buffer was full (SO_RXQ_OVFL; /proc/net/udp where that is missing).
    """

    def __init__(self, sock: socket.socket, rings: HostRings, clock, admit: Callable[[str], bool],
                 on_denied: Callable[[str], None] | None = None,
                 on_thread_start: Callable[[], Any] | None = None,
                 answer_now: Callable[[bytes, Any, float, Callable[[bytes, Any], Any]], bool] | None = None) -> None:
        self._sock = sock
        self._answer_now = answer_now
        """(datagram, peer, arrival time, sendto) -> True when it answered the datagram itself, at
        once (with the socket's `sendto(data, peer)`)."""
        self._rings = rings
        self._clock = clock
        self._admit = admit
        self._on_denied = on_denied
        self._on_thread_start = on_thread_start
        """Called first on the reader thread (e.g. to raise its scheduling priority)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ovfl = 0
        self._ovfl_seen = False
        self.received = 0
        self.denied = 0
        self.errors = 0

    @property
    def kernel_drops(self) -> int:
        if self._ovfl_seen:
            return self._ovfl
        drops = proc_udp_drops(self._sock)
        return drops if drops is not None else 0

    def start(self) -> None:
        batch = None
        if _BatchReceiver.available():
            try:
                self._sock.settimeout(None)  # blocking at the descriptor: recvmmsg waits in the kernel
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 100_000))
                batch = _BatchReceiver(self._sock)
            except (OSError, AttributeError, ValueError):
                batch = None
        if batch is None:
            self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, args=(batch,), name="osc-reader", daemon=True)
        self._thread.start()

    def _run(self, batch: "_BatchReceiver | None") -> None:
        if self._on_thread_start is not None:
            self._on_thread_start()
        if batch is not None:
            self._run_batched(batch)
            return
        sock, rings, clock, admit = self._sock, self._rings, self._clock, self._admit
        ancbuf = socket.CMSG_SPACE(4)
        while not self._stop.is_set():
            try:
                data, ancdata, _flags, address = sock.recvmsg(MAX_DATAGRAM, ancbuf)
            except (TimeoutError, socket.timeout, BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if self._stop.is_set() or exc.errno == 9:  # closed under us
                    return
                self.errors += 1  # e.g. ECONNREFUSED from an earlier reply's ICMP: keep reading
                continue
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self._ovfl = struct.unpack("=I", value[:4])[0]
                    self._ovfl_seen = True
            self._take(data, address, clock.now_s(), rings, admit)

    def _run_batched(self, batch: "_BatchReceiver") -> None:
        rings, clock, admit = self._rings, self._clock, self._admit
        while not self._stop.is_set():
            try:
                received = batch.receive()
            except OSError as exc:
                if self._stop.is_set() or exc.errno == 9:
                    return
                self.errors += 1
                continue
            if batch.overflow is not None:
                self._ovfl, self._ovfl_seen = batch.overflow, True
            now_s = clock.now_s()
            for data, address in received:
                self._take(data, address, now_s, rings, admit)

    def _take(self, data: bytes, address, now_s: float, rings: HostRings, admit) -> None:
        self.received += 1
        host = address[0]
        if not admit(host):
            self.denied += 1
            if self._on_denied is not None:
                self._on_denied(host)
            return
        if self._answer_now is not None and self._answer_now(data, address, now_s, self._sock.sendto):
            return
        rings.put(Packet(data, host, address, now_s))

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
