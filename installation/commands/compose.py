"""Camera-to-music commands: `compose`, `eval composer`, `bench midi`, `train corpus`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hardware.sound.offline import render_audio, render_internal, write_wav
from installation.commands.shared import scene_named
from installation.composer_build import build_composer, refinement_callables
from installation.errors import UserError
from models.evaluation.composing import (METRIC_GROUPS, PAPER_DEFINITIONS, TARGETS, compose_offline, muspy_metrics,
                                         plans_to_midi, plans_to_notes)

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
PAPER_I2M = {"polyphony": 0.7818, "pitch_entropy": 3.0932, "groove_consistency": 0.9998}
"""Values the Emotion-Guided Image-to-Music paper reports for its generated music."""


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()
    compose = sub.add_parser("compose", parents=[common], help="compose music from an image or video, offline")
    compose.add_argument("source", type=Path, metavar="IMAGE|VIDEO")
    compose.add_argument("--seconds", type=float, default=30.0, help="length of music to write (default 30)")
    compose.add_argument("--out", type=Path, default=Path("composed.mid"), metavar="F.mid", help="MIDI file to write")
    compose.add_argument("--abc", action="store_true", help="print every plan as ABC notation with its reasons")
    compose.add_argument("--scene", help="scene preset (default: installation.scene)")
    compose.add_argument("--seed", type=int, help="composer seed (default: compose.seed)")
    compose.add_argument("--wav", type=Path, metavar="F.wav", help="also render the music to audio")
    compose.add_argument("--renderer", choices=("synth", "fluidsynth"), default="synth",
                         help="audio for --wav: the built-in synth (default) or fluidsynth with the GM soundfont")
    compose.add_argument("--comment", default="", metavar="TEXT", help="a visitor's words joined to the picture")
    compose.set_defaults(handler=_compose)

    ev = groups["eval"].add_parser("composer", parents=[common],
                                   help="corpus metrics and emotion alignment of the composer over real photographs")
    ev.add_argument("--images", type=Path, metavar="DIR", help="extra folder of photographs (beside the bundled ones)")
    ev.add_argument("--photos", type=Path, metavar="DIR",
                    help="evaluate on this folder of photographs only (tools/fetch_wallpapers.sh fetches a set)")
    ev.add_argument("--head", choices=("corpus", "learned"), help="melody head (default: compose.head)")
    ev.add_argument("--refine", type=int, metavar="N",
                    help="also refine each first phrase N rounds and report how often the rated VA moved toward the picture")
    ev.add_argument("--seconds", type=float, default=20.0, help="music per photograph (default 20)")
    ev.add_argument("--json", type=Path, metavar="F", help="write the figures as JSON")
    ev.add_argument("--renderer", choices=("fluidsynth", "synth"), default="fluidsynth",
                    help="fluidsynth with the General MIDI soundfont (default) or the built-in synth")
    ev.add_argument("--scene", help="scene preset (default: installation.scene)")
    ev.set_defaults(handler=_eval_composer)

    bench = groups["bench"].add_parser("midi", parents=[common],
                                       help="scheduler lateness vs deadlines, idle and with both cores busy")
    bench.add_argument("--seconds", type=float, default=10.0, help="seconds per condition (default 10)")
    bench.add_argument("--rate", type=float, default=200.0, help="messages per second (default 200)")
    bench.add_argument("--json", type=Path, metavar="F", help="write the figures as JSON")
    bench.add_argument("--switch-interval-ms", type=float, default=0.5,
                       help="GIL switch interval while the scheduler runs (default 0.5)")
    bench.add_argument("--sender", choices=("process", "thread"), default="process",
                       help="process: ProcessScheduler, a real-time sender process (default); thread: Scheduler")
    bench.set_defaults(handler=_bench_midi)

    train = groups["train"].add_parser("corpus", parents=[common],
                                       help="scan music21's corpus once and write models/data/corpus_table.json")
    train.add_argument("--folk-tunes", type=int, default=900, help="folk tunes to learn from (default 900)")
    train.add_argument("--chorales", type=int, default=150, help="Bach chorales to learn from (default 150)")
    train.add_argument("--out", type=Path, help="table path (default: models/data/corpus_table.json)")
    train.add_argument("--index-only", action="store_true", help="rebuild only the retrieval index from the table")
    train.set_defaults(handler=_train_corpus)

    learned = groups["train"].add_parser("composer", parents=[common],
                                         help="train the VA-conditioned melody model on the corpus (CPU, one thread)")
    learned.add_argument("--minutes", type=float, default=20.0, help="training time (default 20)")
    learned.add_argument("--hidden", type=int, default=96, help="GRU width (default 96)")
    learned.add_argument("--va-weight", type=float, default=1.0, help="weight of the VA loss beside the token loss")
    learned.add_argument("--out", type=Path, default=Path("weights/composer.pt"), help="weights file to write")
    learned.add_argument("--seed", type=int, default=0)
    learned.add_argument("--json", type=Path, metavar="F", help="write the figures as JSON")
    learned.set_defaults(handler=_train_composer)


# --- shared helpers ------------------------------------------------------------------------------------
def _image_head(cfg):
    """The configured image VA head, or the built-in colour-emotion model if that room's module is absent."""
    try:
        from models.seeing.va import build_image_va
    except ImportError:
        from models.seeing.features import ColourEmotionVA
        return ColourEmotionVA()
    return build_image_va(cfg.watch.settings())


