"""Control: validated state changes on the main thread, parameters from scenes, latency hand-off."""
from __future__ import annotations

import threading
import time

import pytest

from installation.clock import ManualClock, MonotonicClock
from installation.operators.control import Control, LiveState
from installation.operators.routes import BUILTIN_PARAMS, param_specs_for
from installation.mailbox import DropOldest
from installation.records import Command
from installation.showlog.writer import ShowLog, read_show_log
from scenes.scene import parse_scene


def make(tmp_path=None, **kw):
    live = LiveState(scene="nocturne")
    log = ShowLog(tmp_path / "show.jsonl", ManualClock()) if tmp_path else None
    return live, Control(live, lambda: ["nocturne", "pulse"], log, **kw), log


def cmd(address, *args, sender="10.0.0.9:8000"):
    return Command(t_s=0.0, address=address, args=args, sender=sender)


def test_apply_changes_state_and_logs_with_sender(tmp_path):
    live, control, log = make(tmp_path)
    assert control.apply(cmd("/scene", "pulse", 6.0)) == {"ok": True}
    assert (live.scene, live.scene_crossfade_s) == ("pulse", 6.0)
    assert control.apply(cmd("/blackout", "on")) == {"ok": True} and live.blackout
    assert control.apply(cmd("/tempo", 0)) == {"ok": True} and live.tempo_bpm is None
    refused = control.apply(cmd("/param/volume", float("nan")))
    assert refused["ok"] is False and "number" in refused["reason"]
    assert control.apply(cmd("/prompt", "  stars\x00 over\tthe bay ")) == {"ok": True}
    assert live.prompt_override == "stars  over the bay"
    assert control.apply(cmd("/prompt", "")) == {"ok": True} and live.prompt_override is None
    assert live.version == 5 and control.applied == 5 and control.refused == 1
    log.close()
    records = read_show_log(log.path)
    assert [r["kind"] for r in records].count("command") == 6
    assert records[0]["sender"] == "10.0.0.9:8000"
    assert records[1] == {**records[1], "kind": "scene", "scene": "pulse", "crossfade_s": 6.0}
    assert any(r.get("ok") is False and "number" in r["reason"] for r in records)


def test_restart_only_from_local_senders():
    live, control, _ = make()
    assert control.apply(cmd("/restart"))["ok"] is False and live.stop_requested is None
    assert control.apply(cmd("/restart", sender="schedule")) == {"ok": True}
    assert live.stop_requested == "restart"


def test_scene_params_table_extends_and_reload_keeps_values():
    scene = parse_scene({"name": "gallery", "params": {
        "render.strength": {"min": 0.1, "max": 0.9, "default": 0.5, "doc": "img2img strength"}}})
    specs = param_specs_for(scene)
    assert set(BUILTIN_PARAMS) < set(specs) and specs["render.strength"].default == 0.5
    live, control, _ = make()
    control.apply(cmd("/param/speed", 3.0))
    control.set_params(specs)
    assert live.params["render.strength"] == 0.5 and live.params["speed"] == 3.0
    assert control.apply(cmd("/param/render/strength", 0.8)) == {"ok": True}
    assert live.params["render.strength"] == 0.8
    assert control.apply(cmd("/param/render/strength", 0.95))["ok"] is False
    control.set_params(BUILTIN_PARAMS)  # back to a scene without it
    assert "render.strength" not in live.params
    with pytest.raises(ValueError, match="min < max"):
        param_specs_for(parse_scene({"name": "bad", "params": {"x": {"min": 1, "max": 0}}}))
    with pytest.raises(ValueError, match="table"):
        param_specs_for(parse_scene({"name": "bad", "params": {"x": {"min": 0, "max": 1, "colour": 2}}}))


def test_apply_until_applies_commands_as_they_arrive():
    clock = MonotonicClock()
    live, control, _ = make(clock=clock)
    queue: DropOldest = DropOldest(16)

    def later():
        queue.put(Command(t_s=clock.now_s(), address="/freeze", args=(1,), sender="t"))

    threading.Timer(0.05, later).start()  # arrives while apply_until waits
    seen = []
    applied = control.apply_until(queue, clock.now_s() + 0.3,
                                  on_apply=lambda c, r: seen.append((clock.now_s(), r)))
    assert applied == 1 and live.freeze and seen[0][1] == {"ok": True}
    assert len(control.latency_ms()) == 1 and control.latency_ms()[0] >= 0


def test_check_never_raises_on_odd_arguments():
    _, control, _ = make(blocklist=("gore",))
    for address in ("/scene", "/crossfade", "/blackout", "/freeze", "/tempo", "/prompt", "/param/brightness"):
        for args in ((), (None,), (b"\x00",), ([1, 2],), (float("inf"),), ("1e999",), (True,), (1, 2, 3)):
            reason = control.check(Command(0.0, address, args, "x"))
            assert reason is None or isinstance(reason, str)
    assert "blocked" in control.check(cmd("/prompt", "Gore"))


def test_live_reload_keeps_the_running_scene_on_a_bad_edit(tmp_path):
    import os
    from scenes.scene import FileWatcher, load_scene, reload_scene
    preset = tmp_path / "gallery.toml"
    preset.write_text('name = "gallery"\nstyle = "ink"\n')
    config = tmp_path / "config.toml"
    config.write_text("")
    watcher = FileWatcher([config], presets_dir=tmp_path)
    running = load_scene("gallery", tmp_path)
    assert watcher.changed() == []
    preset.write_text('name = "gallery"\nstyle = "watercolour"\n')
    os.utime(preset, ns=(1, 10**18))
    assert watcher.changed() == [preset]
    running, error = reload_scene("gallery", running, tmp_path)
    assert error is None and running.style == "watercolour"
    preset.write_text('name = "gallery"\npalette_bias = [2, 0]\n')  # out of range
    os.utime(preset, ns=(1, 2 * 10**18))
    assert watcher.changed() == [preset]
    kept, error = reload_scene("gallery", running, tmp_path)
    assert kept is running and "palette_bias" in error


def test_key_actions_become_operator_commands():
    from installation.operators.control import key_commands
    scenes = ["cosmos", "nocturne", "pulse"]
    cmds = key_commands(["blackout", "freeze", "next_scene", "previous_scene"], 5.0, blackout=False, freeze=True,
                        scene="nocturne", scenes=scenes)
    assert [(c.address, c.args) for c in cmds] == [("/blackout", (1,)), ("/freeze", (0,)), ("/scene", ("pulse",)),
                                                  ("/scene", ("cosmos",))]
    wrap = key_commands(["next_scene"], 0.0, blackout=True, freeze=False, scene="pulse", scenes=scenes)
    assert wrap[0].args == ("cosmos",)
    assert key_commands(["blackout"], 0.0, blackout=True, freeze=False, scene="x", scenes=scenes)[0].args == (0,)
