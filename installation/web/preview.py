"""The projected picture for remote screens: a frame sink that keeps a small copy a few times a
second, and a JPEG encoder that runs on the web thread and is shared by every viewer."""
from __future__ import annotations

import threading
import time

import numpy as np


class PreviewSink:
    """A projector frame sink. `show` runs on the main (projector) thread at the display rate and
    costs nothing on most frames: only every 1/`rate_hz` s does it copy a downscaled view
    (a strided slice, about 0.1 ms at 1280x720). `jpeg()` runs on the web thread."""

    name = "preview"

    def __init__(self, rate_hz: float = 4.0, max_width: int = 480, quality: int = 70, clock=time.monotonic) -> None:
        self._period_s = 1.0 / rate_hz
        self._max_width = max_width
        self._quality = quality
        self._clock = clock
        self._next_s = 0.0
        self._small: np.ndarray | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_seq = -1
        self.frames = 0
        """Previews taken (a counter the dashboard shows)."""

    # --- projector thread -----------------------------------------------------------------------
    def open(self) -> None:
        pass

    def show(self, rgb: np.ndarray) -> None:
        now_s = self._clock()
        if now_s < self._next_s:
            return
        self._next_s = now_s + self._period_s
        step = max(1, -(-rgb.shape[1] // self._max_width))  # ceil: never wider than max_width
        small = np.ascontiguousarray(rgb[::step, ::step, :3])
        self._small = small  # one reference store: atomic for readers on other threads
        self._seq += 1
        self.frames += 1

    def close(self) -> None:
        pass

    # --- web thread -----------------------------------------------------------------------------
    def jpeg(self) -> bytes | None:
        """The newest preview as JPEG, encoded once per new preview however many viewers ask."""
        with self._lock:
            seq, small = self._seq, self._small
            if small is None:
                return None
            if seq != self._jpeg_seq:
                import cv2
                ok, data = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, self._quality])
                if ok:
                    self._jpeg, self._jpeg_seq = data.tobytes(), seq
            return self._jpeg

    @property
    def sequence(self) -> int:
        return self._seq
