"""Run the JACK and PortAudio tests (every test marked `jack`) again and again, each run under a timeout; count passes, fails, hangs.

    python tools/jack_test_loop.py --runs 20 [--timeout-s 600] [--json FILE]

A run that outlives its timeout is a hang: it is ended (SIGTERM to its process group, then SIGKILL)
and its output's tail kept. Each run is a fresh pytest process, as in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["-m", "jack", "tests"]
"""Every test that starts a JACK server (each in a pytest process of its own: tests/own_process.py)."""


def one_run(timeout_s: float) -> dict:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        outcome = "pass" if proc.returncode == 0 else "fail"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        outcome = "hang"
    lines = [line for line in (out or "").splitlines() if line.strip()]
    return {"outcome": outcome, "seconds": round(time.monotonic() - started, 1), "code": proc.returncode,
            "summary": lines[-1] if lines else "", **({"tail": "\n".join(lines[-40:])} if outcome != "pass" else {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.timeout_s))
        print(f"run {i + 1}: {runs[-1]['outcome']} in {runs[-1]['seconds']} s ({runs[-1]['summary']})", flush=True)
        if "tail" in runs[-1]:
            print(runs[-1]["tail"], flush=True)
    seconds = sorted(r["seconds"] for r in runs)
    figures = {"runs": len(runs), **{k: sum(r["outcome"] == k for r in runs) for k in ("pass", "fail", "hang")},
               "seconds_median": seconds[len(seconds) // 2] if seconds else None,
               "seconds_max": seconds[-1] if seconds else None, "load_average_1m": round(os.getloadavg()[0], 2),
               "failures": [r for r in runs if r["outcome"] != "pass"]}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if figures["pass"] == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
