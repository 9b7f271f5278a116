"""`bench soak`: the installation at full rate for minutes or hours, and how its memory grows.

The installation runs as its own process (`run.py --headless`), exactly as a museum starts it;
this command samples the process's resident memory from /proc and reads its show log at the
end. Growth is the slope of a least-squares line through the samples after the warm-up (caches,
first allocations of numba, torch and the renderer), in MB per hour. Samples end `--minutes` after
the launch: what the process does once it stops (flushing the show log, joining its threads) is not
growth over months.

With `--window` it runs as a projector does, in a real window (display.mode = "window"), under a
virtual X server it starts itself when there is no DISPLAY: a window on Mesa's GL is where native
crashes come from, which a headless run never meets. A crash (the process ended by a signal) is
counted and its stacks, which the installation writes to crash.log beside its show log, are shown.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.evaluation.soak import crash_of, summarise

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE_S = 5.0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    bench = groups["bench"].add_parser("soak", parents=[config_options()],
                                       help="run the installation for N minutes; RSS growth per hour, fps, faults")
    bench.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    bench.add_argument("--warmup-minutes", type=float, default=None,
                       help="samples before this are left out of the fit (default: a tenth of the run, at most 10)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--window", action="store_true",
                       help="run in a real window (under Xvfb, started here, when there is no DISPLAY); counts crashes")
    bench.add_argument("--jack-restart-every-min", type=float, default=0.0, metavar="MIN",
                       help="play through a JACK dummy server the soak starts, kills (-9) and starts again every MIN "
                            "minutes; the speakers and MIDI out use it (0 = no JACK, the default)")
    bench.add_argument("--midi-cycle-every-min", type=float, default=0.0, metavar="MIN",
                       help="with JACK: the MIDI synth's port goes for 2 s and returns every MIN minutes, halfway "
                            "between the server's restarts (0 = never)")
    bench.add_argument("--trace-memory", type=Path, metavar="FILE",
                       help="trace the installation's memory once a minute into FILE (tools/memory_trace.py: "
                            "object types, threads, glibc's heap and the mappings, compared with the warm-up)")
    bench.add_argument("--trace-sites", action="store_true",
                       help="with --trace-memory: also the Python allocation sites (tracemalloc from the warm-up on; "
                            "its own tables add to the native heap, so the RSS figures are not the show's)")
    bench.set_defaults(handler=_soak)


def rss_mb(pid: int) -> float | None:
    """Resident set size of one process in MB (VmRSS), None when it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def tree_rss_mb(pid: int) -> float | None:
    """Resident set size of a process and all its descendants (the MIDI sender, the speakers' and
    the sentence model's processes), in MB; None when it has gone. Pages shared between them are
    counted in each."""
    import psutil
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            pass
    return total / 2**20


def _soak(args: argparse.Namespace) -> int:
    from installation.errors import UserError

    if args.minutes <= 0:
        raise UserError(f"--minutes {args.minutes} must be a positive number.")
    if not args.window:
        return _soak_in(args, ["--headless"])
    window = ["--set", 'display.mode="window"']
    if os.environ.get("DISPLAY"):
        return _soak_in(args, window)
    from hardware.video.virtual_display import xvfb
    with xvfb() as display:
        return _soak_in(args, window, {"DISPLAY": display})


def installation_command(args: argparse.Namespace, mode: list[str], duration_s: float, log_path: Path) -> list[str]:
    """The installation's command line: the soak's --config and --set passed on (it runs from ROOT,
    so a relative --config is made absolute first)."""
    command = [sys.executable, str(ROOT / "run.py"), *mode, "--quiet", "--duration", f"{duration_s:g}"]
    config = getattr(args, "config", None)
    if config is not None:
        command += ["--config", str(Path(config).resolve())]
    command += ["--set", f'showlog.path="{log_path}"', "--set", "showlog.status_interval_s=10"]
    if getattr(args, "jack_restart_every_min", 0.0) or getattr(args, "midi_cycle_every_min", 0.0):
        from installation.commands.soak_jack import SYNTH_NAME
        command += ["--set", 'synth.speakers="on"', "--set", 'audio.source="synth"',
                    "--set", f'midi.outputs=["{SYNTH_NAME}"]', "--set", 'midi.backend="mido.backends.rtmidi/UNIX_JACK"']
    for override in args.overrides:
        command += ["--set", override]
    return command


