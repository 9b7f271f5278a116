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
  composite_ms       the compositor's cost per refresh at 1920x1080 with an accent drawn and in a
                     calm silence (a synthetic hit fed straight in: the drawing cost alone)

Kicks in the first `--warmup` seconds (models loading) are not scored.
"""
from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RATE_HZ = 22050
PRE_S = 0.25
LOOK_S = 0.25
QUIET_BEFORE_S = 0.6
QUIET_AFTER_S = 0.3
MARGIN_RATIO = 0.5
MARGIN_GREY = 3.0


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
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    if stuck:
        from installation.startup import leave_now
        leave_now(0)
    return 0


def kick_track(seconds: float, seed: int = 0, rate_hz: int = RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """(samples, kick start times in s): kicks of random strength after random gaps of 0.4-1.5 s,
    every eighth gap a 3 s silence."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate_hz), np.float32)
    k = np.arange(int(0.35 * rate_hz))  # long enough to fade out: an abrupt end would be a click of its own
    starts = []
    t_s, n = 0.5, 0
    while t_s < seconds - 0.5:
        i = int(t_s * rate_hz)
        amp = rng.uniform(0.35, 0.9)
        body = np.sin(2 * np.pi * (55 + 90 * np.exp(-k / (0.02 * rate_hz))) * k / rate_hz) * np.exp(-k / (0.05 * rate_hz))
        click = rng.standard_normal(k.size) * np.exp(-k / (0.003 * rate_hz))
        seg = x[i:i + k.size]
        seg += (amp * (0.8 * body + 0.3 * click))[:seg.size].astype(np.float32)
        starts.append(i / rate_hz)
        n += 1
        t_s += 3.0 if n % 8 == 0 else rng.uniform(0.4, 1.5)
    np.clip(x, -1.0, 1.0, out=x)
    return x, np.asarray(starts)


@dataclass
class FrameLog:
    """(time handed to the display, change against the previous frame) of every projected frame."""

    times_s: list[float] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)


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


def first_change(times_s: np.ndarray, changes: np.ndarray, t_s: float) -> float | None:
    """Seconds from `t_s` to the first frame within LOOK_S whose change beats the pre-onset level by the margin."""
    before = changes[(times_s >= t_s - PRE_S) & (times_s < t_s)]
    if before.size == 0:
        return None
    threshold = float(before.max()) * (1.0 + MARGIN_RATIO) + MARGIN_GREY
    after = np.flatnonzero((times_s >= t_s) & (times_s <= t_s + LOOK_S) & (changes > threshold))
    return float(times_s[after[0]] - t_s) if after.size else None


def silence_probes(onsets_s: np.ndarray, start_s: float, end_s: float, step_s: float = 0.25) -> np.ndarray:
    """Times in silence: no kick in the QUIET_BEFORE_S before, none in the LOOK_S + QUIET_AFTER_S after."""
    probes = np.arange(start_s, end_s - LOOK_S, step_s)
    keep = [t for t in probes
            if not np.any((onsets_s > t - QUIET_BEFORE_S) & (onsets_s < t + LOOK_S + QUIET_AFTER_S))]
    return np.asarray(keep)


