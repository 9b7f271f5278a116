"""An ASGI app served by uvicorn on a thread of its own, bounded against hostile clients: the
dashboard and OSCQuery both run on it.

uvicorn alone keeps a connection that never finishes its headers forever and admits any number of
them, so about 1,000 slow connections fill a 1,024-descriptor table. Here the h11 protocol is
subclassed (uvicorn's `http=` hook) so that each connection passes the ConnectionGate when it is
accepted (allowlist, cap per server, cap per host) and is closed when its request head has not
arrived `header_timeout_s` after it opened or after the previous response. uvicorn's keep-alive
timeout covers idle time between requests; websockets count against the caps until they close.
X-Forwarded-For is never trusted (no proxy stands in front). The listening socket is bound on the
calling thread with SO_REUSEADDR, so a taken port is a start-up error and a restart in place
rebinds while old connections sit in TIME_WAIT.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any, Callable

from hardware.net.conn_gate import ConnectionGate, ConnectionLimits
from installation.errors import UserError

log = logging.getLogger(__name__)

WEBSOCKET_CLOSE_GRACE_S = 5.0
"""A websocket whose application has finished is aborted this long after if still open."""


def guarded_protocols(gate: ConnectionGate) -> tuple[type, type]:
    """uvicorn's h11 HTTP protocol and sans-I/O websocket protocol, admitted by `gate`."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    header_timeout_s = gate.limits.header_timeout_s

    class GuardedWebSocket(WebSocketsSansIOProtocol):
        """Releases its connection's place in the gate when the websocket closes."""
        gate_host: str | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            self.gate_host = peer[0] if peer else ""
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.gate_host is not None:
                gate.release(self.gate_host)
                self.gate_host = None

        async def run_asgi(self) -> None:
            await super().run_asgi()
            # A graceful close waits for the peer to read what is buffered; one that never reads
            # would keep its place in the gate for good, so it is cut off after a grace period.
            transport = self.transport
            self.loop.call_later(WEBSOCKET_CLOSE_GRACE_S, lambda: None if self.gate_host is None else transport.abort())

    class GuardedHttp(H11Protocol):
        gate_host: str | None = None
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            host = peer[0] if peer else ""
            if gate.admit(host) is not None:
                transport.abort()  # nothing read, nothing parsed, the descriptor freed now
                return
            self.gate_host = host
            super().connection_made(transport)
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
            self.head_timer = self.loop.call_later(header_timeout_s, self._head_late)

        def _head_late(self) -> None:
            self.head_timer = None
            transport = self.transport
            if transport is None or transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or a websocket now
            if self.cycle is None or self.cycle.response_complete:
                transport.close()  # no request head in time: a slow or silent client

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def handle_websocket_upgrade(self, event) -> None:
            super().handle_websocket_upgrade(event)
            self.gate_host = None  # the websocket protocol releases it
            if self.head_timer is not None:
                self.head_timer.cancel()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is None:
                return  # refused in connection_made
            if self.head_timer is not None:
                self.head_timer.cancel()
            super().connection_lost(exc)
            if self.gate_host is not None:
                gate.release(self.gate_host)
                self.gate_host = None

    return GuardedHttp, GuardedWebSocket


class HttpServer:
    """Serves `app` on `host:port` (0 = any free port) within `limits`; `allowed(host)` is the
    allowlist applied at accept. `what` and `port_key` name it in a start-up error; a websocket
    frame over `ws_max_bytes` closes its connection."""

    def __init__(self, app, host: str, port: int, limits: ConnectionLimits = ConnectionLimits(),
                 allowed: Callable[[str], bool] = lambda host: True, what: str = "the HTTP server",
                 port_key: str = "the port", ws_max_bytes: int = 16 * 1024 * 1024) -> None:
        self._app = app
        self._host = host
        self._port = port
        self.gate = ConnectionGate(limits, allowed, what)
        self._what = what
        self._port_key = port_key
        self._ws_max_bytes = ws_max_bytes
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            return (self._host, self._port)
        host, port = self._socket.getsockname()[:2]
        return (str(host), int(port))

    def start(self) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TCP TIME_WAIT only: a live listener still refuses
        try:
            sock.bind((self._host, self._port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise UserError(f"{self._what} cannot listen on {self._host}:{self._port} ({exc.strerror or exc}); "
                            f"choose another {self._port_key} or stop the program using it.") from None
        sock.set_inheritable(False)
        self._socket = sock
        http, ws = guarded_protocols(self.gate)
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", access_log=False, http=http, ws=ws,
                                proxy_headers=False, server_header=False, backlog=128, ws_max_size=self._ws_max_bytes,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=f"http-{self.address[1]}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except Exception:  # noqa: BLE001 - a web server failing must not end the show
            log.exception("%s stopped", self._what)

    @property
    def started(self) -> bool:
        return bool(self._server is not None and self._server.started)

    def stop(self, timeout_s: float = 1.0) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # open websockets must not hold the shutdown
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = None