def _read_image(path: Path):
    import cv2
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path} is not a readable image; give a jpg/png/bmp/tif file.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- compose --------------------------------------------------------------------------------------------
def _compose(args: argparse.Namespace) -> int:
    from installation.startup import load
    from models.composing.composer import Composer
    from models.seeing.features import ImageAnalyser
    cfg = load(args)
    if not args.source.is_file():
        raise UserError(f"{args.source} does not exist; give an image or a video file.")
    if args.seconds <= 0:
        raise UserError(f"--seconds {args.seconds} must be positive.")
    for out in (args.out, args.wav):  # before composing: a path that cannot be written is said at once
        try:
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write {out} ({exc.strerror or exc}); choose another path.") from None
    scene = scene_named(cfg, args.scene)
    analyser = ImageAnalyser(_image_head(cfg))
    if args.comment:
        analyser.comment(args.comment, 0.0)
        analyser.comment_ttl_s = float("inf")
    frames = None
    if args.source.suffix.lower() in VIDEO_SUFFIXES:
        states = _video_states(args.source, analyser, cfg.watch.rate_hz)
    else:
        picture = _read_image(args.source)
        state = analyser.analyse(picture, 0.0, source=args.source.name)
        states = lambda t_s: state  # noqa: E731 - a still picture does not change
        frames = lambda t_s: picture  # noqa: E731
    composer = build_composer(cfg, scene, seed=cfg.compose.seed if args.seed is None else args.seed)
    plans = compose_offline(composer, states, args.seconds, frames)
    plans_to_midi(plans, args.out)
    if args.wav:
        write_wav(plans, args.out, args.wav, args.renderer)
        print(f"wrote {args.wav} ({args.renderer})")
    for plan in plans:
        if args.abc:
            print(f"% {plan.start_s:6.2f}-{plan.end_s:6.2f} s")
            for reason in plan.reasons:
                print(f"% {reason}")
            print(plan.abc)
            print()
    notes = sum(len(p.events) for p in plans)
    print(f"wrote {args.out}: {plans[-1].end_s:.1f} s, {len(plans)} plans, {notes} notes; "
          f"first plan {plans[0].key} {plans[0].mode} at {plans[0].tempo_bpm:.0f} bpm")
    return 0


def _video_states(path: Path, analyser, rate_hz: float):
    import bisect

    import cv2
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{path} cannot be decoded by OpenCV; convert it to mp4 or avi (MJPG).")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    every = max(1, int(round(fps / rate_hz)))
    times, states = [], []
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % every == 0:
            t_s = index / fps
            times.append(t_s)
            states.append(analyser.analyse(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t_s, source=path.name))
        index += 1
    cap.release()
    if not states:
        raise UserError(f"{path} has no frames OpenCV can read.")
    duration_s = index / fps

    def at(t_s: float):
        t_s = t_s % duration_s if duration_s > 0 else 0.0  # the video loops, as on the camera input
        return states[max(0, bisect.bisect_right(times, t_s) - 1)]
    return at


