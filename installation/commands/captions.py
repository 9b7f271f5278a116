"""Caption sub-commands: `bench captions` (figures) and `caption` (what the agents say for a VA point)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from installation.commands.shared import scene_named, write_json
from installation.errors import UserError


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()

    bench = groups["bench"].add_parser(
        "captions", parents=[common],
        help="caption latency, lexicon agreement over a VA sweep, and a simulated 10-minute show")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--scene", default=None, help="scene preset (default: installation.scene)")
    bench.add_argument("--duration", type=float, default=600.0, metavar="S", help="simulated show length (default 600 s)")
    bench.add_argument("--steps", type=int, default=9, help="VA sweep grid size per axis (default 9: 81 points)")
    bench.add_argument("--captions", type=int, default=1000, help="captions timed for the latency figure (default 1000)")
    bench.add_argument("--seed", type=int, default=0)
    bench.set_defaults(handler=_bench)

    ev = groups["eval"].add_parser(
        "captions", parents=[common],
        help="caption_only, single_agent and agents over the same music (a simulated show and recordings), side by side")
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    ev.add_argument("--audio", type=Path, nargs="*", default=[], metavar="PATH",
                    help="recordings (files or folders) played one after another through the listener")
    ev.add_argument("--excerpt-s", type=float, default=40.0, help="seconds taken from each recording (default 40)")
    ev.add_argument("--duration", type=float, default=1800.0, metavar="S", help="simulated show length (default 1800 s)")
    ev.add_argument("--scene", default=None, help="scene preset (default: installation.scene)")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(handler=_eval)

    show = sub.add_parser("caption", parents=[common],
                          help="print the caption, reasons and renderer hints the agents give a music state")
    show.add_argument("--valence", type=float, required=True, help="music valence in -1..1")
    show.add_argument("--arousal", type=float, required=True, help="music arousal in -1..1")
    show.add_argument("--scene", default=None, help="scene preset (default: installation.scene)")
    show.add_argument("--mode", choices=("major", "minor"), default=None, help="key mode (default: from valence)")
    show.add_argument("--tempo", type=float, default=None, metavar="BPM", help="tempo (default: from arousal)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_caption)


def _caption(args: argparse.Namespace) -> int:
    from installation.startup import load
    from models.evaluation.caption_bench import sweep_state
    from models.captions.describe import describe
    from models.captions.director import Director, caption_record
    for name in ("valence", "arousal"):
        if not -1.0 <= getattr(args, name) <= 1.0:
            raise UserError(f"--{name} {getattr(args, name)} is outside -1..1; give a value between -1 and 1.")
    cfg = load(args)
    state = sweep_state(args.valence, args.arousal)
    changes = {}
    if args.mode:
        changes["mode"] = args.mode
    if args.tempo:
        changes["tempo_bpm"] = args.tempo
    if changes:
        import dataclasses
        state = dataclasses.replace(state, **changes)
    caption = Director(cfg.captions.settings(), scene_named(cfg, args.scene)).update(state, 0.0)
    assert caption is not None, "a new director captions the first state it hears"
    if args.json:
        print(json.dumps({"music": describe(state).text, **caption_record(caption)}, indent=1))
        return 0
    print(f"music:    {describe(state).text}")
    print(f"prompt:   {caption.prompt}")
    print(f"negative: {caption.negative_prompt}")
    for facet, reason in caption.reasons.items():
        print(f"  {facet:12s} {reason}")
    print(f"hints:    {dict(caption.hints)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from installation.startup import load
    from models.evaluation.caption_bench import latency_bench, lexicon_sweep, simulated_run
    if args.steps < 3:
        raise UserError(f"--steps {args.steps} is too small for a correlation; use 3 or more.")
    if args.duration < 60:
        raise UserError(f"--duration {args.duration} is too short for a show; use 60 s or more.")
    cfg = load(args)
    scene = scene_named(cfg, args.scene)
    start = time.perf_counter()
    latency = latency_bench(cfg.captions.settings(), scene, captions=max(10, args.captions), seed=args.seed)
    sweep = lexicon_sweep(cfg.captions.settings(), scene, steps=args.steps, seed=args.seed)
    show = simulated_run(cfg.captions.settings(), scene, duration_s=args.duration, seed=args.seed)
    figures = {
        "latency_ms_p95": latency["p95"], "latency_ms": latency, "lexicon_spearman": round(sweep["spearman"], 4),
        "lexicon_spearman_vs_arousal": round(sweep["spearman_vs_arousal"], 4), "sweep_points": sweep["points"],
        "show": show, "sweep": sweep["rows"], "scene": scene.name, "seed": args.seed,
        "bench_s": round(time.perf_counter() - start, 2),
    }
    print(f"scene {scene.name}, seed {args.seed}")
    print(f"caption latency over {latency['n']} captions: p50 {latency['p50']:.3f} ms, p95 {latency['p95']:.3f} ms, "
          f"max {latency['max']:.3f} ms (CPU time p95 {latency['cpu_p95']:.3f} ms)")
    print(f"lexicon (vaderSentiment) Spearman vs music valence over {sweep['points']} VA points: "
          f"{sweep['spearman']:.3f} (vs arousal {sweep['spearman_vs_arousal']:.3f})")
    hold = show["hold_s"]
    print(f"simulated {show['duration_s'] / 60:.0f}-minute show: {show['captions']} captions, "
          f"{show['changes_per_minute']:.2f} changes/min, hold min {hold['min']:.1f} s, median {hold['median']:.1f} s, "
          f"max {hold['max']:.1f} s; reasons {show['reasons']}")
    print(f"  section changes followed by a new caption: {show['section_changes_followed']}/{show['section_changes']}; "
          f"facet repeats within 5 captions: {show['repeats_within_5']}; longest prompt {show['max_tokens']} CLIP tokens; "
          f"update() p95 {show['update_ms']['p95']:.3f} ms")
    if args.json:
        write_json(args.json, figures, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from models.evaluation.listening import AUDIO_SUFFIXES
    from installation.startup import load
    from models.evaluation.caption_bench import synthetic_show
    from models.evaluation.captions import ablation, music_states
    if args.duration < 60:
        raise UserError(f"--duration {args.duration} is too short for a show; use 60 s or more.")
    cfg = load(args)
    scene = scene_named(cfg, args.scene)
    files = []
    for p in args.audio:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p} is neither an audio file nor a folder; give recordings to --audio.")
    start = time.perf_counter()
    _, stream = synthetic_show(args.duration, cfg.listen.hop_s, args.seed)
    sets = {"simulated_show": list(stream)}
    if files:
        sets["recordings"] = music_states(files, cfg.listen.settings(), args.excerpt_s)
    figures: dict = {"scene": scene.name, "seed": args.seed, "recordings": [str(f) for f in files]}
    for name, states in sets.items():
        figures[name] = ablation(cfg.captions.settings(), scene, states, seed=args.seed)
        minutes = (states[-1].t_s - states[0].t_s) / 60.0
        print(f"{name} ({minutes:.0f} min):")
        columns = {"captions": "captions", "distinct_prompts": "distinct", "top_phrase_share": "top phrase",
                   "top_scene_share": "top scene", "coherence": "coherence", "valence_agreement": "V vader",
                   "valence_agreement_fair": "V vader fair", "valence_agreement_afinn": "V afinn fair",
                   "arousal_agreement": "A words", "arousal_agreement_fair": "A words fair",
                   "changes_per_minute": "changes/min", "hold_s_median": "median hold", "repeats_within_5": "repeats<5",
                   "revised_share": "revised"}
        print(f"  {'mode':13s}" + "".join(f"{label:>13s}" for label in columns.values()))
        for mode, row in figures[name].items():
            print(f"  {mode:13s}" + "".join(f"{row[k]:>13}" for k in columns))
    figures["eval_s"] = round(time.perf_counter() - start, 1)
    if args.json:
        write_json(args.json, figures, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
