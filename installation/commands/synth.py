"""`bench synth`: what the built-in synth costs per second of audio, at the rates it plays at."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hardware.sound.offline import render_cost_ms_per_s


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    bench = groups["bench"].add_parser("synth", help="built-in synth: ms of rendering per second of audio")
    bench.add_argument("--seconds", type=float, default=5.0, help="seconds of audio rendered per rate")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    import os
    figures = {"rates": [render_cost_ms_per_s(rate, args.seconds) for rate in (22050, 48000)],
               "load_average_1m": round(os.getloadavg()[0], 2)}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0
