"""MIDI clock in holds: a late burst of ticks never becomes a tempo command, and Stop releases the
override every time. Driven by tick timestamps (a simulated sender), and once over real JACK MIDI."""
from __future__ import annotations

import mido
import numpy as np
import pytest

from installation.clock import ManualClock
from installation.config import ControlConfig
from installation.operators.control import Control, LiveState
from installation.operators.midi_learn import LiveMidiMap
from installation.tempo import MidiClockTempo
from tests.hardware.child_scenario import run_child

CHILD_TIMEOUT_S = 180.0
"""About 45 s of clock and the sender's start: the child dumps its stacks and exits 5 s before."""

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


def follower_on_a_manual_clock():
    """(clock, tempo, MIDI map, live state, control): MIDI clock in as the show wires it."""
    clock = ManualClock()
    tempo = MidiClockTempo(clock, bpm=100.0)
    live_map = LiveMidiMap(ControlConfig(midi_clock=True), tempo=tempo, clock=clock)
    live = LiveState(scene="nocturne")
    return clock, tempo, live_map, live, Control(live, lambda: ["nocturne"], None)


def test_a_120_ms_late_burst_every_10_s_keeps_the_tempo_in_force_within_2_bpm_of_128():
    clock, tempo, live_map, live, control = follower_on_a_manual_clock()
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


def test_one_tick_in_a_hundred_lost_keeps_the_tempo_in_force_within_2_bpm_of_128():
    """A loaded machine's MIDI transport drops a tick now and then (1-3 % measured over JACK at load 17):
    the gap counts as the ticks it stands for, so later ticks stay on the line."""
    from installation.tempo import ClockFollower

    for seed in range(10):
        rng = np.random.default_rng(seed)
        follower, worst = ClockFollower(), 0.0
        for seen_s in late_burst_sender(128.0, 60.0, seed=seed):
            if rng.random() < 0.01:
                continue
            follower.tick(seen_s)
            bpm = follower.exact_bpm()
            if bpm is not None and seen_s > 2.0:
                worst = max(worst, abs(bpm - 128.0))
        assert worst <= 2.0, (seed, worst)  # 2.9-16 bpm when a lost tick shifted the count


def test_late_ticks_that_arrive_with_the_next_one_are_not_taken_for_lost_ones():
    """Over JACK on a loaded machine a receiving client that runs late delivers a tick together with
    the next (a gap of about two periods, then none), and now and then one is lost for good: one in
    ten late that way and one in a hundred lost keeps the tempo in force within 2 bpm of 128."""
    from installation.tempo import ClockFollower

    for seed in range(10):
        rng = np.random.default_rng(seed)
        follower, worst = ClockFollower(), 0.0
        held: float | None = None
        for seen_s in late_burst_sender(128.0, 60.0, seed=seed):
            if rng.random() < 0.01:
                continue
            if held is None and rng.random() < 0.1:
                held = seen_s  # delivered with the next tick
                continue
            for t_s in ([] if held is None else [seen_s - 0.0001]) + [seen_s]:
                follower.tick(t_s)
            held = None
            bpm = follower.exact_bpm()
            if bpm is not None and seen_s > 2.0:
                worst = max(worst, abs(bpm - 128.0))
        assert worst <= 2.0, (seed, worst)


def test_stop_releases_the_override_10_of_10_even_with_the_clock_running_on():
    clock, tempo, live_map, live, control = follower_on_a_manual_clock()
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


