"""The dashboard as a FastAPI application, built from injected callables so it runs and is tested
without the rest of the installation.

Every request passes two gates: the client's address must be in the allowlist (like OSC's; the
server also applies it when a connection is accepted), and it must carry a session cookie (set by
the login form, or by opening `/?token=...` once, which then redirects to the clean address) or
the token itself (`Authorization: Bearer`, or `?token=` for scripts). What changes the show (POST /command, the
websocket) must also name this server in its Host header (an IP address, localhost, this machine's
name or `web.host_names`: a DNS-rebinding page names its own domain) and, when a browser sends an
Origin, come from that same host and port (a cross-site page cannot drive the room). A command body
is at most `web.max_body_bytes` and must arrive within `web.header_timeout_s`.
Status and preview images are pushed over one websocket: JSON text messages for status, binary
messages for JPEG previews. Commands go through `submit`, which validates before queuing;
un-blacking in closed hours and /restart are queued only when the request says `"confirm": true`
(the page asks the technician first).
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
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from installation.errors import UserError
from installation.records import Command
from installation.operators import routes
from installation.operators.routes import ADMIN_SENDER, PROMPT_MAX_CHARS, RouteTable
from installation.web.room import dark_reason
from installation.web.sessions import COOKIE, Sessions

log = logging.getLogger("chromesthesia.web")

STATIC = Path(__file__).resolve().parent / "static"
DASHBOARD_PARAMS = ("brightness", "volume")
"""The parameters the page has sliders for; their ranges come from the route table's ParamSpecs."""


def web_controls(table: RouteTable = routes.TABLE) -> dict[str, dict]:
    """What the dashboard may send: the routes of the web channel (a prefix route once per
    DASHBOARD_PARAMS entry), each with its OSC types, access and description."""
    controls = {}
    for route in table.channel(routes.WEB):
        for address in [route.address + p for p in DASHBOARD_PARAMS] if route.prefix else [route.address]:
            controls[address] = {"types": route.types, "access": route.access, "doc": route.doc}
    return controls
LOG_LINES_PUSHED = 60
"""Log lines in each status message (the page's log view); /log has the rest."""


