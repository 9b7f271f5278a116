"""Procedural CPU renderer: palette, motion and composition from captions; pulse from the beat.

Always available, the embedded default's visuals, and the init layer for img2img diffusion. Owned by
the renderer thread (one instance, one thread). Everything is vectorised numpy on a small internal
grid (long side ~160 px) with precomputed coordinates, then upscaled with cv2: the fields are smooth,
so the picture loses nothing visible and a 512x512 frame costs about a millisecond.

Colour carries the music's valence-arousal: the renderer aims its colour grade at the brightness and
saturation that the colour head (models.image_va, Valdez & Mehrabian 1994) reads as the music's VA,
and measures its own frames every few renders to correct what palette and shapes add.
"""
from __future__ import annotations

import colorsys
import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from installation.errors import UserError
from installation.records import Caption, MusicState, clamp_va
from models.image_va import brightness_saturation_for, colour_features, colour_va

log = logging.getLogger(__name__)

LAYOUTS = ("horizon", "centre", "diagonal", "radial", "scattered", "grid")
SHAPES = ("waves", "mountains", "orbs", "stars", "forest", "city", "clouds", "particles", "ribbons", "crystals")
INTERNAL_SIDE_PX = 160
MEASURE_EVERY_FRAMES = 4
LUT_SIZE = 256
SCENE_KEYS = {"layout": "one of the layouts", "shapes": "one of the shapes", "pulse": "0-3, beat pulse strength",
              "motion_scale": "0-4, speed multiplier", "strength_min": "diffusion img2img strength, calm music",
              "strength_max": "diffusion img2img strength, aroused music",
              "feedback": "0-0.95, diffusion latent carry-over between frames"}
