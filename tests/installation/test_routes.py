"""The command table without sockets: find, parse, apply and effects, as python-osc's dispatcher
tests route without a network."""
from __future__ import annotations

import dataclasses

import pytest

from installation.operators import routes
from installation.bus import Bus, LiveSnapshot, LiveState
from installation.operators.control import Control
from installation.records import Command, MusicState, NoteEvent


def cmd(address, *args, sender="127.0.0.1:9000"):
    return Command(0.0, address, tuple(args), sender)


CTX = routes.RouteContext(lambda: ["nocturne", "pulse"], routes.BUILTIN_PARAMS, blocklist=("gore",))


def test_every_address_has_one_route_and_unknown_ones_have_none():
    addresses = [r.address for r in routes.ROUTES]
    assert len(addresses) == len(set(addresses))
    for address in ("/scene", "/crossfade", "/blackout", "/freeze", "/tempo", "/prompt", "/restart", "/stop"):
        assert routes.find(address).address == address
    assert routes.find("/param/render/strength").address == "/param/"
    assert routes.find("/param/") is None and routes.find("/nope") is None and not routes.is_command("/status")


@pytest.mark.parametrize("command, value, reason", [
    (cmd("/scene", "pulse", 2.0), ("pulse", 2.0), None),
    (cmd("/scene", "nowhere"), None, "no scene"),
    (cmd("/scene", "pulse", 99.0), None, "cross-fade"),
    (cmd("/blackout", "on"), True, None),
    (cmd("/freeze", 0.0), False, None),
    (cmd("/freeze", 2), None, "needs 0 or 1"),
    (cmd("/tempo", 0), None, None),
    (cmd("/tempo", 500), None, "bpm"),
    (cmd("/prompt", " stars\x00 "), "stars", None),
    (cmd("/prompt", "gore fest"), None, "blocked"),
    (cmd("/param/volume", 0.5), ("volume", 0.5), None),
    (cmd("/param/volume", 5.0), None, "out of range"),
    (cmd("/param/nothing", 1.0), None, "no parameter"),
    (cmd("/restart"), None, "only accepted"),
    (cmd("/restart", sender="schedule"), "restart", None),
    (cmd("/what"), None, "unknown address"),
    (Command(0.0, "/scene", (object(),), "x"), None, "scene name"),
])
def test_parse_reads_values_or_says_why_not(command, value, reason):
    _, parsed, why = routes.parse(command, CTX)
    assert parsed == value
    assert (why is None) if reason is None else (reason in why)


def test_apply_publishes_a_frozen_snapshot_and_runs_the_routes_effect():
    live = LiveState(scene="nocturne")
    bus = Bus("nocturne")
    seen = []
    control = Control(live, lambda: ["nocturne", "pulse"], None, snapshots=bus.live,
                      effects={"scene": lambda c, v: seen.append(("scene", v)),
                               "prompt": lambda c, v: seen.append(("prompt", v))})
    assert control.apply(cmd("/scene", "pulse")) == {"ok": True}
    assert control.apply(cmd("/param/speed", 2.0)) == {"ok": True}
    assert control.apply(cmd("/prompt", "a harbour")) == {"ok": True}
    assert control.apply(cmd("/scene", "nowhere"))["ok"] is False
    snapshot = bus.snapshot()
    assert (snapshot.scene, snapshot.speed, snapshot.prompt_override) == ("pulse", 2.0, "a harbour")
    assert seen == [("scene", ("pulse", None)), ("prompt", "a harbour")]
    with pytest.raises(TypeError):
        snapshot.params["speed"] = 3.0  # frozen: a worker cannot change what operators set
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.scene = "x"


def test_bias_and_volume_each_apply_in_one_place():
    live = LiveSnapshot(scene="s", params={"valence_bias": 0.5, "arousal_bias": -2.0, "volume": 0.5})
    state = live.biased(MusicState(t_s=0.0, valence=0.7, arousal=0.0))
    assert (state.valence, state.arousal) == (1.0, -1.0)
    assert LiveSnapshot(scene="s").biased(state) is state

    @dataclasses.dataclass(frozen=True)
    class Plan:
        events: tuple

    plan = Plan((NoteEvent(0.0, 0.5, 60, 100), NoteEvent(0.5, 0.5, 62, 1)))
    assert [e.velocity for e in live.with_volume(plan).events] == [50, 1]
    assert LiveSnapshot(scene="s", params={"volume": 0.0}).with_volume(plan).events == ()
    assert LiveSnapshot(scene="s", params={"volume": 2.0}).with_volume(plan).events[0].velocity == 127
    assert LiveSnapshot(scene="s").with_volume(plan) is plan


def test_the_live_state_starts_at_the_parameter_tables_defaults():
    defaults = {name: spec.default for name, spec in routes.BUILTIN_PARAMS.items()}
    assert LiveState(scene="s").params == defaults
    assert LiveState(scene="s").frozen().params == defaults == LiveSnapshot(scene="s").params


