"""The soft layers: what has no edge (cloud banks, water, smoke, flame, halos, the haze over the
horizon) is painted on a coarse canvas before it is upscaled, so it costs a few small-array
operations a frame whatever the output size, and everything sharp is drawn on top of it.

The canvas is float32 RGB in 0..255 at twice the field's grid (320x180 for a 1280x720 frame);
`Soft` maps the frame's pixel coordinates onto it, so motifs reason in one set of units.
"""
from __future__ import annotations

import math

import numpy as np

SOFT_SCALE = 2
"""The soft canvas is this many times the field's grid on each side."""


class Soft:
    """The coarse canvas of one frame and the mapping from frame pixels onto it."""

    def __init__(self, canvas: np.ndarray, frame_w: int, frame_h: int) -> None:
        self.canvas = canvas
        self.h, self.w = canvas.shape[:2]
        self.k = self.w / frame_w
        """Canvas pixels per frame pixel."""
        self.frame_w, self.frame_h = frame_w, frame_h
        self.light_x: float | None = None
        """Frame x of the sky's light source (moon or sun) once drawn: water reflects it."""

    def rows(self, y0_px: float, y1_px: float) -> slice:
        """Canvas rows covering frame rows y0..y1."""
        return slice(max(0, int(y0_px * self.k)), min(self.h, int(math.ceil(y1_px * self.k))))

    def cols(self, x0_px: float, x1_px: float) -> slice:
        return slice(max(0, int(x0_px * self.k)), min(self.w, int(math.ceil(x1_px * self.k))))

    def over(self, rows: slice, cols: slice, colour, alpha: np.ndarray) -> None:
        """Paint `colour` (RGB 0..255, or an (h, w, 3) array) over the region with per-pixel `alpha` in 0..1."""
        region = self.canvas[rows, cols]
        region += (np.asarray(colour, dtype=np.float32) - region) * alpha[..., None]

    def screen(self, rows: slice, cols: slice, colour, alpha: np.ndarray) -> None:
        """Add light: `colour` screened over the region (brightens, never clips), a glow."""
        region = self.canvas[rows, cols]
        light = region * np.float32(-1.0 / 255.0)   # one temporary, the rest in place
        light += 1.0
        light *= alpha[..., None]
        light *= np.asarray(colour, dtype=np.float32)
        region += light

    def halo(self, x_px: float, y_px: float, r_px: float, colour, strength: float) -> None:
        """A soft round glow (Gaussian fall-off, radius `r_px` at 1/e) centred on a frame point."""
        if strength <= 0.01 or r_px <= 0:
            return
        reach = 2.0 * r_px   # exp(-4): the glow is gone by there
        rows, cols = self.rows(y_px - reach, y_px + reach), self.cols(x_px - reach, x_px + reach)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return
        ys = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) / self.k - y_px
        xs = (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5) / self.k - x_px
        d2 = (ys[:, None] ** 2 + xs[None, :] ** 2) / (r_px * r_px)
        self.screen(rows, cols, colour, (min(1.0, strength) * np.exp(-d2)).astype(np.float32))

    def shadows(self, ellipses: np.ndarray, strength: float, blur_px: float) -> None:
        """Soft shadows: the canvas darkened under `ellipses` (rows of frame x, y, half-width,
        half-height), blurred by `blur_px` (frame pixels) so their edges fade; all of them in one
        mask, one blur and one multiply, whatever their number. The sharp shapes drawn later stand on them."""
        import cv2

        if strength <= 0.01 or not len(ellipses):
            return
        mask = np.zeros((self.h, self.w), dtype=np.float32)
        k = self.k * (1 << 4)
        for x, y, rx, ry in np.asarray(ellipses, dtype=np.float32):
            if ry > 0 and rx > 0:
                cv2.ellipse(mask, (int(x * k), int(y * k)), (int(rx * k) + 1, int(ry * k) + 1), 0, 0, 360, 1.0, -1,
                            cv2.LINE_AA, 4)
        sigma = max(0.5, blur_px * self.k)
        cv2.GaussianBlur(mask, (0, 0), sigma, dst=mask)
        mask *= -min(1.0, strength)
        mask += 1.0
        self.canvas *= mask[..., None]

    def xs(self, cols: slice) -> np.ndarray:
        """Frame x of each canvas column in `cols`."""
        return (np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5) / self.k

    def ys(self, rows: slice) -> np.ndarray:
        return (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) / self.k


def horizon_haze(soft: Soft, horizon_px: float, colour, strength: float) -> None:
    """Aerial perspective over the whole scene: a band of the sky's light colour at the horizon,
    fading up into the sky and down toward the viewer; whatever stands far off sinks into it."""
    if strength <= 0.01:
        return
    rows = soft.rows(horizon_px - 0.5 * soft.frame_h, horizon_px + 0.2 * soft.frame_h)   # where the band is visible
    y = soft.ys(rows)
    spread = np.where(y < horizon_px, 0.22, 0.09) * soft.frame_h
    alpha = (strength * 0.55 * np.exp(-((y - horizon_px) / spread) ** 2)).astype(np.float32)
    region = soft.canvas[rows]
    region *= (1.0 - alpha)[:, None, None]   # in place, row by row: no frame-sized temporaries
    region += (alpha[:, None] * np.asarray(colour, dtype=np.float32))[:, None, :]
