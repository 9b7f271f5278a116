"""`bench latency`: how long after a hit in the room does the picture change on the wall?

Writes a kick track with random gaps (0.4-1.5 s, never periodic, a few long silences), plays it
through the running installation (`audio.source = "file"` on the real clock: audio thread, onset
stage, listener, renderer, projector with its compositor, all live, at the shipped config and scene
unless --set/--scene say otherwise; `--audio jack`: a PortAudio input on a JACK dummy server fed
by a loopback JACK client, commands/latency_jack.py) and stamps every projected frame on the same
clock as the audio the moment it is handed to the display. Per frame it keeps the change (mean
|grey - previous grey|).

  p50_ms, p95_ms     onset-to-photon: from the kick's first sample to the first frame whose change
                     exceeds the pre-onset level (the largest change in the 250 ms before) by the
                     margin (x 1.5 + 3 grey levels), looking up to 250 ms after
  hit_rate           share of kicks with such a frame
  false_hit_rate     the same test at probe times in silence (no kick within 600 ms before or
                     300 ms after): share that fire
  silence_to_kick_change_ratio   mean frame change in those silences over that in the 250 ms
                     after the kicks: how still the picture is when the room is
  where              where each kick's time goes, from every onset state as it reaches the
                     projector's mailbox: detect_ms (kick to its state there), onset_dated_ms (the
                     state's onset time minus the kick's), detect_to_photon_ms (the wait for a frame
                     showing it), and the misses split into kicks no onset state followed within
                     250 ms and kicks detected with no frame showing them in time
  composite_ms       the compositor's cost per refresh at 1920x1080 with an accent drawn and in a
                     calm silence (a synthetic hit fed straight in: the drawing cost alone)

Kicks in the first `--warmup` seconds (models loading) are not scored.
"""
from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

import numpy as np

from installation.commands.shared import print_figures
from models.evaluation.latency import RATE_HZ, FrameLog, OnsetLog, detection_figures, kick_track, score

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options

    bench = groups["bench"].add_parser(
        "latency", parents=[config_options()],
        help="play a kick track through the live installation and measure onset-to-photon latency")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--seconds", type=float, default=60.0, metavar="S", help="run length (default 60)")
    bench.add_argument("--warmup", type=float, default=10.0, metavar="S", help="kicks not scored at first (default 10)")
    bench.add_argument("--scene", default="", help="scene preset (default installation.scene)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the gaps and kick strengths")
    bench.add_argument("--audio", choices=("file", "jack"), default="file",
                       help="file: audio.source = file (default); jack: a PortAudio input on a JACK dummy server "
                            "fed by a loopback JACK client (needs jackd)")
    bench.set_defaults(handler=_bench_latency)


def _bench_latency(args: argparse.Namespace) -> int:
    from installation.errors import UserError
    from installation.startup import load

    if args.seconds <= args.warmup + 5:
        raise UserError(f"--seconds {args.seconds:g} must exceed --warmup {args.warmup:g} by more than 5 s.")
    cfg = load(args)
    figures, stuck = bench_latency(cfg, args.seconds, args.warmup, args.scene, args.seed, args.audio)
    print_figures(figures, args.json)
    if stuck:
        from installation.startup import leave_now
        leave_now(0)
    return 0


class StampingDisplay:
    """A headless Display that stamps each frame on the installation's clock as it is handed over."""

    def __init__(self, clock, width: int, height: int) -> None:
        self.clock, self.width, self.height, self.name = clock, width, height, "latency-stamp"
        self.log = FrameLog()
        self._previous: np.ndarray | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        pass

    def show(self, rgb: np.ndarray) -> None:
        from installation.projection.frame_stamps import frame_change, grey_samples

        t_s = self.clock.now_s()
        grey = grey_samples(rgb)
        change = frame_change(self._previous, grey)
        self._previous = grey
        with self._lock:
            self.log.times_s.append(t_s)
            self.log.changes.append(change)

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        pass


def bench_latency(cfg, seconds: float, warmup_s: float, scene: str = "", seed: int = 0,
                  audio: str = "file") -> tuple[dict, bool]:
    """(figures, a stage is still inside a library call). `audio`: "file" or "jack"."""
    import os
    import shutil
    import tempfile

    import soundfile as sf

    folder = Path(tempfile.mkdtemp(prefix="chromesthesia-latency-"))
    try:
        rate_hz = RATE_HZ if audio == "file" else 48000
        samples, kicks_s = kick_track(seconds + 5.0, seed, rate_hz)
        wav = folder / "kicks.wav"
        sf.write(str(wav), samples, rate_hz)
        onset_log = OnsetLog()
        overrides = ["osc.port=0", "web.enabled=false"] + ([f'installation.scene="{scene}"'] if scene else [])
        if audio == "file":
            installation, display = _run(cfg, overrides + ['audio.source="file"', f'audio.file="{wav}"'], seconds,
                                         onset_log=onset_log)
            started_s = float(getattr(installation.stage("onsets").audio, "started_s"))
            played_s = started_s + kicks_s
            path = "live: audio.source=file on the monotonic clock, frames stamped at the display"
        else:
            installation, display, played_s, started_s = _run_on_jack(cfg, overrides, seconds, wav, kicks_s, folder,
                                                                          onset_log)
            path = ("live: a PortAudio input on a JACK dummy server, the kick track played into it by a JACK client "
                    "(loopback), kicks dated on the monotonic clock, frames stamped at the display")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    last_frame_s = display.log.times_s[-1] if display.log.times_s else started_s
    scored_s = (started_s + warmup_s, min(started_s + seconds, last_frame_s) - 0.5)
    figures = score(display.log, played_s, *scored_s)
    figures["where"] = detection_figures(onset_log, display.log, played_s, *scored_s)
    stuck = any(worker.alive() for worker in installation.supervisor.workers)
    cfg = installation.cfg
    return {"bench": "latency", "path": path, "audio": audio, "block_frames": cfg.audio.block_frames,
            "scene": cfg.installation.scene, "seconds": seconds, "warmup_s": warmup_s, "fps": cfg.display.fps,
            "size": [cfg.render.width, cfg.render.height], **figures,
            "frames_late": installation.lifecycle.frames_late, "load_average_1m": round(os.getloadavg()[0], 2),
            "composite_ms": composite_cost(cfg.installation.scene)}, stuck