# --- what the doors derive from the table -----------------------------------------------------------
STROBE = routes.Route("/strobe", lambda command, ctx: (command.args[0], None), routes._set("strobe_hz"), None,
                      "strobe rate in hertz", types="f", ranges=((0.0, 12.0),),
                      read=lambda live, address: [1.5], channels=frozenset({routes.OSC, routes.WEB}))


def test_a_route_added_to_the_table_appears_in_oscquery_and_on_the_dashboard():
    from hardware.osc.query import READ_WRITE, build_tree, find_node
    from installation.operators.osc_wiring import address_space, command_space
    from installation.web.dashboard import web_controls

    table = routes.RouteTable((*routes.ROUTES, STROBE))
    tree = build_tree(address_space(routes.BUILTIN_PARAMS, ["nocturne"], table), lambda a: table.value(a, LiveState(scene="nocturne")))
    node = find_node(tree, "/strobe")
    assert node == {"FULL_PATH": "/strobe", "ACCESS": READ_WRITE, "DESCRIPTION": "strobe rate in hertz", "TYPE": "f",
                    "RANGE": [{"MIN": 0.0, "MAX": 12.0}], "VALUE": [1.5]}
    assert web_controls(table)["/strobe"] == {"types": "f", "access": "rw", "doc": "strobe rate in hertz"}
    space = command_space(table)
    assert space.is_command("/strobe") and space.has_value("/strobe") and not space.is_admin("/strobe")
    assert find_node(build_tree(address_space(routes.BUILTIN_PARAMS, ["nocturne"])), "/strobe") is None
    assert "/strobe" not in web_controls()


def test_the_doors_read_the_default_table():
    from hardware.osc.query import NO_VALUE, READ_WRITE, build_tree, find_node
    from installation.operators.osc_wiring import address_space, command_space
    from installation.web.dashboard import web_controls

    assert set(web_controls()) == {"/scene", "/blackout", "/freeze", "/param/volume", "/param/brightness", "/crossfade",
                                   "/tempo", "/prompt", "/restart"}
    tree = build_tree(address_space(routes.BUILTIN_PARAMS, ["nocturne", "pulse"]))
    for route in routes.ROUTES:
        path = route.address + ("speed" if route.prefix else "")
        node = find_node(tree, path)
        assert node is not None and node["DESCRIPTION"], path
        assert node["ACCESS"] == (READ_WRITE if route.read else NO_VALUE), path
        assert node.get("TYPE", "") == route.types, path
    assert find_node(tree, "/scene")["RANGE"] == [{"VALS": ["nocturne", "pulse"]}, {"MIN": 0.0, "MAX": 60.0}]
    assert find_node(tree, "/param/speed")["RANGE"] == [{"MIN": 0.0, "MAX": 4.0}]
    space = command_space()
    assert [a for a in ("/panic", "/restart", "/stop", "/web/revoke", "/freeze") if space.is_admin(a)] == \
        ["/panic", "/restart", "/stop", "/web/revoke"]
    assert space.is_command("/comment") and space.is_command("/learn/speed") and not space.is_command("/status")
    assert space.has_value("/freeze") and space.has_value("/param/x") and not space.has_value("/comment")
    assert space.fader_prefixes == ("/param/",)
    live = LiveState(scene="nocturne", freeze=True, tempo_bpm=None)
    assert [routes.TABLE.value(a, live) for a in ("/freeze", "/tempo", "/scene", "/param/speed", "/comment")] == \
        [[1], [0.0], ["nocturne", 2.0], [1.0], None]


def test_every_effect_is_a_route_effect_and_bound_once():
    control = Control(LiveState(scene="s"), lambda: ["s"], None)
    with pytest.raises(ValueError, match="no route has the effect"):
        control.bind_effects({"sceen": lambda c, v: None})
    control.bind_effects({"learn": None, "panic": lambda c, v: None})
    assert set(control.effects) == {"panic"}


def test_midi_controllers_send_only_routes_of_the_midi_channel():
    import mido

    from installation.config import ControlConfig, MidiCcMap
    from installation.operators.control import MidiMapper
    mapper = MidiMapper(ControlConfig(midi_cc=(MidiCcMap(cc=7, param="volume"),), midi_notes={"36": "pulse"},
                                      midi_programs=("pulse",), blackout_note=40, freeze_note=41))
    messages = [mido.Message("control_change", control=7, value=64), mido.Message("note_on", note=36, velocity=9),
                mido.Message("note_on", note=40, velocity=9), mido.Message("note_off", note=41),
                mido.Message("program_change", program=0), mido.Message("stop")]
    addresses = {c.address for m in messages for c in mapper.map(m, "midi:test")}
    assert addresses == {"/param/volume", "/scene", "/blackout", "/freeze", "/tempo"}
    assert all(routes.TABLE.in_channel(a, routes.MIDI) for a in addresses)