@pytest.mark.jack
@pytest.mark.slow
def test_over_jack_midi_a_late_burst_every_10_s_holds_128_and_stop_releases_10_of_10(jack_at_256_frames):
    """The installation's own path (virtual JACK MIDI input, MIDI-in thread, clock follower, /tempo
    commands applied to the live state) against a sender in its own process: 22 s of 128 bpm with a
    120 ms stall every 10 s, then 10 Stop/Start cycles with the clock running on while stopped.
    The path runs in a child process (tests/hardware/clock_in_child.py, rtmidi on JACK out of this
    one): a native crash or hang there fails this test with the child's stacks."""
    result = run_child("tests.hardware.clock_in_child", CHILD_TIMEOUT_S,
                       "128", "22", "10", "0.5", "2.0", "10", "0.120", "110")
    assert "error" not in result, result["error"]
    sent = result["sent"]
    assert not result["refused"], result["refused"][:5]
    readings = [tuple(r) for r in result["readings"]]  # (kind, arrival stamp, follower's tempo, tempo in force)
    applied = [tuple(a) for a in result["applied"]]  # (command time, its value, live tempo after it)
    clocks = [r for r in readings if r[0] == "clock"]
    # JACK MIDI lost (almost) nothing: a real-time server lost none of ~2,400 at load 24 on 2 cores; one
    # that runs without real-time scheduling (where the system refuses it) drops some at load, which the
    # follower rides out
    assert len(clocks) >= 0.97 * sent["ticks"], (len(clocks), sent)
    gaps_s = np.diff([t for _, t, _, _ in clocks])
    assert int((gaps_s >= 0.1).sum()) >= sent["stalls"] >= 4, (gaps_s.max(), sent)  # the stalls arrived late

    # The tempo in force, after every message once the follower first had a fit (the first two beats):
    # what the composer and visuals read, and every /tempo value commanded.
    first = next(i for i, r in enumerate(readings) if r[2] is not None)
    in_force = [r[3] for r in readings[first:]]
    worst_in_force = max(abs(bpm - 128.0) for bpm in in_force)
    said = [bpm for _, bpm, _ in applied if bpm != 0]
    worst_said = max(abs(bpm - 128.0) for bpm in said)
    print(f"\nlive JACK MIDI clock in (real sender, 256 frames): worst deviation from 128 bpm of the tempo in "
          f"force {worst_in_force:.2f} bpm over {len(in_force)} messages, of the /tempo commands "
          f"{worst_said:.2f} bpm over {len(said)}; sender worst lateness besides the stalls {sent['worst_late_ms']} ms")
    assert worst_in_force <= 2.0 and worst_said <= 2.0, (worst_in_force, worst_said)

    # Stop releases the override 10 of 10 times, and the clock running on while stopped does not take it back.
    starts_s = [t for kind, t, _, _ in readings if kind == "start"]
    stops = [i for i, (t, bpm, _) in enumerate(applied) if bpm == 0]
    assert sent["stops"] == 10 and len(stops) == 10, (len(stops), applied[-5:])
    released = 0
    for i in stops:
        t_stop, _, after = applied[i]
        held_before = i > 0 and applied[i - 1][2] is not None and abs(applied[i - 1][2] - 128.0) <= 2.0
        next_start_s = next((t for t in starts_s if t > t_stop), float("inf"))
        taken_back = any(t < next_start_s and bpm != 0 for t, bpm, _ in applied[i + 1:])
        released += held_before and after is None and not taken_back
    assert released == 10, applied
    # and the follower itself lets go: no tempo of its own from Stop to the next Start
    let_go = 0
    for i, (kind, _, _, _) in enumerate(readings):
        if kind == "stop":
            until = next((j for j in range(i + 1, len(readings)) if readings[j][0] == "start"), len(readings))
            let_go += all(r[2] is None for r in readings[i:until])
    assert let_go == 10, let_go


def test_a_tempo_that_halves_or_more_is_followed_within_a_beat_or_two_not_counted_as_lost_ticks():
    """A gap of about two periods after a tempo change to half is no loss: the ticks after it keep
    coming slow. 174 -> 90 and 140 -> 60 bpm read within 1 bpm of the new tempo, for good, within 1.5 s."""
    from installation.tempo import ClockFollower

    follower, t0, readings = ClockFollower(), 0.0, []
    for bpm, seconds in ((174.0, 10.0), (90.0, 10.0), (140.0, 10.0), (60.0, 10.0)):
        for seen_s in late_burst_sender(bpm, seconds, start_s=t0, burst_every_s=1000.0):
            follower.tick(seen_s)
            readings.append((seen_s, bpm, follower.exact_bpm()))
        t0 += seconds
    for change_s in (10.0, 30.0):
        after = [(t, bpm, read) for t, bpm, read in readings if change_s + 1.5 <= t < change_s + 10.0]
        assert all(read is not None and abs(read - bpm) <= 1.0 for _, bpm, read in after), (change_s, after[:3])
