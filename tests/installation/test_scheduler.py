"""The deadline scheduler: order, pairing, lateness, panic, and SIGTERM in a real process."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mido

from hardware.midi.output import RecordingMidiOut
from installation.clock import ManualClock, MonotonicClock
from installation.records import NoteEvent
from installation.scheduler import Cue, Scheduler
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def sounding_after(messages) -> set[tuple[int, int]]:
    """Notes still on after a message stream, honouring CC 123 (all notes off)."""
    on: set[tuple[int, int]] = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            on.add((m.channel, m.note))
        elif m.type == "note_off" or (m.type == "note_on" and m.velocity == 0):
            on.discard((m.channel, m.note))
        elif m.type == "control_change" and m.control in (120, 123):
            on = {n for n in on if n[0] != m.channel}
    return on


def test_notes_go_out_in_deadline_order_with_their_note_offs():
    clock = ManualClock(10.0)
    out = RecordingMidiOut(clock)
    s = Scheduler(clock, [out], switch_interval_s=None)
    s.submit([NoteEvent(11.0, 0.5, 64, 90, 1), NoteEvent(10.5, 0.25, 60, 80, 0)])
    assert s.horizon_s() == 11.5
    for step in range(16):
        clock.advance(0.125)  # binary-exact steps, so each message goes out exactly at its deadline
        s.run_due()
    kinds = [(m.type, m.note, t) for t, m in out.messages]
    assert kinds == [("note_on", 60, 10.5), ("note_off", 60, 10.75), ("note_on", 64, 11.0), ("note_off", 64, 11.5)]
    assert s.stats["sounding"] == 0
    assert s.horizon_s() == clock.now_s()


def test_overlapping_same_pitch_is_retriggered_and_ends_with_the_last_note():
    clock = ManualClock()
    out = RecordingMidiOut(clock)
    s = Scheduler(clock, [out], switch_interval_s=None)
    s.submit([NoteEvent(0.0, 1.0, 60, 90), NoteEvent(0.5, 1.0, 60, 90)])
    for _ in range(20):
        s.run_due()
        clock.advance(0.1)
    types = [(m.type, round(t, 1)) for t, m in out.messages]
    # on, (off+on retrigger), and one final off at 1.5 s: the first note's end does not cut the second.
    assert types == [("note_on", 0.0), ("note_off", 0.5), ("note_on", 0.5), ("note_off", 1.5)]
    assert not sounding_after(m for _, m in out.messages)


def test_a_note_too_late_is_skipped_with_its_note_off():
    clock = ManualClock(5.0)
    out = RecordingMidiOut(clock)
    s = Scheduler(clock, [out], switch_interval_s=None, max_late_s=0.25)
    s.submit([NoteEvent(4.0, 2.0, 60, 90), NoteEvent(5.0, 0.5, 62, 90)])
    s.run_due()
    clock.advance(2.0)
    s.run_due()
    assert [(m.type, m.note) for _, m in out.messages] == [("note_on", 62), ("note_off", 62)]
    assert s.stats["skipped_late"] == 1


def test_panic_silences_sounding_notes_on_every_output_and_clears_the_queue():
    clock = ManualClock()
    a, b = RecordingMidiOut(clock), RecordingMidiOut(clock)
    s = Scheduler(clock, [a, b], switch_interval_s=None)
    s.submit([NoteEvent(0.0, 4.0, 60, 90, 0), NoteEvent(0.0, 4.0, 40, 90, 2), NoteEvent(2.0, 1.0, 72, 90, 0)])
    s.run_due()
    assert s.stats["sounding"] == 2
    s.panic()
    for out in (a, b):
        msgs = [m for _, m in out.messages]
        offs = {(m.channel, m.note) for m in msgs if m.type == "note_off"}
        assert offs == {(0, 60), (2, 40)}
        all_off = {m.channel for m in msgs if m.type == "control_change" and m.control == 123}
        assert all_off == set(range(16))
        assert not sounding_after(msgs)
    clock.advance(5.0)
    assert s.run_due() == 0  # the queued note at 2 s was dropped with the queue
    assert s.stats["sounding"] == 0


def test_cues_reach_only_outputs_that_accept_them():
    clock = ManualClock()
    midi = RecordingMidiOut(clock)

    class CueSink(RecordingMidiOut):
        accepts_cues = True

    osc = CueSink(clock)
    s = Scheduler(clock, [midi, osc], switch_interval_s=None)
    s.submit([Cue(0.0, "/tempo", (120.0,)), NoteEvent(0.0, 0.1, 60, 90)])
    s.run_due()
    assert [getattr(m, "address", None) for _, m in osc.messages] == ["/tempo", None]
    assert all(not hasattr(m, "address") for _, m in midi.messages)


def test_thread_sends_on_time_and_stop_leaves_nothing_sounding():
    clock = MonotonicClock()
    out = RecordingMidiOut(clock)
    s = Scheduler(clock, [out])
    s.start()
    try:
        t0 = clock.now_s() + 0.1
        s.submit([NoteEvent(t0 + 0.02 * i, 0.5, 50 + i, 90) for i in range(20)])
        wait_for(lambda: s.stats["sent"] >= 20, 10)
        stats = s.stats
        assert stats["sent"] >= 20 and stats["sounding"] > 0  # lateness figures: `run.py bench midi`
        assert stats["lost"] == 0
    finally:
        s.stop()
    assert s.stats["sounding"] == 0
    assert not sounding_after(m for _, m in out.messages)


def test_sigterm_mid_phrase_leaves_no_note_sounding(tmp_path):
    midi_path = tmp_path / "take.mid"
    script = textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from hardware.midi.output import MidiFileRecorder
        from installation.clock import MonotonicClock
        from installation.records import NoteEvent
        from installation.scheduler import Scheduler
        clock = MonotonicClock()
        rec = MidiFileRecorder({str(midi_path)!r}, clock)
        s = Scheduler(clock, [rec])
        def on_term(signum, frame):
            s.stop(); rec.close(); sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        s.start()
        t0 = clock.now_s()
        s.submit([NoteEvent(t0 + 0.1 * i, 0.8, 48 + i % 24, 90, i % 3) for i in range(200)])
        print("playing", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "playing"
    time.sleep(1.0)  # mid-phrase: several long notes are sounding
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    messages = [m for m in mido.MidiFile(midi_path).tracks[0] if not m.is_meta]
    assert sum(1 for m in messages if m.type == "note_on") >= 5
    assert not sounding_after(messages)
    assert any(m.type == "control_change" and m.control == 123 for m in messages)


def test_process_scheduler_sends_from_its_own_process_and_panics_on_stop(tmp_path):
    from installation.scheduler import ProcessScheduler
    path = tmp_path / "sender.mid"
    s = ProcessScheduler([("midifile", str(path))])
    s.start()
    try:
        t0 = time.monotonic() + 0.2
        s.submit([NoteEvent(t0 + 0.05 * i, 5.0, 60 + i, 90) for i in range(4)])
        wait_for(lambda: s.stats["sounding"] == 4, 10)
        stats = s.stats
        assert stats["sounding"] == 4 and stats["lost"] == 0
    finally:
        s.stop()
    messages = [m for m in mido.MidiFile(path).tracks[0] if not m.is_meta]
    assert sum(m.type == "note_on" for m in messages) == 4
    assert not sounding_after(messages)
