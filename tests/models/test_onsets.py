"""The block-rate onset path: hits found in the block they land in, none in silence, strength that
follows the hit, beats in the octave the music plays, and the onset stage handing blocks to the listener."""
from __future__ import annotations

import numpy as np
import pytest

from installation.clock import ManualClock
from installation.mailbox import Latest
from installation.records import AudioBlock, OnsetState
from installation.stages.onsets import AudioQueue, OnsetStage
from models.listening.onsets import OnsetDetector, OnsetSettings
from tests.fakes import ArrayAudioInput

RATE_HZ = 22050
BLOCK = 512


def kick(amp: float) -> np.ndarray:
    k = np.arange(int(0.3 * RATE_HZ))  # long enough to fade out: an abrupt end would be a click of its own
    rng = np.random.default_rng(1)
    body = np.sin(2 * np.pi * 60 * k / RATE_HZ) * np.exp(-k / (0.03 * RATE_HZ))
    click = rng.standard_normal(k.size) * np.exp(-k / (0.004 * RATE_HZ))
    return (amp * (body + 0.5 * click)).astype(np.float32)


def track(times_s, amps, seconds: float) -> np.ndarray:
    x = np.zeros(int(seconds * RATE_HZ), np.float32)
    for t_s, amp in zip(times_s, amps):
        i = int(t_s * RATE_HZ)
        hit = kick(amp)[: x.size - i]
        x[i:i + hit.size] += hit
    return x


def play(x: np.ndarray, detector: OnsetDetector) -> list[tuple[int, OnsetState]]:
    """(index of the block pushed, state) whenever the onset count grew."""
    seen, found = 0, []
    for n, start in enumerate(range(0, x.size, BLOCK)):
        state = detector.push(AudioBlock(start / RATE_HZ, x[start:start + BLOCK], RATE_HZ))
        if state is not None and state.count != seen:
            seen = state.count
            found.append((n, state))
    return found


def test_each_click_is_found_within_one_block_of_landing():
    times = [0.5, 1.13, 1.9, 2.41, 3.37, 4.02]
    x = track(times, [0.8] * len(times), 5.0)
    found = play(x, OnsetDetector(RATE_HZ, beats=False))
    assert len(found) == len(times)
    hop_s = OnsetSettings().hop / RATE_HZ
    for t_s, (block, state) in zip(times, found):
        landed = int(t_s * RATE_HZ) // BLOCK
        assert block - landed <= 1, "reported in the block the click landed in, or the next"
        assert abs(state.onset_t_s - t_s) <= hop_s
        assert not state.silent


def test_silence_gives_no_onset_and_reads_silent():
    detector = OnsetDetector(RATE_HZ, beats=False)
    rng = np.random.default_rng(0)
    quiet = (1e-4 * rng.standard_normal(3 * RATE_HZ)).astype(np.float32)  # -80 dBFS hiss
    assert play(quiet, detector) == []
    assert detector.state.silent and detector.state.count == 0


def test_a_soft_hit_after_loud_ones_gives_a_weaker_accent():
    x = track([0.5, 1.0, 1.5, 2.0], [0.9, 0.9, 0.9, 0.1], 2.5)
    found = play(x, OnsetDetector(RATE_HZ, beats=False))
    assert len(found) == 4
    strengths = [state.strength for _, state in found]
    assert strengths[3] < 0.7 * min(strengths[:3])
    assert all(0.0 < s <= 1.0 for s in strengths)


def test_the_octave_follows_what_is_played_between_the_beats():
    # Kicks every 0.4 s (150 BPM) with hits as loud halfway between: 150 BPM of eighths reads 150 ...
    beats = np.arange(0.2, 12.0, 0.4)
    detector = OnsetDetector(RATE_HZ)
    play(track(list(beats) + list(beats + 0.2), [0.7] * (2 * beats.size), 12.5), detector)
    assert detector.state.tempo_bpm == pytest.approx(150.0, rel=0.02)
    # ... with no hits between the beats, the same kicks at 0.8 s read 75 (not 150), inside the range.
    detector = OnsetDetector(RATE_HZ)
    play(track(list(np.arange(0.2, 12.0, 0.8)), [0.7] * 15, 12.5), detector)
    assert detector.state.tempo_bpm == pytest.approx(75.0, rel=0.02)
    # Outside the range the octave that fits is taken: 75 BPM of kicks in a 100-210 range reads 150.
    detector = OnsetDetector(RATE_HZ, OnsetSettings(tempo_range_bpm=(100.0, 210.0)))
    play(track(list(np.arange(0.2, 12.0, 0.8)), [0.7] * 15, 12.5), detector)
    assert detector.state.tempo_bpm == pytest.approx(150.0, rel=0.02)


def test_the_beat_tracker_finds_a_steady_pulse():
    period_s = 0.5  # 120 BPM
    times = list(np.arange(0.25, 12.0, period_s))
    detector = OnsetDetector(RATE_HZ)
    play(track(times, [0.7] * len(times), 12.0), detector)
    state = detector.state
    assert state.tempo_bpm == pytest.approx(120.0, rel=0.01)
    # A predicted beat falls near a real one.
    offset_s = (state.beat_t_s - times[0]) % period_s
    assert min(offset_s, period_s - offset_s) < 0.03


