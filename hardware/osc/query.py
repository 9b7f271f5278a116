"""OSCQuery: the address space over HTTP JSON, advertised over mDNS (zeroconf).

TouchDesigner's OSCQuery COMPs, Chataigne and ossia score browse it: every address with its OSC
type tags (TYPE), ranges (RANGE: MIN/MAX or VALS), a description, the access (0 no value, 1 read,
2 write, 3 both) and, for what has one, the current VALUE. `GET /` is the whole tree, `GET /param/speed`
one node, `GET /param/speed?VALUE` only `{"VALUE": [...]}`, `GET /?HOST_INFO` the server's
name, OSC port and transport (the OSCQuery proposal, github.com/Vidvox/OSCQueryProposal). A
websocket on the same port takes the proposal's LISTEN/IGNORE commands and streams value changes
as binary OSC (hardware.osc.query_listen).

python-oscquery 0.4.0 was read before choosing: it has no RANGE attribute, keeps values in the
tree (they would have to be copied in on every change), registers an atexit handler in its
constructor and binds HTTP to every interface. So the JSON is served here from `nodes()` and
`values()` read at request time, by the same bounded uvicorn server as the dashboard
(hardware.net.http_server: allowlist and connection caps at accept, a header timeout, SO_REUSEADDR so
a restart in place rebinds), and the mDNS part uses python-zeroconf (the library python-oscquery
itself uses) to advertise `_oscjson._tcp` and `_osc._udp`.

Methods that hold no value (/ping, /panic, /learn/<path>, and the one-shot messages /comment and
/subscribe...) have ACCESS 0, as the proposal reserves for a node without a value; every readable
node always has a VALUE. python-oscquery 0.4.0 refuses a tree with a value-less node claiming 1-3.

Threads: the HTTP server's event loop (one thread: websockets, LISTEN's looks) and a worker per
request that reads the tree; `nodes` and `values` must only read.
"""
from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from hardware.net.conn_gate import ConnectionLimits
from hardware.net.http_server import HttpServer
from hardware.osc.query_listen import ListenHub

log = logging.getLogger(__name__)

NO_VALUE, READ, WRITE, READ_WRITE = 0, 1, 2, 3
ATTRIBUTES = frozenset({"FULL_PATH", "CONTENTS", "TYPE", "VALUE", "RANGE", "ACCESS", "DESCRIPTION", "HOST_INFO",
                        "CLIPMODE", "UNIT", "CRITICAL", "TAGS", "EXTENDED_TYPE", "OVERLOADS"})
MAX_WEBSOCKET_FRAME_BYTES = 64 * 1024
"""LISTEN/IGNORE commands are tiny: a larger frame closes the websocket before it is buffered."""


@dataclass(frozen=True)
class OscNode:
    """One OSC method: its address, type tags ("" when it takes none), one range per argument
    (a dict with MIN/MAX or VALS, or None where there is none), what it does, who may read or
    write it."""

    address: str
    types: str = ""
    ranges: tuple[dict | None, ...] = ()
    description: str = ""
    access: int = WRITE


def build_tree(nodes: Iterable[OscNode], values: Callable[[str], Any] | None = None) -> dict:
    """The OSCQuery JSON tree of `nodes` (containers made for every path prefix)."""
    root: dict = {"FULL_PATH": "/", "ACCESS": 0, "DESCRIPTION": "Chromesthesia", "CONTENTS": {}}
    for node in nodes:
        parts = [p for p in node.address.split("/") if p]
        container, path = root, ""
        for part in parts[:-1]:
            path += "/" + part
            container = container.setdefault("CONTENTS", {}).setdefault(
                part, {"FULL_PATH": path, "ACCESS": 0, "CONTENTS": {}})
        entry = container.setdefault("CONTENTS", {}).setdefault(parts[-1], {})
        access = node.access if node.types else NO_VALUE  # a method without arguments has no value to read or write
        entry.update({"FULL_PATH": node.address, "ACCESS": access, "DESCRIPTION": node.description})
        if node.types:
            entry["TYPE"] = node.types
            entry["RANGE"] = [r if r else None for r in node.ranges] or [None] * len(node.types)
        if values is not None and node.access & READ:
            value = values(node.address)
            if value is None and node.access == READ:
                value = [0.0] * len(node.types)  # a stream before its first frame reads as 0
            if value is not None:
                entry["VALUE"] = list(value) if isinstance(value, (list, tuple)) else [value]
    return root


