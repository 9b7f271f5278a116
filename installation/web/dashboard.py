"""The dashboard as a FastAPI application, built from injected callables so it runs and is tested
without the rest of the installation.

Every request passes two gates: the client's address must be in the allowlist (like OSC's; the
server also applies it when a connection is accepted), and it must carry the token (`?token=`,
the cookie the page sets, or `Authorization: Bearer`). What changes the show (POST /command, the
websocket) must also name this server in its Host header (an IP address, localhost, this machine's
name or `web.host_names`: a DNS-rebinding page names its own domain) and, when a browser sends an
Origin, come from that same host and port (a cross-site page cannot drive the room). A command body
is at most `web.max_body_bytes` and must arrive within `web.header_timeout_s`.
Status and preview images are pushed over one websocket: JSON text messages for status, binary
messages for JPEG previews. Commands go through `submit`, which validates before queuing.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from socket import gethostname
from typing import Any, Callable

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from installation.records import Command

log = logging.getLogger("chromesthesia.web")

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "chromesthesia_token"
ADDRESSES = ("/scene", "/blackout", "/freeze", "/param/volume", "/param/brightness", "/crossfade", "/tempo", "/prompt")
"""What the dashboard may send; everything else (stop, restart) stays with the schedule and OSC."""


@dataclass
class DashboardSources:
    """What the dashboard reads and does. Each callable is called on the web thread."""
    status: Callable[[], dict]
    submit: Callable[[Command], dict]
    preview_jpeg: Callable[[], bytes | None] = lambda: None
    scenes: Callable[[], list[str]] = lambda: []
    schedule: Callable[[], dict | None] = lambda: None
    faults: Callable[[], list[dict]] = lambda: []
    preview_sequence: Callable[[], int] = lambda: 0
    metrics: Any = None
    """A prometheus_client registry for /metrics; None leaves /metrics out."""
    started_s: float = field(default_factory=time.monotonic)


def _networks(allow) -> list:
    return [ipaddress.ip_network(n, strict=False) for n in allow]


@dataclass(frozen=True)
class RequestLimits:
    """What one request may carry (from installation.config.WebConfig)."""
    max_body_bytes: int = 16384
    body_timeout_s: float = 5.0
    host_names: tuple[str, ...] = ()


def create_app(sources: DashboardSources, token: str, allow=("127.0.0.0/8",), status_hz: float = 2.0,
               preview_hz: float = 4.0, limits: RequestLimits = RequestLimits()):
    dashboard = _Dashboard(sources, token, _networks(allow), status_hz, preview_hz, limits)
    app = FastAPI(title="Chromesthesia", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(dashboard.gate)
    app.get("/", response_class=HTMLResponse)(dashboard.index)
    app.get("/status")(dashboard.status)
    app.get("/preview.jpg")(dashboard.preview)
    app.post("/command")(dashboard.command)
    if sources.metrics is not None:
        app.get("/metrics")(dashboard.metrics)
    app.websocket("/ws")(dashboard.ws)
    return app


class _Dashboard:
    """The dashboard's access rules and route handlers over its sources."""

    def __init__(self, sources: DashboardSources, token: str, networks, status_hz: float, preview_hz: float,
                 limits: RequestLimits = RequestLimits()) -> None:
        self.sources = sources
        self.limits = limits
        hostname = gethostname().lower()
        self.host_names = {"localhost", hostname, hostname + ".local", *(n.lower() for n in limits.host_names)}
        self.token = token
        self.networks = networks
        self.status_period_s, self.preview_period_s = 1.0 / status_hz, 1.0 / preview_hz
        self.page = (STATIC / "index.html").read_text(encoding="utf-8")

    def allowed_host(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address((host or "").split("%")[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    @staticmethod
    def token_of(query, headers, cookies) -> str:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return query.get("token") or cookies.get(COOKIE) or ""

    def same_site(self, headers) -> str | None:
        """None when the Host header names this server and any Origin is that same host; else why not."""
        host = headers.get("host", "")
        name = urllib.parse.urlsplit("//" + host).hostname or ""
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name not in self.host_names:
                return f"the Host {host[:60]!r} is not this server's (add it to web.host_names)"
        origin = headers.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc.lower() != host.lower():
            return f"a page from {origin[:60]!r} may not send commands here"
        return None

    def token_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def gate(self, request: Request, call_next):
        if not self.allowed_host(request.client.host if request.client else None):
            return PlainTextResponse("this address is not allowed (web.allow)\n", status_code=403)
        if not self.token_ok(self.token_of(request.query_params, request.headers, request.cookies)):
            return PlainTextResponse("a token is required: open the address with ?token=... "
                                     "(web.token in the config)\n", status_code=401)
        return await call_next(request)

    def full_status(self) -> dict:
        sources = self.sources
        return {"status": sources.status(), "uptime_s": round(time.monotonic() - sources.started_s, 1),
                "scenes": sources.scenes(), "schedule": sources.schedule(), "faults": sources.faults(),
                "time": time.strftime("%H:%M:%S")}

    async def index(self, request: Request):
        response = HTMLResponse(self.page, headers={"Cache-Control": "no-store"})
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
        return response

    async def status(self):
        return JSONResponse(await asyncio.to_thread(self.full_status))

    async def preview(self):
        data = await asyncio.to_thread(self.sources.preview_jpeg)
        if data is None:
            return Response(status_code=204)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is over web.max_body_bytes or slower than the timeout."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > limit:
            return None
        body = bytearray()

        async def read() -> bool:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    return False
            return True
        try:
            complete = await asyncio.wait_for(read(), self.limits.body_timeout_s)
        except asyncio.TimeoutError:
            return None
        return bytes(body) if complete else None

    async def command(self, request: Request):
        refusal = self.same_site(request.headers)
        if refusal is not None:
            return JSONResponse({"ok": False, "reason": refusal}, status_code=403)
        data = await self.read_body(request)
        if data is None:
            return JSONResponse({"ok": False, "reason": f"the body must be at most {self.limits.max_body_bytes} "
                                                        f"bytes, sent within {self.limits.body_timeout_s:g} s"},
                                status_code=413)
        try:
            body = json.loads(data)
            address = str(body["address"])
            args = body.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, (int, float, str, bool)) for a in args):
                raise ValueError("args")
        except (ValueError, KeyError, TypeError, RecursionError):
            return JSONResponse({"ok": False, "reason": 'send JSON {"address": "/scene", "args": ["name"]}'},
                                status_code=400)
        if address not in ADDRESSES:
            return JSONResponse({"ok": False, "reason": f"{address[:60]} is not available from the dashboard"},
                                status_code=403)
        host = request.client.host if request.client else "?"
        cmd = Command(time.monotonic(), address, tuple(int(a) if isinstance(a, bool) else a for a in args),
                      sender=f"web:{host}")
        return JSONResponse(self.sources.submit(cmd))

    async def metrics(self):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return Response(await asyncio.to_thread(generate_latest, self.sources.metrics), media_type=CONTENT_TYPE_LATEST)

    async def ws(self, socket: WebSocket):
        host = socket.client.host if socket.client else None
        if not self.allowed_host(host) or self.same_site(socket.headers) is not None \
                or not self.token_ok(self.token_of(socket.query_params, socket.headers, socket.cookies)):
            await socket.close(code=1008)
            return
        await socket.accept()
        try:
            await self.stream(socket)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            return
        except Exception as exc:  # noqa: BLE001 - one viewer's failure never reaches the others
            log.debug("dashboard websocket ended: %s", exc)

    async def stream(self, socket: WebSocket) -> None:
        """Send the status at status_hz, and the preview picture at preview_hz whenever it is new."""
        next_status_s = next_preview_s = 0.0
        sent_seq = -1
        while True:
            now_s = time.monotonic()
            if now_s >= next_status_s:
                next_status_s = now_s + self.status_period_s
                await socket.send_text(json.dumps(await asyncio.to_thread(self.full_status), default=str))
            if now_s >= next_preview_s:
                next_preview_s = now_s + self.preview_period_s
                seq = self.sources.preview_sequence()
                if seq != sent_seq:
                    data = await asyncio.to_thread(self.sources.preview_jpeg)
                    if data:
                        sent_seq = seq
                        await socket.send_bytes(data)
            await asyncio.sleep(max(0.01, min(next_status_s, next_preview_s) - time.monotonic()))
