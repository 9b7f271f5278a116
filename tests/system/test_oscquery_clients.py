"""OSCQuery as real clients use it: LISTEN over a websocket (the `websockets` package),
python-oscquery's client and npm's `oscquery` client each browsing the whole tree and reading
every value. Everything on 127.0.0.1, every wait bounded."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest
from pythonosc.osc_message import OscMessage

from hardware.osc.out import AnalysisOut
from hardware.osc.query import OscQueryServer
from installation.operators.osc_wiring import address_space
from hardware.osc.query_listen import ListenClient, ListenHub
from installation.operators import routes
from installation.records import MusicState
from tests.hardware import test_osc
from tests.waiting import wait_for

ws_sync = pytest.importorskip("websockets.sync.client")
NODE_TOOL = test_osc.ROOT / "tools" / "oscquery-node"


@pytest.fixture
def served(tmp_path):
    """A control server, the analysis streams and an OSCQuery server over them, as wired at run time."""
    rig = test_osc.Rig(tmp_path)
    out = AnalysisOut(rig.server)
    query = OscQueryServer("test", "127.0.0.1", 0,
                           lambda: address_space(rig.control.param_specs, test_osc.SCENES),
                           lambda a: out.value(a) if a.startswith("/out/") else routes.TABLE.value(a, rig.live),
                           lambda: rig.address[1], allowed=rig.server.allowed, advertise=False, listen_hz=100.0,
                           max_listeners=2)
    query.start()
    yield rig, out, query
    query.stop()
    rig.close()


def listener(query: OscQueryServer):
    return ws_sync.connect("ws://%s:%d/" % query.address, open_timeout=10, close_timeout=2)


def next_message(ws) -> OscMessage:
    frame = ws.recv(timeout=10)
    assert isinstance(frame, bytes), frame  # values come as binary OSC, never as text
    return OscMessage(frame)


def listen(ws, address: str, verb: str = "LISTEN") -> None:
    ws.send(json.dumps({"COMMAND": verb, "DATA": address}))


def test_listen_streams_each_change_of_a_parameter_and_ignore_stops_it(served):
    rig, _, query = served
    with listener(query) as ws:
        listen(ws, "/param/brightness")
        first = next_message(ws)  # the current value at once
        assert (first.address, first.params) == ("/param/brightness", [1.0])
        rig.live.params["brightness"] = 0.25  # an operator moves the fader
        changed = next_message(ws)
        assert (changed.address, changed.params) == ("/param/brightness", [0.25])
        listen(ws, "/param/brightness", "IGNORE")
        listen(ws, "/nowhere")  # unknown: ignored, no error frame
        listen(ws, "/ping")  # a method without a value: nothing to stream
        ws.send("not json")
        listen(ws, "/freeze")
        assert next_message(ws).address == "/freeze"  # every command before it has been taken
        rig.live.params["brightness"] = 0.75
        listen(ws, "/blackout")
        after = next_message(ws)  # the ignored fader's change never arrives; the next listen does
        assert (after.address, after.params) == ("/blackout", [0])
        rig.live.blackout = True
        assert next_message(ws).params == [1]


def test_listen_pushes_the_out_streams_as_they_change(served):
    _, out, query = served
    with listener(query) as ws:
        listen(ws, "/out/va")
        assert next_message(ws).params == [0.0, 0.0]  # before the first state: zeros
        out.publish(MusicState(t_s=1.0, valence=0.5, arousal=-0.25))
        message = next_message(ws)
        assert (message.address, message.params) == ("/out/va", [0.5, -0.25])
        listen(ws, "/out/bands")
        assert next_message(ws).params == [0.0, 0.0, 0.0]  # the LISTEN has been taken
        out.publish(MusicState(t_s=2.0, valence=0.5, arousal=-0.25, band_low=0.5, band_mid=0.25, band_high=1.0))
        bands = next_message(ws)  # /out/va did not change: only the bands come
        assert (bands.address, bands.params) == ("/out/bands", [0.5, 0.25, 1.0])


def test_listeners_over_the_cap_are_refused_and_host_info_names_listen(served):
    _, _, query = served
    from websockets.exceptions import InvalidStatus
    with listener(query), listener(query):
        with pytest.raises(InvalidStatus):  # max_listeners=2: closed before the handshake (403)
            listener(query)
        assert query.listen.stats["refused"] == 1
        assert query.gate.open >= 2  # the websockets hold places in the connection gate
    assert wait_for(lambda: query.gate.open == 0 and query.listen.clients == 0)  # and give them back
    with urllib_get(query, "/?HOST_INFO") as info:
        assert info["EXTENSIONS"]["LISTEN"] is True


def test_a_slow_client_holds_one_value_per_address_not_a_queue():
    """A client that reads nothing while a fader moves 1,000 times keeps only the newest value."""
    from hardware.osc.query import OscNode
    value = {"v": 0.0}
    hub = ListenHub(lambda: [OscNode("/param/speed", "f", access=3)], lambda a: [value["v"]])
    client = ListenClient()
    hub._clients.add(client)
    hub.command(client, json.dumps({"COMMAND": "LISTEN", "DATA": "/param/speed"}))
    for step in range(1000):
        value["v"] = float(step)
        hub.look()
    assert list(client.pending) == ["/param/speed"]
    assert OscMessage(client.pending["/param/speed"]).params == [999.0]
    assert client.replaced == 999  # the LISTEN offered 0.0, which step 0 did not change


class urllib_get:
    def __init__(self, query, path):
        import urllib.request
        self._response = urllib.request.urlopen("http://%s:%d%s" % (*query.address, path), timeout=10)

    def __enter__(self):
        return json.loads(self._response.read())

    def __exit__(self, *exc):
        self._response.close()


def all_addresses(node: dict) -> set[str]:
    return {node["FULL_PATH"]}.union(*(all_addresses(child) for child in node.get("CONTENTS", {}).values()))


def expected_values(query) -> dict[str, list]:
    """Every readable address and its VALUE, from the server's own tree."""
    values: dict[str, list] = {}

    def walk(node):
        if "VALUE" in node:
            values[node["FULL_PATH"]] = node["VALUE"]
        for child in node.get("CONTENTS", {}).values():
            walk(child)
    walk(query.tree())
    return values


