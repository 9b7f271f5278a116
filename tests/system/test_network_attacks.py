"""The network servers attacked as a hostile LAN would, on 127.0.0.x only and bounded: slow
half-open connections by the thousand, idle OSC-over-TCP connections, forged admin datagrams,
oversized and nested bodies, cross-site and rebinding requests, and a restart in place right
after OSCQuery answered."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import urllib.request

import pytest
from pythonosc import slip

from hardware.net.conn_gate import ConnectionLimits
from hardware.osc.server import build_message
from hardware.osc.query import OscQueryServer
from installation.operators.osc_wiring import address_space
from installation.operators import routes
from installation.errors import UserError
from tests.hardware import test_osc
from tests.fakes import SlowClients
from tests.waiting import wait_for

httpx = pytest.importorskip("httpx")
from tests.installation import test_web  # noqa: E402 (needs httpx and fastapi)


@pytest.fixture
def rig(tmp_path):
    r = test_osc.Rig(tmp_path)
    yield r
    r.close()


def oscquery(rig, port: int = 0, limits: ConnectionLimits = ConnectionLimits()) -> OscQueryServer:
    return OscQueryServer("test", "127.0.0.1", port,
                          lambda: address_space(rig.control.param_specs, test_osc.SCENES),
                          lambda a: routes.TABLE.value(a, rig.live), lambda: rig.address[1],
                          allowed=rig.server.allowed, advertise=False, limits=limits)


def get_json(host: str, port: int, path: str, source: str = "127.0.0.1"):
    with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), (json.loads(body) if body else None)


def test_oscquery_rebinds_its_port_at_once_after_answering(rig):
    """A restart in place right after OSCQuery served requests (server-side TIME_WAIT)."""
    first = oscquery(rig)
    first.start()
    port = first.address[1]
    try:
        for _ in range(5):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/?HOST_INFO", timeout=10) as response:
                assert json.loads(response.read())["OSC_PORT"] == rig.address[1]
        with pytest.raises(UserError, match="OSCQuery cannot listen"):
            oscquery(rig, port).start()  # a live listener still owns the port
    finally:
        first.stop()
    second = oscquery(rig, port)
    second.start()
    try:
        assert get_json("127.0.0.1", port, "/?HOST_INFO")[0] == 200
    finally:
        second.stop()


def test_value_less_methods_have_access_0_and_python_oscquery_reads_the_tree(rig):
    oscquery_spec = pytest.importorskip("pythonoscquery.shared.osc_path_node")
    query = oscquery(rig)
    query.start()
    try:
        status, tree = get_json(*query.address, "/")
        assert status == 200
        node = oscquery_spec.OSCPathNode.from_json(tree)
        ping = node.find_subnode("/ping")
        assert ping is not None and tree["CONTENTS"]["ping"]["ACCESS"] == 0
        assert tree["CONTENTS"]["learn"]["CONTENTS"]["brightness"]["ACCESS"] == 0
        assert node.find_subnode("/param/brightness").value == [1.0]
    finally:
        query.stop()


def _lowered_fd_limit(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    stack = contextlib.ExitStack()
    stack.callback(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
    return stack


def test_two_thousand_slow_connections_leave_osc_oscquery_and_the_dashboard_answering(rig):
    """1,000 half-open connections each to the dashboard and OSCQuery from 127.0.0.2 while this
    process runs under systemd's default of 1,024 descriptors."""
    query = oscquery(rig, limits=ConnectionLimits(header_timeout_s=2.0))
    query.start()
    with test_web.Room(settings=("web.header_timeout_s=2.0",)) as room, _lowered_fd_limit(1024):
        web_address = room.web.server.address
        attack = SlowClients([web_address, query.address], count=1000)
        try:
            assert attack.opened + attack.failed == 2000
            with open(os.devnull, "rb"):  # the descriptor table is not full
                pass
            reply = httpx.get(room.url + "/status", params={"token": test_web.TOKEN}, timeout=10)
            assert reply.status_code == 200 and reply.json()["status"]["scene"] == "nocturne"
            assert get_json(*query.address, "/param/brightness?VALUE") == (200, {"VALUE": [1.0]})
            assert test_osc.ask(test_osc.client(rig), "/scene", "pulse")[1]["status"] == "ok"
            for gate in (room.web.server.gate, query.gate):
                assert gate.stats["refused_per_host"] >= 900, gate.stats
            assert room.web.server.gate.open <= 16 + 1 and query.gate.open <= 8 + 1
            # the slow ones admitted are closed once their head is late
            assert wait_for(lambda: room.web.server.gate.open == 0 and query.gate.open == 0, timeout_s=20)
        finally:
            attack.close()
            query.stop()
    assert rig.apply()[0]["ok"]


def _ping_over_tcp(address, source: str = "127.0.0.1") -> dict | None:
    """One SLIP-framed /ping and its reply, or None when the server closed the connection."""
    with socket.create_connection(address, timeout=5, source_address=(source, 0)) as sock:
        try:
            sock.sendall(slip.encode(build_message("/ping")))
            data = b""
            while data.count(b"\xc0") < 2 and (chunk := sock.recv(4096)):
                data += chunk
        except OSError:
            return None
    if data.count(b"\xc0") < 2:
        return None
    from pythonosc.osc_message import OscMessage
    return json.loads(OscMessage(slip.decode(data[:data.index(b"\xc0", 1) + 1])).params[0])


