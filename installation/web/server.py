"""uvicorn on a thread of its own, with its own event loop: the projector's main thread never
runs web code. The socket is bound on the calling thread, so a taken port is a start-up error."""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from installation.errors import UserError

log = logging.getLogger("chromesthesia.web")


class WebServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            return (self._host, self._port)
        return self._socket.getsockname()[:2]

    def start(self) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TCP TIME_WAIT only: a live listener still refuses
        try:
            sock.bind((self._host, self._port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise UserError(f"the dashboard cannot listen on {self._host}:{self._port} ({exc.strerror or exc}); "
                            f"choose another web.port or stop the program using it.") from None
        sock.set_inheritable(False)
        self._socket = sock
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", access_log=False,
                                ws="websockets-sansio", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except Exception:  # noqa: BLE001 - the dashboard failing must not end the show
            log.exception("the dashboard server stopped")

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
