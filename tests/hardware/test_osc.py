"""The OSC control server over real UDP: python-osc clients, oscsend/oscdump, fuzz, flood, allowlist."""
from __future__ import annotations

import json
import random
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from hardware.osc.server import OscControlServer, UdpOscOut, build_message
from hardware.osc.inbox import CommandInbox
from installation.clock import MonotonicClock
from installation.config import OscConfig
from installation.operators.control import Control, LiveState
from installation.operators.routes import param_key
from installation.operators.osc_wiring import command_space
from installation.showlog.writer import ShowLog, read_show_log
from models.evaluation.control_load import FLOOD  # the same flood the bench sends
from tests.waiting import wait_for

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

SCENES = ["nocturne", "pulse"]


class Rig:
    """A server, its control and its show log, as the runtime wires them (minus the renderer)."""

    def __init__(self, tmp_path, **osc):
        self.clock = MonotonicClock()
        self.log = ShowLog(tmp_path / "show.jsonl", self.clock)
        self.live = LiveState(scene="nocturne")
        self.control = Control(self.live, lambda: SCENES, self.log, blocklist=("gore",), clock=self.clock)
        self.commands: CommandInbox = CommandInbox(4096)
        self.server = OscControlServer(OscConfig(port=0, **osc).settings(), self.commands, self.clock,
                                       lambda: {"scene": self.live.scene, "blackout": self.live.blackout},
                                       command_space(), validate=self.control.check,
                                       values=lambda address: self.live.params.get(param_key(address)))
        self.server.start()
        self.address = self.server.address

    def apply(self):
        return self.control.apply_pending(self.commands)

    def close(self):
        self.server.stop()
        self.log.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def client(rig, bind_host="127.0.0.1") -> SimpleUDPClient:
    c = SimpleUDPClient(*rig.address)
    c._sock.bind((bind_host, 0))
    return c


def ask(c: SimpleUDPClient, address: str, *args, timeout_s: float = 2.0):
    """Send one message and return the first answer as (address, decoded json)."""
    c.send_message(address, list(args))
    for message in c.get_messages(timeout_s):
        return message.address, json.loads(message.params[0])
    raise AssertionError(f"no reply to {address}")


def test_every_documented_address_replies_and_takes_effect(rig):
    c = client(rig)
    expected_ok = [("/scene", ("pulse",)), ("/crossfade", (4.5,)), ("/blackout", (1,)), ("/freeze", (1.0,)),
                   ("/param/brightness", (0.25,)), ("/prompt", ("a lighthouse in fog",)), ("/tempo", (96,)),
                   ("/ping", ())]
    for address, args in expected_ok:
        reply_address, body = ask(c, address, *args)
        assert reply_address == "/reply" + address
        assert body["status"] == "ok", body
    results = rig.apply()
    assert all(r == {"ok": True} for r in results) and len(results) == 7
    live = rig.live
    assert (live.scene, live.crossfade_s, live.blackout, live.freeze) == ("pulse", 4.5, True, True)
    assert live.params["brightness"] == 0.25
    assert live.prompt_override == "a lighthouse in fog" and live.tempo_bpm == 96.0

    reply_address, status = ask(c, "/status")
    assert reply_address == "/status" and status == {"scene": "pulse", "blackout": True}
    reply_address, body = ask(c, "/subscribe", 0)
    assert reply_address == "/reply/subscribe" and body["status"] == "error"
    reply_address, body = ask(c, "/unsubscribe")
    assert body["status"] == "ok"

    # the show log names each command with its sender
    rig.log.close()
    records = read_show_log(rig.log.path)
    # (a fader's value, /crossfade and /param/*, is a "gesture" record, written when the gesture ends)
    commands = [r for r in records if r["kind"] in ("command", "gesture")]
    assert sorted(r["address"] for r in commands) == sorted(a for a, _ in expected_ok if a != "/ping")
    assert all(r["sender"].startswith("127.0.0.1:") and (r["kind"] == "gesture" or r["ok"]) for r in commands)
    assert [r["scene"] for r in records if r["kind"] == "scene"] == ["pulse"]


@pytest.mark.parametrize("address,args,reason_part", [
    ("/scene", ("nowhere",), "no scene"),
    ("/scene", (3,), "scene name"),
    ("/scene", ("pulse", 99.0), "cross-fade"),
    ("/crossfade", (-1.0,), "/crossfade"),
    ("/blackout", (2,), "0 or 1"),
    ("/freeze", ("maybe",), "0 or 1"),
    ("/param/brightness", (1.5,), "out of range"),
    ("/param/brightness", ("bright",), "one number"),
    ("/param/nothing/here", (0.5,), "no parameter"),
    ("/prompt", ("some gore please",), "blocked"),
    ("/prompt", ("x" * 400,), "limit"),
    ("/tempo", (1000,), "bpm"),
    ("/nonsense", (1,), "unknown address"),
])
def test_bad_commands_are_answered_and_change_nothing(rig, address, args, reason_part):
    c = client(rig)
    before = rig.live.snapshot()
    reply_address, body = ask(c, address, *args)
    assert reply_address == "/reply" + address
    assert body["status"] == "error" and reason_part in body["reason"]
    assert rig.apply() == []
    assert rig.live.snapshot() == before


