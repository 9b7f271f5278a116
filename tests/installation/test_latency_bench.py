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


def test_each_kick_is_split_into_detection_and_the_wait_for_a_frame_and_misses_are_told_apart():
    from models.evaluation.latency import OnsetLog, detection_figures
    onsets = np.array([1.0, 2.1, 3.5, 4.2])
    frames = frame_log(onsets[:3], 0.030, 6.0)  # the fourth kick is detected but never shown
    log = OnsetLog()
    for t_s in np.arange(0.0, 6.0, 0.01):  # a state every 10 ms; the second kick is never detected
        count = int(np.sum(onsets[[0, 2, 3]] + 0.012 <= t_s))
        log.arrived_s.append(float(t_s))
        log.counts.append(count)
        log.onsets_s.append(float(onsets[[0, 2, 3]][count - 1] - 0.004) if count else -1e9)
    figures = detection_figures(log, frames, onsets, 0.5, 5.5)
    assert figures["detected"] == 3 and figures["missed_not_detected"] == 1
    assert figures["missed_detected_no_frame"] == 1
    assert 12.0 <= figures["detect_ms_p50"] <= 22.0 and figures["onset_dated_ms_p50"] == -4.0
    assert 0.0 <= figures["detect_to_photon_ms_p50"] <= 30.0
