#!/usr/bin/env python3
"""Fit the `fitted` music valence head (models/data/valence_head.json) on labelled recordings.

  python tools/listening/fit_valence.py --labels DIR/moods/labels.csv --audio DIR/moods \\
      [--labels MORE.csv --audio MOREDIR ...] [--out models/data/valence_head.json]

Each recording with a valence label (+1 / -1) is played through the live listener (features head,
hop 0.5 s) for up to --max-s seconds from --offset-s; once the descriptor window has filled, every
hop's cue vector (models.listening.va_fitted.CUE_NAMES) is one sample, weighted so that every recording
of a set counts the same, and every set as much as another. A logistic regression (scikit-learn, L2, balanced classes) on the standardised cues
is chosen among --c values by leave-one-recording-out cross-validation on these recordings only:
each left-out recording is scored by its mean log-odds, and the AUC over recordings is reported (with
several sets, within each set, and C is chosen by their mean).
The gain maps the median recording's log-odds to valence 0.6. Never pass the evaluation set here:
its figure would no longer be held out.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from models.evaluation.listening import read_labels  # noqa: E402
from models import stats  # noqa: E402
from installation.config import ListenConfig  # noqa: E402
from installation.errors import UserError  # noqa: E402
from models.listening.va import Listener, VibenetHead, build_listener, load_audio  # noqa: E402
from models.listening.va_fitted import CUE_NAMES, DEFAULT_WEIGHTS, VIBENET_CUES, FittedValence, valence_cues  # noqa: E402

HOP_S = 0.5
MEDIAN_VALENCE = 0.6
"""The median recording of the tuning set maps to this |valence|: the fit decides the sign and order,
the gain only how far the typical recording reaches."""


def recording_cues(path: Path, offset_s: float, max_s: float, vibenet: bool = False) -> np.ndarray:
    """(hops, cues): the cue vector at every audible hop once the listener's window has filled; with
    `vibenet`, vibenet's valence and energy (its last 10 s, every 2 s, as the head runs it) appended."""
    x, rate = load_audio(path, offset_s, max_s, fit_excerpt=True)
    cfg = ListenConfig(hop_s=HOP_S)
    listener = build_listener(cfg.settings(), rate, "features", live=False)
    model = None
    if vibenet:
        model = VibenetHead(background=False)
        listener = Listener(rate, model, window_s=cfg.window_s, smoothing_s=cfg.smoothing_s,
                            silence_dbfs=cfg.silence_dbfs)
    hop = int(round(HOP_S * rate))
    settle_s = min(cfg.window_s, 0.5 * x.size / rate)
    rows = []
    for i in range(0, x.size - hop + 1, hop):
        listener.feed(x[i:i + hop])
        t_s = (i + hop) / rate
        d = listener.tracker.snapshot()
        extra: list[float] = []
        if model is not None:
            vv, ve, _ = model.predict(d, listener.recent)
            extra = [vv, ve]
        if t_s >= settle_s and not d.silent:
            rows.append(np.concatenate([valence_cues(d), extra]))
    return np.array(rows).reshape(-1, len(CUE_NAMES) + (len(VIBENET_CUES) if vibenet else 0))


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(x, sample_weight=w)
    scaler.scale_[scaler.scale_ < 1e-9] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    model.fit(scaler.transform(x), y, sample_weight=w)
    return scaler, model