def test_subscribe_sends_periodic_status_to_the_given_port(rig):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(20.0)  # generous: a loaded machine; the rate itself is the server's clock's business
    c = client(rig)
    _, body = ask(c, "/subscribe", listener.getsockname()[1])
    assert body["status"] == "ok" and body["hz"] == 5.0
    received = [listener.recv(65536) for _ in range(3)]  # feedback keeps coming, unasked
    assert all(data.startswith(b"/status\x00") for data in received)
    assert wait_for(lambda: rig.server.snapshot()["feedback_sent"] >= 3, 10.0)  # counted just after sending
    assert ask(c, "/unsubscribe", listener.getsockname()[1])[1]["status"] == "ok"
    assert rig.server.snapshot()["subscribers"] == 0
    listener.close()


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend, oscdump) not installed")
def test_oscsend_and_oscdump_from_liblo_tools(rig):
    host, port = rig.address
    for args in (["/scene", "s", "pulse"], ["/blackout", "T"], ["/param/speed", "f", "2.5"], ["/tempo", "i", "120"],
                 ["/freeze", "i", "1"], ["/prompt", "s", "a quiet harbour"]):
        subprocess.run(["oscsend", host, str(port), *args], check=True, timeout=5)
    assert wait_for(lambda: rig.server.snapshot()["accepted"] >= 6, 30.0)
    assert len(rig.apply()) == 6
    assert (rig.live.scene, rig.live.blackout, rig.live.params["speed"], rig.live.tempo_bpm) == ("pulse", True, 2.5, 120.0)
    assert rig.live.freeze and rig.live.prompt_override == "a quiet harbour"

    # oscdump hears the feedback it subscribed to
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dump_port = probe.getsockname()[1]
    probe.close()
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    heard: list[str] = []

    def read():
        for line in dump.stdout:
            heard.append(line)
    reader = __import__("threading").Thread(target=read, daemon=True)
    reader.start()

    def subscribed_and_heard():  # subscribes again until oscdump (started at its own pace) hears the feedback
        subprocess.run(["oscsend", host, str(port), "/subscribe", "i", str(dump_port)], check=True, timeout=10)
        return [line for line in heard if " /status s " in line]  # "<timetag> /status s <json>"
    try:
        lines = wait_for(subscribed_and_heard, 60.0, interval_s=0.5)
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    assert lines and '"scene":"pulse"' in lines[0]


