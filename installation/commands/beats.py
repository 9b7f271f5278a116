"""`eval beats`: the block-rate beat tracker against each song's chart (notes.mid tempo map)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from installation.errors import UserError


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    ev = groups["eval"].add_parser(
        "beats", parents=[config_options()],
        help="tempo settling time and beat distance of the onset stage's beat tracker against charted songs")
    ev.add_argument("--audio", type=Path, required=True, metavar="DIR",
                    help="folder of song folders, each with notes.mid and its audio stems (song.ogg, guitar.ogg, ...)")
    ev.add_argument("--tolerance", type=float, default=0.02, help="tempo band around the chart's (default 0.02 = 2 %%)")
    ev.add_argument("--hold-s", type=float, default=10.0,
                    help="seconds the tempo must stay in the band to count as settled (default 10)")
    ev.add_argument("--block-s", type=float, default=0.01,
                    help="audio per block fed to the detector (default 0.01: what the file source releases)")
    ev.add_argument("--live", action="store_true",
                    help="play each song in real time through the onset stage (file source, real clock) "
                         "instead of feeding its detector block by block on a simulated clock")
    ev.add_argument("--seconds", type=float, default=0.0, help="analyse only the first SECONDS of each song (0 = all)")
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    ev.set_defaults(handler=_eval_beats)


def _eval_beats(args: argparse.Namespace) -> int:
    from installation.sources import ANALYSIS_RATE_HZ
    from installation.startup import load
    from models.evaluation.beats import mixed_stems, score, song_delay_s, song_folders, tempo_map, track_song
    from models.listening.onsets import onset_detector

    cfg = load(args)
    folders = song_folders(args.audio)
    if not folders:
        raise UserError(f"no notes.mid under {args.audio}: give a folder of charted songs (Frets on Fire layout).")
    rate = cfg.audio.sample_rate_hz or ANALYSIS_RATE_HZ
    block = max(1, int(round(args.block_s * rate)))
    feed = ("live: each song played in real time through the onset stage (file source, real clock; the stage "
            "alone, not the whole installation)" if args.live else
            f"simulated: the onset stage's detector fed {block}-sample blocks on the audio's clock, not in real time")
    print(f"{feed}; {rate} Hz, beat range {cfg.listen.beat_range_bpm} BPM", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for folder in folders:
        try:
            samples = mixed_stems(folder, rate)
        except FileNotFoundError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        if args.seconds > 0:
            samples = samples[:int(args.seconds * rate)]
        chart = tempo_map(folder / "notes.mid", samples.size / rate, song_delay_s(folder))
        if args.live:
            track, cpu_s, p99_s = track_live(samples, rate, onset_detector(cfg.listen.settings()))
        else:
            track, cpu_s, p99_s = track_song(samples, rate, onset_detector(cfg.listen.settings())(rate), block)
        s = score(track, chart, args.tolerance, args.hold_s)
        tempi = [p.tempo_bpm for p in track if p.tempo_bpm > 0]
        rows.append({"song": folder.name, "chart_bpm": round(s.chart_bpm, 2),
                     "tempo_changes": int(chart.change_bpm.size - 1),
                     "median_bpm": round(float(sorted(tempi)[len(tempi) // 2]), 2) if tempi else None,
                     "settle_s": None if s.settle_s is None else round(s.settle_s, 2),
                     "in_band_after": _num(s.in_band_after), "octave_share": _num(s.octave_share),
                     "beat_p50_ms": _num(s.beat_p50_ms, 1), "beat_p95_ms": _num(s.beat_p95_ms, 1),
                     "beats": s.beats, "audio_s": round(samples.size / rate, 1),
                     "rtf": round(cpu_s / max(samples.size / rate, 1e-9), 4),
                     "p99_block_ms": round(p99_s * 1000, 2)})
        print(f"{folder.name}: done", file=sys.stderr)
    cols = ("chart_bpm", "median_bpm", "settle_s", "in_band_after", "octave_share", "beat_p50_ms", "beat_p95_ms",
            "beats", "rtf", "p99_block_ms")
    print(f"{'song':24s} " + " ".join(f"{c:>13s}" for c in cols))
    for r in rows:
        print(f"{r['song'][:24]:24s} " + " ".join(f"{'-' if r[c] is None else r[c]!s:>13s}" for c in cols))
    print(f"settled = within {args.tolerance:.0%} of the chart's tempo for {args.hold_s:g} s (half or double time "
          f"is a miss); beats = |predicted beat - nearest chart beat| after settling; rtf = CPU s per audio s; "
          f"p99_block_ms = CPU ms of a block (99th percentile)")
    print(feed)
    if args.json:
        args.json.write_text(json.dumps({"feed": feed, "block_samples": None if args.live else block,
                                         "sample_rate_hz": rate, "tolerance": args.tolerance,
                                         "hold_s": args.hold_s, "songs": rows}, indent=1))
    return 0


def _num(x: float, digits: int = 3) -> float | None:
    return None if not math.isfinite(x) else round(x, digits)


def track_live(samples, rate_hz: int, detector_factory):
    """Play `samples` in real time through the onset stage (file source, the real clock), as the
    installation runs it; every state it publishes, on the audio's clock. Same returns as `track_song`."""
    import tempfile
    import time

    import numpy as np
    import soundfile as sf

    from hardware.sound.audio_in import FileInput
    from installation.clock import MonotonicClock
    from installation.mailbox import Latest
    from installation.records import OnsetState
    from installation.stages.onsets import AudioQueue, OnsetStage
    from models.evaluation.beats import TrackPoint

    clock = MonotonicClock()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.wav"
        sf.write(path, samples, rate_hz)
        audio = FileInput(str(path), rate_hz, clock, loop=False)
        onsets: Latest[OnsetState] = Latest()
        stage = OnsetStage(audio, detector_factory, onsets, AudioQueue("eval"), clock)
        stage.open()
        track: list[TrackPoint] = []
        costs_s: list[float] = []
        end_s = samples.size / rate_hz
        seen = None
        try:
            while True:
                t0 = time.thread_time()
                stage.step()
                costs_s.append(time.thread_time() - t0)
                state = onsets.peek()
                if state is None or state is seen:
                    continue
                seen = state
                t_s = state.t_s - audio.started_s
                if t_s > end_s:
                    break
                track.append(TrackPoint(t_s, state.tempo_bpm, state.beat_t_s - audio.started_s,
                                        state.beat_confidence, state.silent))
        finally:
            stage.close()
    return track, float(np.sum(costs_s)), float(np.percentile(costs_s, 99)) if costs_s else 0.0
