"""The time and the change of every projected frame, on the audio's clock, for `--record DIR`.

`DIR/frames.csv` gets one row per refresh: `t_s`, the moment the frame is handed to the display
(the installation's clock, as `bench latency` stamps it), `audio_s`, the same moment on the audio's
clock (seconds since the first sample of an `audio.source = "file"` recording: the frame shown
while sample i plays is at i / rate; empty for other sources), and `change`, the mean |grey -
previous grey| over every 4th pixel. tools/visuals/onset_figures.py reads it against the recording.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

STEP = 4
"""Every STEP-th pixel of every STEP-th row: the change of a 1280x720 picture from 320x180 samples."""


_THIRDS = np.full((1, 3), 1.0 / 3.0, np.float32)


def frame_change(previous: np.ndarray | None, grey: np.ndarray) -> float:
    """Mean |grey - previous|; 0 for the first frame or after a change of size."""
    import cv2

    if previous is None or previous.shape != grey.shape:
        return 0.0
    return float(cv2.mean(cv2.absdiff(grey, previous))[0])


def grey_samples(rgb: np.ndarray, step: int = STEP) -> np.ndarray:
    """The grey level (mean of R, G, B) of every step-th pixel of every step-th row, as float32.

    When the sides divide by step, OpenCV's nearest-neighbour resize picks the same pixels as
    rgb[::step, ::step]: 0.4 ms at 1280x720 on the main thread, where numpy's strided mean took 4-10 ms."""
    import cv2

    height, width = rgb.shape[:2]
    if step == 1:
        small = rgb
    elif height % step == 0 and width % step == 0:
        small = cv2.resize(rgb, (width // step, height // step), interpolation=cv2.INTER_NEAREST)
    else:
        small = rgb[::step, ::step]
    return cv2.transform(np.ascontiguousarray(small).astype(np.float32), _THIRDS)


class FrameStamps:
    """Writes frames.csv; `show(rgb)` on the main thread right before the frame goes to the display."""

    def __init__(self, path: Path, clock, audio_started_s: Callable[[], float | None]) -> None:
        self.path = Path(path)
        self.clock = clock
        self.audio_started_s = audio_started_s
        """When the recording's first sample played, on the clock; None when the source is not a file."""
        self.name = f"frame stamps {self.path.name}"
        self._file: TextIO | None = None
        self._previous: np.ndarray | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8", buffering=1 << 16)
        self._file.write("t_s,audio_s,change\n")

    def show(self, rgb: np.ndarray) -> None:
        t_s = self.clock.now_s()
        grey = grey_samples(rgb)
        change = frame_change(self._previous, grey)
        self._previous = grey
        started_s = self.audio_started_s()
        audio = f"{t_s - started_s:.4f}" if started_s else ""
        with self._lock:
            if self._file is not None:
                self._file.write(f"{t_s:.4f},{audio},{change:.3f}\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