def _fuzz_packets(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    valid = [build_message(a, *args) for a, args in [
        ("/scene", ("pulse",)), ("/blackout", (1,)), ("/param/brightness", (0.5,)), ("/status", ()),
        ("/prompt", ("sea",)), ("/tempo", (90.0,)), ("/subscribe", (9,))]]
    packets = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            packets.append(rng.randbytes(rng.randint(0, 300)))
        elif kind == 1:  # a valid message cut short
            p = rng.choice(valid)
            packets.append(p[:rng.randint(0, len(p) - 1)])
        elif kind == 2:  # a valid message with bytes flipped
            p = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                p[rng.randrange(len(p))] = rng.randrange(256)
            packets.append(bytes(p))
        elif kind == 3:  # a well-formed message with a random address and random types
            b = OscMessageBuilder(address="/" + "/".join(rng.choice(["scene", "param", "x", "blackout", "", "ü"])
                                                        for _ in range(rng.randint(1, 3))))
            for _ in range(rng.randint(0, 3)):
                b.add_arg(rng.choice([rng.random() * 1e9, -rng.randint(0, 2**31), "t" * rng.randint(0, 50), True,
                                      b"\x00\x01", float("nan"), float("inf")]))
            packets.append(b.build().dgram)
        elif kind == 4:  # claims a huge blob
            packets.append(b"/scene\x00\x00,b\x00\x00" + struct.pack(">i", 2**30) + b"abc")
        elif kind == 5:  # a bundle holding junk
            packets.append(b"#bundle\x00" + rng.randbytes(8) + struct.pack(">i", rng.randint(-5, 500)) + rng.randbytes(20))
        elif kind == 6:  # a real bundle with real messages
            bb = OscBundleBuilder(IMMEDIATELY)
            for _ in range(rng.randint(1, 3)):
                mb = OscMessageBuilder(address=rng.choice(["/freeze", "/param/speed", "/crossfade"]))
                mb.add_arg(rng.choice([0, 1, 2.0, 99.0, "x"]))
                bb.add_content(mb.build())
            packets.append(bb.build().dgram)
        else:  # a type tag string with unknown tags
            packets.append(b"/blackout\x00\x00\x00,Q?z\x00\x00\x00\x00" + rng.randbytes(12))
    return packets


def test_fuzz_of_ten_thousand_packets_crashes_nothing(tmp_path):
    rig = Rig(tmp_path, rate_limit_hz=100000, burst=100000)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        packets = _fuzz_packets(10_000)
        sent = 0
        for i, packet in enumerate(packets):
            try:
                sock.sendto(packet, rig.address)
                sent += 1
            except OSError:
                pass  # an empty datagram or a full buffer is the sender's problem
            if i % 100 == 99:  # let the server drain, so the kernel drops little of what we want it to see
                deadline = time.monotonic() + 1.0
                seen = -1
                while time.monotonic() < deadline and seen != (seen := rig.server.snapshot()["received"]):
                    time.sleep(0.002)
        # a loaded machine serves the backlog slowly: wait until the server has taken in and served
        # all of it ("received" stops growing, nothing queued), then ask, asking again if need be
        last = [-1]

        def drained() -> bool:
            stats = rig.server.snapshot()
            settled = stats["received"] == last[0] and stats["queued_packets"] == 0
            last[0] = stats["received"]
            return settled
        assert wait_for(drained, timeout_s=60.0, interval_s=0.2), rig.server.snapshot()
        c = client(rig)
        reply = None
        for _ in range(5):
            try:
                reply = ask(c, "/status", timeout_s=5.0)
                break
            except AssertionError:
                continue
        assert reply is not None, f"no reply to /status: {rig.server.snapshot()}"
        reply_address, status = reply
        assert reply_address == "/status" and "scene" in status
        stats = rig.server.snapshot()
        # every datagram sent is accounted for: taken in, or counted as dropped by the kernel
        # (a full receive buffer on a loaded machine); the /status asks add to "received"
        assert stats["received"] + stats["kernel_drops"] >= sent, (sent, stats)
        assert stats["received"] > 1000, stats
        assert stats["malformed"] > 1000 and stats["unknown"] > 100 and stats["rejected"] > 100
        assert stats["errors"] == 0
        # whatever got through validation applies cleanly on the main thread
        results = rig.apply()
        assert results and all(r["ok"] for r in results)
        assert rig.live.scene in SCENES
        assert all(rig.control.param_specs[k].low <= v <= rig.control.param_specs[k].high
                   for k, v in rig.live.params.items())
    finally:
        rig.close()




class Applier:
    """The main loop's part: applies commands as they arrive, on its own thread, and keeps them."""

    def __init__(self, rig):
        self.rig = rig
        self.applied: list = []
        self._stop = __import__("threading").Event()
        self._thread = __import__("threading").Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        def keep(command, result):
            self.applied.append((command, result))
        while not self._stop.is_set():
            self.rig.control.apply_until(self.rig.commands, self.rig.clock.now_s() + 0.05, on_apply=keep)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for command in self.rig.commands.drain():
            self.applied.append((command, self.rig.control.apply(command)))


def test_flood_and_bundle_storm_from_one_host_lose_nothing_of_another(tmp_path):
    """One host floods fader values (10,000 a second) and bundles of 2,000 messages twice a
    second; another asks /status and sends commands. Every question is answered, every command
    answered ok is applied, and the flooder's faders end on the last value it sent."""
    rig = Rig(tmp_path)
    applier = Applier(rig)
    try:
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, *map(str, rig.address), "10000", "2.0", "2", "2000"],
                                 stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        wait_for(lambda: rig.server.snapshot()["coalesced"] > 0 or flood.poll() is not None, 30.0)
        other = client(rig, bind_host="127.0.0.2")  # a second machine, as far as the server can tell
        answered, oks = 0, []
        i = 0
        next_s = time.monotonic()
        while flood.poll() is None or i < 10:
            next_s += 0.05  # 20 questions a second, as a status display would ask
            wait_for(lambda: time.monotonic() >= next_s, 1.0, 0.005)
            reply_address, status = ask(other, "/status", timeout_s=10.0)
            assert reply_address == "/status" and "scene" in status
            answered += 1
            reply_address, body = ask(other, "/crossfade", 10.0 + i % 40, timeout_s=10.0)
            assert body["status"] == "ok", body
            oks.append(10.0 + i % 40)
            i += 1
        result = json.loads(flood.communicate(timeout=30)[0])
        assert result["sent"] >= 5000 and result["bundles"] >= 1
        last = result["last"]
        wait_for(lambda: abs(rig.live.params["brightness"] - last["brightness"]) < 1e-6
                 and abs(rig.live.params["speed"] - last["speed"]) < 1e-6
                 or rig.server.snapshot()["ring_drops"] > 0, 30.0)
    finally:
        applier.stop()
        stats = rig.server.snapshot()
        rig.close()
    applied = [(c, r) for c, r in applier.applied if c.sender.startswith("127.0.0.2:")]
    assert [c.args[0] for c, r in applied if r["ok"]] == oks  # every ok is applied, in order
    assert answered >= 10
    assert stats["rate_limited"] > 0 and stats["coalesced"] > 0  # the limit did bite
    assert stats["errors"] == 0 and rig.commands.dropped == 0
    # the flooder's faders end where it left them, unless it sent more than its own queue holds
    # (a machine too busy to keep up with 10,000 a second: then only the flooder lost packets)
    if stats["ring_drops"] == 0 and stats["kernel_drops"] == 0:
        assert rig.live.params["brightness"] == pytest.approx(result["last"]["brightness"], abs=1e-6)
        assert rig.live.params["speed"] == pytest.approx(result["last"]["speed"], abs=1e-6)
    print(f"flood: {result}; server: {stats}")


