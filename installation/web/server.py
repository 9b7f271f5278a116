"""The dashboard's HTTP server: hardware.net.http_server's bounded uvicorn on a thread of its own, so
the projector's main thread never runs web code. The socket is bound on the calling thread, so a
taken port is a start-up error."""
from __future__ import annotations

from typing import Callable

from hardware.net.conn_gate import ConnectionLimits
from hardware.net.http_server import HttpServer


class WebServer(HttpServer):
    def __init__(self, app, host: str = "127.0.0.1", port: int = 8080, limits: ConnectionLimits = ConnectionLimits(),
                 allowed: Callable[[str], bool] = lambda host: True) -> None:
        super().__init__(app, host, port, limits, allowed, what="the dashboard", port_key="web.port")
