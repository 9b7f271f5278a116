"""Audio inputs: real PortAudio streams through the JACK dummy server, paced files, bad input."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import soundfile as sf

from hardware.sound.audio_in import (FileInput, PyAudioInput, SoundDeviceInput, _Converter, _Ring,
                               find_input_device, reinitialize_portaudio)
from installation.clock import ManualClock, MonotonicClock
from installation.errors import UserError
from tests.conftest import detach_portaudio_from_jack, jackd_as_default
from tests.fakes import ToneInto

DEVICES = [
    {"index": 0, "name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "hostapi": "ALSA", "max_input_channels": 2,
     "max_output_channels": 2, "default_samplerate": 44100.0},
    {"index": 1, "name": "Scarlett 2i2 USB", "hostapi": "ALSA", "max_input_channels": 2,
     "max_output_channels": 2, "default_samplerate": 48000.0},
    {"index": 2, "name": "HDMI 0", "hostapi": "ALSA", "max_input_channels": 0, "max_output_channels": 8,
     "default_samplerate": 48000.0},
]


# --- device choice ---------------------------------------------------------------------------
def test_device_by_name_substring_and_index():
    assert find_input_device("scarlett", DEVICES)["index"] == 1
    assert find_input_device("1", DEVICES)["name"] == "Scarlett 2i2 USB"


def test_unknown_device_is_one_sentence_listing_the_inputs():
    with pytest.raises(UserError) as err:
        find_input_device("Behringer", DEVICES)
    text = str(err.value)
    assert "'Behringer'" in text and "0: HDA Intel" in text and "1: Scarlett 2i2 USB" in text
    assert "HDMI" not in text  # output-only devices are not offered as inputs
    assert text.count(". ") == 0 and text.endswith(".")


def test_no_inputs_at_all_says_what_to_do():
    with pytest.raises(UserError, match="audio.source"):
        find_input_device("", [DEVICES[2]])


# --- ring and conversion ---------------------------------------------------------------------
def test_ring_counts_overflow_and_keeps_the_newest_frames():
    ring = _Ring(8, 1)
    ring.write(np.arange(6, dtype=np.float32)[:, None], 1.0)
    ring.write(np.arange(6, 12, dtype=np.float32)[:, None], 2.0)
    frames, last_s = ring.take()
    assert ring.overflows == 4
    assert frames[:, 0].tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert last_s == 2.0
    assert ring.take()[0].shape[0] == 0


def test_converter_mixes_down_cleans_and_resamples_eight_channels_at_96k():
    conv = _Converter(96000, 16000)
    t = np.arange(9600) / 96000
    block = np.tile(np.sin(2 * np.pi * 440 * t)[:, None] * 0.5, (1, 8)).astype(np.float32)
    block[10, 3] = np.nan
    block[20, 0] = np.inf
    block[30, :] = 1.5
    out = np.concatenate([conv(block[i:i + 960]) for i in range(0, 9600, 960)])
    assert conv.bad_samples == 2 and conv.clipped_samples >= 8
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert 1600 - 480 <= out.size <= 1600  # 0.1 s at 16 kHz, less the resampler's delay (<= 30 ms)
    spectrum = np.abs(np.fft.rfft(out[100:1100] * np.hanning(1000)))
    assert abs(np.argmax(spectrum) * 16000 / 1000 - 440) < 20


# --- file input ------------------------------------------------------------------------------
def _write(path, seconds, rate, channels=1, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.tile(x[:, None], (1, channels)), rate)


def test_file_input_is_paced_by_the_clock_and_loops(tmp_path):
    path = tmp_path / "tone.wav"
    _write(path, 0.5, 8000)
    clock = ManualClock(100.0)
    inp = FileInput(str(path), 8000, clock, loop=True)
    inp.open()
    clock.advance(0.25)
    block = inp.read(0.0)
    assert block.sample_rate_hz == 8000 and block.samples.size == 2000 and block.t_s == 100.0
    clock.advance(1.0)
    block = inp.read(0.0)
    assert block.samples.size == 8000 and block.t_s == pytest.approx(100.25)
    assert inp.stats["loops"] == 2
    assert inp.read(0.0) is None or inp.read(0.0).samples.size <= 1  # nothing new is due


def test_file_input_96k_eight_channels_resampled_once(tmp_path):
    path = tmp_path / "multi.flac"
    _write(path, 1.0, 96000, channels=8)
    clock = ManualClock()
    inp = FileInput(str(path), 22050, clock)
    inp.open()
    clock.advance(0.5)
    block = inp.read(0.0)
    assert block.sample_rate_hz == 22050 and block.samples.ndim == 1
    assert block.samples.size == int(0.5 * 22050)
    assert 0.25 < float(np.abs(block.samples[2000:]).max()) < 0.35


def test_file_input_real_time_pacing(tmp_path):
    path = tmp_path / "tone.wav"
    _write(path, 2.0, 8000)
    inp = FileInput(str(path), 0, MonotonicClock(), loop=False)
    inp.open()
    t0 = time.monotonic()
    got = 0
    while time.monotonic() - t0 < 0.3:
        block = inp.read(0.05)
        if block is not None:
            got += block.samples.size
    assert 0.2 * 8000 <= got <= 0.4 * 8000


def test_missing_and_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(UserError, match="nothere.wav does not exist"):
        FileInput(str(tmp_path / "nothere.wav"), 0, ManualClock()).open()
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(UserError, match="notes.wav cannot be read"):
        FileInput(str(bad), 0, ManualClock()).open()


# --- real PortAudio streams through JACK -----------------------------------------------------
def _read_until(inp, done, timeout_s: float = 15.0) -> list:
    """Blocks read until `done(blocks)` holds: a loaded machine may deliver late, never less."""
    blocks: list = []
    deadline = time.monotonic() + timeout_s
    while not done(blocks) and time.monotonic() < deadline:
        block = inp.read(0.05)
        if block is not None:
            blocks.append(block)
    return blocks


def _samples(blocks) -> int:
    return sum(b.samples.size for b in blocks)


@pytest.mark.jack
@pytest.mark.parametrize("cls", [SoundDeviceInput, PyAudioInput])
def test_jack_stream_delivers_the_played_tone(jack_server, cls):
    reinitialize_portaudio()  # PortAudio lists devices at initialisation: after jackd started
    inp = cls("system", 16000, 0, 1024, MonotonicClock())
    inp.open()
    tone = ToneInto(440.0, 0.5)
    try:
        deadline = time.monotonic() + 3
        while tone.connect_all() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        _read_until(inp, lambda got: _samples(got) >= 0.3 * 16000)
        blocks = _read_until(inp, lambda got: _samples(got) >= 16000)
    finally:
        tone.close()
        inp.close()
        detach_portaudio_from_jack()
    x = np.concatenate([b.samples for b in blocks])
    assert all(b.sample_rate_hz == 16000 for b in blocks)
    assert x.size >= 16000  # resampled from JACK's 48 kHz (pacing is the benchmark's business)
    assert 0.2 < np.abs(x).max() <= 0.6  # mixed down from 2 channels, one of them fed
    spectrum = np.abs(np.fft.rfft(x[:8192] * np.hanning(8192)))
    assert abs(np.argmax(spectrum) * 16000 / 8192 - 440) < 10
    assert inp.stats["blocks"] > 10 and inp.stats["stalls"] == 0
    ts = [b.t_s for b in blocks]
    assert ts == sorted(ts)


@pytest.mark.jack
@pytest.mark.slow
@pytest.mark.parametrize("cls", [SoundDeviceInput, PyAudioInput])
def test_device_that_vanishes_feeds_silence_and_comes_back(cls):
    """Freeze the JACK server under a running stream (SIGSTOP), then let it go on (SIGCONT)."""
    inp = None
    with jackd_as_default(f"vanish{os.getpid()}") as proc:
        try:
            reinitialize_portaudio()
            inp = cls("system", 16000, 0, 1024, MonotonicClock())
            inp.open()
            assert _samples(_read_until(inp, lambda got: _samples(got) > 0.3 * 16000)) > 0.3 * 16000
            proc.send_signal(signal.SIGSTOP)

            def silent_samples(got) -> int:
                return _samples([b for b in got if not b.samples.any()])
            gone = _read_until(inp, lambda got: inp.stats["stalls"] == 1 and silent_samples(got) >= 0.8 * 16000)
            assert inp.stats["stalls"] == 1 and inp.stats["resumes"] == 0
            assert silent_samples(gone) >= 0.8 * 16000  # fed on with silence while the device is gone
            proc.send_signal(signal.SIGCONT)
            _read_until(inp, lambda got: inp.stats["resumes"] + inp.stats["reopens"] > 0)
            assert inp.stats["resumes"] + inp.stats["reopens"] == 1
            blocks_before = inp.stats["blocks"]
            back = _read_until(inp, lambda got: _samples(got) > 0.3 * 16000)
            assert inp.stats["blocks"] > blocks_before and _samples(back) > 0.3 * 16000
            ts = [b.t_s for b in gone + back]
            assert ts == sorted(ts)
        finally:
            proc.send_signal(signal.SIGCONT)
            if inp is not None:
                inp.close()
            detach_portaudio_from_jack()


def test_an_audio_file_that_does_not_decode_is_a_start_up_problem(tmp_path):
    from installation.config import load_config
    from installation.sources import choose_sources
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not a sound\n")
    cfg = load_config(None, ['audio.source="file"', f'audio.file="{not_audio}"', 'render.backend="procedural"'])
    problems = choose_sources(cfg, headless=True).problems
    assert any("audio.file" in p and "cannot be decoded" in p for p in problems), problems


class _RecordingPortAudio:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def terminate(self) -> None:
        self.events.append("portaudio terminated")


@pytest.mark.parametrize("server_after", [7, None])
def test_pyaudio_is_terminated_at_close_only_while_the_jack_server_it_joined_runs(monkeypatch, server_after):
    """The PyAudio input's stream runs in a child; its own process keeps PortAudio for the device
    list alone, a client of the JACK server it joined: terminating it after that server died waits
    for it (minutes) or aborts, so it is then left as it is."""
    import hardware.sound.jack_server as jack_server

    events: list[str] = []
    source = PyAudioInput("dummy", 16000, 1, 256, ManualClock())
    source._pa, source._pa_server = _RecordingPortAudio(events), 7
    monkeypatch.setattr(jack_server, "server_identity", lambda: server_after)
    source.close()
    assert events == (["portaudio terminated"] if server_after == 7 else [])


class _TimeInfo:
    def __init__(self, adc_s: float, current_s: float) -> None:
        self.inputBufferAdcTime, self.currentTime = adc_s, current_s


def test_a_block_is_dated_by_portaudios_adc_time_on_the_monotonic_clock():
    from hardware.sound.input_child import adc_time_s
    # PortAudio's stream clock reads 12.0 now; the block's first sample was captured at 11.97.
    assert adc_time_s(_TimeInfo(11.97, 12.0), 256, 48000, now_s=500.0) == pytest.approx(499.97)
    # A host that gives no ADC time (or nonsense): a block's length before now.
    assert adc_time_s(_TimeInfo(0.0, 0.0), 480, 48000, now_s=500.0) == pytest.approx(499.99)
    assert adc_time_s(_TimeInfo(15.0, 12.0), 480, 48000, now_s=500.0) == pytest.approx(499.99)


@pytest.mark.jack
@pytest.mark.parametrize("cls", [SoundDeviceInput, PyAudioInput])
def test_onsets_detected_in_the_input_process_arrive_with_their_adc_time(jack_server, cls):
    from models.listening.onsets import DetectorFactory, OnsetSettings
    reinitialize_portaudio()
    inp = cls("system", 22050, 0, 256, MonotonicClock())
    arrivals: list = []
    inp.detect_onsets(DetectorFactory(OnsetSettings()), lambda state: arrivals.append((time.monotonic(), state)))
    inp.open()
    tone = None
    try:
        _read_until(inp, lambda got: inp.onsets_live and len(arrivals) >= 30)  # silence first: a loaded
        assert inp.onsets_live  # machine may start the stream late (the input feeds silence meanwhile)
        tone = ToneInto(440.0, 0.5)  # the tone starting is a hit
        deadline = time.monotonic() + 3
        while tone.connect_all() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        connected_s = time.monotonic()
        _read_until(inp, lambda got: any(s.count > 0 for _, s in arrivals) and _samples(got) >= 0.3 * 22050)
    finally:
        if tone is not None:
            tone.close()
        inp.close()
        detach_portaudio_from_jack()
    assert len(arrivals) > 30  # a state for every block the child analysed
    hits = [(arrived_s, s) for arrived_s, s in arrivals if s.count > 0]
    arrived_s, first = hits[0]
    assert first.count == 1 and not first.silent
    # Dated on the monotonic clock when the audio was captured: after the connection, before arrival.
    assert connected_s - 0.1 <= first.onset_t_s <= first.t_s <= arrived_s
    assert arrived_s - first.t_s < 0.5
    assert [s.t_s for _, s in arrivals] == sorted(s.t_s for _, s in arrivals)


def test_block_dates_count_frames_steered_by_the_adc_time_and_follow_a_gap():
    from hardware.sound.input_child import BlockDates
    dates = BlockDates(48000)
    jitter = [0.0, 0.004, -0.003, 0.006, 0.0, -0.005]
    true = [10.0 + n * 256 / 48000 for n in range(len(jitter))]
    got = [dates(t_s + j, 256) for t_s, j in zip(true, jitter)]
    assert np.all(np.diff(got) > 0)
    assert np.abs(np.subtract(got, true)).max() <= 0.5 * np.abs(jitter).max()  # the jitter damped
    assert dates(20.0, 256) == 20.0  # after an overrun or a stall, the ADC time again


def test_a_detector_factory_that_cannot_reach_the_child_leaves_detection_to_the_stage():
    inp = SoundDeviceInput("system", 22050, 0, 512, MonotonicClock())
    inp.detect_onsets(lambda rate: None, lambda state: None)  # a lambda cannot be pickled to the child
    assert inp._onsets is None and not inp.onsets_live
