"""Performers' and operators' rigs: `bench link`, `bench midi-clock`, `bench video-out`.

  bench link        two Link peers in two processes: beat phase difference (p50/p99/max ms) at the
                    same moment, and how long a tempo change takes to reach the other process
  bench midi-clock  a clock at N bpm delivered in JACK-period steps: what the least-squares follower
                    reads (and what the median-of-intervals follower it replaced read) after 0.5-2 s
  bench video-out   a projector loop at the display rate showing frames in a window (SDL dummy
                    driver) with the video-out sinks off and on: frames shown a second, late frames
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from installation.commands.shared import print_figures
from models.stats import percentile

ROOT = Path(__file__).resolve().parent.parent.parent


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    bench = groups["bench"]
    link = bench.add_parser("link", help="two Ableton Link processes: beat phase difference and tempo-change delay")
    link.add_argument("--seconds", type=float, default=10.0, help="how long to compare phases")
    link.add_argument("--changes", type=int, default=10, help="tempo changes timed")
    link.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    link.set_defaults(handler=_bench_link)

    clock = bench.add_parser("midi-clock", help="MIDI clock follower on a clock delivered in JACK-period steps")
    clock.add_argument("--bpm", type=float, action="append", help="clock tempo (repeatable; default 90, 120, 140, 174)")
    clock.add_argument("--period-ms", type=float, default=256 / 48, help="delivery step (default 5.33 = 256 frames at 48 kHz)")
    clock.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    clock.set_defaults(handler=_bench_midi_clock)

    midi_in = bench.add_parser("midi-in", help="projector frames a second with MIDI inputs configured (JACK); cost of a port listing")
    midi_in.add_argument("--seconds", type=float, default=10.0)
    midi_in.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    midi_in.set_defaults(handler=_bench_midi_in)

    video = bench.add_parser("video-out", help="projector frames a second with the video-out sinks off and on")
    video.add_argument("--seconds", type=float, default=10.0, help="seconds per run")
    video.add_argument("--width", type=int, default=1280)
    video.add_argument("--height", type=int, default=720)
    video.add_argument("--fps", type=float, default=30.0, help="the display rate the projector aims at")
    video.add_argument("--sinks", default="ndi", help="comma-separated: ndi, virtual_camera")
    video.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    video.set_defaults(handler=_bench_video_out)


# --- link -------------------------------------------------------------------------------------------
def _bench_link(args: argparse.Namespace) -> int:
    from hardware.link import AbletonLink
    from installation.clock import MonotonicClock

    clock = MonotonicClock()
    ours = AbletonLink(clock, 120.0)
    ours.open()
    peer = subprocess.Popen([sys.executable, str(ROOT / "tools" / "link_peer.py"), "--bpm", "100", "--every-ms", "5"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    lines: list[str] = []
    stdout, stdin = peer.stdout, peer.stdin
    assert stdout is not None and stdin is not None
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while "ready\n" not in lines and time.monotonic() < deadline:
            time.sleep(0.05)
        if "ready\n" not in lines:
            print("the two Link peers did not find each other within 30 s (multicast blocked?)", file=sys.stderr)
            return 1
        start = lines.index("ready\n") + 1
        differences_ms: list[float] = []
        end = time.monotonic() + args.seconds
        seen = start
        while time.monotonic() < end:
            time.sleep(0.05)
            for line in lines[seen:]:
                words = line.split()
                ours_beat = ours.beat_at(ours.runtime_s(int(words[0])))
                offset = (ours_beat - float(words[1]) + 2.0) % 4.0 - 2.0  # Link aligns the phase in the bar
                differences_ms.append(abs(offset) * 60000.0 / float(words[2]))
            seen = len(lines)
        delays_ms = []
        for i in range(args.changes):
            new_bpm = 100.0 + 7.0 * (i + 1)
            mark = len(lines)
            set_us = ours.link_us(clock.now_s())
            ours.set_tempo(new_bpm)
            deadline = time.monotonic() + 5
            hit = None
            while hit is None and time.monotonic() < deadline:
                time.sleep(0.005)
                hit = next((line for line in lines[mark:] if len(line.split()) == 4
                            and abs(float(line.split()[2]) - new_bpm) < 0.01), None)
            delays_ms.append((int(hit.split()[0]) - set_us) / 1000.0 if hit else float("inf"))
    finally:
        stdin.close()
        peer.wait(10)
        ours.close()
    return print_figures({
        "samples": len(differences_ms),
        "phase_difference_ms_p50": round(statistics.median(differences_ms), 4),
        "phase_difference_ms_p99": round(percentile(differences_ms, 99), 4),
        "phase_difference_ms_max": round(max(differences_ms), 4),
        "tempo_changes": len(delays_ms),
        "tempo_change_reached_peer_ms_p50": round(statistics.median(delays_ms), 2),
        "tempo_change_reached_peer_ms_max": round(max(delays_ms), 2),
        "note": "delay includes the peer's 5 ms reporting period",
    }, args.json)


# --- MIDI clock ---------------------------------------------------------------------------------------
class _MedianFollower:
    """The follower this one replaced: the median of the last 48 tick intervals."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    def tick(self, t_s: float) -> float | None:
        self.ticks.append(t_s)
        del self.ticks[:-49]
        if len(self.ticks) < 25:
            return None
        return 60.0 / (24 * statistics.median(b - a for a, b in zip(self.ticks, self.ticks[1:])))