def test_bundle_messages_count_one_by_one_and_none_answered_ok_is_lost(tmp_path):
    rig = Rig(tmp_path, rate_limit_hz=0.001, burst=50)  # no refill while the test runs, however slowly
    try:
        c = client(rig)
        bb = OscBundleBuilder(IMMEDIATELY)
        for j in range(300):
            mb = OscMessageBuilder(address="/crossfade")
            mb.add_arg(float(j % 60))
            bb.add_content(mb.build())
        c._sock.sendto(bb.build().dgram, rig.address)
        assert wait_for(lambda: rig.server.snapshot()["messages"] >= 300, 30.0)
        replies = []
        for message in c.get_messages(2.0):
            replies.append(json.loads(message.params[0]))
        oks = [r for r in replies if r.get("status") == "ok"]
        assert len(oks) == 50  # the burst, not the whole bundle
        assert [r for r in replies if "rate limited" in r.get("reason", "")]
        results = rig.apply()
        assert len(results) == len(oks) and all(r["ok"] for r in results)
        assert rig.server.snapshot()["rate_limited"] >= 240
    finally:
        rig.close()


def test_fader_values_over_the_limit_are_coalesced_and_the_last_one_lands(tmp_path):
    rig = Rig(tmp_path, rate_limit_hz=2, burst=5)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(200):
            sock.sendto(build_message("/param/brightness", i / 200), rig.address)
            sock.sendto(build_message("/param/speed", i / 100), rig.address)
        sock.sendto(build_message("/param/brightness", 0.125), rig.address)
        sock.sendto(build_message("/param/speed", 3.5), rig.address)
        def landed():
            rig.apply()  # the main loop's part
            return rig.live.params["brightness"] == 0.125 and rig.live.params["speed"] == 3.5
        assert wait_for(landed, 60.0)
        assert rig.server.snapshot()["received"] == 402
        stats = rig.server.snapshot()
        assert stats["coalesced"] > 300 and stats["rate_limited"] == 0
        sock.close()
    finally:
        rig.close()


def test_value_queries_answer_the_current_value(rig):
    c = client(rig)
    assert ask(c, "/param/brightness", 0.25)[1]["status"] == "ok"
    rig.apply()
    c.send_message("/param/brightness", [])
    message = next(iter(c.get_messages(2.0)))
    assert message.address == "/param/brightness" and message.params == [0.25]
    _, body = ask(c, "/param/nothing")
    assert body["status"] == "error" and "no parameter" in body["reason"]


@pytest.mark.parametrize("address", ["/param//brightness", "/param/brightness/", "//scene", "/param/render//x"])
def test_addresses_with_an_empty_part_are_refused(rig, address):
    c = client(rig)
    reply_address, body = ask(c, address, 0.5)
    assert body["status"] == "error" and "empty part" in body["reason"]
    assert rig.apply() == []


def test_subscribing_the_installation_to_itself_is_refused(rig):
    c = client(rig)
    _, body = ask(c, "/subscribe", rig.address[1])
    assert body["status"] == "error" and "own control port" in body["reason"]
    assert rig.server.snapshot()["subscribers"] == 0


def test_total_feedback_is_capped(tmp_path):
    rig = Rig(tmp_path, feedback_hz=10, feedback_max_per_s=4, max_subscribers=8)
    listeners = []
    try:
        c = client(rig)
        for _ in range(8):
            listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener.bind(("127.0.0.1", 0))
            listeners.append(listener)
            assert ask(c, "/subscribe", listener.getsockname()[1])[1]["status"] == "ok"
        assert wait_for(lambda: rig.server.snapshot()["feedback_capped"] >= 40, 20.0)
        stats = rig.server.snapshot()
        assert stats["feedback_sent"] <= stats["feedback_capped"]
    finally:
        for listener in listeners:
            listener.close()
        rig.close()


def test_admin_commands_only_from_admin_hosts(tmp_path):
    rig = Rig(tmp_path, admin_allow=("127.0.0.1/32",))
    try:
        outsider = client(rig, bind_host="127.0.0.2")
        for address in ("/panic", "/restart", "/stop"):
            _, body = ask(outsider, address)
            assert body["status"] == "error" and "osc.admin_allow" in body["reason"]
        assert rig.apply() == []
    finally:
        rig.close()