def log_onsets(installation, log: OnsetLog) -> None:
    """Note every onset state as it reaches the projector's mailbox, on the installation's clock."""
    mailbox, clock = installation.bus.onsets, installation.clock
    put = mailbox.put

    def logged_put(state) -> None:
        put(state)
        log.arrived_s.append(clock.now_s())
        log.counts.append(state.count)
        log.onsets_s.append(state.onset_t_s)
    mailbox.put = logged_put


def _run(cfg, overrides: list[str], seconds: float, before_run=None, onset_log: OnsetLog | None = None):
    """Run the installation for `seconds` with a stamping display: (installation, display)."""
    from installation.app import Devices, Installation, RunOptions
    from installation.clock import MonotonicClock
    from installation.config import apply_overrides, validate

    cfg = validate(apply_overrides(cfg.model_dump(mode="json"), overrides), "bench latency")
    clock = MonotonicClock()
    display = StampingDisplay(clock, cfg.render.width, cfg.render.height)
    installation = Installation(cfg, RunOptions(duration_s=seconds, headless=True, quiet=True),
                                Devices(clock=clock, display=display))
    if onset_log is not None:
        log_onsets(installation, onset_log)
    if before_run is not None:
        before_run(installation)
    installation.run()
    return installation, display


def _run_on_jack(cfg, overrides: list[str], seconds: float, wav: Path, kicks_s, folder: Path, onset_log: OnsetLog):
    """The kick track played into PortAudio's input on a JACK dummy server: (installation, display,
    kicks on the clock, when the track started)."""
    from hardware.sound.audio_in import reinitialize_portaudio
    from installation.commands.latency_jack import KickPlayer, jack_server

    with jack_server(cfg.audio.block_frames):
        import sounddevice  # noqa: F401 - PortAudio lists devices at initialisation
        reinitialize_portaudio()
        player = KickPlayer(wav, kicks_s, folder)
        try:
            def start_when_heard(installation) -> None:
                def go() -> None:
                    deadline = time.monotonic() + 30
                    while player.connect() == 0 and time.monotonic() < deadline:
                        time.sleep(0.2)
                    player.play()
                threading.Thread(target=go, name="kick-player", daemon=True).start()
            installation, display = _run(cfg, overrides + ['audio.source="device"', 'audio.device=""'], seconds,
                                         before_run=start_when_heard, onset_log=onset_log)
            played = np.asarray(player.kicks_s())
        finally:
            player.close()
    if played.size == 0:
        from installation.errors import UserError
        raise UserError("no kick reached PortAudio's input on the JACK server; check that PortAudio has a JACK host API.")
    return installation, display, played, float(played[0]) - float(kicks_s[0])


def composite_cost(scene_name: str, width: int = 1920, height: int = 1080, frames: int = 60) -> dict:
    """ms per composite at width x height: with a hit's accents drawn, and easing in silence."""
    import time

    from installation.projection.compositor import Compositor
    from installation.mailbox import Latest
    from installation.records import OnsetState
    from scenes.scene import load_scene

    onsets: Latest[OnsetState] = Latest()
    scenes: Latest = Latest()
    scenes.put(load_scene(scene_name))
    compositor = Compositor(onsets, scenes, 1 / 60)
    base = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    figures = {}
    for name, silent in (("accent", False), ("silence", True)):
        spent, cpu = [], []
        for i in range(frames):
            onsets.put(OnsetState(t_s=i / 60, onset_t_s=i / 60 - 0.01, strength=1.0, count=i + 1, silent=silent,
                                  tempo_bpm=120.0, beat_t_s=0.0, beat_confidence=0.5))
            started, started_cpu = time.perf_counter(), time.process_time()
            compositor.compose(base, i % 4 == 0, i / 60 + (2.0 if silent else 0.0))
            spent.append((time.perf_counter() - started) * 1e3)
            cpu.append((time.process_time() - started_cpu) * 1e3)
        figures[f"{name}_p50"] = round(float(np.median(spent)), 2)
        figures[f"{name}_p95"] = round(float(np.percentile(spent, 95)), 2)
        figures[f"{name}_cpu_p50"] = round(float(np.median(cpu)), 2)
    return {"scene": scene_name, "size": [width, height], "clock": "wall ms per composite; cpu: CPU ms of the process", **figures}
