"""The built-in synth plays notes, releases them, and its loop input hears it in real time."""
import mido
import numpy as np

from hardware.synth import Synth, SynthLoopInput
from installation.clock import ManualClock


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_note_sounds_then_decays_after_note_off():
    synth = Synth(22050, gain=0.5)
    assert rms(synth.render(2205)) == 0.0
    synth.send(mido.Message("program_change", channel=1, program=48))
    synth.send(mido.Message("note_on", channel=1, note=57, velocity=100))
    sounding = synth.render(22050)
    assert rms(sounding) > 0.01
    spectrum = np.abs(np.fft.rfft(sounding))
    assert abs(np.argmax(spectrum) * 22050 / len(sounding) - 220.0) < 3.0  # A3 fundamental
    synth.send(mido.Message("note_off", channel=1, note=57))
    synth.render(22050 * 2)
    assert rms(synth.render(2205)) < 1e-4
    assert synth.sounding() == []


def test_panic_and_all_notes_off_release_everything():
    synth = Synth()
    for note in (60, 64, 67):
        synth.send(mido.Message("note_on", channel=0, note=note, velocity=90))
    synth.send(mido.Message("note_on", channel=2, note=40, velocity=90))
    assert len(synth.sounding()) == 4
    synth.send(mido.Message("control_change", channel=0, control=123, value=0))
    assert synth.sounding() == [(2, 40)]
    synth.panic()
    assert synth.sounding() == []


def test_output_never_exceeds_full_scale_with_many_loud_voices():
    synth = Synth(gain=2.0)
    for note in range(40, 80):
        synth.send(mido.Message("note_on", note=note, velocity=127))
    block = synth.render(4410)
    assert np.all(np.isfinite(block)) and np.abs(block).max() <= 1.0
    assert synth.stats["stolen"] == 40 - 32


def test_loop_input_delivers_audio_paced_by_the_clock():
    clock = ManualClock(100.0)
    synth = Synth(22050)
    loop = SynthLoopInput(synth, clock, block_frames=1024)
    loop.open()
    synth.send(mido.Message("note_on", note=69, velocity=100))
    total = 0
    for _ in range(20):
        block = loop.read(timeout_s=1.0)
        assert block is not None and block.sample_rate_hz == 22050
        total += len(block.samples)
    # each read waits for one block's worth of clock time and hands over exactly that
    assert total == 20 * 1024
    assert abs(clock.now_s() - 100.0 - total / 22050) < 1e-6
    assert rms(block.samples) > 0.01


class DyingSpeakers:
    """A speaker stream that delivers blocks until its device goes away; reopening revives it."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.alive = False
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        self.alive = True

    def read(self, timeout_s: float):
        from installation.records import AudioBlock
        self.clock.advance(timeout_s)
        return AudioBlock(self.clock.now_s(), np.zeros(512, np.float32), 22050) if self.alive else None

    def close(self) -> None:
        self.alive = False


def test_a_silent_speaker_stream_is_reported_so_the_worker_reopens_it():
    import pytest
    clock = ManualClock(0.0)
    speakers = DyingSpeakers(clock)
    loop = SynthLoopInput(Synth(), clock, tap=speakers)
    loop.open()
    assert loop.read(0.1) is not None
    speakers.alive = False  # the output device was unplugged
    reads = 0
    with pytest.raises(OSError, match="delivered nothing"):
        while True:
            assert loop.read(0.1) is None
            reads += 1
    assert 15 <= reads <= 25  # about STALL_S of silence first, not at the first gap
    loop.close()
    loop.open()  # what the listener's supervisor does after the error
    assert speakers.opens == 2 and loop.read(0.1) is not None
