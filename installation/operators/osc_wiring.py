"""Construction of the operators' OSC pieces from config, so the composition root stays short.

`build_osc(...)` returns an `OscPieces`: the control server (UDP, and the same rules for every
transport), OSC over TCP when `osc.tcp_enabled`, the OSCQuery server when `osc.query_enabled`,
and the analysis streams. The
composition root starts it first (a taken port fails the start with one sentence), calls
`publish(music)` once a frame from the projector loop, and stops it last.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from hardware.osc.server import OscControlServer, parse_target
from hardware.osc.inbox import CommandInbox
from hardware.osc.out import AnalysisOut
from hardware.net.conn_gate import ConnectionLimits
from hardware.osc.query import NO_VALUE, READ_WRITE, WRITE, OscNode, OscQueryServer, describe_space, value_range
from hardware.osc.settings import CommandSpace
from installation.operators import routes
from installation.operators.routes import Route, RouteTable

log = logging.getLogger(__name__)


def command_space(table: RouteTable = routes.TABLE) -> CommandSpace:
    """What the OSC server knows of the operators' addresses, from the route table: OSC and admin
    routes are commands, admin routes need osc.admin_allow, readable routes answer their value,
    numeric prefix routes (/param/<path>) are faders."""
    return CommandSpace(is_command=lambda address: table.in_channel(address, routes.OSC, routes.ADMIN),
                        is_admin=table.is_admin, has_value=table.has_value,
                        fader_prefixes=tuple(r.address for r in table.routes if r.prefix and r.types == "f"))


def _node(route: Route, address: str, doc: str, low_high: tuple[float, float] | None, scenes: list[str]) -> OscNode:
    ranges: list[dict | None] = []
    for spec in route.ranges:
        if spec == routes.SCENE_NAMES:
            ranges.append({"VALS": scenes})
        elif spec == routes.PARAM_RANGE:
            ranges.append(value_range(*low_high) if low_high else None)
        else:
            ranges.append(value_range(*spec) if isinstance(spec, tuple) else None)
    access = READ_WRITE if route.access == "rw" else (NO_VALUE if route.types else WRITE)
    return OscNode(address, route.types, tuple(ranges), doc, access)


def command_nodes(params, scene_names, table: RouteTable = routes.TABLE) -> list[OscNode]:
    """OSCQuery's nodes of every route OSC may use (osc and admin channels): a prefix route has one
    node per parameter in `params` (ParamSpecs by name)."""
    scenes, nodes = list(scene_names), []
    for route in table.routes:
        if route.channels.isdisjoint((routes.OSC, routes.ADMIN)):
            continue
        if not route.prefix:
            nodes.append(_node(route, route.address, route.doc, None, scenes))
            continue
        for name, spec in sorted(params.items()):
            doc = (spec.doc or f"live parameter {name}") if route.read is not None else route.doc
            nodes.append(_node(route, route.address + name.replace(".", "/"), doc, (spec.low, spec.high), scenes))
    return nodes


def address_space(params, scene_names, table: RouteTable = routes.TABLE) -> list[OscNode]:
    """Everything OSCQuery describes: the route table's commands, the server's own methods, the streams."""
    return describe_space(command_nodes(params, scene_names, table))


def command_inbox(capacity: int = 4096) -> CommandInbox:
    """The queue operators' commands wait in: refuses when full (the sender hears "busy"),
    never drops what it accepted, keeps only the newest waiting value of each fader."""
    return CommandInbox(capacity)


def prompt_filter(captions_cfg) -> Callable[[str], str | None]:
    """The captions' own content filter (operator blocklist plus the built-in list), asked
    before an operator's /prompt is answered: one check, the same words."""
    from models.captions.safety import ContentFilter
    content = ContentFilter(captions_cfg.blocklist, builtin=getattr(captions_cfg, "default_blocklist", True))

    def check(text: str) -> str | None:
        terms = content.blocked_terms(text)
        return f"prompt contains a blocked word ({', '.join(terms)})" if terms else None
    return check


