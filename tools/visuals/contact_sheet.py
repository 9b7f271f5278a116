#!/usr/bin/env python3
"""Stills and a contact sheet of the scenes from real runs.

For each scene: `python run.py --headless --duration 14 --record RUNS/NAME --set installation.scene="NAME"`,
then this script takes the frame at 80 % of RUNS/NAME/visuals.mp4, writes docs/scenes/NAME.png (small)
and docs/scenes/contact-sheet.png (four by two, labelled).

    python tools/visuals/contact_sheet.py RUNS [--out docs/scenes]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

SCENES = ("nocturne", "pulse", "tide", "metropolis", "storm", "festival", "grove", "cosmos")
STILL = (400, 225)


def still(video: Path, at: float = 0.8) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, int(n * at)))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{video}: no frame at {at:.0%}")
    return cv2.resize(frame, STILL, interpolation=cv2.INTER_AREA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/scenes"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for name in SCENES:
        frame = still(args.runs / name / "visuals.mp4")
        cv2.imwrite(str(args.out / f"{name}.png"), frame, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        tile = frame.copy()
        cv2.rectangle(tile, (0, 0), (12 + 13 * len(name), 26), (0, 0, 0), -1)
        cv2.putText(tile, name, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)]
    cv2.imwrite(str(args.out / "contact-sheet.png"), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return 0


if __name__ == "__main__":
    sys.exit(main())
