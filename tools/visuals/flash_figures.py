#!/usr/bin/env python3
"""Flashes in a recording of the wall, as the flash guard counts them, and what the guard would do.

    python tools/visuals/flash_figures.py DIR/visuals.mp4 [--fps 30] [--skip 5] [--json OUT]

The recording (`python run.py --record DIR`) holds one picture per projector slot, so picture i is
at i / fps. Each picture goes through a measuring guard (installation/projection/flash_guard.py,
`limit=False`) and through a limiting one, whose output goes through a second measuring guard:

  flashes_max          the most flashes in any one second over more than a quarter of the picture
                       (general or red; the rules allow 3)
  flashes_mean         that figure for the second before each picture, averaged
  seconds_over_3       share of pictures whose second before holds more than 3
  would_limit          pictures a guard would hold back (with the guard on while recording: ~0)
  after_*              the same figures for the limiting guard's output, and `limited` its count

Modelled on the rules; not a certified Harding/PEAT test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from installation.projection.flash_guard import FlashGuard  # noqa: E402


def figures(pictures, fps: float, skip_s: float = 0.0) -> dict:
    """The figures above for RGB pictures, one per 1/fps."""
    before, guard, after = FlashGuard(limit=False), FlashGuard(), FlashGuard(limit=False)
    counts: dict[str, list[int]] = {"before": [], "after": []}
    n = 0
    for i, rgb in enumerate(pictures):
        t_s = i / fps
        before.limit(rgb, t_s)
        after.limit(guard.limit(rgb, t_s), t_s)
        if t_s >= skip_s:
            counts["before"].append(before.flashes(t_s))
            counts["after"].append(after.flashes(t_s))
        n += 1
    out: dict = {"pictures": n, "seconds": round(n / fps, 1), "would_limit": before.limited, "limited": guard.limited}
    for key, prefix in (("before", ""), ("after", "after_")):
        values = np.array(counts[key] or [0])
        out.update({f"{prefix}flashes_max": int(values.max()), f"{prefix}flashes_mean": round(float(values.mean()), 2),
                    f"{prefix}seconds_over_3": round(float((values > 3).mean()), 4)})
    out["after_would_limit"] = after.limited
    return out


def read(video: Path):
    import av  # PyAV: the recorder's own dependency
    with av.open(str(video)) as source:
        for frame in source.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--fps", type=float, default=30.0, help="the recording's picture rate (display.fps)")
    parser.add_argument("--skip", type=float, default=0.0, help="seconds at the start left out of the figures")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = figures(read(args.video), args.fps, args.skip)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
