"""Measures the analysis streams as a receiver sees them: listen on a UDP port that is in
`osc.out_targets` (or /subscribe/out'd) for some seconds and print how often bundles arrive and
how often /out/beat's value changes.

    python tools/out_rate.py --port 57999 --seconds 20
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.stats import latency_summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=57999)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    sock.settimeout(0.5)
    arrivals: list[float] = []
    beats: list[float] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        arrivals.append(time.monotonic())
        if OscBundle.dgram_is_bundle(data):
            for item in OscBundle(data):
                if isinstance(item, OscMessage) and item.address == "/out/beat":
                    beats.append(float(item.params[0]))
    if len(arrivals) < 2:
        print(f"{len(arrivals)} bundles in {args.seconds:g} s: nothing to measure (is the port in osc.out_targets?)")
        return
    gaps_ms = [1000 * (b - a) for a, b in zip(arrivals, arrivals[1:])]
    span_s = arrivals[-1] - arrivals[0]
    changes = sum(1 for a, b in zip(beats, beats[1:]) if a != b)
    gap = latency_summary(gaps_ms, 1)
    print(f"{len(arrivals)} bundles over {span_s:.1f} s: {(len(arrivals) - 1) / span_s:.2f} a second; gap ms "
          f"median {gap['p50']}, p95 {gap['p95']}, max {gap['max']}; /out/beat changed {changes} times")


if __name__ == "__main__":
    main()
