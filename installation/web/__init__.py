"""The operators' dashboard and the Prometheus endpoint (off by default: `[web] enabled = true`).

`build_web(cfg, ...)` wires them from the installation's callables; `installation.web.dashboard`
holds the FastAPI app, `server` runs it with uvicorn on its own thread, `preview` keeps the
projected picture for it, `metrics` counts commands and serves /metrics.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from installation.errors import UserError
from installation.records import Command

log = logging.getLogger("chromesthesia.web")


@dataclass
class Web:
    """What build_web made: `start()` and `stop()` it; give `sinks` to the projector; `audit`
    counts and logs commands (OSC's too) whether or not the dashboard is on."""
    audit: Any
    server: Any = None
    preview: Any = None
    faults: Any = None
    url: str = ""
    sessions: Any = None

    def revoke_sessions(self) -> None:
        """Sign every dashboard out (OSC /web/revoke from an admin host; the page has a button)."""
        if self.sessions is not None:
            self.sessions.revoke_all()
            log.warning("dashboard: every session revoked")

    @property
    def sinks(self) -> list:
        return [self.preview] if self.preview is not None else []

    def start(self) -> None:
        if self.server is None:
            return
        self.server.start()
        host, port = self.server.address
        log.info("dashboard on http://%s:%d/ (sign in with web.token; metrics at /metrics)", host, port)

    def stop(self, timeout_s: float = 1.0) -> None:
        if self.server is not None:
            self.server.stop(timeout_s)
        if self.faults is not None:
            logging.getLogger().removeHandler(self.faults)


def queue_submit(check: Callable[[Command], str | None], queue) -> Callable[[Command], dict]:
    """A dashboard command: validated now (on the web thread), applied by the main thread."""
    def submit(command: Command) -> dict:
        reason = check(command)
        if reason is not None:
            return {"ok": False, "reason": reason}
        queue.put(command)
        return {"ok": True}
    return submit


def controls_of(param_specs: Callable[[], Mapping[str, Any]], live: Callable[[], Any]) -> Callable[[], dict]:
    """The dashboard's controls now: each slider's value and the route table's range for it, the prompt."""
    from installation.web.dashboard import DASHBOARD_PARAMS

    def controls() -> dict:
        specs, snapshot = param_specs(), live()
        return {"params": {name: {"value": float(snapshot.params.get(name, spec.default)), "low": spec.low,
                                  "high": spec.high, "default": spec.default, "doc": spec.doc}
                           for name in DASHBOARD_PARAMS if (spec := specs.get(name)) is not None},
                "prompt": snapshot.prompt_override}
    return controls


def build_web(cfg, status: Callable[[], dict], check: Callable[[Command], str | None], commands,
              scenes: Callable[[], list[str]], show_log=None, schedule=None, osc_stats=None,
              audit=None, sources=None, param_specs: Callable[[], Mapping[str, Any]] | None = None,
              live: Callable[[], Any] | None = None, config_path=None) -> Web:
    """The dashboard for `cfg.web` (a Web with no server when it is off). `check` is
    Control.check, `commands` the main thread's command queue, `schedule` the Schedule (its
    calendar gives opening hours and the next change), `osc_stats` the OSC server's counters,
    `sources` installation.sources.Sources (what runs, named in /metrics), `param_specs` the
    Control's parameter table, `live` the newest LiveSnapshot (the sliders and the prompt) and
    `config_path` where an empty web.token's kept token lies beside (installation/operators/token_file.py)."""
    from installation.web.metrics import CommandAudit
    audit = audit or CommandAudit(show_log)
    web_cfg = cfg.web
    if not web_cfg.enabled:
        return Web(audit)
    import datetime as dt

    from hardware.net.conn_gate import ConnectionLimits
    from hardware.osc.ingress import Allowlist
    from installation.web.dashboard import DashboardSources, RequestLimits, create_app
    from installation.bus import LiveSnapshot
    from installation.operators.routes import BUILTIN_PARAMS
    from installation.web.metrics import InstallationCollector, metrics_registry
    from installation.web.preview import PreviewSink
    from installation.web.room import LogTail
    from installation.web.server import WebServer
    from installation.web.sessions import Sessions

    try:
        import ipaddress
        for network in web_cfg.allow:
            ipaddress.ip_network(network, strict=False)
    except ValueError as exc:
        raise UserError(f"web.allow has an invalid network ({exc}); use CIDR like \"192.168.1.0/24\".") from None
    token = web_cfg.token
    if not token:
        from installation.operators.token_file import persistent_token
        token, token_file = persistent_token(config_path)
        log.warning("web.token is empty: the dashboard's token is kept in %s (mode 0600; delete it for a new "
                    "one, or set web.token)", token_file)
    faults = LogTail()
    logging.getLogger().addHandler(faults)
    preview = PreviewSink(rate_hz=web_cfg.preview_hz, max_width=web_cfg.preview_width)
    started_s = time.monotonic()
    registry = None
    calendar = getattr(schedule, "calendar", schedule)
    describe_schedule = (lambda: calendar.describe(dt.datetime.now())) if hasattr(calendar, "describe") else (lambda: None)
    if web_cfg.metrics:
        info = {f"{kind}_source": str(getattr(sources, kind)) for kind in ("audio", "camera") if sources is not None}
        registry = metrics_registry(InstallationCollector(status, started_s, audit, osc_stats,
                                                          schedule=describe_schedule, info=info))
    report = None
    if show_log is not None:
        from installation.showlog.report import build_report, find_logs
        log_dir = Path(show_log.path).parent
        report = lambda: build_report(find_logs(log_dir), "day", dt.date.today())  # noqa: E731
    sessions = Sessions(web_cfg.session_max_age_s)
    sources = DashboardSources(
        status=status, submit=queue_submit(audit.checked("web", check), commands),
        preview_jpeg=preview.jpeg, preview_sequence=lambda: preview.sequence, scenes=scenes,
        schedule=describe_schedule, faults=faults.faults, warnings=faults.warnings, log=faults.lines,
        controls=controls_of(param_specs or (lambda: BUILTIN_PARAMS), live or (lambda: LiveSnapshot(""))),
        report=report, metrics=registry, started_s=started_s)
    app = create_app(sources, token, web_cfg.allow, status_hz=web_cfg.status_hz, preview_hz=web_cfg.preview_hz,
                     limits=RequestLimits(web_cfg.max_body_bytes, web_cfg.header_timeout_s, web_cfg.host_names),
                     sessions=sessions)
    limits = ConnectionLimits(max_connections=web_cfg.max_connections,
                              max_per_host=web_cfg.max_connections_per_host, header_timeout_s=web_cfg.header_timeout_s)
    server = WebServer(app, web_cfg.host, web_cfg.port, limits, allowed=Allowlist(web_cfg.allow, "web.allow").__contains__)
    return Web(audit, server, preview, faults, f"http://{web_cfg.host}:{web_cfg.port}/", sessions)