@dataclass
class DashboardSources:
    """What the dashboard reads and does. Each callable is called on the web thread."""
    status: Callable[[], dict]
    submit: Callable[[Command], dict]
    preview_jpeg: Callable[[], bytes | None] = lambda: None
    scenes: Callable[[], list[str]] = lambda: []
    schedule: Callable[[], dict | None] = lambda: None
    faults: Callable[[], list[dict]] = lambda: []
    """Errors, newest first."""
    warnings: Callable[[], list[dict]] = lambda: []
    """Warnings (start-up notices, fallbacks), newest first: apart from the faults."""
    log: Callable[[int], list[dict]] = lambda limit: []
    """The last log lines, newest first."""
    controls: Callable[[], dict] = lambda: {}
    """{"params": {name: {value, low, high, default, doc}}, "prompt": text or None}."""
    report: Callable[[], str] | None = None
    """Today's report as one HTML page; None when there is no show log."""
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
               preview_hz: float = 4.0, limits: RequestLimits = RequestLimits(), sessions: Sessions | None = None,
               table: RouteTable = routes.TABLE):
    dashboard = _Dashboard(sources, token, _networks(allow), status_hz, preview_hz, limits,
                           sessions or Sessions(7 * 86400.0), table)
    app = FastAPI(title="Chromesthesia", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(dashboard.gate)
    app.get("/", response_class=HTMLResponse)(dashboard.index)
    app.get("/login", response_class=HTMLResponse)(dashboard.login_page)
    app.post("/login")(dashboard.login)
    app.post("/sessions/revoke")(dashboard.revoke)
    app.get("/status")(dashboard.status)
    app.get("/preview.jpg")(dashboard.preview)
    app.get("/log")(dashboard.log)
    app.get("/report")(dashboard.report)
    app.post("/command")(dashboard.command)
    if sources.metrics is not None:
        app.get("/metrics")(dashboard.metrics)
    app.websocket("/ws")(dashboard.ws)
    return app


class _Dashboard:
    """The dashboard's access rules and route handlers over its sources."""

    PUBLIC = ("/login",)
    """Paths open to an allowed address without a session: the login form and its answer."""

    def __init__(self, sources: DashboardSources, token: str, networks, status_hz: float, preview_hz: float,
                 limits: RequestLimits, sessions: Sessions, table: RouteTable = routes.TABLE) -> None:
        self.sources = sources
        self.table = table
        self.controls = web_controls(table)
        self.sessions = sessions
        self.limits = limits
        hostname = gethostname().lower()
        self.host_names = {"localhost", hostname, hostname + ".local", *(n.lower() for n in limits.host_names)}
        self.token = token
        self.networks = networks
        self.status_period_s, self.preview_period_s = 1.0 / status_hz, 1.0 / preview_hz
        self.page = (STATIC / "index.html").read_text(encoding="utf-8")
        self.login_html = (STATIC / "login.html").read_text(encoding="utf-8")

    def allowed_host(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address((host or "").split("%")[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    @staticmethod
    def token_of(query, headers) -> str:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return query.get("token") or ""

    def signed_in(self, query, headers, cookies) -> bool:
        return self.sessions.valid(cookies.get(COOKIE)) or self.token_ok(self.token_of(query, headers))

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
        if request.url.path in self.PUBLIC:
            return await call_next(request)
        if not self.signed_in(request.query_params, request.headers, request.cookies):
            if request.url.path == "/" and request.method == "GET":
                wrong = "token" in request.query_params
                return self.login_response("That token is not this room's." if wrong else "", 401)
            return PlainTextResponse("a token is required: sign in at / (web.token in the config), "
                                     "or send Authorization: Bearer ...\n", status_code=401)
        return await call_next(request)

    def full_status(self) -> dict:
        sources = self.sources
        status, schedule = sources.status(), sources.schedule()
        uptime_s = round(time.monotonic() - sources.started_s, 1)
        return {"status": status, "uptime_s": uptime_s, "scenes": sources.scenes(), "schedule": schedule,
                "dark": dark_reason(status, schedule, uptime_s),
                "faults": sources.faults(), "warnings": sources.warnings(),
                "faults_total": sum(int(status.get(k) or 0) for k in ("failures", "main_faults", "device_losses")),
                "log": sources.log(LOG_LINES_PUSHED), "controls": {**sources.controls(), "prompt_max_chars": PROMPT_MAX_CHARS,
                                                                 "addresses": self.controls},
                "report": sources.report is not None, "time": time.strftime("%H:%M:%S")}

    def login_response(self, message: str, status_code: int = 200) -> HTMLResponse:
        import html
        page = self.login_html.replace("{message}", html.escape(message))
        return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})

    def with_session(self, response: Response) -> Response:
        response.set_cookie(COOKIE, self.sessions.issue(), max_age=int(self.sessions.max_age_s), httponly=True,
                            samesite="strict", path="/")
        return response

    async def index(self, request: Request):
        if request.query_params.get("token"):
            # A link with the token signs this browser in once, then leaves the address bar clean.
            return self.with_session(RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"}))
        return HTMLResponse(self.page, headers={"Cache-Control": "no-store"})

    async def login_page(self, request: Request):
        if self.sessions.valid(request.cookies.get(COOKIE)):
            return RedirectResponse("/", status_code=303)
        return self.login_response("")

    async def login(self, request: Request):
        if self.same_site(request.headers) is not None:
            return self.login_response("Sign in from this dashboard's own page.", 403)
        data = await self.read_body(request)
        given = urllib.parse.parse_qs((data or b"").decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not self.token_ok(given):
            log.warning("dashboard: a wrong token from %s", request.client.host if request.client else "?")
            return self.login_response("That token is not this room's.", 401)
        return self.with_session(RedirectResponse("/", status_code=303))

    async def revoke(self, request: Request):
        refusal = self.same_site(request.headers)
        if refusal is not None:
            return JSONResponse({"ok": False, "reason": refusal}, status_code=403)
        self.sessions.revoke_all()
        log.warning("dashboard: every session revoked from %s", request.client.host if request.client else "?")
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def log(self, request: Request):
        lines = await asyncio.to_thread(self.sources.log, 100_000)
        text = "".join(f"{r['time']} {r['level']:<8} {r['where']}: {r['message']}\n" for r in reversed(lines))
        return PlainTextResponse(text or "nothing logged yet\n", headers={"Cache-Control": "no-store"})

    async def report(self):
        if self.sources.report is None:
            return PlainTextResponse("there is no show log to report on (showlog.enabled)\n", status_code=404)
        try:
            page = await asyncio.to_thread(self.sources.report)
        except UserError as exc:  # nothing recorded today yet
            return PlainTextResponse(f"{exc}\n", status_code=404)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

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
            confirmed = body.get("confirm") is True
            if not isinstance(args, list) or not all(isinstance(a, (int, float, str, bool)) for a in args):
                raise ValueError("args")
        except (ValueError, KeyError, TypeError, RecursionError):
            return JSONResponse({"ok": False, "reason": 'send JSON {"address": "/scene", "args": ["name"]}'},
                                status_code=400)
        if address not in self.controls:
            return JSONResponse({"ok": False, "reason": f"{address[:60]} is not available from the dashboard"},
                                status_code=403)
        question = None if confirmed else await asyncio.to_thread(self.needs_confirm, address, args)
        if question is not None:
            return JSONResponse({"ok": False, "confirm": question, "reason": "not confirmed"}, status_code=409)
        host = request.client.host if request.client else "?"
        # The route table keeps /restart for admins; a signed-in technician who confirmed is one.
        sender = f"{ADMIN_SENDER}web:{host}" if self.table.is_admin(address) else f"web:{host}"
        cmd = Command(time.monotonic(), address, tuple(int(a) if isinstance(a, bool) else a for a in args),
                      sender=sender)
        return JSONResponse(self.sources.submit(cmd))

    def needs_confirm(self, address: str, args: list) -> str | None:
        """The question to ask before a command that overrides the schedule or interrupts the show."""
        if address == routes.RESTART:
            return "Restart the installation? The picture and music stop for a few seconds."
        if address == routes.BLACKOUT and args and str(args[0]).lower() in ("0", "false", "off"):
            schedule = self.sources.schedule()
            if schedule is not None and not schedule.get("open", True):
                opens = f" until {schedule['next_change'].replace('T', ' ')}" if schedule.get("next_change") else ""
                return (f"The room is closed ({schedule.get('reason', 'closed')}){opens}. "
                        "Light the projector anyway? The schedule takes over again at its next change.")
        return None

    async def metrics(self):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return Response(await asyncio.to_thread(generate_latest, self.sources.metrics), media_type=CONTENT_TYPE_LATEST)

    async def ws(self, socket: WebSocket):
        host = socket.client.host if socket.client else None
        if not self.allowed_host(host) or self.same_site(socket.headers) is not None \
                or not self.signed_in(socket.query_params, socket.headers, socket.cookies):
            await socket.close(code=1008)
            return
        await socket.accept()
        try:
            await self.stream(socket, lambda: self.signed_in(socket.query_params, socket.headers, socket.cookies))
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            return
        except Exception as exc:  # noqa: BLE001 - one viewer's failure never reaches the others
            log.debug("dashboard websocket ended: %s", exc)

    async def stream(self, socket: WebSocket, signed_in: Callable[[], bool] = lambda: True) -> None:
        """Send the status at status_hz, and the preview picture at preview_hz whenever it is new;
        close (1008) once the session is revoked or expired."""
        next_status_s = next_preview_s = 0.0
        sent_seq = -1
        while True:
            now_s = time.monotonic()
            if now_s >= next_status_s:
                next_status_s = now_s + self.status_period_s
                if not signed_in():
                    await socket.close(code=1008)
                    return
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
