"""MIDI outputs: the file recorder, port listing, and a real JACK MIDI -> fluidsynth round trip."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import mido
import numpy as np
import pytest

from hardware.midi.output import MidiFileRecorder, MidoOut, OscEventOut, list_midi_ports
from installation.clock import ManualClock, MonotonicClock
from installation.errors import UserError
from installation.records import NoteEvent
from installation.scheduler import Cue, Scheduler
from tests import fakes
from tests.waiting import wait_for

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def test_recorder_file_is_valid_after_every_message_and_keeps_real_timing(tmp_path):
    clock = ManualClock(100.0)
    path = tmp_path / "take.mid"
    rec = MidiFileRecorder(path, clock)
    rec.send(mido.Message("note_on", note=60, velocity=90))
    assert [m.type for m in mido.MidiFile(path).tracks[0] if not m.is_meta] == ["note_on"]
    clock.advance(1.5)
    rec.send(mido.Message("note_off", note=60))
    rec.send(mido.Message("clock"))  # real-time bytes are not allowed in a MIDI file: skipped
    mid = mido.MidiFile(path)  # valid without close(), as after a kill
    events = [m for m in mid if not m.is_meta]
    assert [m.type for m in events] == ["note_on", "note_off"]
    assert abs(events[1].time - 1.5) < 0.002
    rec.close()
    assert len(mido.MidiFile(path).tracks[0]) == 4  # tempo, on, off, end of track


def test_recorder_in_a_missing_folder_that_cannot_be_made_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot be written"):
        MidiFileRecorder(blocker / "take.mid", ManualClock())


def test_listing_ports_never_raises_and_says_why_when_empty():
    ports = list_midi_ports()
    assert set(ports) >= {"inputs", "outputs"}
    if not ports["outputs"] and not ports["inputs"]:
        assert ports.get("problems")


def test_an_absent_output_waits_unless_it_is_required():
    with pytest.raises(UserError):
        MidoOut("no such synthesizer anywhere", required=True)
    out = MidoOut("no such synthesizer anywhere")
    out.send(mido.Message("note_on", note=60, velocity=100))
    assert out.stats["connected"] is False and out.stats["lost"] == 1 and out.stats["sent"] == 0


@pytest.mark.jack
def test_an_output_absent_at_start_is_connected_when_it_appears(jack_server):
    out = MidoOut("late-synth", backend=JACK_BACKEND)
    out.retry_s = 0.1
    assert out.stats["connected"] is False
    synth = fakes.JackMidiMonitor("late-synth")  # the synthesizer starts after us
    try:
        received: list = []
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            out.send(mido.Message("note_on", note=64, velocity=90))
            time.sleep(0.15)
            received = [m for _, m in synth.received if m.type == "note_on"]
        assert received and received[0].note == 64
        assert out.stats["connected"] is True and out.stats["reopens"] == 1
    finally:
        out.close()
        synth.close()


def test_osc_event_out_sends_notes_and_cues():
    class ListClient:
        name = "list"

        def __init__(self):
            self.sent = []

        def send(self, address, *args):
            self.sent.append((address, args))

    client = ListClient()
    out = OscEventOut(client)
    clock = ManualClock()
    s = Scheduler(clock, [out], switch_interval_s=None)
    s.submit([NoteEvent(0.0, 0.5, 60, 100, 2), Cue(0.0, "/chord", ("Am", "min", 57, 60, 64))])
    s.run_due()
    clock.advance(1.0)
    s.run_due()
    assert ("/chromesthesia/note", (2, 60, 100)) in client.sent
    assert ("/chromesthesia/chord", ("Am", "min", 57, 60, 64)) in client.sent
    assert ("/chromesthesia/note", (2, 60, 0)) in client.sent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.jack
def test_jack_midi_reaches_fluidsynth_and_panic_silences_it(jack_server):
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        pytest.skip("fluidsynth and timgm6mb-soundfont are not installed")
    from hardware.midi.output import VirtualMidiOut
    synth = subprocess.Popen(["fluidsynth", "-a", "jack", "-m", "jack", "-is", "-g", "1.0",
                              "-o", f"shell.port={_free_port()}", "-o", "midi.jack.id=fsynth",
                              "-o", "audio.jack.id=fsynth", str(SOUNDFONT)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # What fluidsynth plays is recorded by a JACK client in a process of its own: no Python runs on
    # a JACK thread of this process. Its recording grows by one period at a time, in real time, so
    # "since then" is "from the length it had then".
    capture = fakes.CaptureFrom()
    out = None
    scheduler = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            synth_midi = [p.name for p in capture.client.get_ports("fsynth", is_midi=True, is_input=True)]
            synth_audio = [p.name for p in capture.client.get_ports("fsynth", is_audio=True, is_output=True)]
            if synth_midi and len(synth_audio) >= 2:
                break
            assert synth.poll() is None, "fluidsynth exited"
            time.sleep(0.1)
        else:
            pytest.fail("fluidsynth did not register its JACK ports")
        capture.client.connect(synth_audio[0], f"{capture.name}:in")
        out = VirtualMidiOut("chroma-out", backend=JACK_BACKEND)
        ours = [p.name for p in capture.client.get_ports("chroma-out", is_midi=True, is_output=True)]
        assert ours, "the virtual JACK MIDI output did not appear"
        capture.client.connect(ours[0], synth_midi[0])
        clock = MonotonicClock()
        scheduler = Scheduler(clock, [out])
        scheduler.start()
        scheduler.send_now(mido.Message("program_change", channel=0, program=19))  # church organ: sustains
        t0 = clock.now_s() + 0.3
        scheduler.submit([NoteEvent(t0 + 0.1 * i, 30.0, 60 + 4 * (i % 3), 110, 0) for i in range(3)])
        clock.sleep_until(t0 + 0.5)
        notes_from = capture.audio().size

        def peak_since(start: int) -> float:
            return float(np.abs(capture.audio()[start:]).max(initial=0.0))
        wait_for(lambda: peak_since(notes_from) > 0.01, 20.0)
        playing = peak_since(notes_from)
        assert playing > 0.01, f"no sound from fluidsynth (peak {playing})"
        assert scheduler.stats["sounding"] == 3
        scheduler.stop()
        stopped_from = capture.audio().size
        half_s = capture.rate_hz // 2

        def quiet() -> bool:  # the last half second, all of it after the panic, under 5 % of the notes' peak
            heard = capture.audio()
            return heard.size - half_s >= stopped_from and float(np.abs(heard[-half_s:]).max()) < playing * 0.05
        # (the organ sustains for as long as a note is held; a loaded machine may be slow to get quiet)
        assert wait_for(quiet, 20.0), f"still sounding after panic: {np.abs(capture.audio()[-half_s:]).max()} " \
                                      f"vs {playing}"
    finally:
        if scheduler is not None:
            scheduler.stop()
        if out is not None:
            out.close()
        capture.close()
        synth.terminate()
        try:
            synth.wait(5)
        except subprocess.TimeoutExpired:
            synth.kill()


@pytest.mark.jack
def test_midi_clock_out_from_the_sender_process_reaches_a_port(jack_server):
    from installation.scheduler import ProcessScheduler

    listener = fakes.JackMidiMonitor("clock-listener")
    sender = ProcessScheduler([("mido", "clock-listener", JACK_BACKEND)], realtime_priority=None, clock_out=True)

    def arrivals() -> list[float]:  # when each clock reached the port, as JACK stamped it
        return [t_s for t_s, message in listener.received if message.type == "clock"]
    try:
        sender.start()
        sender.set_tempo(120.0)
        # 24 clocks per quarter note at 120 bpm: 48 a second; wait for three seconds' worth
        assert wait_for(lambda: len(arrivals()) >= 168, timeout_s=60.0), len(arrivals())
    finally:
        sender.stop()
        listener.close()
    # Which tempo the clocks carry, not how precisely they are spaced (the machine may be loaded;
    # jitter is measured by the benchmarks): the mean rate over three seconds of ticks tells
    # 120 BPM (48 a second) from half or double tempo, or a wrong count per quarter note.
    ticks = arrivals()[24:168]
    per_s = (len(ticks) - 1) / (ticks[-1] - ticks[0])
    assert 32 <= per_s <= 72, per_s