def test_a_second_instance_on_a_taken_port_exits_2_and_the_first_keeps_answering(rig):
    host, port = rig.address
    second = subprocess.run([sys.executable, "run.py", "--set", f"osc.port={port}", "--set", f"osc.host={host}",
                             "--headless", "--duration", "5"],
                            cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert "Traceback" not in second.stderr
    last = [line for line in second.stderr.strip().splitlines() if line.strip()][-1]
    assert str(port) in last and "OSC" in last
    c = client(rig)
    for _ in range(5):
        reply_address, status = ask(c, "/status")
        assert reply_address == "/status" and status["scene"] == "nocturne"
    assert rig.server.snapshot()["received"] == 5


def test_a_sender_outside_the_allowlist_changes_nothing(tmp_path):
    rig = Rig(tmp_path, allow=("127.0.0.1/32",))
    try:
        outsider = client(rig, bind_host="127.0.0.2")
        for address, args in [("/scene", "pulse"), ("/blackout", 1), ("/prompt", "x"), ("/subscribe", 9000)]:
            outsider.send_message(address, args)
        assert list(outsider.get_messages(0.3)) == []  # not even an answer
        insider = client(rig)
        assert ask(insider, "/ping")[1]["status"] == "ok"  # proves the outsider's packets had arrived first
        assert rig.apply() == []
        assert rig.live.scene == "nocturne" and not rig.live.blackout
        stats = rig.server.snapshot()
        assert stats["denied"] == 4 and stats["subscribers"] == 0
    finally:
        rig.close()


def test_udp_osc_out_reaches_a_receiver_and_survives_a_missing_one():
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2.0)
    out = UdpOscOut("127.0.0.1", listener.getsockname()[1])
    import numpy as np
    out.send("/chromesthesia/va", np.float32(0.25), -0.5)
    out.send("/chromesthesia/plan", {"bars": 1})
    from pythonosc.osc_message import OscMessage
    first = OscMessage(listener.recv(65536))
    second = OscMessage(listener.recv(65536))
    assert first.address == "/chromesthesia/va" and first.params == [0.25, -0.5]
    assert json.loads(second.params[0]) == {"bars": 1}
    listener.close()
    for _ in range(5):  # nobody listens any more: ICMP errors are counted, never raised
        out.send("/x", 1)
        time.sleep(0.01)
    assert out.sent + out.errors == 7
    out.close()


def _doc_rows(path, heading):
    """(first cell, cells) of each row of the first table under `heading` in a docs page."""
    text = (ROOT / "docs" / path).read_text()
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append(cells)
    return rows


def test_oscquery_serves_every_documented_address_with_type_and_range(rig):
    import re
    import urllib.request

    from hardware.osc.out import AnalysisOut
    from hardware.osc.query import OscQueryServer
    from installation.operators.osc_wiring import address_space
    from installation.operators import routes

    out = AnalysisOut(rig.server)
    query = OscQueryServer("test", "127.0.0.1", 0,
                           lambda: address_space(rig.control.param_specs, SCENES),
                           lambda a: out.value(a) if a.startswith("/out/") else routes.TABLE.value(a, rig.live),
                           lambda: rig.address[1], allowed=rig.server.allowed, advertise=False)
    query.start()
    try:
        base = "http://%s:%d" % query.address

        def get(path):
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return json.loads(response.read() or b"null")

        tree = get("/")
        served = {}

        def walk(node):
            if "TYPE" in node or "CONTENTS" not in node:  # a method (a leaf, or one with children)
                served[node["FULL_PATH"]] = node
            for child in node.get("CONTENTS", {}).values():
                walk(child)
        walk(tree)

        documented = {}
        for cells in _doc_rows("osc.md", "## Commands"):
            for address in re.findall(r"`(/[^`]*)`", cells[0]):
                documented[address] = cells
        for cells in _doc_rows("osc.md", "## Parameters"):
            documented["/param/" + cells[0].strip("`")] = ["", "`f value`", cells[1]]
        for cells in _doc_rows("osc-outputs.md", "## Analysis streams"):
            documented[cells[0].strip("`")] = cells
        documented.pop("/param/<path>")
        for address in [a for a in documented if a.endswith("/<path>")]:  # e.g. /learn/<path>
            cells = documented.pop(address)
            for name in rig.control.param_specs:
                documented[address.replace("<path>", name.replace(".", "/"))] = cells

        assert set(served) == set(documented)  # nothing undocumented, nothing missing
        for address, cells in documented.items():
            node = served[address]
            doc_types = set(re.findall(r"`([a-zA-Z])[ `/]", cells[1] + " ")) | set(re.findall(r"`([a-zA-Z]+)`", cells[1]))
            if cells[1] == "none":
                assert "TYPE" not in node, address
                continue
            assert node["TYPE"] and set(node["TYPE"]) <= set("".join(doc_types)), (address, node["TYPE"], cells[1])
            assert len(node["RANGE"]) == len(node["TYPE"])
            for kind, rng in zip(node["TYPE"], node["RANGE"]):
                if kind in "if":
                    assert f"{rng['MIN']:g}" in cells[2] and f"{rng['MAX']:g}" in cells[2], (address, rng, cells[2])
            assert node["DESCRIPTION"]

        # current values, in the tree and one by one
        assert served["/param/brightness"]["VALUE"] == [1.0]
        c = client(rig)
        assert ask(c, "/param/brightness", 0.5)[1]["status"] == "ok"
        rig.apply()
        assert get("/param/brightness?VALUE") == {"VALUE": [0.5]}
        assert get("/scene?VALUE") == {"VALUE": ["nocturne", 2.0]}
        assert get("/?HOST_INFO")["OSC_PORT"] == rig.address[1]
    finally:
        query.stop()


