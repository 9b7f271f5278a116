"""Smooth fields and colour: palettes from captions and VA, the look a caption asks for, and the
domain-warped plasma behind the motifs.

Fields are smooth, so they are computed on a small grid (long side ~160 px) and upscaled; everything
with an edge is drawn at the output resolution by models.procedural.motifs.
"""
from __future__ import annotations

import colorsys
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from installation.errors import UserError
from installation.records import Caption

log = logging.getLogger(__name__)

LAYOUTS = ("horizon", "centre", "diagonal", "radial", "scattered", "grid")
SHAPES = ("waves", "mountains", "orbs", "stars", "forest", "city", "clouds", "particles", "ribbons", "crystals")
INTERNAL_SIDE_PX = 160
"""Long side of the grid the smooth field is computed on before it is upscaled."""
LUT_SIZE = 256


@dataclass(frozen=True, slots=True)
class Look:
    """What the picture should look like; the renderer blends from one Look to the next."""

    palette: np.ndarray          # (5, 3) float32 RGB in [0, 1]
    motion_speed: float = 0.4    # 0..1
    turbulence: float = 0.3      # 0..1
    layout: str = "horizon"
    shapes: str = "waves"


def parse_hex(colour: str) -> tuple[float, float, float]:
    text = colour.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return tuple(int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def palette_from_va(valence: float, arousal: float, count: int = 5) -> np.ndarray:
    """A palette when the caption gives none: warm and light for positive valence, cool and deep
    for negative; arousal widens the hue spread and raises saturation. VA in [-1, 1], as records hold it."""
    v, a = valence, arousal
    base_hue = _circumplex_hue(v, a)
    spread = 0.05 + 0.12 * (a + 1.0) / 2.0
    sat = 0.35 + 0.45 * (a + 1.0) / 2.0
    colours = []
    for i in range(count):
        k = i / max(1, count - 1)
        hue = (base_hue + spread * (k - 0.5) * 2.0) % 1.0
        value = 0.25 + 0.6 * k * (0.6 + 0.4 * (v + 1.0) / 2.0)
        colours.append(colorsys.hsv_to_rgb(hue, sat * (1.0 - 0.3 * k), value))
    return np.asarray(colours, dtype=np.float32)


# Hue around the valence-arousal circle: pleasant = amber, excited = red-orange, tense = crimson and
# magenta, sad = blue, calm = teal. Unwrapped so interpolation never crosses the hue seam backwards.
_HUE_ANGLES_DEG = (-180.0, -90.0, 0.0, 90.0, 135.0, 180.0)
_HUE_VALUES = (0.66, 0.48, 0.12, 0.02, -0.06, -0.34)


def _circumplex_hue(valence: float, arousal: float) -> float:
    angle = math.degrees(math.atan2(arousal, valence)) if (valence or arousal) else 90.0
    return float(np.interp(angle, _HUE_ANGLES_DEG, _HUE_VALUES)) % 1.0


def look_from_caption(caption: Caption, previous: Look | None = None) -> Look:
    """Read caption.hints; anything missing or malformed is derived from the caption's VA."""
    hints: Mapping[str, Any] = caption.hints or {}
    palette = None
    raw = hints.get("palette")
    if raw:
        try:
            colours = [parse_hex(c) for c in raw][:5]
            if colours:
                palette = np.asarray(colours, dtype=np.float32)
        except (TypeError, ValueError, AttributeError):
            log.warning("caption palette %r is not a list of #rrggbb colours; deriving one from VA", raw)
    if palette is None:
        palette = palette_from_va(caption.valence, caption.arousal)
    palette = _to_five(palette)
    arousal01 = (caption.arousal + 1.0) / 2.0
    motion = _unit(hints.get("motion_speed"), 0.15 + 0.7 * arousal01)
    turbulence = _unit(hints.get("turbulence"), 0.1 + 0.6 * arousal01)
    default = previous or Look(palette=palette)
    layout = str(hints["layout"]) if hints.get("layout") in LAYOUTS else default.layout
    shapes = str(hints["shapes"]) if hints.get("shapes") in SHAPES else default.shapes
    return Look(palette=palette, motion_speed=motion, turbulence=turbulence, layout=layout, shapes=shapes)


def _unit(value: Any, fallback: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return float(min(1.0, max(0.0, fallback)))
    return float(min(1.0, max(0.0, x))) if math.isfinite(x) else float(min(1.0, max(0.0, fallback)))


def _to_five(palette: np.ndarray) -> np.ndarray:
    """Resample any 1..N colours to exactly 5 so palettes of different lengths blend."""
    n = len(palette)
    if n == 5:
        return palette.astype(np.float32)
    if n == 1:
        return np.repeat(palette, 5, axis=0).astype(np.float32)
    pos = np.linspace(0, n - 1, 5)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return ((1 - w) * palette[lo] + w * palette[hi]).astype(np.float32)


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class Field:
    """A slowly moving, domain-warped plasma in 0..1 on a small grid, with a vignette and a vertical
    gradient (sky lighter or darker than ground). Smooth by construction, so upscaling loses nothing."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        import cv2

        scale = max(1, math.ceil(max(width, height) / INTERNAL_SIDE_PX))
        self.w = max(16, round(width / scale))
        self.h = max(16, round(height / scale))
        h, w = self.h, self.w
        aspect = w / h
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self._x = ((xs / (w - 1)) * 2.0 - 1.0) * (aspect if aspect > 1 else 1.0)
        self._y = ((ys / (h - 1)) * 2.0 - 1.0) / (aspect if aspect < 1 else 1.0)
        self._v = ys / (h - 1)
        r = np.sqrt(self._x ** 2 + self._y ** 2)
        self.vignette = (1.0 - 0.35 * np.clip(r / 1.5, 0, 1) ** 2).astype(np.float32)
        grid = rng.uniform(0, 1, size=(14, 14)).astype(np.float32)
        self._noise = np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)

    def compute(self, phase: float, turbulence: float) -> np.ndarray:
        x, y = self._x, self._y
        warp = 0.2 + 1.2 * turbulence
        wx = x + warp * np.sin(1.7 * y + 0.9 * phase) * 0.5
        wy = y + warp * np.cos(1.3 * x - 0.7 * phase) * 0.5
        f = (np.sin(2.1 * wx + 0.6 * phase) + np.sin(1.6 * wy - 0.8 * phase)
             + np.sin(1.2 * (wx + wy) + 0.4 * phase) + turbulence * 1.5 * (self._noise - 0.5))
        return 0.5 + f * (0.13 + 0.08 * turbulence) + 0.25 * (self._v - 0.5)


def palette_lut(palette: np.ndarray, size: int = LUT_SIZE) -> np.ndarray:
    """(size, 3) float32 gradient through the palette's colours."""
    pos = np.linspace(0.0, 1.0, size, dtype=np.float32)
    stops = np.linspace(0.0, 1.0, len(palette), dtype=np.float32)
    return np.stack([np.interp(pos, stops, palette[:, c]) for c in range(3)], axis=1).astype(np.float32)


def _scene_number(table: Mapping[str, Any], key: str, default: float, low: float, high: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} = {value!r}; use a number from {low:g} to {high:g}.")
    return float(value)