# --- eval composer --------------------------------------------------------------------------------------
def evaluation_photos(extra_dir: Path | None = None) -> list[tuple[str, Any]]:
    """Real photographs available offline: scikit-image's, plus a few other packages ship, plus `extra_dir`."""
    import importlib.util

    import skimage.data

    from hardware.video.camera import SKIMAGE_PHOTOS, _as_rgb
    photos = [(f"skimage:{name}", _as_rgb(getattr(skimage.data, name)())) for name in SKIMAGE_PHOTOS]
    photos += [("skimage:cell", _as_rgb(skimage.data.cell())), ("skimage:page", _as_rgb(skimage.data.page()))]
    for package, relative in (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
                              ("sklearn", "datasets/images/china.jpg"), ("sklearn", "datasets/images/flower.jpg"),
                              ("pygame", "docs/generated/_images/camera_rgb.jpg")):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / relative
        if path.is_file():
            photos.append((f"{package}:{path.name}", _read_image(path)))
    if extra_dir is not None:
        from hardware.video.camera import PHOTO_SUFFIXES
        if not extra_dir.is_dir():
            raise UserError(f"--images {extra_dir} is not a folder of photographs.")
        for path in sorted(p for p in extra_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
            photos.append((f"file:{path.name}", _read_image(path)))
    return photos


def _melody_signature(plans) -> tuple:
    return tuple(e.note for p in plans for e in p.events if e.voice == "melody")[:24]


def _eval_composer(args: argparse.Namespace) -> int:
    from scipy.stats import spearmanr

    from installation.startup import load
    from models.composing.corpus import load_table
    cfg = load(args)
    if args.head:
        cfg = cfg.model_copy(update={"compose": cfg.compose.model_copy(update={"head": args.head})})
    scene = scene_named(cfg, args.scene)
    table = load_table()
    head = _image_head(cfg)
    photos = _eval_photos(args)
    rows, refinements, shared = _compose_and_rate(cfg, args, scene, table, head, photos)
    rho_a = float(spearmanr([r["image_arousal"] for r in rows], [r["music_energy"] for r in rows]).statistic)
    rho_v = float(spearmanr([r["image_valence"] for r in rows], [r["music_valence"] for r in rows]).statistic)
    corpus = table.metrics
    print(f"\nhead {cfg.compose.head}, renderer {args.renderer}, {len(rows)} photographs")
    print(f"emotion alignment (Spearman, image head vs vibenet): arousal {rho_a:+.3f}, valence {rho_v:+.3f}")
    print(f"melodies shared between photographs: {len(shared)}" + (f" ({shared})" if shared else ""))
    generated, within = _print_metric_groups(rows, corpus)
    paper = _print_paper_metrics(rows)
    refine = _print_refinement(refinements, args.refine, cfg.listen.va_head) if refinements else None
    result = {"photos": len(rows), "renderer": args.renderer, "head": cfg.compose.head, "spearman_arousal": rho_a,
              "spearman_valence": rho_v, "shared_melodies": shared, "generated": generated, "corpus": corpus,
              "targets_within_iqr": within, "paper": PAPER_I2M, "muspy": paper, "refinement": refine, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _eval_photos(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The photographs to evaluate: a folder's (--photos) or the built-in evaluation set."""
    if args.photos is None:
        return evaluation_photos(args.images)
    photos = folder_photos(args.photos)
    if len(photos) < 2:
        raise UserError(f"--photos {args.photos} holds {len(photos)} photographs; give a folder of several "
                        f"(tools/fetch_wallpapers.sh DIR fetches 24).")
    return photos


def _compose_and_rate(cfg: Any, args: argparse.Namespace, scene: Any, table: Any, head: Any,
                      photos: list[tuple[str, Any]]) -> tuple[list[dict], list[Any], list[tuple[str, str]]]:
    """Compose `args.seconds` of music for each photograph, render it and rate it with vibenet; returns
    one row per audible rendering, the self-refinement results (with --refine), and the photographs
    that share a melody."""
    import vibenet

    from models.composing.refine import RefiningComposer
    from models.seeing.features import ImageAnalyser
    rater = vibenet.load_model()
    rows = []
    refinements = []
    signatures: dict[tuple, str] = {}
    shared = []
    render, rate = refinement_callables(cfg) if args.refine else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, rgb) in enumerate(photos):
            state = ImageAnalyser(head).analyse(rgb, 0.0, source=name)
            composer = build_composer(cfg, scene, seed=cfg.compose.seed + i, table=table)
            if args.refine and render is not None and rate is not None:
                fresh = build_composer(cfg, scene, seed=cfg.compose.seed + i, table=table)
                refining = RefiningComposer(getattr(fresh, "composer", fresh), render, rate, args.refine)
                refining.plan(state, 0.0)
                refinements.append(refining.last)
            plans = compose_offline(composer, lambda t_s: state, args.seconds)
            signature = _melody_signature(plans)
            if signature in signatures:
                shared.append((signatures[signature], name))
            signatures[signature] = name
            mono, sr = _render_plans(plans, args.renderer, Path(tmp), i)
            row = _rate_rendering(name, state, plans, mono, sr, rater)
            if row is not None:
                rows.append(row)
    return rows, refinements, shared


def _render_plans(plans: list, renderer: str, tmp: Path, i: int) -> tuple[Any, int]:
    """The plans rendered to mono audio, by the built-in synth or through MIDI; (samples, rate)."""
    import soundfile

    if renderer == "synth":
        sr = 16000
        return render_internal(plans, sr), sr
    mid, wav = tmp / f"{i}.mid", tmp / f"{i}.wav"
    plans_to_midi(plans, mid)
    render_audio(mid, wav)
    audio, sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def _rate_rendering(name: str, state: Any, plans: list, mono: Any, sr: int, rater: Any) -> dict | None:
    """One photograph's row: the picture's VA, vibenet's rating of the music, the plan and its metrics;
    None (and a line saying so) when the rendering is near-silent."""
    import numpy as np

    from models.composing.corpus import music_metrics
    rms_dbfs = float(20 * np.log10(max(1e-9, float(np.sqrt(np.mean(np.square(mono)))))))
    if rms_dbfs < -60.0:  # the rater calls near-silence happy; a silent render says nothing
        print(f"{name:34s} rendered near-silent ({rms_dbfs:.0f} dBFS); left out")
        return None
    rated = rater.predict(mono, sr=sr)[0]
    beats_per_bar = 4.0 if plans[0].metre == "4/4" else 3.0
    metrics = {f"{group}.{k}": v for group, (voices, _) in METRIC_GROUPS.items()
               for k, v in music_metrics(plans_to_notes(plans, voices), beats_per_bar).items()}
    metrics.update({f"muspy.{k}": v for k, v in muspy_metrics(plans).items()})
    tune = next((r.split(" ")[2] for r in plans[0].reasons if r.startswith("retrieved tune")), "")
    print(f"{name:28s} V{state.valence:+.2f} A{state.arousal:+.2f} -> {plans[0].key:3s} {plans[0].mode:10s} "
          f"{plans[0].metre} {plans[0].tempo_bpm:4.0f} bpm {tune:28s} -> vibenet valence {rated.valence:.2f} "
          f"energy {rated.energy:.2f}")
    return {"photo": name, "image_valence": state.valence, "image_arousal": state.arousal,
            "music_valence": float(rated.valence), "music_energy": float(rated.energy), "rms_dbfs": rms_dbfs,
            "tempo_bpm": plans[0].tempo_bpm, "mode": plans[0].mode, "key": plans[0].key,
            "metre": plans[0].metre, "tune": tune, "description": state.description, **metrics}


def _print_metric_groups(rows: list[dict], corpus: dict) -> tuple[dict[str, dict[str, list[float]]], dict[str, bool]]:
    """Print each metric group's quartiles against its reference corpus; returns the generated
    quartiles and, for each acceptance target, whether its median lies inside the corpus's IQR."""
    import numpy as np

    names = ("pitch_entropy", "pitch_class_entropy", "polyphony", "polyphony_rate", "scale_consistency",
             "groove_consistency", "empty_beat_rate")
    generated: dict[str, dict[str, list[float]]] = {}
    within: dict[str, bool] = {}
    for group, (voices, reference) in METRIC_GROUPS.items():
        generated[group] = {n: [float(np.percentile([r[f"{group}.{n}"] for r in rows], q)) for q in (25, 50, 75)]
                            for n in names}
        print(f"\n{group} ({', '.join(voices)}) against {reference}; * marks an acceptance target")
        print(f"{'metric':22s} {'generated q1/med/q3':>24s} {reference + ' q1/med/q3':>24s}  inside")
        for n in names:
            g = generated[group][n]
            c = corpus.get(reference, {}).get(n, [0.0, 0.0, 0.0])
            inside = bool(c[0] <= g[1] <= c[2])
            target = (group, n) in TARGETS
            if target:
                within[f"{group}.{n}"] = inside
            print(f"{n:20s}{'*' if target else ' ':2s} {g[0]:7.3f} {g[1]:7.3f} {g[2]:7.3f}   "
                  f"{c[0]:7.3f} {c[1]:7.3f} {c[2]:7.3f}  {'yes' if inside else 'no'}")
    return generated, within


def _print_paper_metrics(rows: list[dict]) -> dict[str, float]:
    """Print and return the medians of the paper's three muspy metrics beside the paper's figures."""
    import numpy as np

    paper = {}
    print("\nthe paper's three metrics, computed by muspy 0.5 on melody, chords and bass (drums left out):")
    for n, paper_value in (("polyphony_rate", PAPER_I2M["polyphony"]), ("pitch_entropy", PAPER_I2M["pitch_entropy"]),
                           ("groove_consistency", PAPER_I2M["groove_consistency"])):
        values = [r[f"muspy.{n}"] for r in rows if np.isfinite(r[f"muspy.{n}"])]
        paper[n] = float(np.median(values)) if values else float("nan")
        print(f"  {n:20s} median {paper[n]:.4f}   paper {paper_value:.4f}   ({PAPER_DEFINITIONS[n]})")
    return paper


def _print_refinement(refinements: list[Any], rounds: int, va_head: str) -> dict:
    """Print and return how often self-refinement moved the rated VA toward the picture."""
    import numpy as np

    done = [r for r in refinements if r is not None]  # a plan whose refinement failed has none
    moved = [r.moved_toward for r in done]
    before = float(np.mean([r.distance(0) for r in done]))
    after = float(np.mean([r.distance(r.chosen) for r in done]))
    refine = {"plans": len(moved), "moved_toward": int(sum(moved)), "share": sum(moved) / max(1, len(moved)),
              "mean_distance_before": before, "mean_distance_after": after, "rounds": rounds}
    print(f"\nself-refinement ({rounds} rounds, rater: listen.va_head = {va_head}): rated VA moved "
          f"toward the picture on {sum(moved)} of {len(moved)} plans ({refine['share']:.0%}); mean distance "
          f"{before:.3f} -> {after:.3f}")
    return refine


def folder_photos(folder: Path) -> list[tuple[str, Any]]:
    from hardware.video.camera import PHOTO_SUFFIXES
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of photographs.")
    return [(f"file:{path.name}", _read_image(path)) for path in sorted(folder.iterdir())
            if path.suffix.lower() in PHOTO_SUFFIXES]


# --- bench midi -----------------------------------------------------------------------------------------
def _torch_load(stop: threading.Event, threads: int) -> None:
    """Real torch work on every core, as the renderer does: a small conv net, over and over."""
    import torch
    torch.set_num_threads(threads)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 64, 3, padding=1), torch.nn.SiLU(),
                              torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.SiLU(),
                              torch.nn.Conv2d(64, 4, 3, padding=1))
    x = torch.randn(1, 4, 64, 64)
    with torch.inference_mode():
        while not stop.is_set():
            x = net(x).tanh()