def test_analysis_streams_reach_a_subscriber_as_plain_floats(rig):
    from pythonosc.osc_bundle import OscBundle

    from hardware.osc.out import AnalysisOut
    from installation.records import MusicState

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5.0)
    out = AnalysisOut(rig.server)
    try:
        c = client(rig)
        _, body = ask(c, "/subscribe/out", listener.getsockname()[1])
        assert body["status"] == "ok"
        music = MusicState(t_s=1.0, valence=0.5, arousal=-0.25, loudness_dbfs=-30.0, onset_strength=0.75,
                           tempo_bpm=120.0, beat_phase=0.25, beat_confidence=0.9, band_low=0.1, band_mid=0.2,
                           band_high=0.3, silent=False)
        assert out.publish(music) == 1
        assert out.publish(music) == 0  # the same state is not sent twice
        bundle = OscBundle(listener.recv(65536))
        got = {m.address: m.params for m in bundle}
        assert got == {"/out/beat": [0.75], "/out/onset": [0.75], "/out/loudness": [0.5],
                       "/out/bands": [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)],
                       "/out/va": [0.5, -0.25], "/out/tempo": [120.0]}
        assert all(isinstance(v, float) for args in got.values() for v in args)
        assert ask(c, "/unsubscribe/out", listener.getsockname()[1])[1]["status"] == "ok"
        assert out.publish(MusicState(t_s=2.0)) == 0
    finally:
        listener.close()


def test_panic_restart_and_stop_from_an_admin_host_take_effect(rig):
    effects = []
    rig.control.effects["panic"] = lambda command, value: effects.append(("panic", command.sender))
    rig.control.effects["stop"] = lambda command, value: effects.append((value, command.sender))
    c = client(rig)  # 127.0.0.1: in osc.admin_allow by default
    for address in ("/panic", "/restart", "/stop"):
        reply_address, body = ask(c, address)
        assert reply_address == "/reply" + address and body["status"] == "ok", body
    assert all(r["ok"] for r in rig.apply())
    assert [e[0] for e in effects] == ["panic", "restart", "stop"]
    assert all(e[1].startswith("admin 127.0.0.1:") for e in effects)
    assert rig.live.stop_requested == "stop"


def test_osc_pieces_from_config_refuse_a_built_in_blocked_prompt_before_answering(tmp_path):
    import urllib.request

    from installation.bus import LiveState as BusLiveState
    from installation.config import load_config
    from installation.mailbox import Latest
    from installation.operators.osc_wiring import build_osc, command_inbox, prompt_filter

    cfg = load_config(ROOT / "config.toml", ["osc.port=0", "osc.query_enabled=true", "osc.query_port=0",
                                             "osc.query_mdns=false", "captions.blocklist=[\"lighthouse\"]"])
    clock = MonotonicClock()
    live = BusLiveState(scene="nocturne")
    box = Latest()
    control = Control(live, lambda: SCENES, None, blocklist=cfg.captions.blocklist, clock=clock,
                      prompt_filter=prompt_filter(cfg.captions), snapshots=box)
    control.publish()
    commands = command_inbox()
    pieces = build_osc(cfg, commands, clock, live.snapshot, control, box, lambda: SCENES)
    pieces.start()
    try:
        c = SimpleUDPClient(*pieces.server.address)
        for text, blocked in (("a bloody sky", True), ("a lighthouse in fog", True), ("a calm harbour", False)):
            _, body = ask(c, "/prompt", text)
            assert (body["status"] == "error") == blocked, (text, body)
            if blocked:
                assert "blocked" in body["reason"]
        results = control.apply_pending(commands)
        assert results == [{"ok": True}] and live.prompt_override == "a calm harbour"
        with urllib.request.urlopen("http://%s:%d/prompt?VALUE" % pieces.query.address, timeout=10) as response:
            assert json.loads(response.read()) == {"VALUE": ["a calm harbour"]}
    finally:
        pieces.stop()


