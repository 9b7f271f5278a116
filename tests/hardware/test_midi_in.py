"""MIDI controllers in: mapping, MIDI clock, and a real JACK MIDI port that vanishes and returns."""
from __future__ import annotations

import time

import mido
import pytest

from hardware.midi.input import MidoMidiIn
from installation.clock import ManualClock, MonotonicClock
from installation.config import ControlConfig, MidiCcMap
from installation.operators.control import Control, LiveState, MidiControlThread, MidiMapper
from installation.mailbox import DropOldest
from installation.tempo import ClockFollower
from tests.fakes import QueueMidiIn

JACK = "mido.backends.rtmidi/UNIX_JACK"
CFG = ControlConfig(midi_cc=(MidiCcMap(cc=74, param="brightness"),
                             MidiCcMap(cc=71, param="speed", min=0.0, max=4.0, curve="exp", channel=3)),
                    midi_notes={"36": "pulse", "37": "nocturne"}, midi_programs=("nocturne", "pulse"),
                    blackout_note=48)


def test_mapping_of_knobs_notes_programs_and_held_blackout():
    m = MidiMapper(CFG)
    cc = m.map(mido.Message("control_change", control=74, value=127, time=3.0), "midi:x")
    assert [(c.address, c.args, c.t_s, c.sender) for c in cc] == [("/param/brightness", (1.0,), 3.0, "midi:x")]
    assert m.map(mido.Message("control_change", control=71, value=64, channel=0), "s") == []  # wrong channel
    speed = m.map(mido.Message("control_change", control=71, value=64, channel=2), "s")[0]
    assert speed.args[0] == pytest.approx(4.0 * (64 / 127) ** 2)
    assert m.map(mido.Message("note_on", note=36, velocity=90), "s")[0].args == ("pulse",)
    assert m.map(mido.Message("note_on", note=36, velocity=0), "s") == []
    assert m.map(mido.Message("program_change", program=1), "s")[0].args == ("pulse",)
    assert m.map(mido.Message("program_change", program=7), "s") == []
    assert m.map(mido.Message("note_on", note=48, velocity=1), "s")[0].args == (1,)
    assert m.map(mido.Message("note_off", note=48), "s")[0].args == (0,)


def test_midi_clock_follows_tempo_changes_and_stop():
    follower = ClockFollower()
    tempos = []
    t = 0.0
    for bpm, beats in ((120.0, 4), (90.0, 6)):
        for _ in range(24 * beats):
            t += 60.0 / (24 * bpm)
            if (new := follower.tick(t)) is not None:
                tempos.append(new)
    assert tempos[0] == 120.0 and tempos[-1] == 90.0
    m = MidiMapper(CFG)
    commands = [c for i in range(60) for c in m.map(mido.Message("clock", time=i * 60 / (24 * 100)), "s")]
    assert [c.args for c in commands] == [(100.0,)]  # two beats: the robust fit needs that many
    assert m.map(mido.Message("stop"), "s")[0].args == (0,)
    # a sender that goes on clocking after Stop does not take the tempo back until Start
    assert [c for i in range(60, 200) for c in m.map(mido.Message("clock", time=i * 60 / (24 * 100)), "s")] == []


def test_control_thread_validates_and_enqueues():
    clock = ManualClock()
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne", "pulse"], None)
    port = QueueMidiIn("pads", clock)
    queue: DropOldest = DropOldest(64)
    thread = MidiControlThread([port], MidiMapper(CFG.model_copy(update={"midi_notes": {"36": "gone"}})),
                               queue, check=control.check)
    port.push(mido.Message("control_change", control=74, value=0))
    port.push(mido.Message("note_on", note=36, velocity=100))  # names a scene that does not exist
    assert thread.step() == 1 and thread.stats["rejected"] == 1
    control.apply_pending(queue)
    assert live.params["brightness"] == 0.0 and live.scene == "nocturne"


def _wait(predicate, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.jack
@pytest.mark.slow
def test_jack_controller_vanishes_and_returns_while_running(jack_server):
    backend = mido.Backend(JACK)
    controller = backend.open_output("ChromaTestKnobs", virtual=True)
    clock = MonotonicClock()
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne", "pulse"], None)
    queue: DropOldest = DropOldest(256)
    port = MidoMidiIn("ChromaTestKnobs", clock, backend=JACK, retry_s=0.1)
    thread = MidiControlThread([port], MidiMapper(CFG), queue, check=control.check)
    thread.start()
    try:
        assert _wait(lambda: port.connected)
        controller.send(mido.Message("control_change", control=74, value=0))
        assert _wait(lambda: len(queue) == 1)
        control.apply_pending(queue)
        assert live.params["brightness"] == 0.0

        controller.close()  # unplugged mid-show
        assert _wait(lambda: not port.connected) and port.vanished == 1
        controller = backend.open_output("ChromaTestKnobs", virtual=True)  # plugged back in
        assert _wait(lambda: port.connected) and port.reopened == 1
        time.sleep(0.1)  # let JACK finish the connection
        # a performer moves the knob again until it responds: the first messages after a JACK
        # reconnection can fall in the cycle before the connection is active (and rtmidi's JACK
        # output may repeat or drop a message sent in the same cycle as another)
        def applied():
            controller.send(mido.Message("note_on", note=36, velocity=100))
            time.sleep(0.05)
            controller.send(mido.Message("control_change", control=74, value=127))
            time.sleep(0.05)
            control.apply_pending(queue)
            return live.scene == "pulse" and live.params["brightness"] == 1.0

        assert _wait(applied, timeout_s=5.0)
        assert port.vanished == 1 and port.reopened == 1
        assert thread.stats["errors"] == 0
    finally:
        thread.stop()
        controller.close()


def test_an_absent_controller_does_not_stop_the_show():
    port = MidoMidiIn("no such controller", MonotonicClock(), backend=JACK, retry_s=0.05)
    port.open()
    assert not port.connected and port.poll() == []
    port.close()


def test_event_stamps_follow_the_drivers_deltas_and_are_never_later_than_now():
    """A callback that waited for the interpreter keeps its event's time: the driver's delta counts."""
    from hardware.midi.input import EventStamps

    clock = ManualClock()
    stamps = EventStamps(clock)
    clock.advance(1.0)
    assert stamps.stamp(0.0) == 1.0  # the first message: its time of arrival
    clock.advance(0.05)  # two ticks 20 ms apart reach Python together, 50 ms after the first
    assert stamps.stamp(0.02) == pytest.approx(1.02) and stamps.stamp(0.02) == pytest.approx(1.04)
    assert stamps.stamp(0.5) == pytest.approx(1.05)  # never later than now
    assert stamps.stamp(None) == pytest.approx(1.05)  # no delta (another backend): arrival
