"""`bench synth`: what the built-in synth costs per second of audio, at the rates it plays at."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BLOCK_FRAMES = 1024
NOTES = [(0, 72), (0, 76), (0, 79), (1, 60), (1, 64), (1, 67), (1, 71), (1, 55), (1, 59), (2, 36), (2, 43), (0, 84)]


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    bench = groups["bench"].add_parser("synth", help="built-in synth: ms of rendering per second of audio")
    bench.add_argument("--seconds", type=float, default=5.0, help="seconds of audio rendered per rate")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.set_defaults(handler=_bench)


def render_cost_ms_per_s(rate_hz: int, seconds: float) -> dict:
    """12 tonal voices (lead, strings, bass) and 4 drums struck every 8 blocks, in callback-sized blocks."""
    import mido

    from hardware.sound.synth import Synth
    synth = Synth(rate_hz)
    for channel, program in ((0, 0), (1, 48), (2, 32)):
        synth.send(mido.Message("program_change", channel=channel, program=program))
    for channel, note in NOTES:
        synth.send(mido.Message("note_on", channel=channel, note=note, velocity=100))
    blocks = int(seconds * rate_hz / BLOCK_FRAMES)
    block_ms = np.empty(blocks)
    for i in range(blocks):
        if i % 8 == 0:
            for note in (36, 38, 42, 46):
                synth.send(mido.Message("note_on", channel=9, note=note, velocity=100))
        t0 = time.perf_counter()
        synth.render(BLOCK_FRAMES)
        block_ms[i] = (time.perf_counter() - t0) * 1e3
    per_s = 1000.0 * BLOCK_FRAMES / rate_hz  # ms of audio in one block
    return {"rate_hz": rate_hz, "ms_per_s_median": round(float(np.median(block_ms)) * 1000.0 / per_s, 2),
            "block_ms_p95": round(float(np.percentile(block_ms, 95)), 3),
            "block_budget_ms": round(per_s, 2), "voices": len(NOTES) + 4}


def _bench(args: argparse.Namespace) -> int:
    import os
    figures = {"rates": [render_cost_ms_per_s(rate, args.seconds) for rate in (22050, 48000)],
               "load_average_1m": round(os.getloadavg()[0], 2)}
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0
