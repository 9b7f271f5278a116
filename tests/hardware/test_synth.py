"""The built-in synth plays notes, releases them, and its loop input hears it in real time."""
import os

import mido
import numpy as np
import pytest

from hardware.sound.synth import Synth, SynthLoopInput
from installation.clock import ManualClock
from tests.fakes import DyingSpeakers


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


def test_speakers_that_go_away_leave_listening_on_the_clock_until_they_come_back():
    clock = ManualClock(0.0)
    speakers = DyingSpeakers(clock)
    loop = SynthLoopInput(Synth(), clock, tap=speakers)
    loop.open()
    assert loop.read(0.1) is not None and loop.speaking
    speakers.alive = False  # the output device was unplugged (or its JACK server stopped)
    blocks = [loop.read(0.1) for _ in range(10)]
    assert not loop.speaking and loop.stats["speaker_losses"] == 1
    assert sum(b is not None for b in blocks) >= 8  # the synth, heard on the clock at once
    speakers.alive = True  # the speakers replaced their process by themselves
    assert loop.read(0.1) is not None and loop.speaking
    assert speakers.opens == 1 and loop.stats["speaker_reopens"] == 1
    assert loop.health is speakers.health  # the device board sees the speakers' own state
    loop.close()


def test_a_speaker_process_that_hangs_is_killed_and_replaced(caplog):
    """Its stream stops answering and it ignores SIGTERM, as PortAudio on a dead JACK server does."""
    from hardware.sound.speakers import SynthSpeakers
    from installation.clock import MonotonicClock
    from tests.fakes import hanging_speaker_main
    from tests.waiting import wait_for

    speakers = SynthSpeakers(Synth(22050), MonotonicClock(), block_frames=512)
    speakers.child_main = hanging_speaker_main
    try:
        with caplog.at_level("WARNING", logger="chromesthesia.devices"):
            speakers.open()
            assert speakers.playing and speakers.read(5.0) is not None  # it played
            assert speakers._child is not None and speakers._child._process is not None
            first_pid = speakers._child._process.pid
            assert wait_for(lambda: speakers.health.reopens >= 1, 30), speakers.health.snapshot()
        with pytest.raises(ProcessLookupError):  # SIGKILLed (it ignores SIGTERM) and reaped
            os.kill(first_pid, 0)
        snap = speakers.health.snapshot()
        assert snap["losses"] >= 1
        assert len([r for r in caplog.records if " lost (" in r.getMessage()]) == snap["losses"]
    finally:
        speakers.close()
    assert speakers._child is None and speakers.health.state == "closed"


def spectral_centroid_hz(x: np.ndarray, rate_hz: int) -> float:
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return float((power * np.fft.rfftfreq(len(x), 1 / rate_hz)).sum() / power.sum())


def band_share(x: np.ndarray, rate_hz: int, lo_hz: float, hi_hz: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate_hz)
    return float(power[(f >= lo_hz) & (f < hi_hz)].sum() / power.sum())


def one_note(program: int, note: int, velocity: int, seconds: float = 0.5, channel: int = 0, rate_hz: int = 22050):
    synth = Synth(rate_hz)
    synth.send(mido.Message("program_change", channel=channel, program=program))
    synth.send(mido.Message("note_on", channel=channel, note=note, velocity=velocity))
    return synth.render(int(rate_hz * seconds)), synth


def test_harder_playing_sounds_brighter_not_just_louder():
    for program in (0, 32, 48, 80):  # piano, bass, strings, square lead
        centroids = [spectral_centroid_hz(one_note(program, 60, v)[0], 22050) for v in (20, 50, 80, 110, 127)]
        assert all(a < b for a, b in zip(centroids, centroids[1:])), (program, centroids)
    # the piano's tone opens up a lot: a hard strike has well over half again the soft one's centroid
    soft, hard = (spectral_centroid_hz(one_note(0, 60, v)[0], 22050) for v in (20, 120))
    assert hard > 1.5 * soft
    # the pitch stays where it is: the lowest strong partial is still the fundamental
    x = one_note(0, 57, 127)[0]
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum > 0.3 * spectrum.max()) * 22050 / len(x) - 220.0) < 3.0


def test_high_notes_stay_below_nyquist():
    for program in (0, 48, 80):
        x = one_note(program, 100, 127, rate_hz=16000)[0]  # E7, 2637 Hz: only two harmonics fit under 8 kHz
        assert band_share(x, 16000, 0, 6000) > 0.99


def test_drum_kit_by_general_midi_note():
    kick, snare, hat = (one_note(0, note, 100, 1.0, channel=9)[0] for note in (36, 38, 42))
    assert band_share(kick, 22050, 0, 200) > 0.8  # a pitched sweep down to about 60 Hz
    assert band_share(hat, 22050, 4000, 11025) > 0.8  # high-passed noise
    assert spectral_centroid_hz(kick, 22050) < spectral_centroid_hz(snare, 22050) < spectral_centroid_hz(hat, 22050)
    # short decays: a closed hat is over in a fifth of a second, a kick within half a second
    for hit, over_s in ((hat, 0.2), (kick, 0.5)):
        peak = np.abs(hit).max()
        assert np.abs(hit[int(22050 * over_s):]).max() < 0.1 * peak
    # toms are pitched: floor tom below high tom
    low, high = (one_note(0, note, 100, 1.0, channel=9)[0] for note in (41, 50))
    assert spectral_centroid_hz(low, 22050) < spectral_centroid_hz(high, 22050) < 400
    # a note the kit has no sound for still knocks, and every hit is finite and ends by itself
    for note in (27, 60, 81, 127):
        x, synth = one_note(0, note, 127, 2.0, channel=9)
        assert np.all(np.isfinite(x)) and rms(x) > 1e-4
        synth.render(22050 * 8)
        assert synth._voices == []


def test_drums_ring_through_note_off_but_panic_and_closing_hat_cut_them():
    open_hat, synth = one_note(0, 46, 110, 0.05, channel=9)
    synth.send(mido.Message("note_off", channel=9, note=46))
    assert synth.sounding() == []  # the note has ended ...
    assert rms(synth.render(2205)) > 0.01  # ... but the cymbal rings on, as on any GM kit
    synth.send(mido.Message("note_on", channel=9, note=42, velocity=1))  # pedal closes the hi-hat
    synth.render(22050)
    assert not any(v.note == 46 for v in synth._voices)
    _, synth = one_note(0, 49, 110, 0.05, channel=9)  # crash: rings for seconds
    synth.panic()
    synth.render(22050 // 2)
    assert rms(synth.render(2205)) < 1e-4 and synth._voices == []


def test_loud_drums_and_chords_stay_finite_and_below_full_scale():
    synth = Synth(16000, gain=4.0)
    synth.send(mido.Message("program_change", channel=1, program=48))
    for note in range(35, 60):
        synth.send(mido.Message("note_on", channel=9, note=note, velocity=127))
    for note in (48, 52, 55, 60, 64, 67):
        synth.send(mido.Message("note_on", channel=1, note=note, velocity=127))
    block = synth.render(16000)
    assert np.all(np.isfinite(block)) and np.abs(block).max() <= 1.0


def test_bench_synth_reports_its_cost_per_second_of_audio():
    from hardware.sound.offline import render_cost_ms_per_s
    figures = render_cost_ms_per_s(22050, 0.5)
    assert figures["ms_per_s_median"] > 0 and figures["block_budget_ms"] == round(1000 * 1024 / 22050, 2)
