"""The rig built from config: tempo source, MIDI learn through the command table, mapping edits without
a restart, the ensemble's music input; all opened and closed in order."""
from __future__ import annotations

import shutil
from pathlib import Path

import mido
import pytest

from installation.bus import LiveState
from installation.clock import ManualClock, MonotonicClock
from installation.config import load_config
from installation.operators.control import Control
from installation.mailbox import DropOldest, Latest
from installation.records import Command, MusicState
from installation.rig import build_rig
from installation.tempo import TempoLockedComposer, TempoLockedMusic
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
JACK = "mido.backends.rtmidi/UNIX_JACK"


def control_for(live: LiveState) -> Control:
    return Control(live, lambda: ["nocturne"], None)


def test_the_default_rig_is_an_internal_tempo_and_nothing_else():
    cfg = load_config(None)
    music: Latest[MusicState] = Latest()
    rig = build_rig(cfg, ManualClock(), DropOldest(8), control_for(LiveState(scene="nocturne")), None, music)
    assert rig.tempo.source == "internal" and rig.midi_control is None and rig.music_in is None
    assert rig.music_view(music) is music and rig.composer("c") == "c"  # the music's own beat
    assert rig.video_sinks(64, 48, 30.0) == []
    rig.open()
    # an internal beat clock nobody follows is not a tempo in force: status "tempo_bpm" says which one is
    assert not rig.video_out and "bpm" not in rig.status()["tempo"]
    rig.close()


def test_an_outside_beat_locks_the_renderer_and_the_composer():
    cfg = load_config(None, ["tempo.source=\"midi\""])
    rig = build_rig(cfg, ManualClock(), DropOldest(8), control_for(LiveState(scene="nocturne")))
    assert isinstance(rig.music_view(Latest()), TempoLockedMusic)
    assert isinstance(rig.composer(object()), TempoLockedComposer)


@pytest.mark.jack
def test_learn_over_the_command_table_saves_the_knob_and_an_edit_is_taken_over_without_restart(jack_server, tmp_path):
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    overrides = ["midi.virtual_input=\"Chroma Rig In\"", f"midi.backend=\"{JACK}\""]
    cfg = load_config(path, overrides)
    live = LiveState(scene="nocturne")
    control = control_for(live)
    commands: DropOldest = DropOldest(64)
    rig = build_rig(cfg, MonotonicClock(), commands, control, path)
    control.bind_effects({"learn": rig.learn})  # as the composition root binds it
    rig.open()
    backend = mido.Backend(JACK)
    name = wait_for(lambda: next((n for n in backend.get_output_names() if "Chroma Rig In" in n), None))
    performer = backend.open_output(name)
    try:
        assert control.apply(Command(0.0, "/learn/speed", (), "127.0.0.1:9000")) == {"ok": True}
        assert rig.midi_map.learning == "speed"

        def learned():
            performer.send(mido.Message("control_change", control=40, value=127, channel=1))
            control.apply_pending(commands)
            return live.params["speed"] == 4.0
        assert wait_for(learned)
        saved = load_config(path, overrides)
        assert [(m.cc, m.param, m.max) for m in saved.control.midi_cc] == [(40, "speed", 4.0)]
        assert rig.take_config(cfg, saved)  # the file watcher's edit: no restart needed
        edited = saved.model_copy(update={"control": saved.control.model_copy(update={"midi_cc": ()})})
        assert rig.take_config(saved, edited)
        assert not rig.take_config(saved, saved.model_copy(update={"osc": saved.osc.model_copy(update={"port": 9})}))
        assert rig.midi_map.map(mido.Message("control_change", control=40, value=1, channel=1), "s") == []
    finally:
        performer.close()
        rig.close()
