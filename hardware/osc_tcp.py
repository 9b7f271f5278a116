"""OSC over TCP (OSC 1.1: SLIP-framed packets) for operators who need delivery guaranteed.

Each connection gets a reader thread that cuts the stream into SLIP frames (python-osc's `slip`
module decodes them) and hands every packet to the control server's per-host rings: the same
allowlist, the same per-message limit, the same replies (sent back on the connection, SLIP
framed). A host outside `osc.allow` is disconnected at once. Off unless `osc.tcp_enabled`.

Threads: `osc-tcp-accept` and one `osc-tcp-<host>` per connection (at most `max_connections`).
"""
from __future__ import annotations

import logging
import socket
import threading

from pythonosc import slip

from hardware.osc_ingress import Packet
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
    """Accepts OSC 1.1 TCP connections and feeds their packets to `control` (OscControlServer)."""

    def __init__(self, host: str, port: int, control, clock, max_connections: int = 16) -> None:
        self._host = host
        self._port = port
        self._control = control
        self._clock = clock
        self._max_connections = max_connections
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.stats = {"connections": 0, "refused": 0, "frames": 0, "bad_frames": 0}

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2] if self._sock is not None else (self._host, self._port)

    def start(self) -> None:
        try:
            info = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TCP: rebinding after TIME_WAIT only
            sock.bind(info[4])
            sock.listen(8)
        except OSError as exc:
            raise UserError(f"OSC over TCP cannot listen on {self._host}:{self._port} ({exc.strerror or exc}); "
                            f"choose another port with --set osc.tcp_port=N or stop the program using it.") from None
        sock.settimeout(0.2)
        self._sock = sock
        thread = threading.Thread(target=self._accept, name="osc-tcp-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        log.info("OSC over TCP (SLIP) listening on %s:%d", *self.address)

    def _accept(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                conn, address = sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with self._lock:
                crowded = len(self._conns) >= self._max_connections
            if crowded or not self._control.allowed(address[0]):
                self.stats["refused"] += 1
                conn.close()
                continue
            conn.settimeout(0.2)
            with self._lock:
                self._conns.add(conn)
            self.stats["connections"] += 1
            thread = threading.Thread(target=self._read, args=(conn, address), name=f"osc-tcp-{address[0]}",
                                      daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _read(self, conn: socket.socket, address) -> None:
        peer = TcpPeer(conn, address)
        buffer = bytearray()
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except (TimeoutError, socket.timeout):
                    continue
                if not data:
                    return
                buffer += data
                if len(buffer) > 4 * MAX_FRAME and buffer.find(b"\xc0") < 0:
                    self.stats["bad_frames"] += 1
                    return  # no framing at all: not an OSC 1.1 client
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
                    self._control.submit_packet(Packet(dgram, address[0], peer, self._clock.now_s()))
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