def score(frames: FrameLog, onsets_s: np.ndarray, start_s: float, end_s: float) -> dict:
    """Onset-to-photon figures from a frame log and the kicks' times on the same clock."""
    times = np.asarray(frames.times_s, np.float64)
    changes = np.asarray(frames.changes, np.float64)
    scored = onsets_s[(onsets_s >= start_s) & (onsets_s <= end_s - LOOK_S)]
    lags = [first_change(times, changes, t) for t in scored]
    hits = np.asarray([lag for lag in lags if lag is not None]) * 1e3
    probes = silence_probes(onsets_s, start_s, end_s)
    false = [first_change(times, changes, t) is not None for t in probes]
    period = np.diff(times[(times >= start_s) & (times <= end_s)])
    after_kick = np.zeros(times.size, bool)
    for t_s in scored:
        after_kick |= (times >= t_s) & (times < t_s + LOOK_S)
    in_silence = np.zeros(times.size, bool)
    for t_s in probes:
        in_silence |= (times >= t_s) & (times < t_s + LOOK_S)
    sound_change = float(changes[after_kick].mean()) if after_kick.any() else 0.0
    silence_change = float(changes[in_silence].mean()) if in_silence.any() else 0.0
    return {
        "onsets": int(scored.size), "hits": int(hits.size),
        "hit_rate": round(hits.size / max(1, scored.size), 3),
        "p50_ms": round(float(np.percentile(hits, 50)), 1) if hits.size else None,
        "p95_ms": round(float(np.percentile(hits, 95)), 1) if hits.size else None,
        "max_ms": round(float(hits.max()), 1) if hits.size else None,
        "silence_probes": len(probes), "false_hit_rate": round(sum(false) / max(1, len(probes)), 3),
        "change_after_kicks": round(sound_change, 2), "change_in_silence": round(silence_change, 2),
        "silence_to_kick_change_ratio": round(silence_change / sound_change, 3) if sound_change > 0 else None,
        "frame_interval_ms_p50": round(float(np.median(period)) * 1e3, 1) if period.size else None,
        "frame_interval_ms_p95": round(float(np.percentile(period, 95)) * 1e3, 1) if period.size else None,
        "margin": f"change > {1 + MARGIN_RATIO:g} x the largest change in the {PRE_S * 1e3:.0f} ms before "
                  f"+ {MARGIN_GREY:g} grey levels, within {LOOK_S * 1e3:.0f} ms",
    }


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
        overrides = ["osc.port=0", "web.enabled=false"] + ([f'installation.scene="{scene}"'] if scene else [])
        if audio == "file":
            installation, display = _run(cfg, overrides + ['audio.source="file"', f'audio.file="{wav}"'], seconds)
            started_s = float(getattr(installation.stage("onsets").audio, "started_s"))
            played_s = started_s + kicks_s
            path = "live: audio.source=file on the monotonic clock, frames stamped at the display"
        else:
            installation, display, played_s, started_s = _run_on_jack(cfg, overrides, seconds, wav, kicks_s, folder)
            path = ("live: a PortAudio input on a JACK dummy server, the kick track played into it by a JACK client "
                    "(loopback), kicks dated on the monotonic clock, frames stamped at the display")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    last_frame_s = display.log.times_s[-1] if display.log.times_s else started_s
    figures = score(display.log, played_s, started_s + warmup_s, min(started_s + seconds, last_frame_s) - 0.5)
    stuck = any(worker.alive() for worker in installation.supervisor.workers)
    cfg = installation.cfg
    return {"bench": "latency", "path": path, "audio": audio, "block_frames": cfg.audio.block_frames,
            "scene": cfg.installation.scene, "seconds": seconds, "warmup_s": warmup_s, "fps": cfg.display.fps,
            "size": [cfg.render.width, cfg.render.height], **figures,
            "frames_late": installation.lifecycle.frames_late, "load_average_1m": round(os.getloadavg()[0], 2),
            "composite_ms": composite_cost(cfg.installation.scene)}, stuck


def _run(cfg, overrides: list[str], seconds: float, before_run=None):
    """Run the installation for `seconds` with a stamping display: (installation, display)."""
    from installation.app import Devices, Installation, RunOptions
    from installation.clock import MonotonicClock
    from installation.config import apply_overrides, validate

    cfg = validate(apply_overrides(cfg.model_dump(mode="json"), overrides), "bench latency")
    clock = MonotonicClock()
    display = StampingDisplay(clock, cfg.render.width, cfg.render.height)
    installation = Installation(cfg, RunOptions(duration_s=seconds, headless=True, quiet=True),
                                Devices(clock=clock, display=display))
    if before_run is not None:
        before_run(installation)
    installation.run()
    return installation, display


def _run_on_jack(cfg, overrides: list[str], seconds: float, wav: Path, kicks_s, folder: Path):
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
                                         before_run=start_when_heard)
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