def trace_env(path: Path, warmup_s: float, sites: bool = False) -> dict[str, str]:
    """The environment that starts tools/memory_trace.py inside the installation's process."""
    memtrace = str(ROOT / "tools" / "memtrace")
    python_path = os.pathsep.join(p for p in (memtrace, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": python_path, "CHROMESTHESIA_MEMTRACE": str(path.resolve()),
            "CHROMESTHESIA_MEMTRACE_WARMUP_S": f"{warmup_s:g}", "CHROMESTHESIA_MEMTRACE_SITES": "1" if sites else "0"}


def _soak_in(args: argparse.Namespace, mode: list[str], env: dict[str, str] | None = None) -> int:
    from installation.errors import UserError
    from installation.showlog.writer import read_show_log

    duration_s = args.minutes * 60.0
    warmup_s = 60.0 * (args.warmup_minutes if args.warmup_minutes is not None else min(10.0, args.minutes / 10.0))
    folder = Path(tempfile.mkdtemp(prefix="chromesthesia-soak-"))
    log_path = folder / "show.jsonl"
    command = installation_command(args, mode, duration_s, log_path)
    stderr_path = folder / "stderr.txt"
    times_s: list[float] = []
    rss: list[float] = []
    tree: list[float] = []
    studio = None
    if args.jack_restart_every_min or args.midi_cycle_every_min:
        from installation.commands.soak_jack import FailingStudio
        studio = FailingStudio(args.jack_restart_every_min, args.midi_cycle_every_min)
        env = {**(env or {}), **studio.start()}
    if getattr(args, "trace_memory", None) is not None:
        env = {**(env or {}), **trace_env(args.trace_memory, warmup_s, getattr(args, "trace_sites", False))}
    try:
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                                    env={**os.environ, **(env or {})})
            started = time.monotonic()
            if studio is not None:
                studio.began(started, duration_s)
            sampled_s = -SAMPLE_S
            try:
                while proc.poll() is None:
                    elapsed_s = time.monotonic() - started
                    if elapsed_s - sampled_s >= SAMPLE_S:
                        sampled_s = elapsed_s
                        value = rss_mb(proc.pid)
                        whole = tree_rss_mb(proc.pid)
                        if value is not None and elapsed_s < duration_s:
                            times_s.append(elapsed_s)
                            rss.append(value)
                            tree.append(whole if whole is not None else value)
                    if studio is not None:
                        studio.step(time.monotonic())
                    time.sleep(SAMPLE_S if studio is None else 0.25)
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    finally:
        if studio is not None:
            studio.close()
    crash = crash_of(proc.returncode)
    if crash is None and (proc.returncode not in (0, -signal.SIGTERM) or len(rss) < 3):
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise UserError(f"the installation ended with code {proc.returncode} after {len(rss)} samples; "
                        f"its last words: {tail.strip().splitlines()[-1] if tail.strip() else 'none'}.")
    show = [r for path in sorted(folder.glob("show*.jsonl")) for r in read_show_log(path)]
    figures = summarise(times_s, rss, warmup_s, show, tree) if len(rss) >= 1 else {"minutes": 0.0}
    stop: dict = next((r for r in reversed(show) if r.get("kind") == "stop"), {})
    figures["frames_shown"] = (stop.get("counters") or {}).get("frames_shown")
    figures["display"] = "window" if args.window else "headless"
    figures["crashes"] = int(crash is not None)
    figures["crash_signal"] = crash
    figures["run_seconds"] = round(time.monotonic() - started, 1)
    if studio is not None:
        figures["studio"] = studio.figures(started + duration_s)
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    figures["show_log"] = str(log_path)
    crash_log = folder / "crash.log"
    if crash_log.exists() and crash_log.stat().st_size:
        figures["crash_log"] = str(crash_log)
    return _report(args, figures, crash, crash_log)


def _report(args: argparse.Namespace, figures: dict, crash: str | None, crash_log: Path) -> int:
    """Print the figures (and write them to --json); a crash's stacks to stderr, and 1."""
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    if getattr(args, "trace_memory", None) is not None and args.trace_memory.exists():
        print(f"memory trace: python tools/memory_trace.py {args.trace_memory}", file=sys.stderr)
    if crash is not None:
        stacks = crash_log.read_text(errors="replace") if "crash_log" in figures else "(no crash.log)"
        stacks = "\n".join(line for line in stacks.splitlines() if not line.startswith("Extension modules:"))
        print(f"the installation crashed ({crash}) after {figures['run_seconds']} s; its stacks (the crashing "
              f"thread last):\n{stacks[-8000:]}", file=sys.stderr)
        return 1
    return 0
