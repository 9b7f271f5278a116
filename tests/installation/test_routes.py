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
