"""Museum operations: `bench report` (a day of show log -> report, time and size) and
`bench web` (the projector's frame rate with 0 and with N dashboards open)."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import time
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()
    report = groups["bench"].add_parser("report", parents=[common],
                                        help="write a synthetic day of show log and time the day report")
    report.add_argument("--hours", type=float, default=24.0, help="hours of log (default 24)")
    report.add_argument("--status-s", type=float, default=5.0, help="seconds between status records (5 = the always-on log)")
    report.add_argument("--dir", type=Path, default=None, help="where to write the log and report (default: a temporary folder)")
    report.add_argument("--tile", type=Path, default=None, metavar="LOG",
                        help="make the day by repeating a real run's show log (and its thumbnails) instead of a synthetic one")
    report.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    report.set_defaults(handler=_bench_report)
    web = groups["bench"].add_parser("web", parents=[common],
                                     help="projector frame rate with no dashboard and with N dashboards open")
    web.add_argument("--clients", type=int, default=10, help="open dashboards (default 10)")
    web.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    web.add_argument("--fps", type=float, default=30.0, help="projector frame rate asked for")
    web.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    web.set_defaults(handler=_bench_web)


def write_synthetic_day(folder: Path, day: _dt.date, hours: float = 24.0, status_s: float = 5.0,
                        gap: tuple[_dt.time, float] | None = (_dt.time(13, 0), 20 * 60.0),
                        thumbnail_width: int = 240, seed: int = 0,
                        open_hours: tuple[_dt.time, _dt.time] | None = None) -> Path:
    """A show log as ShowLog writes it, for `hours` from local midnight of `day`: status records
    (music, camera and projected VA that drift through the day), captions, plans, scene changes,
    thumbnails (dark at the start, like a fade-in), commands (some refused), faults late in the
    day, and a silence of `gap` (start time, seconds) as a power cut leaves it. With `open_hours`
    the rest of the day is closed: `schedule` records, the schedule's /blackout, black frames."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    thumbs = folder / "show.thumbs"
    thumbs.mkdir(exist_ok=True)
    path = folder / "show.jsonl"
    start = _dt.datetime.combine(day, _dt.time()).astimezone()
    gap_from = _dt.datetime.combine(day, gap[0]).astimezone() if gap else None
    gap_s = gap[1] if gap else 0.0
    lines = []

    def write(when: _dt.datetime, kind: str, **fields) -> None:
        record = {"t_s": round((when - start).total_seconds() + 3.0, 4),
                  "time": when.isoformat(timespec="milliseconds"), "kind": kind, **fields}
        lines.append(json.dumps(record, separators=(",", ":")))

    t_s, n = 0.0, 0
    scenes = ("nocturne", "pulse", "gallery")
    write(start, "start", name="Gallery 3", scene="nocturne")
    was_open: bool | None = None
    while t_s < hours * 3600:
        when = start + _dt.timedelta(seconds=t_s)
        is_open = open_hours is None or open_hours[0] <= when.time() < open_hours[1]
        if open_hours is not None and is_open != was_open:
            was_open = is_open
            write(when, "schedule", state="open" if is_open else "closed")
            write(when, "command", address="/blackout", args=[0 if is_open else 1], sender="schedule", ok=True)
        if gap_from is not None and gap_from <= when < gap_from + _dt.timedelta(seconds=gap_s):
            t_s = (gap_from - start).total_seconds() + gap_s
            write(start + _dt.timedelta(seconds=t_s), "start", name="Gallery 3", scene="nocturne")
            continue
        phase = 2 * math.pi * t_s / 86400
        music = [math.sin(phase) + rng.normal(0, 0.15), math.cos(phase * 3) * 0.8 + rng.normal(0, 0.15)]
        camera = [0.5 * math.cos(phase) + rng.normal(0, 0.05), 0.3 + rng.normal(0, 0.05)]
        projected = [0.6 * music[0] + rng.normal(0, 0.05), 0.6 * music[1] + rng.normal(0, 0.05)]
        if not is_open:
            projected = [-0.93, -0.9]  # what the VA model makes of a black frame
        write(when, "status", installation="Gallery 3", scene=scenes[(n // 2000) % 3],
              music_va=[round(float(np.clip(v, -1, 1)), 3) for v in music],
              image_va=[round(float(np.clip(v, -1, 1)), 3) for v in camera],
              projected_va=[round(float(np.clip(v, -1, 1)), 3) for v in projected],
              tempo_bpm=96.0, key="A minor", caption="a slow blue tide", reasons={"mood": "calm"},
              render="procedural", fps=29.8, notes_per_s=3.2,
              drops={"music": 0, "captions": 0, "frames": n // 500, "commands": 0}, failures=0, restarts=0,
              blackout=not is_open, freeze=False)
        if n % max(1, int(30 / status_s)) == 0:
            write(when, "caption", prompt=f"a slow blue tide, hour {int(t_s // 3600)}", reasons={"mood": "calm", "tempo": "slow"})
        if n % max(1, int(10 / status_s)) == 0:
            write(when, "plan", abc="X:1\nK:Am\nA2c2e2|", reasons=["image is calm"], start_s=t_s, end_s=t_s + 8)
        if n % max(1, int(60 / status_s)) == 0:
            level = 0 if t_s < 120 or not is_open else 60 + int(120 * (0.5 + 0.5 * math.sin(phase * 5)))
            image = np.full((thumbnail_width * 9 // 16, thumbnail_width, 3), level, np.uint8)
            image[:, : thumbnail_width // 3, 2] = min(255, level + 80)
            name = f"{when:%Y%m%d-%H%M%S-%f}.jpg"
            cv2.imwrite(str(thumbs / name), image)
            write(when, "thumbnail", path=f"show.thumbs/{name}")
        if n and n % 2000 == 0:
            write(when, "command", address="/scene", args=[scenes[(n // 2000) % 3]], sender="192.168.1.20:9000", ok=True)
            write(when, "scene", scene=scenes[(n // 2000) % 3], crossfade_s=3.0, sender="192.168.1.20:9000")
        if n and n % 3000 == 0:
            write(when, "command", address="/param/brightness", args=[3], sender="192.168.1.20:9000", ok=False,
                  reason="value 3 is out of range 0..1")
        if t_s >= hours * 3600 - 1800 and n % 60 == 0:
            write(when, "fault", worker="renderer", error="CUDA out of memory; stepped down to 384 px")
        t_s += status_s
        n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tile_show_log(source: Path, folder: Path, day: _dt.date, hours: float = 24.0) -> Path:
    """A day of show log from local midnight of `day`, made by repeating the records of a real
    run's log (`source`) back to back, each copy shifted by the run's length; its thumbnails are
    copied beside it. The records are the run's own: the day is as big as that run, repeated."""
    import shutil

    from installation.showlog.writer import read_show_log

    records = [r for r in read_show_log(source) if isinstance(r.get("t_s"), (int, float))]
    if len(records) < 2:
        raise ValueError(f"{source} holds too few records to tile")
    first_s = float(records[0]["t_s"])
    span_s = max(1.0, float(records[-1]["t_s"]) - first_s)
    folder.mkdir(parents=True, exist_ok=True)
    thumbs = source.parent / f"{source.stem}.thumbs"
    if thumbs.is_dir():
        shutil.copytree(thumbs, folder / thumbs.name, dirs_exist_ok=True)
    start = _dt.datetime.combine(day, _dt.time()).astimezone()
    path = folder / "show.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for copy in range(math.ceil(hours * 3600 / span_s)):
            for record in records:
                offset_s = copy * span_s + float(record["t_s"]) - first_s
                if offset_s >= hours * 3600:
                    break
                when = start + _dt.timedelta(seconds=offset_s)
                shifted = {**record, "t_s": round(offset_s + 3.0, 4), "time": when.isoformat(timespec="milliseconds")}
                if shifted.get("kind") == "start" and copy:
                    continue  # one start for the day, as a day without restarts has
                out.write(json.dumps(shifted, separators=(",", ":")) + "\n")
    return path


def _bench_report(args: argparse.Namespace) -> int:
    import tempfile

    from installation.showlog.report import write_report

    folder = args.dir or Path(tempfile.mkdtemp(prefix="chromesthesia-report-"))
    day = _dt.date(2026, 11, 30)
    started = time.perf_counter()
    if args.tile is not None:
        log = tile_show_log(args.tile, folder, day, args.hours)
    else:
        log = write_synthetic_day(folder, day, args.hours, args.status_s)
    made_s = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    out = write_report(folder, folder / "day.html", period="day", date=day)
    day_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    figures = {"hours": args.hours, "tiled_from": str(args.tile) if args.tile else "synthetic",
               "status_interval_s": args.status_s, "records": sum(1 for _ in open(log)),
               "log_mb": round(log.stat().st_size / 1e6, 2), "write_log_s": round(made_s, 2),
               "report_s": round(day_s, 2), "report_cpu_s": round(cpu_s, 2), "report_mb": round(out.stat().st_size / 1e6, 2), "report": str(out)}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def run_web_bench(clients: int, seconds: float, fps: float, extra: list[str] | None = None) -> dict:
    """The installation (headless, procedural) in its own process with the dashboard on; its own
    projector fps sampled from /status for `seconds` with no dashboard open, then with `clients`
    dashboards open over websockets (each receiving status and preview pictures)."""
    import subprocess

    target = _WebBenchTarget(fps, seconds, extra)
    try:
        target.wait_until_projecting()
        time.sleep(3.0)  # past start-up
        alone = target.sample(seconds)
        received, pictures, watched = _watch_with_viewers(target, clients, seconds)
    finally:
        target.proc.terminate()
        try:
            target.proc.wait(15)
        except subprocess.TimeoutExpired:
            target.proc.kill()
    return _web_bench_figures(fps, seconds, clients, alone, watched, received, pictures)


class _WebBenchTarget:
    """The installation under the web bench: its process, its dashboard's address and token."""

    def __init__(self, fps: float, seconds: float, extra: list[str] | None) -> None:
        import secrets
        import socket
        import subprocess
        import sys

        root = Path(__file__).resolve().parent.parent.parent
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.token = secrets.token_urlsafe(8)
        command = [sys.executable, str(root / "run.py"), "--headless", "--quiet", "--duration", str(2 * seconds + 120),
                   "--set", "web.enabled=true", "--set", f"web.port={self.port}", "--set", f'web.token="{self.token}"',
                   "--set", f"display.fps={int(fps)}", "--set", "osc.enabled=false", *(extra or [])]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def status(self) -> dict | None:
        """The installation's /status, or None while it does not answer."""
        import httpx

        try:
            return httpx.get(self.url + "/status", params={"token": self.token}, timeout=5).json()["status"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def sample(self, window_s: float) -> list[float]:
        """The projector fps read from /status every half second for `window_s`."""
        values, end = [], time.monotonic() + window_s
        while time.monotonic() < end:
            s = self.status()
            if s:
                values.append(float(s.get("fps") or 0.0))
            time.sleep(0.5)
        return values

    def wait_until_projecting(self) -> None:
        """Wait (up to 2 minutes) for a non-zero fps; raise if the installation ends first."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ((s := self.status()) and (s.get("fps") or 0) > 0):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the installation ended: {(self.proc.stderr.read() if self.proc.stderr else '')[-2000:]}")
            time.sleep(0.5)


def _watch_with_viewers(target: _WebBenchTarget, clients: int,
                        seconds: float) -> tuple[list[int], list[int], list[float]]:
    """Open `clients` dashboards over websockets and sample fps while they receive; returns the
    messages and pictures each viewer received, and the fps samples."""
    import threading

    from websockets.sync.client import connect

    stop = threading.Event()
    received = [0] * clients
    pictures = [0] * clients

    def viewer(i: int) -> None:
        try:
            with connect(f"ws://127.0.0.1:{target.port}/ws?token={target.token}", open_timeout=20) as ws:
                while not stop.is_set():
                    message = ws.recv(timeout=5)
                    received[i] += 1
                    pictures[i] += isinstance(message, bytes)
        except Exception:  # noqa: BLE001 - a viewer that fails shows in the counts
            pass

    threads = [threading.Thread(target=viewer, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    watched = target.sample(seconds)
    stop.set()
    for thread in threads:
        thread.join(10)
    return received, pictures, watched


def _web_bench_figures(fps: float, seconds: float, clients: int, alone: list[float], watched: list[float],
                       received: list[int], pictures: list[int]) -> dict:
    """The web bench's figures: fps alone and watched (mean and min), messages and pictures per viewer."""
    import statistics

    return {"fps_asked": fps, "seconds_each": seconds, "clients": clients,
            "fps_0_clients": round(statistics.mean(alone), 2) if alone else None,
            "fps_0_clients_min": round(min(alone), 2) if alone else None,
            f"fps_{clients}_clients": round(statistics.mean(watched), 2) if watched else None,
            f"fps_{clients}_clients_min": round(min(watched), 2) if watched else None,
            "messages_per_client_s": round(statistics.mean(received) / seconds, 2) if clients else 0,
            "pictures_per_client_s": round(statistics.mean(pictures) / seconds, 2) if clients else 0}


def _bench_web(args: argparse.Namespace) -> int:
    figures = run_web_bench(args.clients, args.seconds, args.fps)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0
