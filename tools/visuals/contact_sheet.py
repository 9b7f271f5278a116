#!/usr/bin/env python3
"""Stills, a contact sheet and a clip of each scene from real runs.

For each scene: `python run.py --headless --scene NAME --duration 20 --record RUNS/NAME` (with
`--run` this script starts them, one after another), then it takes the frames at 4, 8 and 12 s of
RUNS/NAME/visuals.mp4 and writes docs/scenes/NAME.png (the 8 s frame, small) and
docs/scenes/contact-sheet.png: one row per scene, three frames a row, labelled with the scene and
the time. With `--clips` it also writes docs/scenes/clips/NAME.webm: the whole run at 480x270 and
15 fps (VP9), each output frame the one the projector showed at that moment by frames.csv's clock.

    python tools/visuals/contact_sheet.py RUNS [--run] [--clips] [--out docs/scenes] [--scenes a,b]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SCENES = ("nocturne", "pulse", "tide", "metropolis", "storm", "festival", "grove", "cosmos")
TIMES_S = (4.0, 8.0, 12.0)
RUN_S = 20
CLIP_SIZE = (480, 270)
CLIP_FPS = 15
STILL = (400, 225)
TILE = (320, 180)


def frame_at(video: Path, t_s: float, run_s: float = RUN_S) -> np.ndarray:
    """The frame shown about `t_s` seconds into a `run_s` run. The recording holds the frames the
    projector showed, fewer than its nominal rate when the machine is loaded, so time maps to the
    frames by their share of the run, not by the file's frame rate."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    index = min(max(0, n - 1), int(round(t_s / run_s * n)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{video}: no frame at {t_s:g} s ({n} frames at {fps:g} fps)")
    return frame


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (10 + 10 * len(text), 22), (0, 0, 0), -1)
    cv2.putText(tile, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def write_clip(run: Path, out: Path) -> int:
    """RUNS/NAME/visuals.mp4 -> a small VP9 clip on the run's real clock; returns its frame count."""
    import av  # PyAV: the recorder's own dependency
    stamps = [float(row.split(",")[0]) for row in (run / "frames.csv").read_text().splitlines()[1:] if row]
    with av.open(str(run / "visuals.mp4")) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    n = min(len(stamps), len(frames))
    if n == 0:
        raise SystemExit(f"{run}: no frames recorded")
    stamps, frames = stamps[:n], frames[:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w", format="webm") as sink:
        stream = sink.add_stream("libvpx-vp9", rate=CLIP_FPS, options={"crf": "40", "b:v": "0", "deadline": "good"})
        stream.width, stream.height, stream.pix_fmt = CLIP_SIZE[0], CLIP_SIZE[1], "yuv420p"
        shown, count, t_s = 0, 0, stamps[0]
        while t_s <= stamps[-1]:
            while shown + 1 < n and stamps[shown + 1] <= t_s:
                shown += 1
            small = cv2.resize(frames[shown], CLIP_SIZE, interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")):
                sink.mux(packet)
            count, t_s = count + 1, t_s + 1.0 / CLIP_FPS
        for packet in stream.encode():
            sink.mux(packet)
    return count


def record(runs: Path, name: str) -> None:
    """One real run of the scene, as a visitor would see it (the shipped config, headless)."""
    command = [sys.executable, "run.py", "--headless", "--quiet", "--scene", name, "--duration", str(RUN_S),
               "--record", str(runs / name)]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--run", action="store_true", help="record the runs first (20 s each, one after another)")
    parser.add_argument("--clips", action="store_true", help="also write clips/NAME.webm of each whole run")
    parser.add_argument("--out", type=Path, default=Path("docs/scenes"))
    parser.add_argument("--scenes", default=",".join(SCENES), help="comma-separated scene names")
    args = parser.parse_args()
    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in scenes:
        video = args.runs / name / "visuals.mp4"
        if args.run or not video.exists():
            record(args.runs, name)
        frames = [frame_at(video, t) for t in TIMES_S]
        still = cv2.resize(frames[1], STILL, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.out / f"{name}.png"), still, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        tiles = [label(cv2.resize(f, TILE, interpolation=cv2.INTER_AREA), f"{name} {t:g} s") for f, t in zip(frames, TIMES_S)]
        rows.append(np.hstack(tiles))
        if args.clips:
            clip = args.out / "clips" / f"{name}.webm"
            count = write_clip(args.runs / name, clip)
            print(f"{clip}: {count} frames, {clip.stat().st_size / 1024:.0f} KiB", flush=True)
    sheet = np.vstack(rows)
    cv2.imwrite(str(args.out / "contact-sheet.png"), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{args.out / 'contact-sheet.png'}: {len(scenes)} scenes x {len(TIMES_S)} frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