def test_the_onset_stage_publishes_hits_and_hands_every_block_to_the_listener():
    clock = ManualClock()
    x = track([0.3, 0.9], [0.8, 0.8], 1.5)
    audio = ArrayAudioInput(x, RATE_HZ, clock, BLOCK)
    onsets: Latest[OnsetState] = Latest()
    heard = AudioQueue("array")
    stage = OnsetStage(audio, lambda rate: OnsetDetector(rate, beats=False), onsets, heard, clock)
    stage.open()
    for _ in range(x.size // BLOCK + 1):
        stage.step()
        clock.advance(BLOCK / RATE_HZ)
    stage.close()
    state = onsets.peek()
    assert state is not None and state.count == 2
    forwarded = heard.blocks.drain()
    assert sum(b.samples.size for b in forwarded) == x.size
    assert heard.read(timeout_s=0) is None


def test_the_beat_range_must_span_an_octave():
    from installation.config import ConfigError, load_config
    assert load_config(None, ["listen.beat_range_bpm=[70.0, 140.0]"]).listen.beat_range_bpm == (70.0, 140.0)
    with pytest.raises(ConfigError, match="beat_range_bpm"):
        load_config(None, ["listen.beat_range_bpm=[100.0, 150.0]"])


def test_a_clock_that_starts_hours_in_finds_the_same_hits():
    """Blocks stamped on a monotonic clock hours after boot: the first hop's gap from t = 0 must not
    underflow the reference's decay (it raised a math domain error and restarted the stage forever)."""
    x = track([0.5, 1.3], [0.8, 0.8], 2.0)
    detector, hits = OnsetDetector(RATE_HZ), []
    for start in range(0, x.size - BLOCK + 1, BLOCK):
        state = detector.push(AudioBlock(6226.0 + start / RATE_HZ, x[start:start + BLOCK], RATE_HZ))
        if state is not None and state.count > len(hits):
            hits.append(state.onset_t_s - 6226.0)
    assert [round(t, 1) for t in hits] == [0.5, 1.3]


def test_a_device_rate_detector_keeps_the_hop_length_and_ends_each_block_on_a_hop():
    import pickle

    from models.listening.onsets import DetectorFactory
    factory = pickle.loads(pickle.dumps(DetectorFactory(OnsetSettings(hop=256, window=512))))  # goes to a child
    for block, hop in ((1024, 512), (512, 512), (256, 512), (2048, 512), (128, 512)):
        detector = factory.at_device_rate(48000, block, 22050)
        assert (detector.s.hop, detector.s.window, detector.rate_hz) == (hop, 2 * hop, 48000)
    assert factory.at_device_rate(22050, 256, 22050).s.hop == 256


def test_clicks_are_found_at_the_device_rate_too():
    from models.listening.onsets import DetectorFactory
    rate_hz, block = 48000, 256
    times = [0.5, 1.13, 1.9, 2.41]
    x = np.interp(np.arange(int(3.0 * rate_hz)) / rate_hz, np.arange(int(3.0 * RATE_HZ)) / RATE_HZ,
                  track(times, [0.8] * len(times), 3.0)).astype(np.float32)
    detector = DetectorFactory(OnsetSettings()).at_device_rate(rate_hz, block, RATE_HZ)
    found = []
    for start in range(0, x.size, block):
        state = detector.push(AudioBlock(start / rate_hz, x[start:start + block], rate_hz))
        if state is not None and state.count > len(found):
            found.append((start / rate_hz, state))
    assert len(found) == len(times)
    for t_s, (pushed_s, state) in zip(times, found):
        assert abs(state.onset_t_s - t_s) <= 512 / rate_hz
        assert pushed_s - t_s <= 2 * 512 / rate_hz  # reported within a hop of landing (a hop: two blocks)


class _DetectingInput:
    """An input whose own process detects onsets, publishing while `onsets_live`."""

    def __init__(self, inner) -> None:
        self.inner, self.onsets_live, self.publish = inner, True, None
        self.name, self.sample_rate_hz = inner.name, inner.sample_rate_hz

    def detect_onsets(self, factory, publish) -> None:
        self.publish = publish

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout_s: float):
        return self.inner.read(timeout_s)

    def close(self) -> None:
        self.inner.close()


def test_the_onset_stage_detects_only_while_the_input_does_not():
    clock = ManualClock()
    x = track([0.3, 0.9], [0.8, 0.8], 1.5)
    audio = _DetectingInput(ArrayAudioInput(x, RATE_HZ, clock, BLOCK))
    onsets: Latest[OnsetState] = Latest()
    stage = OnsetStage(audio, lambda rate: OnsetDetector(rate, beats=False), onsets, AudioQueue("array"), clock)
    assert audio.publish is not None  # the input was handed the stage's publisher
    audio.publish(OnsetState(t_s=0.01, onset_t_s=0.005, count=7, silent=False))
    stage.open()
    for n in range(x.size // BLOCK + 1):
        audio.onsets_live = n * BLOCK / RATE_HZ < 0.6  # the input's detector stops (its stream was lost)
        stage.step()
        clock.advance(BLOCK / RATE_HZ)
    stage.close()
    state = onsets.peek()
    assert state is not None and state.count == 1  # the stage's own detector heard the second kick only
    assert state.onset_t_s > 0.85
