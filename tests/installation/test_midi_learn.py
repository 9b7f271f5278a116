"""MIDI learn, mapping edits taken over while running, MIDI clock through the live map, a virtual input."""
from __future__ import annotations

import shutil
from pathlib import Path

import mido
import pytest

from hardware.midi.input import MidoMidiIn, VirtualMidiIn
from installation.clock import ManualClock, MonotonicClock
from installation.config import ControlConfig, MidiCcMap, load_config
from installation.operators.control import Control, LiveState, MidiControlThread
from installation.mailbox import DropOldest
from installation.operators.midi_learn import LiveMidiMap, only_mappings_changed, save_cc_mapping
from installation.tempo import MidiClockTempo
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
JACK = "mido.backends.rtmidi/UNIX_JACK"


def test_learn_maps_the_next_knob_moved_over_the_whole_range():
    clock = ManualClock()
    learned = []
    live_map = LiveMidiMap(ControlConfig(midi_cc=(MidiCcMap(cc=20, param="speed", max=4.0),)),
                           on_learned=learned.append, clock=clock)
    assert live_map.map(mido.Message("control_change", control=20, value=127, channel=3), "s")[0].address == "/param/speed"
    live_map.learn("brightness", 0.0, 1.0)
    assert live_map.learning == "brightness"
    commands = live_map.map(mido.Message("control_change", control=20, value=127, channel=3, time=1.0), "s")
    assert [(c.address, c.args) for c in commands] == [("/param/brightness", (1.0,))]  # acts at once
    assert learned == [{"cc": 20, "param": "brightness", "min": 0.0, "max": 1.0, "curve": "linear", "channel": 4}]  # mido 3 = channel 4
    assert live_map.learning is None
    assert [m.param for m in live_map.control_cfg.midi_cc] == ["brightness"]  # the knob moved over
    assert live_map.map(mido.Message("control_change", control=20, value=0, channel=3), "s")[0].args == (0.0,)
    live_map.learn("speed", 0.0, 4.0)
    clock.advance(61.0)
    assert live_map.map(mido.Message("control_change", control=21, value=5), "s") == []  # timed out
    assert live_map.learning is None and len(learned) == 1


def test_a_learned_knob_is_saved_into_config_toml_with_its_comments(tmp_path):
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    before = path.read_text()
    save_cc_mapping(path, {"cc": 20, "param": "brightness", "min": 0.0, "max": 1.0, "curve": "linear", "channel": 3})
    save_cc_mapping(path, {"cc": 21, "param": "speed", "min": 0.0, "max": 4.0, "curve": "linear", "channel": 3})
    save_cc_mapping(path, {"cc": 22, "param": "brightness", "min": 0.0, "max": 1.0, "curve": "linear", "channel": 3})
    cfg = load_config(path)
    assert [(m.cc, m.param, m.channel) for m in cfg.control.midi_cc] == [(21, "speed", 3), (22, "brightness", 3)]
    after = path.read_text()
    assert after.count("#") == before.count("#")  # every comment kept
    assert len(after.splitlines()) == len(before.splitlines())
    assert only_mappings_changed(load_config(ROOT / "config.toml"), cfg)


def test_only_mapping_edits_are_taken_over_without_a_restart():
    old = load_config(None)
    knobs = old.model_copy(update={"control": old.control.model_copy(update={"midi_cc": (MidiCcMap(cc=1, param="speed"),)})})
    port = old.model_copy(update={"osc": old.osc.model_copy(update={"port": 9999})})
    assert only_mappings_changed(old, knobs)
    assert not only_mappings_changed(old, port) and not only_mappings_changed(old, old)
    live_map = LiveMidiMap(old.control)
    assert live_map.map(mido.Message("control_change", control=1, value=127), "s") == []
    live_map.set_control(knobs.control)
    assert live_map.map(mido.Message("control_change", control=1, value=127), "s")[0].address == "/param/speed"


def test_midi_clock_through_the_live_map_becomes_tempo_commands_and_drives_the_tempo():
    tempo = MidiClockTempo(ManualClock(), bpm=100.0)
    live_map = LiveMidiMap(ControlConfig(midi_clock=False), tempo=tempo)  # tempo.source = midi follows anyway
    commands = [c for i in range(60) for c in live_map.map(mido.Message("clock", time=i * 60 / (24 * 140)), "s")]
    assert [c.address for c in commands] == ["/tempo"] and abs(commands[0].args[0] - 140.0) <= 1.0
    assert abs(tempo.tempo_bpm() - 140.0) < 0.1
    assert live_map.map(mido.Message("stop", time=3.0), "s")[0].args == (0,)


@pytest.mark.jack
def test_a_performer_connects_to_the_virtual_input_and_learns_a_knob(jack_server):
    clock = MonotonicClock()
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    queue: DropOldest = DropOldest(256)
    learned = []
    live_map = LiveMidiMap(ControlConfig(), on_learned=learned.append, clock=clock)
    port = VirtualMidiIn("Chroma Test In", clock, backend=JACK)
    thread = MidiControlThread([port], live_map, queue, check=control.check)
    thread.start()
    backend = mido.Backend(JACK)
    name = wait_for(lambda: next((n for n in backend.get_output_names() if "Chroma Test In" in n), None))
    assert name is not None
    performer = backend.open_output(name)
    try:
        live_map.learn("brightness", 0.0, 1.0)

        def moved():
            performer.send(mido.Message("control_change", control=30, value=0, channel=5))
            control.apply_pending(queue)
            return bool(learned) and live.params["brightness"] == 0.0
        assert wait_for(moved)
        assert learned[0]["cc"] == 30 and learned[0]["channel"] == 6
    finally:
        thread.stop()
        performer.close()


class CountingBackend:
    """A mido backend that counts port listings (each one a new MIDI client on JACK)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.listings = 0
        self.api = backend.api

    def get_input_names(self):
        self.listings += 1
        return self._backend.get_input_names()

    def open_input(self, *args, **kwargs):
        return self._backend.open_input(*args, **kwargs)


@pytest.mark.jack
def test_a_connected_controller_is_not_relisted(jack_server):
    backend = mido.Backend(JACK)
    controller = backend.open_output("ChromaRelistKnobs", virtual=True)
    clock = MonotonicClock()
    port = MidoMidiIn("ChromaRelistKnobs", clock, backend=JACK, retry_s=0.05)
    counting = CountingBackend(port._backend)
    port._backend = counting  # no rtmidi module: listings would go to the backend, and be counted
    try:
        port.open()
        assert port.connected
        listed = (counting.listings, port.listings)
        deadline = clock.now_s() + 0.5  # ten retry periods while connected and quiet
        assert wait_for(lambda: (port.poll(), clock.now_s() > deadline)[1], 5.0)
        assert port.connected and (counting.listings, port.listings) == listed
    finally:
        port.close()
        controller.close()