def recording_scores(scaler, model, x: np.ndarray, groups: np.ndarray) -> dict[int, float]:
    z = np.clip(scaler.transform(x), -5.0, 5.0)
    logit = z @ model.coef_[0] + model.intercept_[0]
    return {int(g): float(logit[groups == g].mean()) for g in np.unique(groups)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, action="append", required=True, help="CSV with a valence column")
    parser.add_argument("--audio", type=Path, action="append", required=True, help="folder of that CSV's audio")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--offset-s", type=float, default=0.0)
    parser.add_argument("--max-s", type=float, default=150.0, help="seconds heard per recording")
    parser.add_argument("--vibenet", action="store_true",
                        help="add vibenet's valence and energy as cues (the head then runs vibenet: ~0.09 CPU s per s)")
    parser.add_argument("--cache", type=Path, help="keep the cue vectors here (.npz) and reuse them next time")
    parser.add_argument("--c", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
                        help="inverse L2 strengths to choose from by cross-validation")
    args = parser.parse_args()
    if len(args.labels) != len(args.audio):
        print("error: give one --audio folder per --labels file", file=sys.stderr)
        return 2
    try:
        labels = [(lf, lab) for lf, ad in zip(args.labels, args.audio) for lab in read_labels(lf, ad)
                  if lab.valence is not None and lab.valence != 0]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    per_set = {lf: sum(1 for f, _ in labels if f == lf) for lf, _ in labels}
    xs, ys, ws, gs, names = [], [], [], [], []
    cache: dict[str, np.ndarray] = {}
    if args.cache and args.cache.is_file():
        with np.load(args.cache) as data:
            cache = {k: data[k] for k in data.files}
    for k, (lf, lab) in enumerate(labels):
        key = f"{lab.path.resolve()}|{args.offset_s:g}|{args.max_s:g}" + ("|vibenet" if args.vibenet else "")
        if key not in cache:
            cache[key] = recording_cues(lab.path, args.offset_s, args.max_s, args.vibenet)
        cues = cache[key]
        if not len(cues):
            print(f"  {lab.id}: no audible hop, skipped", file=sys.stderr)
            continue
        xs.append(cues)
        ys.append(np.full(len(cues), int(lab.valence > 0)))
        # Every set weighs the same, every recording within a set the same; the weights add up to the
        # number of recordings, so C means what it means for one sample per recording.
        ws.append(np.full(len(cues), len(labels) / len(per_set) / per_set[lf] / len(cues)))
        gs.append(np.full(len(cues), k))
        names.append(lab.id)
        print(f"[{k + 1}/{len(labels)}] {lab.id}: {len(cues)} hops", file=sys.stderr)
    if args.cache:
        np.savez(args.cache, **cache)
    x, y, w, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), np.concatenate(gs)
    track_label = {int(gg[0]): float(2 * yy[0] - 1) for gg, yy in zip(gs, ys)}
    keys = sorted(track_label)

    # Context: each cue alone (mean over the recording), AUC over recordings.
    cue_names = CUE_NAMES + (VIBENET_CUES if args.vibenet else ())
    print("cue AUC over recordings (tuning set, each cue alone):")
    for j, name in enumerate(cue_names):
        auc = stats.auc([float(x[g == t, j].mean()) for t in keys], [track_label[t] for t in keys])
        print(f"  {name:15s} {auc:.3f}")

    # Leave one recording out, for each C; with several sets, the AUC within each set and their mean.
    set_of = {k: str(labels[k][0]) for k in keys}
    sets = sorted(set(set_of.values()))
    cv: dict[float, float] = {}
    cv_sets: dict[float, dict[str, float]] = {}
    for c in args.c:
        scores = {}
        for t in keys:
            train = g != t
            scaler, model = fit(x[train], y[train], w[train], c)
            scores.update({t: recording_scores(scaler, model, x[~train], g[~train])[t]})
        cv_sets[c] = {sname: stats.auc([scores[t] for t in keys if set_of[t] == sname],
                                          [track_label[t] for t in keys if set_of[t] == sname]) for sname in sets}
        cv[c] = float(np.mean(list(cv_sets[c].values())))
        print(f"C={c:<6g} leave-one-recording-out AUC {cv[c]:.3f}"
              + ("" if len(sets) == 1 else " (" + ", ".join(f"{Path(n).parent.name} {a:.3f}"
                                                          for n, a in cv_sets[c].items()) + ")"))
    best = max(args.c, key=lambda c: (round(cv[c], 6), -c))  # ties: the stronger penalty
    scaler, model = fit(x, y, w, best)
    fitted = recording_scores(scaler, model, x, g)
    median = float(np.median(np.abs(list(fitted.values())))) or 1.0
    gain = float(np.clip(math.atanh(MEDIAN_VALENCE) / median, 0.01, 1000.0))
    meta = {
        "fitted_by": "python tools/listening/fit_valence.py " + " ".join(
            f"--labels DIR/{lf.parent.name}/{lf.name} --audio DIR/{ad.name}" for lf, ad in zip(args.labels, args.audio))
        + (f" --offset-s {args.offset_s:g}" if args.offset_s else "") + f" --max-s {args.max_s:g}"
        + " --c " + " ".join(f"{c:g}" for c in args.c) + (" --vibenet" if args.vibenet else ""),
        "fitted_on": sorted({str(lf.parent.name) + "/" + lf.name for lf, _ in labels}),
        "recordings": len(keys), "positive": int(sum(v > 0 for v in track_label.values())),
        "hop_s": HOP_S, "offset_s": args.offset_s, "max_s": args.max_s, "c": best,
        "cv_auc_leave_one_recording_out": round(cv[best], 4),
        "cv_auc_per_set": {Path(n).parent.name: round(a, 4) for n, a in cv_sets[best].items()},
        "cv_auc_per_c": {f"{c:g}": round(a, 4) for c, a in cv.items()},
        "train_auc": round(stats.auc([fitted[t] for t in keys], [track_label[t] for t in keys]), 4),
    }
    FittedValence(scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]), gain, cue_names,
                  meta).save(args.out)
    print("weights (per standardised cue): " + ", ".join(f"{n} {c:+.3f}" for n, c in zip(cue_names, model.coef_[0])))
    print(f"chose C={best:g} (leave-one-recording-out AUC {cv[best]:.3f} on {len(keys)} recordings); "
          f"training AUC {meta['train_auc']:.3f}; gain {gain:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
