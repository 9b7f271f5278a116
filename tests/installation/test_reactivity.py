"""bench reactivity: the correlation figures on known signals, and a short run on a rendered drum loop."""
from __future__ import annotations

import json

import numpy as np

from models.evaluation.reactivity import best_lag_correlation


def test_best_lag_finds_a_delayed_copy_and_a_shift_breaks_it():
    rng = np.random.default_rng(1)
    env_rate, fps = 86.0, 30.0
    env = np.zeros(int(20 * env_rate))
    hits = rng.choice(env.size - 20, 40, replace=False)
    env[hits] = rng.uniform(0.5, 1.0, hits.size)
    times = np.arange(int(20 * fps)) / fps
    # frames that change 60 ms after each onset
    change = np.zeros(times.size)
    for h in hits:
        k = int(np.ceil((h / env_rate + 0.06) * fps))
        if k < change.size:
            change[k] += env[h]
    corr, lag_s = best_lag_correlation(change, times, env, env_rate)
    assert corr > 0.8 and 0.03 <= lag_s <= 0.1
    shifted, _ = best_lag_correlation(change, times, np.roll(env, 400), env_rate)
    assert shifted < 0.3


def test_bench_reactivity_runs_on_a_drum_loop(tmp_path):
    import soundfile as sf

    from installation.cli import main

    rate = 22050
    t = np.arange(int(12 * rate)) / rate
    rng = np.random.default_rng(0)
    audio = 0.05 * np.sin(2 * np.pi * 110 * t)
    for onset in np.arange(0.25, 12, 0.5) + rng.uniform(-0.05, 0.05, 24):   # a kick every half second
        i = int(onset * rate)
        n = min(2000, audio.size - i)
        audio[i:i + n] += 0.8 * np.exp(-np.arange(n) / 300) * rng.standard_normal(n)
    path = tmp_path / "loop.wav"
    sf.write(path, audio.astype(np.float32), rate)
    out = tmp_path / "r.json"
    code = main(["bench", "reactivity", "--audio", str(path), "--offset", "0", "--seconds", "12", "--width", "320",
                 "--height", "180", "--draws", "20", "--json", str(out), "--set", "listen.hop_s=0.025"])
    assert code == 0
    figures = json.loads(out.read_text())
    for key in ("onset_correlation", "shuffled_p95", "lag_ms", "laplacian_var_median"):
        assert key in figures
    assert figures["onset_correlation"] > figures["shuffled_p95"]
    assert abs(figures["lag_ms"]) <= 100
