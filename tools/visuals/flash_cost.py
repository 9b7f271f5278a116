#!/usr/bin/env python3
"""What the flash guard costs a picture: its `limit` call timed on every picture of a recording.

    python tools/visuals/flash_cost.py DIR/visuals.mp4 [--fps 30]

Prints the median, 99th percentile and largest time in ms, for the pictures it passed and for the
ones it held back (those are blended at full size). Run it without `nice` and note the load.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from installation.projection.flash_guard import FlashGuard  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import av  # PyAV: the recorder's own dependency
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args(argv)
    guard = FlashGuard()
    times_ms: dict[str, list[float]] = {"passed": [], "held_back": []}
    size = None
    with av.open(str(args.video)) as source:
        for i, frame in enumerate(source.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            size = rgb.shape
            before = guard.limited
            start = time.perf_counter()
            guard.limit(rgb, i / args.fps)
            spent_ms = (time.perf_counter() - start) * 1e3
            times_ms["held_back" if guard.limited > before else "passed"].append(spent_ms)
    out: dict = {"size": f"{size[1]}x{size[0]}" if size else None}
    for key, values in times_ms.items():
        if values:
            v = np.array(values)
            out[key] = {"pictures": len(v), "median_ms": round(float(np.median(v)), 3),
                        "p99_ms": round(float(np.percentile(v, 99)), 3), "max_ms": round(float(v.max()), 3)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
