#!/usr/bin/env python3
"""Render a recording frame-exactly with projectM presets and write each frame's time and change.

    python tools/visuals/projectm_render.py RECORDING --out DIR [--preset FILE.milk ...] [--fps 30]

For each preset: DIR/<preset stem>/frames.csv in the format `python run.py --record` writes
(`t_s`, `audio_s`, `change`: mean |grey - previous grey|), then score it with
tools/visuals/onset_figures.py. Frame k is rendered after the audio up to (k + 1) / fps has been fed
and is stamped (k + 1) / fps: no rendering or display latency, the best projectM could do live.
`--video` also writes DIR/<preset stem>/visuals.mp4 of the sampled frames.

The renderer is tools/visuals/projectm_render.cpp, compiled here on first use (g++, pkg-config) into
~/.cache/chromesthesia/. Needs the Debian packages libprojectm-dev and projectm-data (its 4,188
MilkDrop presets), g++, pkg-config and Mesa's EGL (libegl-dev, libgl-dev): it renders offscreen
(EGL surfaceless, llvmpipe on a machine without a GPU), no X or window.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from installation.projection.frame_stamps import frame_change, grey_samples  # noqa: E402

SOURCE = Path(__file__).with_suffix(".cpp")
BINARY = Path.home() / ".cache/chromesthesia/projectm_render"
PRESETS_DIR = Path("/usr/share/projectM/presets/presets_milkdrop")
# Chosen by name before any measuring: a bass-driven zoom, a pulsing classic, a waveform piece.
PRESETS = ("Geiss - Bass Zoom.milk", "Aderrasi - Agitator.milk", "Geiss & Rovastar - Notions Of Tonality 2.milk")
RATE_HZ = 44100


def build(binary: Path = BINARY) -> Path:
    """The renderer binary, compiled when missing or older than its source."""
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libprojectM"], check=True, capture_output=True,
                           text=True).stdout.split()
    # -rdynamic: the binary's clock functions replace libc's for libprojectM (frame clock, not wall clock)
    subprocess.run(["g++", "-O2", "-std=c++17", "-rdynamic", "-o", str(binary), str(SOURCE), *flags, "-lEGL", "-lGL"],
                   check=True)
    return binary


def pcm16_stereo(recording: Path, out: Path) -> float:
    """The recording as raw interleaved 16-bit stereo at RATE_HZ in `out`; its duration in s."""
    import soundfile as sf
    from scipy.signal import resample_poly

    x, rate = sf.read(str(recording), dtype="float32", always_2d=True)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    x = x[:, :2]
    if rate != RATE_HZ:
        x = resample_poly(x, RATE_HZ, rate, axis=0)
    (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tofile(out)
    return x.shape[0] / RATE_HZ


def render(binary: Path, preset: Path, pcm: Path, fps: float, width: int, height: int, step: int,
           out_dir: Path, video: bool) -> int:
    """Render one preset; writes out_dir/frames.csv; the number of frames."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "frames.rgb"
    subprocess.run([str(binary), str(preset), str(pcm), str(RATE_HZ), str(fps), str(width), str(height), str(step),
                    str(raw)], check=True, stdout=subprocess.DEVNULL)
    h, w = -(-height // step), -(-width // step)
    frames = np.memmap(raw, np.uint8, "r").reshape(-1, h, w, 3)
    writer = None
    if video:
        import cv2
        writer = cv2.VideoWriter(str(out_dir / "visuals.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w - w % 2, h - h % 2))
    previous = None
    with open(out_dir / "frames.csv", "w", encoding="utf-8", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["t_s", "audio_s", "change"])
        for k, rgb in enumerate(frames):
            rgb = rgb[::-1]  # glReadPixels reads bottom-up
            grey = grey_samples(rgb, 1)
            change = frame_change(previous, grey)
            previous = grey
            t_s = (k + 1) / fps
            rows.writerow([f"{t_s:.4f}", f"{t_s:.4f}", f"{change:.3f}"])
            if writer is not None:
                writer.write(np.ascontiguousarray(rgb[:h - h % 2, :w - w % 2, ::-1]))
    if writer is not None:
        writer.release()
    n = len(frames)
    del frames
    raw.unlink()
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--preset", type=Path, action="append", metavar="FILE",
                        help=f"a .milk preset (repeatable; default three from {PRESETS_DIR})")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30, the shipped display.fps)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--step", type=int, default=2,
                        help="keep every STEP-th pixel (default 2: 320x180 samples, as frames.csv of a 1280x720 run)")
    parser.add_argument("--video", action="store_true", help="also write visuals.mp4 of the sampled frames")
    args = parser.parse_args()
    presets = args.preset or [PRESETS_DIR / name for name in PRESETS]
    binary = build()
    with tempfile.TemporaryDirectory() as tmp:
        pcm = Path(tmp) / "audio.s16"
        seconds = pcm16_stereo(args.recording, pcm)
        for preset in presets:
            n = render(binary, preset, pcm, args.fps, args.width, args.height, args.step, args.out / preset.stem,
                       args.video)
            print(f"{preset.stem}: {n} frames ({seconds:.1f} s at {args.fps:g} fps) -> {args.out / preset.stem}/frames.csv"
                  " (simulated frame clock: frame k stamped (k + 1) / fps, no render or display latency)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