def test_python_oscquery_client_browses_the_whole_tree_and_reads_every_value(served):
    client_module = pytest.importorskip("pythonoscquery.osc_query_client")
    from zeroconf import ServiceInfo
    rig, out, query = served
    rig.live.params["speed"] = 2.5
    out.publish(MusicState(t_s=1.0, valence=0.5, arousal=-0.25))
    host, port = query.address
    info = ServiceInfo("_oscjson._tcp.local.", "test._oscjson._tcp.local.", port=port,
                       addresses=[socket.inet_aton(host)])
    client = client_module.OSCQueryClient(info)
    assert client.get_host_info().extensions["LISTEN"] is True
    root = client.query_node("/")
    addresses = {node.full_path for node in root}
    expected = expected_values(query)
    assert addresses == all_addresses(query.tree()) and set(expected) < addresses
    for address, value in expected.items():
        node = client.query_node(address)  # each node read on its own, as a browser refreshes one
        assert node is not None and node.value == value, address
    assert expected["/param/speed"] == [2.5] and expected["/out/va"] == [0.5, -0.25]


@pytest.mark.skipif(shutil.which("node") is None or not (NODE_TOOL / "node_modules" / "oscquery").is_dir(),
                    reason="needs node and `npm install --prefix tools/oscquery-node`")
def test_npm_oscquery_client_browses_the_whole_tree_and_reads_every_value(served):
    rig, out, query = served
    rig.live.params["volume"] = 1.5
    out.publish(MusicState(t_s=1.0, valence=0.5, arousal=-0.25, tempo_bpm=128.0))
    result = subprocess.run(["node", str(NODE_TOOL / "browse.cjs"), *map(str, query.address)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["host_info"]["extensions"]["LISTEN"] is True
    expected = expected_values(query)
    assert seen["values"] == expected
    assert seen["values"]["/param/volume"] == [1.5] and seen["values"]["/out/tempo"] == [128.0]
    assert seen["methods"] >= len(expected)
