"""`bench reactivity`: does the picture move with the music? A simulation, on a simulated clock.

Per frame: the listener's state at its hop, the block-rate onsets up to the frame's time, the
renderer's picture and the compositor's accents over it (a new picture every frame, as the procedural
renderer gives).

It does not measure what a visitor sees: the live loop's latency (audio blocks, threads, the
projector's refresh) is not in it; `bench latency` measures that. It plays a
recording through the listener hop by hop (the listener's code, on a simulated clock so the figures
do not depend on the machine's load), captions it with the scene's director, renders every
projector frame from the freshest music state at the output size, and compares the frames with the
recording's own onsets:

  onset_correlation     Pearson correlation of per-frame change (mean |frame - previous frame|)
                        with the recording's onset strength (librosa, strongest onset within each
                        frame's interval), at the best lag within +-100 ms
  shuffled_p95          the same, with the onset curve circularly shifted by a random offset
                        (at least 2 s), 95th percentile of `draws` shifts: what chance gives
  lag_ms                the best lag: how long after an onset the frame changes most; frames are
                        stamped when they are finished (the renderer's CPU time per frame included,
                        which is its latency on an idle core; the listener's hop and window too)
  laplacian_var_median  median variance of the Laplacian of the grey frames: sharpness
  va_error              mean |music VA - colour-head VA of the frame| per axis

Handlers import heavy libraries inside the function, so `run.py --help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from installation.commands.shared import print_figures
from models.evaluation.reactivity import best_lag_correlation, onset_envelope

log = logging.getLogger(__name__)

MIN_SHIFT_S = 2.0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options

    bench = groups["bench"].add_parser(
        "reactivity", parents=[config_options()],
        help="simulation (simulated clock): play a recording through the listener and renderer and measure how "
             "the frames follow its onsets")
    bench.add_argument("--audio", type=Path, required=True, metavar="FILE", help="a recording (wav, flac, ogg)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--offset", type=float, default=30.0, metavar="S", help="start this far in (default 30)")
    bench.add_argument("--seconds", type=float, default=40.0, metavar="S", help="excerpt length (default 40)")
    bench.add_argument("--fps", type=float, default=0.0, metavar="N", help="projector rate (default display.fps)")
    bench.add_argument("--width", type=int, default=0, help="frame width (default render.width)")
    bench.add_argument("--height", type=int, default=0, help="frame height (default render.height)")
    bench.add_argument("--scene", default="", help="scene preset (default installation.scene)")
    bench.add_argument("--draws", type=int, default=200, help="shuffled-onset draws (default 200)")
    bench.add_argument("--record", type=Path, metavar="DIR",
                       help="write the projected frames to DIR/reactivity.mp4 and a still to DIR/still.png")
    bench.set_defaults(handler=_bench_reactivity)


def _bench_reactivity(args: argparse.Namespace) -> int:
    from installation.startup import load

    cfg = load(args)
    figures = bench_reactivity(cfg, args.audio, offset_s=args.offset, seconds=args.seconds, fps=args.fps,
                               width=args.width, height=args.height, scene=args.scene, draws=args.draws,
                               record_dir=args.record)
    print_figures(figures, args.json)
    return 0


def bench_reactivity(cfg, audio: Path, offset_s: float = 30.0, seconds: float = 40.0, fps: float = 0.0,
                     width: int = 0, height: int = 0, scene: str = "", draws: int = 200,
                     record_dir: Path | None = None, seed: int = 0) -> dict:
    import numpy as np

    from installation.errors import UserError
    from models.listening.va import load_audio
    from scenes.scene import SceneError, load_scene

    fps = fps or float(cfg.display.fps)
    width, height = width or cfg.render.width, height or cfg.render.height
    try:
        the_scene = load_scene(scene or cfg.installation.scene)
    except SceneError as exc:
        raise UserError(str(exc)) from None
    samples, rate = load_audio(audio, offset_s, seconds, fit_excerpt=True)
    duration_s = samples.size / rate
    if duration_s < 3 * MIN_SHIFT_S:
        raise UserError(f"{audio} gives only {duration_s:.1f} s of audio; give a recording of 10 s or more.")

    run = _play(cfg, samples, rate, the_scene, fps, width, height, record_dir, seed)
    frame_times, changes, sharpness, va_music, va_frame, render_ms, n_frames = run
    onset_env, env_rate = onset_envelope(samples, rate)
    times = np.asarray(frame_times)
    change = np.asarray(changes)
    corr, lag_s = best_lag_correlation(change, times, onset_env, env_rate)
    rng = np.random.default_rng(seed)
    min_shift = int(MIN_SHIFT_S * env_rate)
    shuffled = [best_lag_correlation(change, times, np.roll(onset_env, int(rng.integers(min_shift, onset_env.size - min_shift))),
                                     env_rate)[0] for _ in range(draws)]
    err = np.abs(np.asarray(va_music) - np.asarray(va_frame)) if va_music else np.zeros((1, 2))
    return {
        "clock": "simulated: listener, onsets, procedural renderer and compositor stepped frame by frame, "
                 "no threads or audio device; bench latency measures the live path",
        "audio": str(audio), "offset_s": offset_s, "seconds": round(duration_s, 2), "fps": fps,
        "width": width, "height": height, "scene": the_scene.name, "frames": n_frames,
        "onset_correlation": round(corr, 3), "shuffled_p95": round(float(np.percentile(shuffled, 95)), 3),
        "lag_ms": round(lag_s * 1e3, 1), "laplacian_var_median": round(float(np.median(sharpness)), 1),
        "mean_frame_change": round(float(change[1:].mean()), 2),
        "va_error": [round(float(err[:, 0].mean()), 3), round(float(err[:, 1].mean()), 3)],
        "render_ms_p50": round(float(np.median(render_ms)), 2),
        "listener_hop_s": cfg.listen.hop_s,
    }


def _play(cfg, samples, rate: int, the_scene, fps: float, width: int, height: int, record_dir, seed: int):
    """Feed the recording hop by hop, caption, render each projector frame; per-frame measurements."""
    import time

    import cv2

    from installation.projection.compositor import Compositor
    from installation.mailbox import Latest
    from installation.records import AudioBlock, MusicState, OnsetState
    from models.captions.director import Director
    from models.listening.onsets import onset_detector
    from models.seeing.va import ColourVA
    from models.listening.va import build_listener
    from models.procedural.renderer import ProceduralRenderer

    listener = build_listener(cfg.listen.settings(), rate, live=False)
    director = Director(cfg.captions.settings(), the_scene, seed=seed)
    renderer = ProceduralRenderer(width, height, seed=seed)
    renderer.prepare(the_scene)
    head = ColourVA()
    hop = max(1, int(round(cfg.listen.hop_s * rate)))
    # The block-rate onset path and the projector's compositor, stepped on the same simulated clock.
    detector = onset_detector(cfg.listen.settings())(rate)
    onsets: Latest[OnsetState] = Latest()
    scenes: Latest = Latest()
    scenes.put(the_scene)
    compositor = Compositor(onsets, scenes, 1.0 / fps)
    block = cfg.listen.onset_hop
    heard = 0
    writer = None
    if record_dir is not None:
        record_dir.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(record_dir / "reactivity.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                 (width - width % 2, height - height % 2))

    fed = 0
    music = MusicState(t_s=0.0)
    frame_times, changes, sharpness, va_music, va_frame, render_ms = [], [], [], [], [], []
    previous = None
    n_frames = int(samples.size / rate * fps)
    for k in range(n_frames):
        t_s = k / fps
        # Listener hops that have completed by this frame: the freshest state is read right before drawing.
        while fed + hop <= samples.size and (fed + hop) / rate <= t_s:
            listener.feed(samples[fed:fed + hop])
            fed += hop
            music = listener.state(fed / rate)
            caption = director.update(music, fed / rate)
            if caption is not None:
                renderer.update_prompt(caption)
        while heard + block <= samples.size and (heard + block) / rate <= t_s:
            state = detector.push(AudioBlock(heard / rate, samples[heard:heard + block], rate))
            if state is not None:
                onsets.put(state)
            heard += block
        started = time.thread_time()
        frame = compositor.compose(renderer.render(music, t_s), True, t_s)
        spent_s = time.thread_time() - started   # CPU time: the render latency of an idle core
        render_ms.append(spent_s * 1e3)
        frame_times.append(t_s + spent_s)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        changes.append(0.0 if previous is None else float(cv2.absdiff(grey, previous).mean()))
        previous = grey
        if k % 5 == 0:
            sharpness.append(float(cv2.Laplacian(grey, cv2.CV_64F).var()))
            if not music.silent:
                v, a, _ = head.estimate(frame)
                va_music.append(music.va)
                va_frame.append((v, a))
        if writer is not None:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if k == n_frames // 2:
                cv2.imwrite(str(record_dir / "still.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    listener.close()
    director.close()
    renderer.close()

    return frame_times, changes, sharpness, va_music, va_frame, render_ms, n_frames


