"""OSC over TCP (OSC 1.1: SLIP-framed packets) for operators who need delivery guaranteed.

One reader thread cuts every connection's stream into SLIP frames (python-osc's `slip`
module decodes them) and hands every packet to the control server's per-host rings: the same
allowlist, the same per-message limit, the same replies (sent back on the connection, SLIP
framed). A host outside `osc.allow` is disconnected at once, as is a host over its share of
connections (hardware.net.conn_gate). Off unless `osc.tcp_enabled`.

Threads: `osc-tcp` (accept and read, with a selector); replies are sent from the control thread.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading

from pythonosc import slip

from hardware.net.conn_gate import ConnectionGate, ConnectionLimits
from hardware.osc.ingress import Packet
from installation.errors import UserError

log = logging.getLogger(__name__)

MAX_FRAME = 65536
"""Frames longer than this (unframed garbage, a missing END) are dropped and the connection closed."""


class TcpPeer:
    """Where replies to packets from one TCP connection go. Hashable by identity."""

    def __init__(self, conn: socket.socket, address) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.address = address

    def send_packet(self, dgram: bytes) -> None:
        """Control thread: one SLIP frame; a stalled client (send buffer full) loses the reply."""
        data = slip.encode(dgram)
        with self._lock:
            self._conn.sendall(data)

    def __str__(self) -> str:
        return f"tcp:{self.address[0]}:{self.address[1]}"


def split_frames(buffer: bytearray) -> list[bytes]:
    """The complete SLIP frames in `buffer` (each still END-delimited, for slip.decode), removed
    from it; an unfinished frame stays. Empty frames (END END, OSC 1.1's double END) are skipped."""
    frames = []
    start = 0
    while (end := buffer.find(b"\xc0", start)) >= 0:
        if end > start:
            frames.append(b"\xc0" + bytes(buffer[start:end]) + b"\xc0")
        start = end + 1
    del buffer[:start]
    return frames


class OscTcpServer:
    """Accepts OSC 1.1 TCP connections and feeds their packets to `control` (OscControlServer).

    One thread (`osc-tcp`) accepts and reads every connection with a selector. Each connection
    passes a ConnectionGate when accepted (osc.allow, a cap per server and per host, so one host's
    idle connections never lock the others out) and is closed after `limits.idle_timeout_s`
    without a byte."""

    def __init__(self, host: str, port: int, control, clock, limits: ConnectionLimits = ConnectionLimits()) -> None:
        self._host = host
        self._port = port
        self._control = control
        self._clock = clock
        self.gate = ConnectionGate(limits, control.allowed, "OSC over TCP")
        self._sock: socket.socket | None = None
        self._selector: selectors.DefaultSelector | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"connections": 0, "refused": 0, "frames": 0, "bad_frames": 0, "idle_closed": 0}

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2] if self._sock is not None else (self._host, self._port)

    def start(self) -> None:
        try:
            info = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TCP: rebinding after TIME_WAIT only
            sock.bind(info[4])
            sock.listen(64)
        except OSError as exc:
            raise UserError(f"OSC over TCP cannot listen on {self._host}:{self._port} ({exc.strerror or exc}); "
                            f"choose another port with --set osc.tcp_port=N or stop the program using it.") from None
        sock.setblocking(False)
        self._sock = sock
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._serve, name="osc-tcp", daemon=True)
        self._thread.start()
        log.info("OSC over TCP (SLIP) listening on %s:%d", *self.address)

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.fileobj, key.data)  # type: ignore[arg-type]
            self._close_idle()
        for key in list(selector.get_map().values()):
            if key.data is not None:
                self._drop(key.fileobj, key.data)  # type: ignore[arg-type]
        selector.close()

    def _accept(self) -> None:
        sock, selector = self._sock, self._selector
        assert sock is not None and selector is not None
        while True:
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the ones waiting stay in the backlog
                log.warning("OSC over TCP: accept failed (%s)", exc)
                return
            if self.gate.admit(address[0]) is not None:
                self.stats["refused"] += 1
                conn.close()
                continue
            conn.settimeout(0.2)  # replies: a stalled client loses them instead of holding the control thread
            self.stats["connections"] += 1
            selector.register(conn, selectors.EVENT_READ, _Connection(TcpPeer(conn, address), self._clock.now_s()))

    def _read(self, conn: socket.socket, state: "_Connection") -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError, socket.timeout):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn, state)
            return
        state.last_s = self._clock.now_s()
        buffer = state.buffer
        buffer += data
        if len(buffer) > 4 * MAX_FRAME and buffer.find(b"\xc0") < 0:
            self.stats["bad_frames"] += 1
            self._drop(conn, state)  # no framing at all: not an OSC 1.1 client
            return
        for frame in split_frames(buffer):
            try:
                dgram = slip.decode(frame)
            except (slip.ProtocolError, ValueError):
                self.stats["bad_frames"] += 1
                continue
            if not dgram or len(dgram) > MAX_FRAME:
                self.stats["bad_frames"] += 1
                continue
            self.stats["frames"] += 1
            self._control.submit_packet(Packet(dgram, state.peer.address[0], state.peer, state.last_s))

    def _close_idle(self) -> None:
        selector = self._selector
        assert selector is not None
        deadline_s = self._clock.now_s() - self.gate.limits.idle_timeout_s
        for key in list(selector.get_map().values()):
            if key.data is not None and key.data.last_s < deadline_s:
                self.stats["idle_closed"] += 1
                self._drop(key.fileobj, key.data)  # type: ignore[arg-type]

    def _drop(self, conn: socket.socket, state: "_Connection") -> None:
        assert self._selector is not None
        self._selector.unregister(conn)
        conn.close()
        self.gate.release(state.peer.address[0])

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Connection:
    """What the reader keeps per connection."""
    __slots__ = ("peer", "buffer", "last_s")

    def __init__(self, peer: TcpPeer, now_s: float) -> None:
        self.peer = peer
        self.buffer = bytearray()
        self.last_s = now_s
