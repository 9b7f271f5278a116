"""The similarity skip (after StreamDiffusion's filter): the last frame again when the init picture
barely changed, at most `max_frames` times in a row."""
from __future__ import annotations

import numpy as np

SIMILARITY_SIDE_PX = 32
MAX_SKIP_FRAMES = 10


class SimilaritySkip:
    """Correlates a 32x32 sample of each init picture with the last rendered one's."""

    def __init__(self, threshold: float, max_frames: int = MAX_SKIP_FRAMES) -> None:
        self.threshold = float(threshold)
        """Correlation at or above which a frame is skipped; 0 turns the skip off."""
        self.max_frames = int(max_frames)
        self.last_small: np.ndarray | None = None
        self.in_row = 0

    def check(self, init: np.ndarray, blending: bool, holding: bool) -> tuple[bool, float]:
        """(skip this frame, the init picture's mean level). `holding`: a last good frame exists."""
        import cv2

        if self.threshold <= 0:
            return False, float(init[::8, ::8].mean())
        small = cv2.resize(init, (SIMILARITY_SIDE_PX, SIMILARITY_SIDE_PX), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32).ravel()
        if self._similar(small, blending, holding):
            return True, 0.0
        self.last_small = small
        return False, float(small.mean())

    def _similar(self, small: np.ndarray, blending: bool, holding: bool) -> bool:
        if not holding or self.last_small is None or blending:
            return False
        if self.in_row >= self.max_frames:
            self.in_row = 0
            return False
        a, b = small - small.mean(), self.last_small - self.last_small.mean()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        similarity = float(a @ b) / denom if denom > 1e-6 else (1.0 if np.abs(small - self.last_small).max() < 1 else 0.0)
        if similarity >= self.threshold:
            self.in_row += 1
            return True
        return False
