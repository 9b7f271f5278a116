"""How tightly the picture follows the music's onsets (`bench reactivity`, tools/visuals/onset_figures.py):
the recording's onset envelope and the best-lag correlation of the frames' change against it."""
from __future__ import annotations


MAX_LAG_S = 0.1


def onset_envelope(samples, rate: int):
    """The recording's onset strength (librosa spectral flux) at ~86 Hz."""
    import librosa
    import numpy as np

    hop = 256
    y = samples if rate == 22050 else librosa.resample(samples, orig_sr=rate, target_sr=22050)
    # librosa's stub imports its submodules without re-exporting them
    env = librosa.onset.onset_strength(y=y, sr=22050, hop_length=hop)  # type: ignore[attr-defined]
    return np.asarray(env, dtype=np.float64), 22050 / hop


def best_lag_correlation(change, frame_times, onset_env, env_rate: float, max_lag_s: float = MAX_LAG_S,
                         min_lag_s: float | None = None):
    """(correlation, lag_s): the frame changes against the strongest onset inside each frame's interval,
    the onsets shifted later by lag_s (a frame reacting lag_s after the sound), best over lags from
    min_lag_s (default -max_lag_s) to max_lag_s."""
    import numpy as np

    times = np.asarray(frame_times, dtype=np.float64)
    width = max(1, int(round(env_rate * float(np.median(np.diff(times))))))
    padded = np.concatenate([np.zeros(width - 1), onset_env])
    trailing_max = np.lib.stride_tricks.sliding_window_view(padded, width).max(axis=1)
    best = (-1.0, 0.0)
    n_lags = int(round(max_lag_s * env_rate))
    first = -n_lags if min_lag_s is None else int(round(min_lag_s * env_rate))
    for i in range(first, n_lags + 1):
        lag_s = i / env_rate
        idx = np.clip(((times - lag_s) * env_rate).astype(int), 0, onset_env.size - 1)
        c = _pearson(change[1:], trailing_max[idx][1:])
        if c > best[0]:
            best = (c, lag_s)
    return best


def _pearson(a, b) -> float:
    import numpy as np

    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0