def find_node(tree: dict, path: str) -> dict | None:
    node = tree
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def _json_response(code: int, body: Any):
    from starlette.responses import Response
    if body is None:
        return Response(status_code=code)
    data = json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()
    return Response(data, status_code=code, media_type="application/json")


def query_app(owner: "OscQueryServer"):
    """The OSCQuery HTTP API as an ASGI app: GET any path, with an optional attribute query."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route, WebSocketRoute

    def answer(request: Request):  # sync: Starlette runs it on its worker pool, off the event loop
        client = request.client.host if request.client else ""
        try:
            if not owner.allowed(client):
                return _json_response(403, {"error": "not in osc.allow"})
            query = [q.split("=")[0].upper() for q in request.url.query.split("&") if q]
            unknown = [q for q in query if q not in ATTRIBUTES]
            if unknown:
                return _json_response(400, {"error": f"attribute {unknown[0][:40]} not understood"})
            if "HOST_INFO" in query:
                return _json_response(200, owner.host_info())
            path = request.url.path
            node = find_node(owner.tree(), urllib.parse.unquote(path))
            if node is None:
                return _json_response(404, {"error": f"no OSC address {path[:80]}"})
            if query:
                attribute = query[0]
                if attribute == "VALUE" and "VALUE" not in node:
                    return _json_response(204, None)
                return _json_response(200, {attribute: node.get(attribute)})
            return _json_response(200, node)
        except Exception:  # a bad request or a bug: answer 500, never take the server down
            owner.errors += 1
            log.exception("OSCQuery: GET %s failed", str(request.url)[:200])
            return _json_response(500, {"error": "internal error"})

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET"]),
                             WebSocketRoute("/{path:path}", owner.listen.serve)])


class OscQueryServer:
    """Serves `nodes()` as OSCQuery JSON on `host:port` (0 = any free port) and advertises it.

    `osc_port()` is the UDP control port the tree describes. `allowed(host)` gates connections
    (the OSC allowlist), `limits` bounds them. `advertise` registers `_oscjson._tcp.local.` and `_osc._udp.local.`
    with zeroconf; when multicast is unavailable it logs once and serves HTTP anyway.
    """

    def __init__(self, name: str, host: str, port: int, nodes: Callable[[], Iterable[OscNode]],
                 values: Callable[[str], Any] | None, osc_port: Callable[[], int],
                 allowed: Callable[[str], bool] = lambda host: True, advertise: bool = True,
                 limits: ConnectionLimits = ConnectionLimits(), listen_hz: float = 60.0,
                 max_listeners: int = 16) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._nodes = nodes
        self._values = values
        self._osc_port = osc_port
        self.allowed = allowed
        self._advertise = advertise
        self._limits = limits
        self._http: HttpServer | None = None
        self.listen = ListenHub(nodes, values, listen_hz, max_listeners)
        self._zeroconf: Any = None
        self._services: list = []
        self.errors = 0

    @property
    def address(self) -> tuple[str, int]:
        if self._http is None:
            return (self._host, self._port)
        return self._http.address

    def tree(self) -> dict:
        return build_tree(self._nodes(), self._values)

    def host_info(self) -> dict:
        return {"NAME": self.name, "OSC_PORT": self._osc_port(), "OSC_TRANSPORT": "UDP",
                "EXTENSIONS": {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TYPE": True,
                               "CLIPMODE": False, "UNIT": False, "TAGS": False, "LISTEN": True, "PATH_CHANGED": False}}

    def start(self) -> None:
        http = HttpServer(query_app(self), self._host, self._port, self._limits, self.allowed, what="OSCQuery",
                          port_key="port with --set osc.query_port=N", ws_max_bytes=MAX_WEBSOCKET_FRAME_BYTES)
        http.start()
        self._http = http
        log.info("OSCQuery on http://%s:%d/", *self.address)
        if self._advertise:
            self._register()

    def _register(self) -> None:
        try:
            from zeroconf import ServiceInfo, Zeroconf
            host, port = self.address
            addresses = [host] if host not in ("0.0.0.0", "::", "") else None
            self._zeroconf = Zeroconf(interfaces=list(addresses)) if addresses else Zeroconf()
            label = self.name.replace(".", "-")[:60] or "chromesthesia"
            server = f"{label.replace(' ', '-')}.local."
            for kind, service_port in (("_oscjson._tcp.local.", port), ("_osc._udp.local.", self._osc_port())):
                info = ServiceInfo(kind, f"{label}.{kind}", port=service_port, properties={"txtvers": "1"},
                                   server=server, parsed_addresses=addresses)
                self._zeroconf.register_service(info)
                self._services.append(info)
            log.info("OSCQuery advertised over mDNS as %r", label)
        except Exception as exc:  # no multicast route, no interface: browsing by address still works
            log.warning("OSCQuery: mDNS advertisement failed (%s); clients can still open http://%s:%d/",
                        exc, *self.address)
            self._close_zeroconf()

    def _close_zeroconf(self) -> None:
        if self._zeroconf is not None:
            try:
                self._zeroconf.unregister_all_services()
                self._zeroconf.close()
            except Exception:
                pass
            self._zeroconf = None
            self._services = []

    def stop(self, timeout_s: float = 2.0) -> None:
        self._close_zeroconf()
        if self._http is not None:
            self._http.stop(timeout_s)
            self._http = None

    @property
    def gate(self):
        """The HTTP server's ConnectionGate (its counters), None before start."""
        return self._http.gate if self._http is not None else None


