"""Museum operations: `bench report` (a day of show log -> report, time and size) and
`bench web` (the projector's frame rate with 0 and with N dashboards open)."""
from __future__ import annotations

import argparse
import datetime as _dt
import time
from pathlib import Path

from installation.commands.shared import print_figures
from installation.showlog.synthetic_day import tile_show_log, write_synthetic_day


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
    return print_figures(figures, args.json)


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
    return print_figures(figures, args.json)