def test_osc_over_tcp_with_slip_framing_gets_the_same_rules_and_replies(rig):
    from pythonosc.tcp_client import SimpleTCPClient

    from hardware.osc.tcp import OscTcpServer, split_frames

    buffer = bytearray(b"\xc0abc\xc0\xc0de\xdb\xdc\xc0\xc0fg")
    assert split_frames(buffer) == [b"\xc0abc\xc0", b"\xc0de\xdb\xdc\xc0"] and buffer == b"fg"

    tcp = OscTcpServer("127.0.0.1", 0, rig.server, rig.clock)
    tcp.start()
    try:
        c = SimpleTCPClient(*tcp.address, mode="1.1")
        c.send_message("/scene", ["pulse"])
        c.send_message("/param//brightness", [0.5])
        bb = OscBundleBuilder(IMMEDIATELY)
        for value in (0.1, 0.2, 0.3):
            mb = OscMessageBuilder(address="/param/brightness")
            mb.add_arg(value)
            bb.add_content(mb.build())
        c.send(bb.build())
        replies = []
        for message in c.get_messages(5):
            replies.append((message.address, json.loads(message.params[0])))
            if len(replies) == 5:
                break
        assert [(a, b["status"]) for a, b in replies] == [("/reply/scene", "ok"), ("/reply/param//brightness", "error"),
                                                          ("/reply/param/brightness", "ok"),
                                                          ("/reply/param/brightness", "ok"),
                                                          ("/reply/param/brightness", "ok")]
        rig.apply()
        assert rig.live.scene == "pulse" and rig.live.params["brightness"] == pytest.approx(0.3)
        assert rig.apply() == [] and tcp.stats["frames"] == 3
        c.close()
    finally:
        tcp.stop()


def test_oscquery_is_found_over_mdns(rig, tmp_path):
    from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

    from hardware.osc.query import OscQueryServer
    from installation.operators.osc_wiring import address_space

    name = f"chromesthesia-{tmp_path.name[-20:]}-{rig.address[1]}"
    query = OscQueryServer(name, "127.0.0.1", 0, lambda: address_space(rig.control.param_specs, SCENES),
                           None, lambda: rig.address[1], advertise=True)
    query.start()
    found = {}

    class Listener(ServiceListener):
        def add_service(self, zc, kind, service):
            info = zc.get_service_info(kind, service, timeout=3000)
            if info is not None:
                found[(kind, service)] = info.port

        def update_service(self, zc, kind, service):
            pass

        def remove_service(self, zc, kind, service):
            pass

    zc = Zeroconf(interfaces=["127.0.0.1"])
    try:
        browsers = [ServiceBrowser(zc, kind, Listener()) for kind in ("_oscjson._tcp.local.", "_osc._udp.local.")]
        assert wait_for(lambda: len([k for k in found if k[1].startswith(name + ".")]) == 2, 20.0), found
        assert found[("_oscjson._tcp.local.", f"{name}._oscjson._tcp.local.")] == query.address[1]
        assert found[("_osc._udp.local.", f"{name}._osc._udp.local.")] == rig.address[1]
        for browser in browsers:
            browser.cancel()
    finally:
        zc.close()
        query.stop()


def test_the_running_installation_streams_analysis_answers_values_and_panics(tmp_path):
    """The whole runtime over real UDP and HTTP: /out streams move with the music, a value query
    answers what was set, OSCQuery describes the live state, /panic and /stop from an admin host."""
    import threading
    import urllib.request

    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_message import OscMessage

    from installation.app import Installation, RunOptions
    from installation.config import load_config

    cfg = load_config(ROOT / "config.toml", [
        "display.mode=\"headless\"", "audio.source=\"synth\"", "camera.source=\"photos\"", "render.backend=\"procedural\"",
        "synth.speakers=\"off\"", "osc.enabled=true", "osc.port=0", "osc.query_enabled=true", "osc.query_port=0",
        "osc.query_mdns=false"])
    installation = Installation(cfg, RunOptions(duration_s=120.0, headless=True, quiet=True))
    panics = []
    panic = installation._panic
    installation._panic = lambda: (panics.append(installation.clock.now_s()), panic())
    runner = threading.Thread(target=installation.run)
    runner.start()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(2.0)
    try:
        assert wait_for(lambda: installation.osc.server.snapshot()["kernel_drops"] == 0
                        and installation.osc_server._sock is not None, 60)
        c = SimpleUDPClient(*installation.osc_server.address)
        assert ask(c, "/subscribe/out", listener.getsockname()[1], timeout_s=10)[1]["status"] == "ok"
        streams = []

        def heard():
            try:
                streams.append({m.address: m.params for m in OscBundle(listener.recv(65536))})
            except (socket.timeout, OSError):
                pass
            return len({tuple(s.get("/out/va", ())) for s in streams}) >= 3  # the mood moves
        assert wait_for(heard, 60, interval_s=0.0)
        assert set(streams[-1]) == {"/out/beat", "/out/onset", "/out/loudness", "/out/bands", "/out/va", "/out/tempo"}
        assert all(isinstance(v, float) for s in streams for args in s.values() for v in args)

        assert ask(c, "/param/speed", 2.5, timeout_s=10)[1]["status"] == "ok"
        assert wait_for(lambda: installation.bus.live.peek().params["speed"] == 2.5, 10)
        c.send_message("/param/speed", [])
        answer = next(iter(c.get_messages(10)))
        assert answer.address == "/param/speed" and answer.params == [2.5]
        with urllib.request.urlopen("http://%s:%d/param/speed" % installation.osc.query.address, timeout=10) as r:
            node = json.loads(r.read())
        assert node["TYPE"] == "f" and node["RANGE"] == [{"MIN": 0.0, "MAX": 4.0}] and node["VALUE"] == [2.5]

        assert ask(c, "/panic", timeout_s=10)[1]["status"] == "ok"
        assert wait_for(lambda: panics, 10)  # the schedulers' panic ran
        assert ask(c, "/stop", timeout_s=10)[1]["status"] == "ok"
        runner.join(60)
        assert not runner.is_alive()  # /stop ended the show
        assert installation.lifecycle.stop_reason
    finally:
        installation.request_stop("test over")
        listener.close()
        runner.join(30)


