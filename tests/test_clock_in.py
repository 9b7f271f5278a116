"""MIDI clock in holds: a late burst of ticks never becomes a tempo command, and Stop releases the
override every time. Driven by tick timestamps (a simulated sender), not the wall clock."""
from __future__ import annotations

import mido
import numpy as np

from installation.clock import ManualClock
from installation.config import ControlConfig
from installation.control import Control, LiveState
from installation.midi_learn import LiveMidiMap
from installation.tempo import MidiClockTempo

PERIOD_S = 256 / 48000  # JACK delivers MIDI once a period


def late_burst_sender(bpm: float, seconds: float, start_s: float = 0.0, burst_every_s: float = 10.0,
                      burst_late_s: float = 0.120, seed: int = 0):
    """Tick arrival times of a sender timed by deadline: a few ms of jitter, quantised to the JACK
    period, and every `burst_every_s` a stall of `burst_late_s` after which the late ticks arrive
    together (the sender catches up)."""
    rng = np.random.default_rng(seed)
    interval = 60.0 / (24 * bpm)
    n = 0
    while n * interval < seconds:
        due_s = n * interval
        stall_from = (due_s // burst_every_s) * burst_every_s + burst_every_s / 2
        sent_s = due_s + rng.uniform(0.0, 0.004)
        if stall_from <= due_s < stall_from + burst_late_s:
            sent_s = stall_from + burst_late_s
        seen_s = start_s + (np.floor(sent_s / PERIOD_S) + 1) * PERIOD_S
        yield float(seen_s)
        n += 1


def test_a_120_ms_late_burst_every_10_s_keeps_the_tempo_in_force_within_2_bpm_of_128():
    clock = ManualClock()
    tempo = MidiClockTempo(clock, bpm=100.0)
    live_map = LiveMidiMap(ControlConfig(midi_clock=True), tempo=tempo, clock=clock)
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    said, in_force = [], []
    for seen_s in late_burst_sender(128.0, 60.0):
        for command in live_map.map(mido.Message("clock", time=seen_s), "midi:sender"):
            assert control.apply(command)["ok"]
            said.append(command.args[0])
        if live.tempo_bpm is not None:
            in_force.append((live.tempo_bpm, tempo.tempo_bpm()))
    assert said and len(in_force) > 2500
    worst = max(max(abs(cmd - 128.0), abs(exact - 128.0)) for cmd, exact in in_force)
    assert worst <= 2.0, worst
    assert len(said) <= 3  # the first reading (and perhaps a settling step), nothing per burst


def test_stop_releases_the_override_10_of_10_even_with_the_clock_running_on():
    clock = ManualClock()
    tempo = MidiClockTempo(clock, bpm=100.0)
    live_map = LiveMidiMap(ControlConfig(midi_clock=True), tempo=tempo, clock=clock)
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    released = 0
    t0 = 0.0
    for attempt in range(10):
        live_map.map(mido.Message("start", time=t0), "midi:sender")
        for seen_s in late_burst_sender(128.0, 4.0, start_s=t0, seed=attempt):
            for command in live_map.map(mido.Message("clock", time=seen_s), "midi:sender"):
                control.apply(command)
        assert live.tempo_bpm is not None and abs(live.tempo_bpm - 128.0) <= 2.0
        for command in live_map.map(mido.Message("stop", time=t0 + 4.0), "midi:sender"):
            control.apply(command)
        # many senders keep clocking while stopped: that must not take the tempo back
        for seen_s in late_burst_sender(128.0, 3.0, start_s=t0 + 4.0, seed=attempt):
            for command in live_map.map(mido.Message("clock", time=seen_s), "midi:sender"):
                control.apply(command)
        released += live.tempo_bpm is None
        t0 += 10.0
    assert released == 10


def test_one_tempo_in_force_with_its_source_in_status_and_the_terminal():
    from installation.bus import LiveSnapshot, tempo_in_force
    from installation.status import status_lines

    clocked = LiveSnapshot(scene="nocturne", tempo_bpm=128.04, tempo_sender="midi:Clock Out")
    assert tempo_in_force(clocked, 96.0) == {"tempo_bpm": 128.0, "tempo_source": "MIDI clock (Clock Out)"}
    operator = LiveSnapshot(scene="nocturne", tempo_bpm=90.0, tempo_sender="dashboard")
    assert tempo_in_force(operator, 96.0)["tempo_source"] == "operator (dashboard)"
    follower = MidiClockTempo(ManualClock(), bpm=132.0)
    assert tempo_in_force(LiveSnapshot(scene="n"), 96.0, follower) == {"tempo_bpm": 132.0, "tempo_source": "MIDI clock"}
    assert tempo_in_force(LiveSnapshot(scene="n"), 96.0) == {"tempo_bpm": 96.0, "tempo_source": "music"}
    line = status_lines({"scene": "n", "tempo_bpm": 128.0, "tempo_source": "MIDI clock (Clock Out)"})[1]
    assert "128 bpm (MIDI clock)" in line


def test_the_sender_of_a_tempo_is_kept_until_it_is_released():
    from installation.records import Command

    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    control.apply(Command(0.0, "/tempo", (128.0,), "midi:Clock Out"))
    assert (live.tempo_bpm, live.frozen().tempo_sender) == (128.0, "midi:Clock Out")
    control.apply(Command(1.0, "/tempo", (0,), "midi:Clock Out"))
    assert (live.tempo_bpm, live.tempo_sender) == (None, None)