def _measure(clock, seconds: float, rate: float, switch_interval_s: float, sender: str) -> dict:
    import numpy as np

    from hardware.midi.output import RecordingMidiOut
    from installation.records import NoteEvent
    from hardware.base import Scheduler as SchedulerProtocol
    from installation.scheduler import ProcessScheduler, Scheduler
    scheduler: SchedulerProtocol
    if sender == "process":
        scheduler = ProcessScheduler([("recording",)], switch_interval_s=switch_interval_s, clock=clock)
    else:
        scheduler = Scheduler(clock, [RecordingMidiOut(clock)], switch_interval_s=switch_interval_s, max_late_s=10.0)
    scheduler.start()
    start = clock.now_s() + 0.5
    n = int(seconds * rate / 2)  # each note is two messages
    events = [NoteEvent(start + i * 2.0 / rate, 1.0 / rate, 36 + i % 60, 80, i % 3) for i in range(n)]
    # Submitted a second at a time, half a second ahead, as the live composer does.
    chunk = max(1, int(rate / 2))
    for i in range(0, n, chunk):
        part = events[i:i + chunk]
        clock.sleep_until(part[0].start_s - 0.5)
        scheduler.submit(part)
    clock.sleep_until(events[-1].start_s + 0.2)
    stats = scheduler.stats
    late = scheduler.late_ms()
    realtime = bool(stats.get("realtime", False))
    scheduler.stop()
    expected = 2 * n
    measured = int(late.size)
    return {"sender": sender, "realtime": realtime, "messages": expected, "sent": measured,
            "lost": int(max(0, expected - measured) + stats.get("lost", 0)),
            "p50_ms": float(np.median(late)) if late.size else 0.0,
            "p99_ms": float(np.percentile(late, 99)) if late.size else 0.0,
            "max_ms": float(late.max()) if late.size else 0.0}