# --- the address space ---------------------------------------------------------------------------
def value_range(low: float, high: float) -> dict:
    return {"MIN": low, "MAX": high}


def describe_space(commands: Iterable[OscNode]) -> list[OscNode]:
    """The whole tree's nodes: the operators' commands (built from their route table at the
    wiring), then the server's own methods and the analysis streams."""
    return [*commands, *SERVER_NODES, *(OscNode(address, types, ranges, doc, READ)
                                        for address, types, ranges, doc in OUT_NODES)]


_PORT = (value_range(1, 65535),)
SERVER_NODES = (
    OscNode("/status", "", (), "answers /status <json> with the installation's state", WRITE),
    OscNode("/get_status", "", (), "the same as /status", WRITE),
    OscNode("/ping", "", (), "answers /reply/ping", WRITE),
    OscNode("/subscribe", "i", _PORT, "send /status to this host at that port a few times a second", NO_VALUE),
    OscNode("/unsubscribe", "i", _PORT, "stop that feedback", NO_VALUE),
    OscNode("/subscribe/out", "i", _PORT, "send the analysis streams (/out/...) to this host at that port", NO_VALUE),
    OscNode("/unsubscribe/out", "i", _PORT, "stop the analysis streams", NO_VALUE),
)
"""The control server's own methods (hardware.osc.server.QUERY_ADDRESSES), answered without the main thread."""


OUT_NODES = (
    ("/out/beat", "f", (value_range(0.0, 1.0),), "1 on a beat, falling to 0 before the next"),
    ("/out/onset", "f", (value_range(0.0, 1.0),), "onset strength"),
    ("/out/loudness", "f", (value_range(0.0, 1.0),), "loudness, 0 = silence (-60 dBFS or less), 1 = full scale"),
    ("/out/bands", "fff", (value_range(0.0, 1.0),) * 3, "low, mid and high band energy"),
    ("/out/va", "ff", (value_range(-1.0, 1.0),) * 2, "the music's valence and arousal"),
    ("/out/tempo", "f", (value_range(0.0, 300.0),), "tempo in bpm (0 = none heard)"),
)
"""The analysis streams (hardware.osc.out): read-only nodes whose VALUE is the latest sent."""