@dataclass
class OscPieces:
    server: OscControlServer
    query: OscQueryServer | None = None
    analysis: AnalysisOut | None = None
    tcp: Any = None
    started: list = field(default_factory=list)

    def start(self) -> None:
        """Main thread, before anything else opens: raises UserError on a taken port."""
        self.server.start()
        self.started.append(self.server)
        for piece in (self.tcp, self.query):
            if piece is not None:
                piece.start()
                self.started.append(piece)

    def publish(self, music) -> None:
        """Projector loop, once a frame: the analysis streams (never blocks)."""
        if self.analysis is not None:
            try:
                self.analysis.publish(music)
            except Exception:  # a stream must never stop the projector
                log.exception("OSC analysis streams: publish failed")

    def frame_sink(self, music_box) -> "AnalysisSink":
        """A frame sink for the projector (it runs on its own thread there): each frame shown
        sends the analysis streams of the latest music state in `music_box` (a Latest)."""
        return AnalysisSink(self, music_box)

    def status(self) -> dict:
        """What operators see of the control port: drops in the kernel and in the per-host rings,
        what the rate limit refused or coalesced, commands refused as busy, TCP connections
        (OSC over TCP, OSCQuery) closed when accepted (outside osc.allow or over a cap)."""
        stats = self.server.snapshot()
        status = {key: stats[key] for key in ("kernel_drops", "ring_drops", "rate_limited", "coalesced", "busy",
                                              "accepted", "subscribers")}
        gates = [g for g in (getattr(self.tcp, "gate", None), getattr(self.query, "gate", None)) if g is not None]
        if gates:
            status["connections_refused"] = sum(v for g in gates for k, v in g.stats.items() if k != "admitted")
        return status

    def stop(self, timeout_s: float = 2.0) -> None:
        for piece in reversed(self.started):
            try:
                piece.stop(timeout_s)
            except Exception:
                log.exception("OSC: stopping %s failed", type(piece).__name__)
        self.started.clear()


class AnalysisSink:
    """hardware.base.FrameSink that sends the analysis streams once per projected frame."""

    name = "osc-out"

    def __init__(self, pieces: OscPieces, music_box) -> None:
        self._pieces = pieces
        self._music_box = music_box

    def open(self) -> None:
        pass

    def show(self, rgb) -> None:
        self._pieces.publish(self._music_box.peek())

    def close(self) -> None:
        pass


def build_osc(cfg, commands, clock, status_fn: Callable[[], dict], control, live_box,
              scene_names: Callable[[], list[str]], validate: Callable | None = None) -> OscPieces:
    """`cfg` is the whole config; `control` an installation.operators.control.Control; `live_box` the
    Latest[LiveSnapshot] other threads read the operators' state from; `validate` replaces
    `control.check` (e.g. wrapped to be audited)."""
    osc = cfg.osc

    def values(address: str) -> Any:
        if address.startswith("/out/"):
            return analysis.value(address)
        live = live_box.peek() if live_box is not None else None
        return routes.TABLE.value(address, live if live is not None else control.live)

    server = OscControlServer(osc.settings(), commands, clock, status_fn, command_space(),
                              validate=validate or control.check, values=values)
    targets: list[tuple[str, int]] = []
    for text in osc.out_targets:
        target = parse_target(text)  # UserError on a bad host:port
        targets.append((str(target._address[0]), int(target._address[1])))
        target.close()
    analysis = AnalysisOut(server, tuple(targets))
    limits = ConnectionLimits(max_connections=osc.max_connections, max_per_host=osc.max_connections_per_host,
                              header_timeout_s=osc.header_timeout_s, idle_timeout_s=osc.tcp_idle_timeout_s)
    query = None
    if osc.query_enabled:
        query = OscQueryServer(cfg.installation.name, osc.host, osc.query_port,
                               lambda: address_space(control.param_specs, scene_names()),
                               values, lambda: server.address[1], allowed=server.allowed, advertise=osc.query_mdns,
                               limits=limits, listen_hz=osc.query_listen_hz, max_listeners=osc.query_max_listeners)
    tcp = None
    if osc.tcp_enabled:
        from hardware.osc.tcp import OscTcpServer
        tcp = OscTcpServer(osc.host, osc.tcp_port, server, clock, limits)
    return OscPieces(server, query, analysis, tcp)
