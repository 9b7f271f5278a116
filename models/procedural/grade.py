"""The colour grade: brightness, saturation, contrast and a highlight lift applied to the palette,
so the field and the motifs share it; every few frames the renderer measures its own output with
the colour head (models.seeing.va, Valdez & Mehrabian 1994) and the grade is corrected toward the
music's valence-arousal. The palette kick (a hue turn on the beat) is here too."""
from __future__ import annotations

import math

import numpy as np

from installation.records import VA, clamp_va
from models.seeing.va import brightness_saturation_for, colour_features, colour_va

MEASURE_SIDE_PX = 160
BLACK_FLOOR = 0.04
"""The darkest a graded colour gets: near-black carries no colour for the colour head."""
_LUMA = np.asarray([0.2126, 0.7152, 0.0722], dtype=np.float32)


class Grade:
    """The grade's gains and the loop that corrects them. Owned by the renderer thread."""

    def __init__(self) -> None:
        self.brightness_gain = 1.0
        self.saturation_gain = 1.0
        self.contrast_gain = 1.0
        self.highlight = 0.0
        """0..0.9: how far the light end of the palette is lifted (tension in dark, aroused music)."""
        self._va_offset = np.zeros(2, dtype=np.float64)
        self.last_measured_va: VA = (0.0, 0.0)

    def graded(self, palette: np.ndarray, scene_palette: np.ndarray | None, scene_weight: float) -> np.ndarray:
        """The palette (mixed with the scene's own) through the grade: every pixel drawn from it gets the same grade."""
        if scene_palette is not None and scene_weight > 0:
            palette = palette * (1 - scene_weight) + scene_palette * scene_weight
        lum = (palette @ _LUMA)[:, None]
        mean = float(lum.mean())
        graded = mean + self.contrast_gain * (lum - mean) + self.saturation_gain * (palette - lum)
        graded = np.clip(graded * self.brightness_gain, BLACK_FLOOR, 1.0)
        # Dark yet aroused music: the light end of the palette is lifted out of the dark (lightning in
        # a storm), which the colour head reads as tension; the rest stays dark.
        graded[3:] += (1.0 - graded[3:]) * self.highlight * np.asarray([[0.6], [1.0]], dtype=np.float32)
        return graded.astype(np.float32)

    def correct(self, frame: np.ndarray, va: VA, bias: tuple[float, float]) -> None:
        """Measure the frame with the colour head; nudge the grade toward `va` moved by the scene's `bias`."""
        height, width = frame.shape[:2]
        step = max(1, round(max(width, height) / MEASURE_SIDE_PX))
        small = frame[step // 2::step, step // 2::step]   # a point sample: colour statistics, not a picture
        features = colour_features(small.astype(np.float32) / 255.0)
        measured = colour_va(features)
        self.last_measured_va = measured
        # The bias can push the sum past the bound, so this one is clamped here.
        target = np.asarray(clamp_va(va[0] + bias[0], va[1] + bias[1]))
        # Outer loop: what palette contrast, motifs and accents add, the brightness/saturation aim removes.
        self._va_offset = np.clip(self._va_offset + 0.15 * (target - np.asarray(measured)), -0.6, 0.6)
        aim_b, aim_s = brightness_saturation_for(*(target + self._va_offset))
        rate = 0.5
        self.brightness_gain *= (aim_b / max(features.brightness, 0.02)) ** rate
        self.saturation_gain *= ((aim_s + 0.02) / (features.saturation + 0.02)) ** rate
        # Dark yet aroused music cannot get its arousal from saturation alone (chroma shrinks with
        # lightness), so contrast makes up the rest of the arousal error.
        self.contrast_gain *= math.exp(0.4 * (target[1] - measured[1]))
        self.brightness_gain = float(min(4.0, max(0.05, self.brightness_gain)))
        self.saturation_gain = float(min(4.0, max(0.0, self.saturation_gain)))
        self.contrast_gain = float(min(4.0, max(0.4, self.contrast_gain)))
        short = target[1] - measured[1]
        if target[0] < 0.0 and short > 0.1 and features.brightness < 0.45:
            self.highlight = min(0.9, self.highlight + 0.08 * short)
        else:   # faster down when the picture reads more aroused than the music
            self.highlight = max(0.0, self.highlight - 0.02 - 0.1 * max(0.0, -short))
        if not all(math.isfinite(g) for g in (self.brightness_gain, self.saturation_gain, self.contrast_gain)):
            self.brightness_gain = self.saturation_gain = self.contrast_gain = 1.0
            self._va_offset[:] = 0.0


def turn_hue(palette: np.ndarray, angle: float) -> np.ndarray:
    """Rotate colours about the grey axis by `angle` radians (Rodrigues): hue turns, grey stays."""
    if abs(angle) < 1e-4:
        return palette
    c, s = math.cos(angle), math.sin(angle)
    k = (1.0 - c) / 3.0
    r = s / math.sqrt(3.0)
    m = np.asarray([[c + k, k - r, k + r], [k + r, c + k, k - r], [k - r, k + r, c + k]], dtype=np.float32)
    return np.clip(palette @ m.T, 0.0, 1.0).astype(np.float32)
