"""Rolling descriptors on signals whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from models.listening.features import FeatureTracker, sanitize


def clicks(bpm: float, seconds: float, rate: int, start_s: float = 0.0) -> np.ndarray:
    x = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(1)
    for b in np.arange(start_s, seconds, 60.0 / bpm):
        i = int(b * rate)
        n = min(int(0.03 * rate), x.size - i)
        x[i:i + n] += (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.005 * rate)) * 0.5).astype(np.float32)
    return x


def chord(freqs, seconds: float, rate: int, amp: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


def feed(tracker: FeatureTracker, x: np.ndarray, hop: int):
    snaps = []
    for i in range(0, x.size - hop + 1, hop):
        tracker.push(x[i:i + hop])
        snaps.append(tracker.snapshot())
    return snaps


@pytest.mark.parametrize("bpm", [90.0, 128.0])
def test_tempo_of_a_click_track(bpm):
    tr = FeatureTracker(22050)
    d = feed(tr, clicks(bpm, 8.0, 22050), 2205)[-1]
    assert d.tempo_bpm == pytest.approx(bpm, rel=0.04)
    assert d.beat_confidence > 0.3 and d.onset_rate_hz == pytest.approx(bpm / 60, rel=0.3)


def test_tempo_follows_a_change_within_one_window():
    rate = 22050
    x = np.concatenate([clicks(90, 8.0, rate), clicks(140, 10.0, rate)])
    snaps = feed(FeatureTracker(rate, window_s=6.0), x, 2205)
    assert snaps[70].tempo_bpm == pytest.approx(90, rel=0.05)
    assert snaps[-1].tempo_bpm == pytest.approx(140, rel=0.05)


def test_beat_phase_advances_with_the_beat():
    rate = 22050
    hop = 2205  # 0.1 s; at 120 BPM a beat is 0.5 s, so the phase steps by ~0.2 a hop
    snaps = feed(FeatureTracker(rate), clicks(120, 8.0, rate), hop)[-10:]
    steps = [(b.beat_phase - a.beat_phase) % 1.0 for a, b in zip(snaps, snaps[1:])]
    assert np.median(steps) == pytest.approx(0.2, abs=0.06)


def test_key_and_mode_of_major_and_minor_triads():
    rate = 22050
    # Cadences, not bare triads: a lone triad is as much in its relative key as in its own.
    c_major = np.concatenate([chord(c, 1.0, rate) for c in ((261.63, 329.63, 392.0), (349.23, 440.0, 523.25),
                                                            (392.0, 493.88, 587.33), (261.63, 329.63, 392.0))])
    a_minor = np.concatenate([chord(c, 1.0, rate) for c in ((220.0, 261.63, 329.63), (293.66, 349.23, 440.0),
                                                            (329.63, 415.3, 493.88), (220.0, 261.63, 329.63))])
    d1 = feed(FeatureTracker(rate), c_major, 4410)[-1]
    d2 = feed(FeatureTracker(rate), a_minor, 4410)[-1]
    assert (d1.key, d1.mode) == ("C", "major") and d1.mode_strength > 0
    assert (d2.key, d2.mode) == ("A", "minor") and d2.mode_strength < 0
    assert d1.key_confidence > 0.2 and d1.harmonic_ratio > 0.8


def test_loudness_of_a_full_scale_sine_and_silence():
    rate = 48000
    t = np.arange(2 * rate) / rate
    tone = np.sin(2 * np.pi * 997 * t).astype(np.float32) * 0.999
    d = feed(FeatureTracker(rate), tone, 4800)[-1]
    assert d.loudness_dbfs == pytest.approx(0.0, abs=0.3)
    assert d.loudness_lufs == pytest.approx(-3.0, abs=0.7)  # BS.1770: a 997 Hz full-scale sine is -3.01 LUFS
    assert not d.silent and d.band_mid > 0.9
    quiet = feed(FeatureTracker(rate), np.zeros(rate, np.float32), 4800)[-1]
    assert quiet.silent and quiet.loudness_dbfs == -120.0


def test_brightness_and_bands_order_dark_and_bright_sounds():
    rate = 22050
    dark = feed(FeatureTracker(rate), chord((80.0, 120.0), 2.0, rate), 2205)[-1]
    bright = feed(FeatureTracker(rate), chord((3000.0, 6000.0), 2.0, rate), 2205)[-1]
    assert dark.band_low > 0.9 and bright.band_high > 0.4
    assert bright.centroid_hz > 10 * dark.centroid_hz and bright.brightness > dark.brightness


def test_percussive_clicks_have_a_lower_harmonic_ratio_than_a_chord():
    rate = 22050
    drums = feed(FeatureTracker(rate), clicks(160, 4.0, rate), 2205)[-1]
    organ = feed(FeatureTracker(rate), chord((220.0, 330.0), 4.0, rate), 2205)[-1]
    assert drums.harmonic_ratio < 0.5 < organ.harmonic_ratio


def test_novelty_marks_one_section_change():
    rate = 22050
    x = np.concatenate([chord((220.0, 261.63, 329.63), 8.0, rate, 0.05),
                        clicks(150, 8.0, rate) + chord((523.0, 659.0), 8.0, rate, 0.2)])
    snaps = feed(FeatureTracker(rate), x, 2205)
    changes = [i for i, d in enumerate(snaps) if d.section_change]
    assert len(changes) == 1 and 80 <= changes[0] <= 95  # the switch is at hop 80
    assert max(d.novelty for d in snaps[85:95]) > max(d.novelty for d in snaps[60:78])


@pytest.mark.parametrize("rate", [8000, 96000])
def test_other_rates_give_the_same_tempo(rate):
    d = feed(FeatureTracker(rate), clicks(120, 8.0, rate), rate // 10)[-1]
    assert d.tempo_bpm == pytest.approx(120, rel=0.04)


def test_nan_inf_and_clipping_are_counted_and_ignored():
    x = np.array([0.1, np.nan, np.inf, -np.inf, 1.5, -2.0, 0.2], np.float32)
    clean, bad, clipped = sanitize(x)
    assert bad == 3 and clipped == 2
    assert clean.tolist() == pytest.approx([0.1, 0.0, 0.0, 0.0, 1.0, -1.0, 0.2])
    tr = FeatureTracker(22050)
    noisy = chord((440.0,), 3.0, 22050)
    noisy[::100] = np.nan
    d = feed(tr, noisy, 2205)[-1]
    assert tr.bad_samples == noisy.size // 100 + (1 if noisy.size % 100 else 0)
    values = [v for v in d.vector()] + [d.loudness_dbfs, d.novelty, d.beat_phase]
    assert all(np.isfinite(values))
