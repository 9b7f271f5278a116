#!/usr/bin/env python3
"""How projected frames follow a recording: onset correlation, onset gain, silence/drums change ratio.

    python tools/visuals/onset_figures.py RECORDING FRAMES.csv [--drums DRUMS.json] [--skip 5] [--json OUT]

FRAMES.csv has a row per frame with `audio_s` (when the frame was handed to the display, on the
recording's clock: 0 = its first sample) and `change` (mean |grey - previous grey|, every 4th
pixel): `python run.py --record DIR` writes DIR/frames.csv; tools/visuals/projectm_render.py writes
the same for projectM. Frames in the first --skip seconds (models loading, the onset stage learning
the loudness) and after the recording's end (the file source loops) are not scored.

  onset_correlation   Pearson correlation of per-frame change with the recording's onset strength
                      (librosa spectral flux, strongest value in each frame's interval), at the best
                      lag from 0 to 150 ms (the code of `bench reactivity`)
  lag_ms              that lag
  onset_gain          mean change in the 150 ms after the strongest onsets (the top quarter of
                      librosa's picked onsets, at least 8) over the mean change in the 150 ms before
  silence_to_drums    with --drums (stretches of drumming, as tools/visuals/fetch_peer_audio.py
                      writes them): mean change in the silences (from 1 s after a stretch ends to
                      the next) over mean change during the drumming
  return_ms           with --drums: for each stretch after a silence, from its first hit to the first
                      frame that changes by more than RETURN_GREY: how fast the picture moves again
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.evaluation.reactivity import best_lag_correlation, onset_envelope  # noqa: E402

MAX_LAG_S = 0.15
WINDOW_S = 0.15
TAIL_S = 1.0
"""A drum stretch rings on this long after its last hit; the silence is counted after it."""
RETURN_GREY = 1.0


def read_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(audio_s, change) of the frames with an audio time."""
    times, changes = [], []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("audio_s"):
                times.append(float(row["audio_s"]))
                changes.append(float(row["change"]))
    return np.asarray(times), np.asarray(changes)


def strongest_onsets(onset_env: np.ndarray, env_rate: float, start_s: float, end_s: float,
                     share: float = 0.25, least: int = 8) -> np.ndarray:
    """Times (s) of the strongest share of librosa's picked onsets between start_s and end_s."""
    import librosa

    # librosa's stub imports its submodules without re-exporting them
    peaks = librosa.onset.onset_detect(onset_envelope=onset_env, sr=22050,  # type: ignore[attr-defined]
                                       hop_length=int(round(22050 / env_rate)), units="frames")
    times = peaks / env_rate
    keep = (times >= start_s) & (times <= end_s)
    peaks, times = peaks[keep], times[keep]
    if times.size == 0:
        return times
    n = min(times.size, max(least, int(round(share * times.size))))
    order = np.argsort(onset_env[peaks])[::-1][:n]
    return np.sort(times[order])


def onset_gain(times_s: np.ndarray, change: np.ndarray, onsets_s: np.ndarray, window_s: float = WINDOW_S) -> float | None:
    """Mean change of the frames in (t, t + window] over that in [t - window, t), pooled over the onsets."""
    after, before = [], []
    for t in onsets_s:
        after.append(change[(times_s > t) & (times_s <= t + window_s)])
        before.append(change[(times_s >= t - window_s) & (times_s < t)])
    a, b = np.concatenate(after or [np.zeros(0)]), np.concatenate(before or [np.zeros(0)])
    if a.size == 0 or b.size == 0 or b.mean() <= 0:
        return None
    return float(a.mean() / b.mean())


def silence_to_drums(times_s: np.ndarray, change: np.ndarray, drums_s: list[tuple[float, float]],
                     start_s: float, end_s: float, tail_s: float = TAIL_S) -> float | None:
    """Mean change in the silences between drum stretches over the mean change during them."""
    during = np.zeros(times_s.size, bool)
    silent = np.zeros(times_s.size, bool)
    for i, (a, b) in enumerate(drums_s):
        during |= (times_s >= a) & (times_s < b)
        next_s = drums_s[i + 1][0] if i + 1 < len(drums_s) else end_s
        silent |= (times_s >= b + tail_s) & (times_s < next_s)
    scored = (times_s >= start_s) & (times_s <= end_s)
    during &= scored
    silent &= scored
    if not during.any() or not silent.any() or change[during].mean() <= 0:
        return None
    return float(change[silent].mean() / change[during].mean())


def return_ms(times_s: np.ndarray, change: np.ndarray, drums_s: list[tuple[float, float]],
              start_s: float, end_s: float, grey: float = RETURN_GREY) -> list[float]:
    """Per stretch after a silence (inside the scored span): ms from its start to the first frame whose
    change exceeds `grey`."""
    out = []
    for a, _ in drums_s[1:]:
        moved = times_s[(times_s >= a) & (change > grey)]
        if start_s <= a <= end_s and moved.size:
            out.append(round(float(moved[0] - a) * 1e3, 1))
    return out


def figures(recording: Path, times_s: np.ndarray, change: np.ndarray, skip_s: float = 5.0,
            drums_s: list[tuple[float, float]] | None = None) -> dict:
    """The figures of one frame sequence against one recording."""
    import soundfile as sf

    samples, rate = sf.read(str(recording), dtype="float32", always_2d=True)
    duration_s = samples.shape[0] / rate
    env, env_rate = onset_envelope(samples.mean(axis=1), rate)
    keep = (times_s >= skip_s) & (times_s <= duration_s)
    t, c = times_s[keep], change[keep]
    if t.size < 10:
        return {"frames": int(t.size), "error": "fewer than 10 frames inside the recording"}
    corr, lag_s = best_lag_correlation(c, t, env, env_rate, max_lag_s=MAX_LAG_S, min_lag_s=0.0)
    onsets = strongest_onsets(env, env_rate, skip_s + WINDOW_S, duration_s - WINDOW_S)
    gain = onset_gain(t, c, onsets)
    out = {"recording": recording.name, "frames": int(t.size), "scored_s": [round(skip_s, 2), round(duration_s, 2)],
           "fps": round(float((t.size - 1) / (t[-1] - t[0])), 1),
           "onset_correlation": round(corr, 3), "lag_ms": round(lag_s * 1e3, 1),
           "onset_gain": round(gain, 2) if gain is not None else None, "strong_onsets": int(onsets.size),
           "mean_change": round(float(c.mean()), 2)}
    if drums_s is not None:
        ratio = silence_to_drums(t, c, drums_s, skip_s, duration_s)
        out["silence_to_drums"] = round(ratio, 5) if ratio is not None else None
        out["return_ms"] = return_ms(t, c, drums_s, skip_s, duration_s)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("frames", type=Path, help="frames.csv (audio_s, change)")
    parser.add_argument("--drums", type=Path, help="drums-and-silence.json: the stretches of drumming")
    parser.add_argument("--skip", type=float, default=5.0, metavar="S", help="frames before S are not scored (default 5)")
    parser.add_argument("--label", default="", help="a name for the frame source, copied into the output")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    drums = [tuple(s) for s in json.loads(args.drums.read_text())["drums_s"]] if args.drums else None
    times, change = read_frames(args.frames)
    out = {"source": args.label or str(args.frames), **figures(args.recording, times, change, args.skip, drums)}
    text = json.dumps(out)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
