"""Listening sub-commands: `analyze` (audio files), `bench listen`, `eval music-va`, `train music-va`."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from installation.errors import UserError
from models.evaluation.listening import (paced_latencies_ms, pair_accuracy, reaction_time, read_labels,
                                         synthetic_music)
from models.stats import auc, rank_correlation


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()
    heads = ("features", "vibenet", "learned", "blend", "fitted")

    bench = groups["bench"].add_parser("listen", parents=[common],
                                       help="CPU cost per head, update latency and reaction time of the listener")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--heads", nargs="+", choices=heads, default=["features", "vibenet", "blend"],
                       help="heads to time (default: features vibenet blend)")
    bench.add_argument("--calm", type=Path, metavar="FILE", help="calm recording for the reaction test")
    bench.add_argument("--energetic", type=Path, metavar="FILE", help="energetic recording for the reaction test")
    bench.add_argument("--seconds", type=float, default=30.0, help="seconds of audio per head for the CPU figure")
    bench.add_argument("--latency-seconds", type=float, default=10.0,
                       help="seconds of real-time paced input per head for the latency figure")
    bench.set_defaults(handler=_bench)

    hold = groups["bench"].add_parser(
        "valence-hold", parents=[common],
        help="a show stitched from labelled recordings: how steady valence is within a section, and "
             "whether valence and captions follow each section change")
    hold.add_argument("--labels", type=Path, required=True, metavar="FILE", help="CSV with a valence column (+1/-1)")
    hold.add_argument("--audio", type=Path, required=True, metavar="DIR", help="folder holding the recordings")
    hold.add_argument("--sections", type=int, default=12, help="sections in the show (default 12: 11 changes)")
    hold.add_argument("--seed", type=int, default=0)
    hold.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    hold.set_defaults(handler=_bench_hold)

    ev = groups["eval"].add_parser("music-va", parents=[common],
                                   help="Spearman and quadrant AUC per axis against labels, every head side by side")
    ev.add_argument("--labels", type=Path, required=True, metavar="FILE",
                    help="CSV: id (file name without extension, or a path under --audio), valence, arousal; "
                         "blank = not labelled; optional 'pair' column groups versions of one piece")
    ev.add_argument("--audio", type=Path, required=True, metavar="DIR", help="folder holding the audio files")
    ev.add_argument("--head", action="append", choices=heads, metavar="NAME",
                    help="head to evaluate (repeatable; default: features, vibenet, blend, and learned if configured)")
    ev.add_argument("--excerpt-s", type=float, default=60.0, help="seconds analysed per file (0 = whole file)")
    ev.add_argument("--offset-s", type=float, default=0.0, help="skip this many seconds at the start of each file")
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the table and per-file predictions as JSON")
    ev.set_defaults(handler=_eval)

    tr = groups["train"].add_parser("music-va", parents=[common],
                                    help="fit the learned music VA head on your annotated music")
    tr.add_argument("--annotations", type=Path, required=True, metavar="FILE",
                    help="DEAM-style CSV: song id, valence, arousal (any scale; 1-9 is mapped to [-1, 1])")
    tr.add_argument("--audio", type=Path, required=True, metavar="DIR", help="folder holding the songs")
    tr.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write head.npz")
    tr.add_argument("--excerpt-s", type=float, default=60.0, help="seconds analysed per song (0 = whole song)")
    tr.add_argument("--ridge", type=float, default=1.0, help="L2 penalty of the regression")
    tr.set_defaults(handler=_train)


# --- analyze ---------------------------------------------------------------------------------
def analyze_audio(paths: list[Path], as_json: bool, cfg) -> int:
    """`run.py analyze FILE...`: the live listener over each file; a table or JSON on stdout."""
    from models.listening.va import analyze_file
    results = []
    failed = 0
    for path in paths:
        try:
            results.append(analyze_file(path, cfg.listen.settings()))
        except UserError as exc:
            if len(paths) == 1:
                raise
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    if as_json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        print(f"{'file':40s} {'dur_s':>7s} {'valence':>8s} {'arousal':>8s} {'tempo':>6s} {'key':>9s} {'LUFS':>6s}")
        for r in results:
            print(f"{Path(r.path).name[:40]:40s} {r.duration_s:7.1f} {r.valence:8.2f} {r.arousal:8.2f} "
                  f"{r.tempo_bpm:6.1f} {r.key + ' ' + r.mode:>9s} {r.loudness_lufs:6.1f}")
            curve = " ".join(f"{a:+.1f}" for _, _, a in r.curve[::max(1, len(r.curve) // 16)])
            print(f"  arousal curve: {curve}")
        print(f"head: {cfg.listen.va_head}")
    return 2 if failed else 0


# --- eval ------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from installation.startup import load
    from models.listening.va import analyze_signal, build_listener, load_audio
    cfg = load(args)
    labels = read_labels(args.labels, args.audio)
    heads = args.head or (["features", "vibenet", "blend"] + (["learned"] if cfg.listen.learned_head else []))
    for h in heads:
        build_listener(cfg.listen.settings(), 22050, h)  # fail fast (e.g. no learned head) before the long run
    duration = args.excerpt_s or None
    preds: dict[str, list[tuple[float, float]]] = {h: [] for h in heads}
    cpu_s = {h: 0.0 for h in heads}
    audio_s = 0.0
    seen: dict[Path, dict[str, tuple[float, float]]] = {}  # a file listed in several pairs is analysed once
    for k, lab in enumerate(labels):
        if lab.path not in seen:
            samples, rate = load_audio(lab.path, args.offset_s, duration, fit_excerpt=True)
            audio_s += samples.size / rate
            seen[lab.path] = {}
            for h in heads:
                t0 = time.process_time()
                a = analyze_signal(samples, rate, cfg.listen.settings(), h, path=str(lab.path))
                cpu_s[h] += time.process_time() - t0
                seen[lab.path][h] = (a.valence, a.arousal)
        for h in heads:
            preds[h].append(seen[lab.path][h])
        print(f"[{k + 1}/{len(labels)}] {lab.id}: " + "  ".join(
            f"{h} v={preds[h][-1][0]:+.2f} a={preds[h][-1][1]:+.2f}" for h in heads), file=sys.stderr)
    table = {}
    for h in heads:
        row = {}
        for axis, i in (("valence", 0), ("arousal", 1)):
            sel = [(p[i], getattr(l, axis), l.pair) for p, l in zip(preds[h], labels) if getattr(l, axis) is not None]
            p_ = [s[0] for s in sel]
            l_ = [s[1] for s in sel]
            row[f"{axis}_spearman"] = rank_correlation(p_, l_)
            row[f"{axis}_auc"] = auc(p_, l_)
            acc, n = pair_accuracy(p_, l_, [s[2] for s in sel])
            row[f"{axis}_pair_accuracy"] = acc
            row[f"{axis}_pairs"] = n
            row[f"{axis}_n"] = len(sel)
        row["rtf"] = cpu_s[h] / max(audio_s, 1e-9)
        table[h] = row
    cols = ["valence_spearman", "valence_auc", "arousal_spearman", "arousal_auc", "arousal_pair_accuracy", "rtf"]
    print(f"{'head':10s} " + " ".join(f"{c:>22s}" for c in cols))
    for h, row in table.items():
        print(f"{h:10s} " + " ".join(f"{row[c]:22.3f}" for c in cols))
    print(f"files: {len(labels)}; valence-labelled: {table[heads[0]]['valence_n']}; arousal-labelled: "
          f"{table[heads[0]]['arousal_n']}; arousal pairs: {table[heads[0]]['arousal_pairs']}")
    if args.json:
        clean = {h: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                 for h, row in table.items()}
        args.json.write_text(json.dumps({"table": clean, "files": [
            {"id": l.id, "valence": l.valence, "arousal": l.arousal, "pair": l.pair,
             **{h: list(preds[h][i]) for h in heads}} for i, l in enumerate(labels)]}, indent=1))
    return 0


# --- train -----------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    import numpy as np

    from installation.startup import load
    from models.listening.va import LearnedHead, analyze_file
    cfg = load(args)
    labels = [l for l in read_labels(args.annotations, args.audio) if l.valence is not None and l.arousal is not None]
    if len(labels) < 4:
        raise UserError(f"{args.annotations} has {len(labels)} songs with both valence and arousal; "
                        f"label at least 4 (tens are better) and train again.")
    xs, ys = [], []
    for k, lab in enumerate(labels):
        a = analyze_file(lab.path, cfg.listen.settings(), head="features", duration_s=args.excerpt_s or None)
        xs.append(a.descriptors)
        ys.append((lab.valence, lab.arousal))
        print(f"[{k + 1}/{len(labels)}] {lab.id}", file=sys.stderr)
    head = LearnedHead.fit(np.array(xs), np.array(ys), ridge=args.ridge)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    fitted = np.array([np.clip(head.coef @ ((x - head.mean) / head.scale) + head.intercept, -1, 1) for x in xs])
    err = np.sqrt(((fitted - np.array(ys)) ** 2).mean(axis=0))
    print(f"wrote {args.out}: {len(labels)} songs, training RMSE valence {err[0]:.3f}, arousal {err[1]:.3f}; "
          f"use it with --set listen.va_head=\"learned\" --set listen.learned_head=\"{args.out}\"")
    return 0


# --- bench -----------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    import numpy as np

    from installation.startup import load
    from models.listening.va import build_listener, load_audio
    cfg = load(args)
    rate = 44100
    if args.calm and args.energetic:
        calm, r1 = load_audio(args.calm, 30.0, 20.0)
        energetic, r2 = load_audio(args.energetic, 30.0, 20.0)
        import soxr
        calm, energetic = soxr.resample(calm, r1, rate), soxr.resample(energetic, r2, rate)
        source = f"{args.calm.name} -> {args.energetic.name}"
    else:
        calm, energetic = synthetic_music(20.0, rate, False), synthetic_music(20.0, rate, True)
        source = "synthetic calm -> energetic"
    hop = int(cfg.listen.hop_s * rate)
    result: dict = {"rtf": {}, "latency_ms_p95": {}, "latency_ms_p50": {}, "reaction_s": {},
                    "hop_s": cfg.listen.hop_s, "smoothing_s": cfg.listen.smoothing_s, "source": source,
                    "default_head": cfg.listen.va_head}
    signal = np.concatenate([calm, energetic])
    for head in args.heads:
        # CPU per second of audio: every model run counted, as fast as the machine goes.
        lst = build_listener(cfg.listen.settings(), rate, head, live=False)
        lst.feed(np.zeros(hop, np.float32))
        lst.state(0.0)  # first call pays one-off set-up (numba, model warm-up)
        sig = np.tile(signal, int(math.ceil(args.seconds * rate / signal.size)))[:int(args.seconds * rate)]
        cpu0 = time.process_time()
        for i in range(0, sig.size - hop + 1, hop):
            lst.feed(sig[i:i + hop])
            lst.state((i + hop) / rate)
        result["rtf"][head] = round((time.process_time() - cpu0) / (sig.size / rate), 4)
        # Latency: the live listener (model heads on their helper thread), blocks paced in real time.
        latencies = paced_latencies_ms(build_listener(cfg.listen.settings(), rate, head, live=True), signal, rate, hop,
                                       args.latency_seconds)
        result["latency_ms_p95"][head] = round(float(np.percentile(latencies, 95)), 2)
        result["latency_ms_p50"][head] = round(float(np.percentile(latencies, 50)), 2)
        result["reaction_s"][head] = reaction_time(build_listener(cfg.listen.settings(), rate, head, live=False), calm,
                                                   energetic, rate, cfg.listen.hop_s)
        print(f"{head:9s} rtf {result['rtf'][head]:.4f}  latency p95 {result['latency_ms_p95'][head]:.1f} ms  "
              f"reaction {result['reaction_s'][head]} s", file=sys.stderr)
    # The headline figures are the default head's; per-head figures stay alongside.
    main_head = cfg.listen.va_head if cfg.listen.va_head in args.heads else args.heads[0]
    result["latency_ms_p95_per_head"] = result["latency_ms_p95"]
    result["reaction_s_per_head"] = result["reaction_s"]
    result["latency_ms_p95"] = result["latency_ms_p95_per_head"][main_head]
    result["reaction_s"] = result["reaction_s_per_head"][main_head]
    result["head"] = main_head
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


# --- bench valence-hold ----------------------------------------------------------------------
STEADY_AFTER_S = 10.0
"""A section counts as steady from this long after its boundary (the re-estimation has settled)."""


def valence_hold_show(labels: list, audio_dir: Path, sections: int, seed: int, rate_hz: int = 22050):
    """Sections of 20-70 s cut from recordings whose valence labels alternate in sign; returns the
    samples and [(start_s, label, song_id)]."""
    import random

    import numpy as np
    import soxr

    from models.listening.va import load_audio
    rng = random.Random(seed)
    pos = [l for l in labels if l.valence is not None and l.valence > 0]
    neg = [l for l in labels if l.valence is not None and l.valence < 0]
    if not pos or not neg:
        raise UserError("--labels needs recordings labelled positive and negative valence for a show.")
    rng.shuffle(pos)
    rng.shuffle(neg)
    parts, plan, t = [], [], 0.0
    for i in range(sections):
        pool = pos if i % 2 == 0 else neg
        label = pool[(i // 2) % len(pool)]
        length = rng.uniform(20.0, 70.0)
        x, rate = load_audio(label.path, 20.0, length, fit_excerpt=True)
        if rate != rate_hz:
            x = soxr.resample(x, rate, rate_hz)
        x = x / max(1e-6, float(np.percentile(np.abs(x), 99.5))) * 0.5  # similar level, as a live mix would
        parts.append(np.clip(x, -1, 1).astype(np.float32))
        plan.append((t, label.valence, label.id))
        t += x.size / rate_hz
    return np.concatenate(parts), plan


def _bench_hold(args: argparse.Namespace) -> int:
    import numpy as np

    from installation.startup import load
    from models.captions.director import Director
    from models.listening.va import build_listener
    from scenes.scene import load_scene
    cfg = load(args)
    labels = read_labels(args.labels, args.audio)
    if args.sections < 2:
        raise UserError(f"--sections {args.sections} gives no section change; use 2 or more.")
    rate = 22050
    x, plan = valence_hold_show(labels, args.audio, args.sections, args.seed, rate)
    listener = build_listener(cfg.listen.settings(), rate, live=False)
    director = Director(cfg.captions.settings(), load_scene(cfg.installation.scene), seed=args.seed)
    hop = int(round(cfg.listen.hop_s * rate))
    times: list[float] = []
    held_v: list[float] = []
    short_v: list[float] = []
    captions: list[float] = []
    for i in range(0, x.size - hop + 1, hop):
        listener.feed(x[i:i + hop])
        t_s = (i + hop) / rate
        s = listener.state(t_s)
        times.append(t_s)
        held_v.append(s.valence)
        short_v.append(s.valence_short)
        if director.update(s, t_s) is not None:
            captions.append(t_s)
    director.close()
    t, held, short = np.array(times), np.array(held_v), np.array(short_v)
    hop_s = cfg.listen.hop_s
    bounds = [p[0] for p in plan] + [t[-1] + hop_s]
    steady = np.zeros(t.size, dtype=np.bool_)
    for a, b in zip(bounds, bounds[1:]):
        steady |= (t >= a + STEADY_AFTER_S) & (t < b)
    steady[1:] &= steady[:-1]
    rate_held = np.abs(np.diff(held)) / hop_s
    rate_short = np.abs(np.diff(short)) / hop_s
    mask = steady[1:]
    followed_va, followed_caption, rows = 0, 0, []
    for k in range(1, len(plan)):
        b, end = bounds[k], bounds[k + 1]
        before = held[(t >= b - 3.0) & (t < b)]
        after_short = short[(t >= b + 3.0) & (t < end)]
        later = held[(t >= b + STEADY_AFTER_S) & (t < end)]
        target = float(np.median(after_short)) if after_short.size else 0.0
        start = float(before.mean()) if before.size else 0.0
        reached = float(later.mean()) if later.size else float(held[t < end][-1])
        moved = abs(target - start) < 0.1 or (reached - start) * (target - start) >= 0.5 * (target - start) ** 2
        caption = any(b <= c <= b + 1.5 + cfg.captions.min_hold_s + 3.0 for c in captions)
        followed_va += moved
        followed_caption += caption
        rows.append({"at_s": round(b, 1), "to": plan[k][2], "label": plan[k][1], "held_before": round(start, 3),
                     "short_median_after": round(target, 3), "held_after": round(reached, 3), "valence_followed": bool(moved),
                     "caption_within_s": bool(caption)})
    if not mask.any():
        raise UserError(f"no section lasted {STEADY_AFTER_S:.0f} s past its boundary; give recordings of 30 s or more.")
    figures = {
        "sections": len(plan), "section_changes": len(plan) - 1, "duration_s": round(float(t[-1]), 1),
        "steady_p95_valence_change_per_s": round(float(np.percentile(rate_held[mask], 95)), 4),
        "steady_p95_short_valence_change_per_s": round(float(np.percentile(rate_short[mask], 95)), 4),
        "valence_followed": followed_va, "captions_followed": followed_caption,
        "detected_section_changes": listener.section_valence.changes, "changes": rows,
    }
    print(f"{len(plan)} sections over {t[-1]:.0f} s from {args.audio}")
    print(f"steady sections: p95 valence change {figures['steady_p95_valence_change_per_s']:.3f}/s "
          f"(short-term valence {figures['steady_p95_short_valence_change_per_s']:.3f}/s)")
    print(f"section changes followed: valence {followed_va}/{len(plan) - 1}, captions {followed_caption}/{len(plan) - 1}; "
          f"novelty flagged {listener.section_valence.changes}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0
