"""Value-noise fBm on a coarse grid: the texture of clouds, water, smoke and fire.

Each octave is a small periodic lattice of random values, sampled with a scale and a drift by one
`cv2.warpAffine` (bicubic, wrapping at the edges), so an animated field costs a few small warps a
frame whatever the output size; the soft layers are upscaled with the rest of the atmosphere
(models/procedural/atmosphere.py).
"""
from __future__ import annotations

import numpy as np

LATTICE_CELLS = 16
"""Side of each octave's periodic lattice: the pattern repeats every 16 cells of that octave."""


class Noise:
    """Fractal value noise in about 0..1, sampled on a (h, w) grid."""

    def __init__(self, rng: np.random.Generator, octaves: int = 4) -> None:
        self.lattices = [rng.uniform(0.0, 1.0, (LATTICE_CELLS, LATTICE_CELLS)).astype(np.float32) for _ in range(octaves)]
        self.norm = float(sum(0.5 ** i for i in range(octaves)))

    def fbm(self, w: int, h: int, cells_x: float, dx: float = 0.0, dy: float = 0.0,
            stretch_y: float = 1.0, octaves: int | None = None) -> np.ndarray:
        """(h, w) float32 fBm with `cells_x` lattice cells across the width at the first octave,
        offset by (`dx`, `dy`) cells (animate by moving them); `stretch_y` > 1 squashes it vertically."""
        import cv2

        # Sampled at half the asked size and upscaled: the noise is smooth at that scale, and the
        # bicubic warps are most of its cost.
        full_w, full_h = w, h
        w, h = max(2, (w + 1) // 2), max(2, (h + 1) // 2)
        out = np.zeros((h, w), dtype=np.float32)
        lattices = self.lattices[:octaves] if octaves else self.lattices
        for i, lattice in enumerate(lattices):
            f = 2.0 ** i
            scale = cells_x * f / w
            # inverse map: output pixel (x, y) -> lattice (x * scale + dx * f, y * scale * stretch + dy * f)
            m = np.asarray([[scale, 0.0, dx * f + 3.7 * i], [0.0, scale * stretch_y, dy * f + 1.9 * i]], dtype=np.float32)
            layer = cv2.warpAffine(lattice, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_WRAP)
            out += layer * (0.5 ** i)
        out *= 1.0 / self.norm
        return cv2.resize(out, (full_w, full_h), interpolation=cv2.INTER_LINEAR)


def smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
