"""bench latency's measuring code on a synthetic frame log: lags, hits, false hits in silence."""
from __future__ import annotations

import numpy as np

from models.evaluation.latency import FrameLog, kick_track, score, silence_probes


def frame_log(onsets_s, lag_s: float, seconds: float, fps: float = 60.0, spikes_s=()) -> FrameLog:
    rng = np.random.default_rng(0)
    times = np.arange(0.0, seconds, 1 / fps)
    changes = 1.0 + 0.5 * rng.random(times.size)  # a slow drift between hits
    for t_s in list(np.asarray(onsets_s) + lag_s) + list(spikes_s):
        changes[np.searchsorted(times, t_s)] = 25.0
    return FrameLog(list(times), list(changes))


def test_lags_and_hit_rate_from_a_frame_log():
    onsets = np.array([1.0, 2.1, 3.5, 4.2, 5.9, 7.3])
    figures = score(frame_log(onsets, 0.030, 9.0), onsets, 0.5, 8.5)
    assert figures["onsets"] == 6 and figures["hit_rate"] == 1.0
    assert 30.0 <= figures["p50_ms"] <= 30.0 + 1e3 / 60
    assert figures["false_hit_rate"] == 0.0 and figures["silence_probes"] > 0


def test_a_frame_that_never_changes_enough_is_a_miss():
    onsets = np.array([1.0, 2.5, 4.0])
    figures = score(frame_log(onsets, 0.4, 6.0), onsets, 0.5, 5.5)  # later than the 250 ms looked at
    assert figures["hit_rate"] == 0.0 and figures["p50_ms"] is None


def test_a_change_in_silence_counts_as_a_false_hit():
    onsets = np.array([1.0, 5.0])
    probes = silence_probes(onsets, 0.5, 5.5)
    assert probes.size and all(abs(p - 1.0) >= 0.6 for p in probes if p > 1.0)
    figures = score(frame_log(onsets, 0.03, 6.0, spikes_s=[probes[len(probes) // 2] + 0.05]), onsets, 0.5, 5.5)
    assert 0.0 < figures["false_hit_rate"] < 0.5


def test_the_kick_track_is_never_periodic():
    samples, starts = kick_track(60.0, seed=3)
    gaps = np.diff(starts)
    assert samples.dtype == np.float32 and np.abs(samples).max() <= 1.0
    assert gaps.min() >= 0.4 and np.unique(np.round(gaps, 3)).size > 0.8 * gaps.size