def _bench_midi_clock(args: argparse.Namespace) -> int:
    from installation.tempo import ClockFollower

    period_s = args.period_ms / 1000.0
    results = {"period_ms": round(args.period_ms, 3), "tempos": []}
    for bpm in args.bpm or [90.0, 120.0, 140.0, 174.0]:
        follower, median = ClockFollower(), _MedianFollower()
        interval = 60.0 / (24 * bpm)
        readings: dict[str, dict[str, float | None]] = {"least_squares": {}, "median": {}}
        marks = [0.5, 1.0, 2.0, 5.0]
        n = 0
        while marks:
            true_s = 0.0137 + n * interval
            seen_s = math.ceil(true_s / period_s) * period_s
            follower.tick(seen_s)
            m = median.tick(seen_s)
            if true_s >= marks[0]:
                exact = follower.exact_bpm()
                readings["least_squares"][f"{marks[0]:g}s"] = None if exact is None else round(exact, 2)
                readings["median"][f"{marks[0]:g}s"] = None if m is None else round(m, 2)
                marks.pop(0)
            n += 1
        results["tempos"].append({"bpm": bpm, **readings})
    return print_figures(results, args.json)


# --- MIDI in ---------------------------------------------------------------------------------------
def _bench_midi_in(args: argparse.Namespace) -> int:
    """A JACK server of its own; one connected controller and one absent, polled as in the show."""
    import os
    import shutil

    import mido

    from hardware.midi.input import MidoMidiIn
    from installation.clock import MonotonicClock
    from installation.config import ControlConfig
    from installation.operators.control import MidiControlThread
    from installation.mailbox import DropOldest
    from installation.operators.midi_learn import LiveMidiMap

    if shutil.which("jackd") is None:
        print("bench midi-in needs jackd (Debian package jackd2)", file=sys.stderr)
        return 1
    name = f"bench{os.getpid()}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    server = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jack = "mido.backends.rtmidi/UNIX_JACK"
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["jack_wait", "-c", "-s", name], capture_output=True, text=True).stdout.strip() != "running":
            if time.monotonic() > deadline:
                print("jackd did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        backend = mido.Backend(jack)
        knobs = backend.open_output("Bench knobs", virtual=True)
        t0 = time.perf_counter()
        for _ in range(5):
            backend.get_input_names()
        backend_listing_ms = (time.perf_counter() - t0) / 5 * 1000
        clock = MonotonicClock()
        ports = [MidoMidiIn("Bench knobs", clock, jack), MidoMidiIn("Absent pads", clock, jack)]
        live_map: Any = LiveMidiMap(ControlConfig())  # mido messages -> commands, like MidiMapper
        thread = MidiControlThread(ports, live_map, DropOldest(64))
        thread.start()
        shown, pacer = 0, _FramePacer(30.0)
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            shown += 1
            pacer.wait()
        elapsed, late = time.monotonic() - start, pacer.late
        t0 = time.perf_counter()
        for _ in range(100):
            ports[1]._input_names()
        probe_listing_ms = (time.perf_counter() - t0) / 100 * 1000
        listings = [p.listings for p in ports]
        thread.stop()
        knobs.close()
    finally:
        server.terminate()
        server.wait(5)
    return print_figures({"seconds": round(elapsed, 1), "target_fps": 30, "fps": round(shown / elapsed, 2), "late_frames": late,
                   "listings_connected_port": listings[0] - 1 if listings[0] else 0,
                   "listings_absent_port": listings[1],
                   "backend_listing_ms": round(backend_listing_ms, 2), "probe_listing_ms": round(probe_listing_ms, 3),
                   "note": "a backend listing opens a new JACK client; the probe is one client kept open; a "
                           "connected port is checked in its own client only when it has been quiet"}, args.json)


# --- video out ------------------------------------------------------------------------------------
class _FramePacer:
    """Frame deadlines at a fixed rate, as a projector loop keeps them: `wait` sleeps to the next
    deadline; a frame that is already past it counts as late and the schedule restarts from now."""

    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps
        self.deadline_s = time.monotonic()
        self.late = 0

    def wait(self) -> None:
        self.deadline_s += self.period_s
        remaining_s = self.deadline_s - time.monotonic()
        if remaining_s > 0:
            time.sleep(remaining_s)
        else:
            self.late += 1
            self.deadline_s = time.monotonic()


def _projector_run(seconds: float, width: int, height: int, fps: float, out) -> dict:
    import os

    import numpy as np

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from hardware.video.display import PygameDisplay

    display = PygameDisplay("window", width, height)
    display.open()
    y, x = np.mgrid[0:height, 0:width]
    base = ((x + y) % 256).astype(np.uint8)
    frames = [np.stack([np.roll(base, i * 8, axis=1), base, np.roll(base, -i * 8, axis=0)], axis=-1) for i in range(16)]
    if out is not None:
        out.open()
    shown, pacer = 0, _FramePacer(fps)
    show_ms: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        rgb = frames[shown % len(frames)]
        t0 = time.perf_counter()
        display.show(rgb)
        if out is not None:
            out.show(rgb)
        show_ms.append((time.perf_counter() - t0) * 1000.0)
        shown += 1
        pacer.wait()
    elapsed, late = time.monotonic() - start, pacer.late
    stats = out.stats() if out is not None else []
    if out is not None:
        out.close()
    display.close()
    return {"fps": round(shown / elapsed, 2), "late_frames": late, "show_ms_p50": round(statistics.median(show_ms), 3),
            "show_ms_p99": round(percentile(show_ms, 99), 3),
            "sinks": [{**s, "sent_fps": round(s["sent"] / elapsed, 2)} for s in stats]}


def _bench_video_out(args: argparse.Namespace) -> int:
    from hardware.video.output import build_video_out
    from installation.clock import MonotonicClock
    from installation.config import VideoOutConfig

    wanted = {name.strip() for name in args.sinks.split(",") if name.strip()}
    name = "Chromesthesia bench"
    cfg = VideoOutConfig(ndi="ndi" in wanted, virtual_camera="virtual_camera" in wanted, ndi_name=name).settings()
    results = {"size": f"{args.width}x{args.height}", "target_fps": args.fps,
               "sinks_off": _projector_run(args.seconds, args.width, args.height, args.fps, None),
               "sinks_on_nobody_watching": _projector_run(args.seconds, args.width, args.height, args.fps,
                                                          build_video_out(cfg, args.width, args.height, args.fps,
                                                                          MonotonicClock()))}
    if cfg.ndi:  # an NDI receiver in another process, connected for the whole run
        receiver = subprocess.Popen([sys.executable, str(ROOT / "tools" / "ndi_receiver.py"), "--name", name,
                                     "--seconds", str(args.seconds)], stdout=subprocess.PIPE, text=True)
        out = build_video_out(cfg, args.width, args.height, args.fps, MonotonicClock())
        results["sinks_on_receiver_connected"] = _projector_run(args.seconds + 5, args.width, args.height, args.fps, out)
        try:
            lines = receiver.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            receiver.kill()
            lines = receiver.communicate()[0]
        results["receiver"] = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return print_figures(results, args.json)