"""Keys a scene's `[render]` table may hold; the diffusion renderer reads the last three."""


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
    for negative; arousal widens the hue spread and raises saturation."""
    v, a = clamp_va(valence, arousal)
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
    arousal01 = (clamp_va(0.0, caption.arousal)[1] + 1.0) / 2.0
    motion = _unit(hints.get("motion_speed"), 0.15 + 0.7 * arousal01)
    turbulence = _unit(hints.get("turbulence"), 0.1 + 0.6 * arousal01)
    default = previous or Look(palette=palette)
    layout = hints.get("layout") if hints.get("layout") in LAYOUTS else default.layout
    shapes = hints.get("shapes") if hints.get("shapes") in SHAPES else default.shapes
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


class ProceduralRenderer:
    """Scene-driven CPU visuals; `render` returns (height, width, 3) uint8."""

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        import cv2  # noqa: F401  (fail here, not in the first frame, when opencv is missing)

        if width < 8 or height < 8:
            raise UserError(f"render size {width}x{height} is too small; set render.width and render.height to 64 or more.")
        self.width, self.height = int(width), int(height)
        scale = max(1, math.ceil(max(width, height) / INTERNAL_SIDE_PX))
        self.internal_w = max(16, round(width / scale))
        self.internal_h = max(16, round(height / scale))
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        h, w = self.internal_h, self.internal_w
        aspect = w / h
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self._x = (xs / (w - 1)) * 2.0 - 1.0             # -1..1 across
        self._x *= aspect if aspect > 1 else 1.0
        self._y = (ys / (h - 1)) * 2.0 - 1.0             # -1 top .. 1 bottom
        self._y /= aspect if aspect < 1 else 1.0
        self._u = xs / (w - 1)                           # 0..1 across
        self._v = ys / (h - 1)                           # 0..1 down
        self._r = np.sqrt(self._x ** 2 + self._y ** 2)
        self._theta = np.arctan2(self._y, self._x)
        self._vignette = (1.0 - 0.35 * np.clip(self._r / 1.5, 0, 1) ** 2).astype(np.float32)[..., None]
        self._noise = self._value_noise(h, w, 6)
        self._noise_fine = self._value_noise(h, w, 14)
        self._stars = self._star_field(h, w)
        self._cells = self._voronoi(h, w, 18)
        self._orb_params = self._rng.uniform(0, 2 * np.pi, size=(7, 4)).astype(np.float32)
        self._particles = self._rng.uniform(0, 1, size=(160, 3)).astype(np.float32)
        self._skyline = self._rng.uniform(0.15, 0.55, size=24).astype(np.float32)
        self._trees = self._rng.uniform(0.0, 1.0, size=(30, 2)).astype(np.float32)
        self._lut_pos = np.linspace(0.0, 1.0, LUT_SIZE, dtype=np.float32)
        self._pulse_gain = 1.0
        self._motion_scale = 1.0
        self._palette_bias = (0.0, 0.0)
        initial = Look(palette=palette_from_va(0.0, 0.0))
        self._from = initial
        self._to = initial
        self._blend_start_s: float | None = None
        self._blend_s = 0.0
        self._pending_blend_s: float | None = None
        self._phase = 0.0
        self._last_t_s: float | None = None
        self._va_smooth = (0.0, 0.0)
        self._brightness_gain = 1.0
        self._saturation_gain = 1.0
        self._contrast_gain = 1.0
        self._va_offset = np.zeros(2, dtype=np.float64)
        self._frames = 0
        self.last_measured_va: tuple[float, float] = (0.0, 0.0)
        """Colour-head VA of a recent frame, as the renderer measured it for its own grading."""

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: palette bias and the scene's optional `[render]` table."""
        table = dict(scene.table("render")) if scene is not None else {}
        where = f"{getattr(scene, 'path', None) or getattr(scene, 'name', 'scene')} [render]"
        unknown = sorted(set(table) - set(SCENE_KEYS))
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'; the keys allowed are {', '.join(sorted(SCENE_KEYS))}.")
        self._palette_bias = tuple(getattr(scene, "palette_bias", (0.0, 0.0)))  # type: ignore[assignment]
        self._pulse_gain = _scene_number(table, "pulse", 1.0, 0.0, 3.0, where)
        self._motion_scale = _scene_number(table, "motion_scale", 1.0, 0.0, 4.0, where)
        layout = table.get("layout", self._to.layout)
        shapes = table.get("shapes", self._to.shapes)
        if layout not in LAYOUTS:
            raise UserError(f"{where}: layout = {layout!r}; use one of {', '.join(LAYOUTS)}.")
        if shapes not in SHAPES:
            raise UserError(f"{where}: shapes = {shapes!r}; use one of {', '.join(SHAPES)}.")
        self._from = self._to = replace(self._to, layout=layout, shapes=shapes)
        self._blend_start_s = None

    def update_prompt(self, caption: Caption) -> None:
        """Start blending to the caption's look over caption.transition_s (from the next render)."""
        current = self._current_look(self._last_t_s if self._last_t_s is not None else 0.0)
        self._from = current
        self._to = look_from_caption(caption, previous=self._to)
        self._pending_blend_s = max(0.0, float(caption.transition_s)) if math.isfinite(caption.transition_s) else 0.0
        self._blend_start_s = None

    # --- frame -------------------------------------------------------------------------------
    def render(self, state: MusicState, t_s: float) -> np.ndarray:
        import cv2

        if not math.isfinite(t_s):
            t_s = self._last_t_s if self._last_t_s is not None else 0.0
        if self._pending_blend_s is not None:
            self._blend_start_s, self._blend_s, self._pending_blend_s = t_s, self._pending_blend_s, None
        dt_s = 0.0 if self._last_t_s is None else min(0.25, max(0.0, t_s - self._last_t_s))
        self._last_t_s = t_s
        look = self._current_look(t_s)
        alpha = self._blend_alpha(t_s)

        # Smooth the music's VA so colours glide rather than flicker with each listener hop.
        v, a = clamp_va(state.valence, state.arousal)
        k = 1.0 - math.exp(-dt_s / 0.8) if dt_s > 0 else (1.0 if self._frames == 0 else 0.0)
        sv, sa = self._va_smooth
        self._va_smooth = (sv + k * (v - sv), sa + k * (a - sa))

        speed = (0.15 + 1.6 * look.motion_speed) * self._motion_scale
        self._phase += dt_s * speed
        phase = self._phase

        beat = _beat_pulse(state) * self._pulse_gain
        field = self._flow(phase, look.turbulence)
        lut = self._palette_lut(look.palette)
        rgb = lut[np.clip((field * (LUT_SIZE - 1)), 0, LUT_SIZE - 1).astype(np.int32)]

        mask_new, tone_new = self._shape_layer(look.shapes, look.layout, phase, beat)
        if alpha < 1.0 and (self._from.shapes != self._to.shapes or self._from.layout != self._to.layout):
            mask_old, tone_old = self._shape_layer(self._from.shapes, self._from.layout, phase, beat)
            mask = mask_old * (1 - alpha) + mask_new * alpha
            tone = tone_old * (1 - alpha) + tone_new * alpha
        else:
            mask, tone = mask_new, tone_new
        shape_rgb = lut[np.clip(tone * (LUT_SIZE - 1), 0, LUT_SIZE - 1).astype(np.int32)]
        m = mask[..., None]
        rgb = rgb * (1.0 - m) + shape_rgb * m

        # Beat: a brightness swell and a ring running out from the centre.
        beat_phase = state.beat_phase % 1.0 if math.isfinite(state.beat_phase) else 0.0
        ring = np.exp(-((self._r - 0.15 - 1.2 * beat_phase) ** 2) * 30.0) * beat * 0.35
        rgb = rgb * (1.0 + 0.25 * beat) + ring[..., None] * lut[-1]
        rgb = self._grade(rgb * self._vignette)

        if self._frames % MEASURE_EVERY_FRAMES == 0:
            self._correct(rgb)
        self._frames += 1
        small = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if (self.internal_w, self.internal_h) == (self.width, self.height):
            return small
        return cv2.resize(small, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    # --- look blending ------------------------------------------------------------------------
    def _blend_alpha(self, t_s: float) -> float:
        if self._blend_start_s is None or self._blend_s <= 0:
            return 1.0
        return _smoothstep((t_s - self._blend_start_s) / self._blend_s)

    def _current_look(self, t_s: float) -> Look:
        alpha = self._blend_alpha(t_s)
        if alpha >= 1.0:
            return self._to
        f, t = self._from, self._to
        return Look(palette=(f.palette * (1 - alpha) + t.palette * alpha).astype(np.float32),
                    motion_speed=f.motion_speed + (t.motion_speed - f.motion_speed) * alpha,
                    turbulence=f.turbulence + (t.turbulence - f.turbulence) * alpha,
                    layout=t.layout, shapes=t.shapes)

    def _palette_lut(self, palette: np.ndarray) -> np.ndarray:
        stops = np.linspace(0.0, 1.0, len(palette), dtype=np.float32)
        return np.stack([np.interp(self._lut_pos, stops, palette[:, c]) for c in range(3)], axis=1).astype(np.float32)

    # --- fields -------------------------------------------------------------------------------
    def _flow(self, phase: float, turbulence: float) -> np.ndarray:
        """A slowly moving, domain-warped plasma in 0..1 that indexes the palette gradient."""
        x, y = self._x, self._y
        warp = 0.2 + 1.2 * turbulence
        wx = x + warp * np.sin(1.7 * y + 0.9 * phase) * 0.5
        wy = y + warp * np.cos(1.3 * x - 0.7 * phase) * 0.5
        f = (np.sin(2.1 * wx + 0.6 * phase) + np.sin(1.6 * wy - 0.8 * phase)
             + np.sin(1.2 * (wx + wy) + 0.4 * phase) + turbulence * 1.5 * (self._noise_fine - 0.5))
        return 0.5 + f * (0.13 + 0.08 * turbulence) + 0.25 * (self._v - 0.5)

    def _shape_layer(self, shapes: str, layout: str, phase: float, beat: float) -> tuple[np.ndarray, np.ndarray]:
        """(mask 0..1, palette position 0..1) of the scene's shapes, arranged by the layout."""
        x, y, u, v = self._layout_coords(layout, phase)
        if shapes == "waves":
            crest = 0.15 * np.sin(4.0 * x + 1.3 * phase) + 0.08 * np.sin(9.0 * x - 2.1 * phase)
            mask = _soft_step(y - crest - 0.1 * beat, 0.06)
            tone = 0.35 + 0.3 * np.sin(6.0 * y + phase) * 0.5
        elif shapes == "mountains":
            ridge = 0.05 + 0.25 * np.abs(np.sin(2.3 * x + 0.1 * phase)) + 0.12 * np.sin(5.1 * x + 1.0)
            mask = _soft_step(y + ridge - 0.2, 0.03)
            tone = 0.15 + 0.2 * (1 - v)
        elif shapes == "clouds":
            n = np.roll(self._noise, int(phase * 6) % self._noise.shape[1], axis=1)
            mask = _soft_step(n - 0.55 + 0.1 * beat, 0.12) * 0.85
            tone = 0.8 + 0.15 * n
        elif shapes == "stars":
            twinkle = 0.6 + 0.4 * np.sin(phase * 3.0 + self._stars * 40.0)
            mask = np.clip(self._stars * twinkle * (1.0 + beat), 0, 1)
            tone = np.full_like(mask, 0.95)
        elif shapes == "orbs":
            mask = np.zeros_like(x)
            for i, (p0, p1, p2, p3) in enumerate(self._orb_params):
                cx = 0.7 * math.sin(0.31 * phase * (1 + i * 0.1) + p0)
                cy = 0.5 * math.sin(0.23 * phase * (1 + i * 0.13) + p1)
                radius = (0.12 + 0.08 * math.sin(p2)) * (1.0 + 0.3 * beat)
                mask = np.maximum(mask, np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (radius * radius)))
            tone = 0.6 + 0.35 * mask
        elif shapes == "particles":
            p = self._particles
            px = ((p[:, 0] + 0.03 * phase * (0.5 + p[:, 2])) % 1.0) * (self.internal_w - 1)
            py = ((p[:, 1] - 0.05 * phase * p[:, 2]) % 1.0) * (self.internal_h - 1)
            mask = np.zeros((self.internal_h, self.internal_w), dtype=np.float32)
            mask[py.astype(int), px.astype(int)] = 1.0
            mask = _blur3(mask) * (1.5 + beat)
            mask = np.clip(mask, 0, 1)
            tone = np.full_like(mask, 0.9)
        elif shapes == "ribbons":
            mask = np.zeros_like(x)
            for i in range(3):
                centre = 0.45 * np.sin(2.0 * x + phase * (0.7 + 0.2 * i) + i * 2.1) + (i - 1) * 0.3
                mask = np.maximum(mask, np.exp(-((y - centre) ** 2) / (0.004 + 0.004 * beat + 0.002 * i)))
            tone = 0.55 + 0.4 * np.sin(3.0 * x + phase) * 0.5
        elif shapes == "forest":
            t = self._trees
            mask = np.zeros_like(x)
            for cx, height in t:
                xx = (u - cx) * 40.0
                trunk_top = 1.0 - 0.25 - 0.45 * height
                cone = np.clip(1.0 - np.abs(xx) / (1.0 + 3.0 * (v - trunk_top) / max(0.05, 1 - trunk_top)), 0, 1)
                mask = np.maximum(mask, (v > trunk_top) * (cone > 0))
            mask = mask.astype(np.float32) * 0.9
            tone = 0.1 + 0.15 * v
        elif shapes == "city":
            col = np.clip((u * len(self._skyline)).astype(int), 0, len(self._skyline) - 1)
            roof = 1.0 - self._skyline[col]
            mask = _soft_step(v - roof, 0.01)
            windows = (np.sin(u * 300.0) > 0.6) & (np.sin(v * 200.0) > 0.3) & (self._noise_fine > 0.5 - 0.2 * beat)
            tone = np.where(windows, 0.95, 0.1).astype(np.float32)
        else:  # crystals
            cells = self._cells
            shimmer = 0.5 + 0.5 * np.sin(cells * 12.9898 + phase * 1.5)
            mask = (0.35 + 0.5 * shimmer * (1.0 + 0.5 * beat)).astype(np.float32)
            mask = np.clip(mask, 0, 1)
            tone = (cells * 0.618) % 1.0
        return mask.astype(np.float32, copy=False), np.asarray(tone, dtype=np.float32)

    def _layout_coords(self, layout: str, phase: float):
        """Coordinates the shape functions read, rearranged per composition."""
        x, y, u, v = self._x, self._y, self._u, self._v
        if layout == "centre" or layout == "radial":
            r = self._r
            if layout == "radial":
                return self._theta * 1.5, r * 2.0 - 1.0, (self._theta / (2 * np.pi)) % 1.0, np.clip(r, 0, 1)
            return x * 1.2, y * 1.2, u, v
        if layout == "diagonal":
            return (x + y) * 0.7, (y - x) * 0.7, u, v
        if layout == "grid":
            return np.sin(x * 3.0) * 1.2, np.sin(y * 3.0) * 0.6, u, v
        if layout == "scattered":
            return x + 0.3 * (self._noise - 0.5), y + 0.3 * (self._noise_fine - 0.5), u, v
        return x, y, u, v

    # --- colour -------------------------------------------------------------------------------
    def _target_va(self) -> tuple[float, float]:
        v, a = self._va_smooth
        bv, ba = self._palette_bias
        return clamp_va(v + bv, a + ba)

    def _grade(self, rgb: np.ndarray) -> np.ndarray:
        lum = rgb @ np.asarray([0.2126, 0.7152, 0.0722], dtype=np.float32)
        mean = float(lum.mean())
        lum = lum[..., None]
        graded = mean + self._contrast_gain * (lum - mean) + self._saturation_gain * (rgb - lum)
        return graded * self._brightness_gain

    def _correct(self, rgb: np.ndarray) -> None:
        """Measure the graded frame with the colour head; nudge the grade toward the music's VA."""
        frame = np.clip(np.nan_to_num(rgb), 0.0, 1.0).astype(np.float32)
        features = colour_features(frame)
        measured = colour_va(features)
        self.last_measured_va = measured
        target = np.asarray(self._target_va())
        # Outer loop: what palette contrast and colourfulness add, the brightness/saturation aim removes.
        self._va_offset = np.clip(self._va_offset + 0.15 * (target - np.asarray(measured)), -0.6, 0.6)
        aim_b, aim_s = brightness_saturation_for(*(target + self._va_offset))
        rate = 0.5
        self._brightness_gain *= (aim_b / max(features.brightness, 0.02)) ** rate
        self._saturation_gain *= ((aim_s + 0.02) / (features.saturation + 0.02)) ** rate
        # Dark yet aroused music cannot get its arousal from saturation alone (chroma shrinks with
        # lightness), so contrast makes up the rest of the arousal error.
        self._contrast_gain *= math.exp(0.4 * (target[1] - measured[1]))
        self._brightness_gain = float(min(4.0, max(0.05, self._brightness_gain)))
        self._saturation_gain = float(min(4.0, max(0.0, self._saturation_gain)))
        self._contrast_gain = float(min(4.0, max(0.4, self._contrast_gain)))
        if not all(math.isfinite(g) for g in (self._brightness_gain, self._saturation_gain, self._contrast_gain)):
            self._brightness_gain = self._saturation_gain = self._contrast_gain = 1.0
            self._va_offset[:] = 0.0

    # --- precomputed textures ------------------------------------------------------------------
    def _value_noise(self, h: int, w: int, cells: int) -> np.ndarray:
        import cv2

        # Wrap the last column onto the first, so np.roll scrolls it without a seam.
        grid = self._rng.uniform(0, 1, size=(cells, cells)).astype(np.float32)
        grid = np.concatenate([grid, grid[:, :1]], axis=1)
        big = cv2.resize(grid, (w + round(w / cells), h), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(np.clip(big[:, :w], 0, 1))

    def _star_field(self, h: int, w: int) -> np.ndarray:
        stars = np.zeros((h, w), dtype=np.float32)
        n = max(20, h * w // 180)
        ys = self._rng.integers(0, h, n)
        xs = self._rng.integers(0, w, n)
        stars[ys, xs] = self._rng.uniform(0.4, 1.0, n).astype(np.float32)
        return stars

    def _voronoi(self, h: int, w: int, n: int) -> np.ndarray:
        seeds = self._rng.uniform(0, 1, size=(n, 2)).astype(np.float32)
        d = (self._u[..., None] - seeds[:, 0]) ** 2 + (self._v[..., None] - seeds[:, 1]) ** 2
        return np.argmin(d, axis=-1).astype(np.float32)


def _beat_pulse(state: MusicState) -> float:
    """0..~1.5: a decaying swell after each beat (weighted by beat confidence) plus onsets."""
    phase = state.beat_phase % 1.0 if math.isfinite(state.beat_phase) else 0.0
    conf = min(1.0, max(0.0, state.beat_confidence)) if math.isfinite(state.beat_confidence) else 0.0
    onset = min(1.0, max(0.0, state.onset_strength)) if math.isfinite(state.onset_strength) else 0.0
    return conf * (1.0 - phase) ** 3 + 0.5 * onset


def _soft_step(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _blur3(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a, (5, 5), 1.0) * 6.0


def _scene_number(table: Mapping[str, Any], key: str, default: float, low: float, high: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} = {value!r}; use a number from {low:g} to {high:g}.")
    return float(value)