def _bench_midi(args: argparse.Namespace) -> int:
    from installation.clock import MonotonicClock
    clock = MonotonicClock()
    switch_s = args.switch_interval_ms / 1000.0
    result: dict[str, Any] = {"sender": args.sender, "rate_per_s": args.rate, "seconds": args.seconds, "switch_interval_ms": args.switch_interval_ms,
                              "cores": os.cpu_count()}
    print(f"idle: {args.seconds:.0f} s at {args.rate:.0f} messages/s ...")
    result["idle"] = _measure(clock, args.seconds, args.rate, switch_s, args.sender)
    stop = threading.Event()
    load = threading.Thread(target=_torch_load, args=(stop, os.cpu_count() or 2), name="torch-load", daemon=True)
    load.start()
    time.sleep(1.0)
    print("loaded: torch convolutions on every core ...")
    try:
        result["loaded"] = _measure(clock, args.seconds, args.rate, switch_s, args.sender)
    finally:
        stop.set()
        load.join(5)
    for name in ("idle", "loaded"):
        r = result[name]
        print(f"{name:7s} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms  "
              f"lost {r['lost']} of {r['messages']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


# --- train corpus ---------------------------------------------------------------------------------------
def _train_corpus(args: argparse.Namespace) -> int:
    from models.composing.index import INDEX_PATH, build_index
    from models.composing.corpus import TABLE_PATH, CorpusTable, build_table, load_table
    path = args.out or TABLE_PATH
    started = time.monotonic()
    if args.index_only:
        table = load_table(path)
    else:
        data = build_table(max_folk_tunes=args.folk_tunes, max_chorales=args.chorales, progress=print, path=path)
        print(f"wrote {path} in {time.monotonic() - started:.0f} s: {len(data['phrases'])} phrases from {data['sources']}")
        table = CorpusTable(data)
    started = time.monotonic()
    index_path = INDEX_PATH if args.out is None else path.with_name("corpus_index.npz")
    data = build_index(table, index_path, progress=print)
    print(f"wrote {index_path} in {time.monotonic() - started:.0f} s: {len(data['sources'])} tunes indexed")
    return 0


def _train_composer(args: argparse.Namespace) -> int:
    import torch

    from models.composing.learned import train
    from models.composing.corpus import load_table
    torch.set_num_threads(1)  # a shared machine: one core for training
    if args.minutes <= 0:
        raise UserError(f"--minutes {args.minutes} must be positive.")
    figures = train(load_table(), args.out, minutes=args.minutes, hidden=args.hidden, va_weight=args.va_weight,
                    seed=args.seed, progress=print)
    print(f"wrote {args.out}: {figures['epochs']} epochs in {figures['seconds']:.0f} s; token loss "
          f"{figures['token_loss']:.3f}; VA predictor held-out MAE {figures['predictor_mae']:.3f}; written melodies' VA "
          f"MAE {figures['va_mae']:.3f} to their targets ({figures['va_mae_shuffled']:.3f} to shuffled targets); "
          f"Spearman target vs written: valence {figures['valence_spearman']:+.2f}, arousal {figures['arousal_spearman']:+.2f}")
    c = figures["content"]
    print(f"content: {c['changed']:.0%} of melodies change with it; a theme's share of the nearest corpus phrases "
          f"{c['share_asked']:.3f} when asked for it, {c['share_other']:.3f} when asked for another; nearest theme "
          f"centroid right {c['centroid_hits']:.0%} (chance {c['centroid_chance']:.0%}, corpus phrases "
          f"{c['centroid_hits_corpus']:.0%})")
    print(f'use it with: compose.head = "learned", compose.learned_weights = "{args.out}"')
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0