@pytest.mark.parametrize("host", ["999.1.1.1", "192.0.2.1"])
def test_a_host_that_is_not_this_machines_is_named_as_the_problem(host):
    from installation.errors import UserError
    server = OscControlServer(OscConfig(host=host, port=0).settings(), CommandInbox(16), MonotonicClock(), lambda: {})
    with pytest.raises(UserError) as raised:
        server.start()
    message = str(raised.value)
    assert "osc.host" in message and "is using it" not in message, message


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--host", "nohost.invalid", "--timeout-s", "1"]])
def test_the_osc_command_answers_a_bad_host_or_port_with_one_sentence(argv, capsys):
    from installation.cli import main
    assert main(["osc", "/status", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


def test_oscquery_describes_each_of_the_servers_own_methods():
    from hardware.osc.query import SERVER_NODES
    from hardware.osc.server import QUERY_ADDRESSES
    assert {node.address for node in SERVER_NODES} == QUERY_ADDRESSES


def test_status_is_answered_at_once_while_gathering_it_is_slow_and_the_main_thread_computes(tmp_path):
    """/status comes from the answer kept ready (the reader thread sends it), not from a
    `status_fn()` that takes 80 ms, while the main thread holds the GIL in a pure-Python loop."""
    rig = Rig(tmp_path)
    rig.server._feedback._status_fn = lambda: (time.sleep(0.08), {"scene": rig.live.scene})[1]
    c = client(rig)
    try:
        assert ask(c, "/status", timeout_s=5.0)[1] == {"scene": "nocturne"}  # the first is gathered
        answers_ms: list[float] = []

        def asking() -> None:
            for _ in range(20):
                started = time.perf_counter()
                c.send_message("/status", [])
                for message in c.get_messages(2.0):
                    assert json.loads(message.params[0]) == {"scene": "nocturne"}
                    answers_ms.append((time.perf_counter() - started) * 1000.0)
                    break
                time.sleep(0.05)

        import threading
        asker = threading.Thread(target=asking)
        asker.start()
        busy = 0
        while asker.is_alive():  # the main thread's long computation
            busy = (busy * 31 + 7) % 1000003
        asker.join()
        assert len(answers_ms) == 20
        fast = [ms for ms in answers_ms if ms < 40.0]
        assert len(fast) >= 15, sorted(answers_ms)  # gathering takes 80 ms: an answer under 40 ms was ready
        assert rig.server.snapshot()["status_at_once"] >= 15
    finally:
        rig.close()


def test_the_ready_status_is_fresh_within_budget_and_forgotten_when_nobody_asks():
    from hardware.osc.ready_status import FRESH_S, REFRESH_S, WANTED_S, ReadyStatus
    built: list[int] = []
    ready = ReadyStatus(lambda: (built.append(1), b"/status %d" % len(built))[1], rate_hz=1.0, burst=2)
    assert ready.take("10.0.0.1", 0.0) is None and ready.due_s() == -1e9 + REFRESH_S  # wanted, nothing built
    ready.refresh(0.0)
    assert ready.take("10.0.0.1", 0.01) == b"/status 1"
    assert ready.take("10.0.0.1", 0.02) == b"/status 1"
    assert ready.take("10.0.0.1", 0.03) is None  # over this host's budget: the control thread answers
    assert ready.take("10.0.0.2", 0.03) == b"/status 1"
    assert ready.take("10.0.0.2", FRESH_S + 0.01) is None  # stale
    ready.refresh(REFRESH_S)
    assert ready.take("10.0.0.2", REFRESH_S + 0.01) == b"/status 2"
    ready.refresh(REFRESH_S + WANTED_S + 1.0)  # nobody asked for a minute: no more gathering
    assert ready.due_s() == float("inf") and ready.take("10.0.0.3", REFRESH_S + WANTED_S + 1.0) is None


def test_osc_threads_ask_for_a_short_cpu_slice_and_keep_their_nice_value():
    import os
    import threading
    from hardware.osc.wakeup import request_short_slice
    result: list = []

    def thread() -> None:
        os.setpriority(os.PRIO_PROCESS, 0, 3)  # this thread only (Linux)
        held = request_short_slice(0.0002, "test")
        sched = f"/proc/self/task/{threading.get_native_id()}/sched"
        line = next((l for l in open(sched) if l.startswith("se.slice")), "") if os.path.exists(sched) else ""
        result.append((held, os.getpriority(os.PRIO_PROCESS, 0), line))

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    held, nice, line = result[0]
    assert nice == 3
    if held:  # Linux 6.12+: the kernel reports the slice it holds
        assert line.split(":")[1].strip() == "200000"
    assert request_short_slice(0.0, "test") is False