def test_idle_osc_tcp_connections_of_one_host_do_not_lock_out_another(rig):
    from hardware.osc.tcp import OscTcpServer
    tcp = OscTcpServer("127.0.0.1", 0, rig.server, rig.clock)
    tcp.start()
    idle = []
    try:
        for _ in range(40):
            idle.append(socket.create_connection(tcp.address, timeout=5, source_address=("127.0.0.2", 0)))
        assert wait_for(lambda: tcp.stats["refused"] + tcp.stats["connections"] >= 40)
        assert _ping_over_tcp(tcp.address) == {"status": "ok", "address": "/ping"}
    finally:
        for sock in idle:
            sock.close()
        tcp.stop()


def test_an_idle_osc_tcp_connection_is_closed_after_the_idle_timeout(rig):
    from hardware.osc.tcp import OscTcpServer
    tcp = OscTcpServer("127.0.0.1", 0, rig.server, rig.clock, ConnectionLimits(idle_timeout_s=0.5))
    tcp.start()
    try:
        with socket.create_connection(tcp.address, timeout=10) as idle:
            assert idle.recv(1) == b""  # closed by the server, not by the 10 s timeout
        assert wait_for(lambda: tcp.gate.open == 0)
        assert _ping_over_tcp(tcp.address) == {"status": "ok", "address": "/ping"}
    finally:
        tcp.stop()


def test_a_forged_admin_datagram_does_not_stop_the_show(tmp_path):
    """127.0.0.2 stands for an admin PC on the LAN, whose address any UDP sender can forge."""
    rig = test_osc.Rig(tmp_path, admin_allow=("127.0.0.2/32",), admin_token="open-sesame")
    rig.server.source_is_local = lambda host: host == "127.0.0.1"
    try:
        forger = test_osc.client(rig, bind_host="127.0.0.2")
        for args in ((), ("guess",)):
            _, body = test_osc.ask(forger, "/stop", *args)
            assert body["status"] == "error" and "osc.admin_token" in body["reason"], body
        assert rig.apply() == [] and rig.live.stop_requested is None
        _, body = test_osc.ask(forger, "/stop", "open-sesame")
        assert body["status"] == "ok", body
        assert rig.apply()[0]["ok"] and rig.live.stop_requested == "stop"
    finally:
        rig.close()


def test_admin_over_tcp_needs_no_token_the_handshake_proves_the_address(tmp_path):
    from hardware.osc.tcp import OscTcpServer
    rig = test_osc.Rig(tmp_path, admin_allow=("127.0.0.2/32",))
    rig.server.source_is_local = lambda host: host == "127.0.0.1"
    tcp = OscTcpServer("127.0.0.1", 0, rig.server, rig.clock)
    tcp.start()
    try:
        with socket.create_connection(tcp.address, timeout=5, source_address=("127.0.0.2", 0)) as sock:
            sock.sendall(slip.encode(build_message("/panic")))
            assert b"ok" in sock.recv(4096)
        assert [r["ok"] for r in rig.apply()] == [True]
    finally:
        tcp.stop()
        rig.close()


# --- the dashboard's requests ----------------------------------------------------------------------
@pytest.fixture
def room():
    with test_web.Room() as r:
        yield r


def command(room, body: bytes | str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(room.url + "/command", params={"token": test_web.TOKEN}, content=body,
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def test_x_forwarded_for_does_not_pass_the_allowlist():
    with test_web.Room(allow=("10.0.0.0/8",)) as r:
        with pytest.raises(httpx.TransportError):
            httpx.get(r.url + "/status", params={"token": test_web.TOKEN}, headers={"X-Forwarded-For": "10.0.0.5"},
                      timeout=10)


def test_an_oversized_body_is_refused_unread(room):
    reply = command(room, b'{"address": "/scene", "args": ["' + b"x" * (2 << 20) + b'"]}')
    assert reply.status_code == 413 and "at most 16384 bytes" in reply.json()["reason"]


def test_deeply_nested_json_is_a_plain_400(room):
    reply = command(room, "[" * 5000 + "]" * 5000)
    assert reply.status_code == 400 and "address" in reply.json()["reason"]


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Host": "rebound.example"}])
def test_commands_from_another_site_are_refused(room, headers):
    reply = command(room, json.dumps({"address": "/scene", "args": ["pulse"]}), headers)
    assert reply.status_code == 403 and not reply.json()["ok"]
    same = {"Origin": room.url}
    assert command(room, json.dumps({"address": "/scene", "args": ["pulse"]}), same).json()["ok"]


def test_a_websocket_from_another_site_is_closed(room):
    websockets = pytest.importorskip("websockets.sync.client")
    url = room.url.replace("http", "ws") + f"/ws?token={test_web.TOKEN}"
    with pytest.raises(Exception):
        with websockets.connect(url, origin="http://evil.example", open_timeout=10) as ws:
            ws.recv(timeout=5)
    with websockets.connect(url, origin=room.url, open_timeout=10) as ws:
        assert "status" in json.loads(ws.recv(timeout=10))
