"""The motif library: things a caption names (birds, towers, rain, city lights, ...), drawn sharp and
anti-aliased at the output resolution with OpenCV (LINE_AA, sub-pixel coordinates).

A motif is a class with a `name`, the `words` that call it up, a `layer` (0 sky, 1 land, 2 front),
`draw(img, ctx)` (the sharp pass) and optionally `soft(soft, ctx)` (texture and glow on the coarse
canvas of models/procedural/atmosphere.py, painted before any sharp pass). Positions are precomputed from a seeded generator at construction, so a motif is
stable from frame to frame and only its animation moves. Everything is drawn in the graded palette's
colours from `ctx`, so the colour grade that carries the music's valence-arousal holds for motifs too.

`choose_motifs(text, ...)` picks motifs from caption text (scene and composition words); `motion_from_text`
reads the motion facet (rising, falling, swirling, racing, still, ...). Renderer thread only.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.procedural.atmosphere import Soft
from models.procedural.composition import DEFAULT_SHADOW
from models.procedural.noise import Noise, smoothstep

SHIFT = 4
"""Sub-pixel bits for cv2 drawing: coordinates are passed as integers times 16."""
ONE = 1 << SHIFT


@dataclass(frozen=True, slots=True)
class Motion:
    """How motifs move, read from the motion facet."""

    speed: float = 1.0       # multiplier
    dx: float = 0.0          # drift direction, screen units (x right, y down)
    dy: float = 0.0
    swirl: float = 0.0       # 0..1: rotate about the centre
    jitter: float = 0.0      # 0..1: trembling
    sway: float = 0.3        # 0..1: side-to-side undulation


MOTION_WORDS: tuple[tuple[tuple[str, ...], dict], ...] = (
    (("rising", "rise", "ascend", "soaring", "upward", "unfolding", "sweep"), {"dy": -1.0}),
    (("falling", "fall", "sinking", "descend", "trickling", "pouring", "cascad", "rain"), {"dy": 1.0}),
    (("swirl", "spinning", "whirling", "circling", "spiral", "turning", "vortex", "orbit", "circular"), {"swirl": 1.0}),
    (("racing", "rushing", "frantic", "chaotic", "furious", "bursts", "storm", "churning"), {"speed": 1.8, "jitter": 0.5}),
    (("trembling", "flicker", "jagged", "anxious", "restless"), {"jitter": 1.0}),
    (("drift", "floating", "gliding", "wandering", "lazy", "breeze"), {"dx": 1.0, "speed": 0.7}),
    (("still", "frozen", "stillness", "silence", "hushed", "breathing"), {"speed": 0.35}),
    (("flowing", "ripple", "swaying", "waves", "current", "rolling", "fluttering", "dancing", "bouncing"), {"sway": 1.0}),
    (("pulsing", "pulse", "rhythm", "beat"), {"speed": 1.2}),
)


def motion_from_text(text: str, motion_speed: float = 0.5, turbulence: float = 0.3) -> Motion:
    """Motion from the motion facet's words, scaled by the caption's motion_speed and turbulence hints."""
    words = text.lower()
    values = {"speed": 0.5 + motion_speed, "dx": 0.0, "dy": 0.0, "swirl": 0.0, "jitter": 0.3 * turbulence, "sway": 0.3}
    for stems, effect in MOTION_WORDS:
        if any(s in words for s in stems):
            for key, value in effect.items():
                values[key] = values[key] * value if key == "speed" else value
    return Motion(**values)


@dataclass(slots=True)
class Ctx:
    """What a motif needs to draw one frame (the renderer fills it in place)."""

    w: int
    h: int
    t: float = 0.0                     # motion phase in seconds (already scaled by speed)
    beat: float = 0.0                  # 0..1 accent envelope: fast attack, short decay
    onset: float = 0.0                 # 0..1 the latest onset kick
    energy: float = 0.5                # 0..1 arousal, for counts and sizes
    zoom: float = 1.0                  # scale pulse about the centre
    ox: float = 0.0                    # shake offset, pixels
    oy: float = 0.0
    amount: float = 1.0                # 0..1 fade in/out of a motif set (size and count)
    horizon: float = 0.68              # y of the horizon as a fraction of the height
    motion: Motion = field(default_factory=Motion)
    dark: tuple = (20, 20, 30)
    mid: tuple = (90, 90, 120)
    light: tuple = (200, 200, 220)
    accent: tuple = (240, 180, 90)
    glow: tuple = (255, 240, 220)
    focus: tuple[float, float] | None = None   # the composition's focal point (fractions) while drawing the focal motif
    cam: float = 0.0                   # camera sway, pixels at the nearest depth (parallax: far layers move less)
    water: bool = False                # the sea is drawn: grounds stop at the horizon
    glow_gain: float = 1.0             # the scene's halo strength
    shadow: float = DEFAULT_SHADOW     # the scene's soft shadows 0-1

    @property
    def s(self) -> float:
        """Pixels per unit: 1.0 at 720 lines."""
        return self.h / 720.0

    def place(self, x: float, y: float) -> tuple[float, float]:
        """Where a single subject goes, in pixels: the composition's focal point when the motif
        being drawn is the focal one, else its own spot (`x`, `y` as fractions of the frame)."""
        fx, fy = self.focus if self.focus is not None else (x, y)
        return fx * self.w, fy * self.h


def _xf(ctx: Ctx, points: np.ndarray) -> np.ndarray:
    """Screen coordinates (pixels, shape (..., 2)) -> cv2 fixed-point points, with zoom pulse and shake."""
    cx, cy = ctx.w * 0.5, ctx.h * 0.5
    offset = np.asarray([cx * (1 - ctx.zoom) + ctx.ox, cy * (1 - ctx.zoom) + ctx.oy], dtype=np.float32)
    return ((np.asarray(points, dtype=np.float32) * ctx.zoom + offset) * ONE).astype(np.int32)


def _many(ctx: Ctx, lines) -> list:
    """A (N, K, 2) array or a list of (K_i, 2) arrays -> list of fixed-point arrays, transformed at once."""
    if isinstance(lines, np.ndarray):
        return list(_xf(ctx, lines))
    lengths = [len(p) for p in lines]
    flat = _xf(ctx, np.concatenate([np.asarray(p, dtype=np.float32) for p in lines]))
    return np.split(flat, np.cumsum(lengths)[:-1])


def _pt(ctx: Ctx, x: float, y: float) -> tuple[int, int]:
    cx, cy = ctx.w * 0.5, ctx.h * 0.5
    return (int(((x - cx) * ctx.zoom + cx + ctx.ox) * ONE), int(((y - cy) * ctx.zoom + cy + ctx.oy) * ONE))


def _r(ctx: Ctx, r: float) -> int:
    return max(ONE // 2, int(r * ctx.zoom * ONE))


def circle(img, ctx: Ctx, x: float, y: float, r: float, colour, thickness: int = -1) -> None:
    import cv2
    cv2.circle(img, _pt(ctx, x, y), _r(ctx, r), colour, thickness, cv2.LINE_AA, SHIFT)


def polylines(img, ctx: Ctx, lines, colour, thickness: int = 1, closed: bool = False) -> None:
    """lines: a (N, K, 2) array or a list of (K, 2) pixel arrays, drawn in one call."""
    import cv2
    if len(lines):
        cv2.polylines(img, _many(ctx, lines), closed, colour, max(1, int(thickness * ctx.zoom)), cv2.LINE_AA, SHIFT)


def fill(img, ctx: Ctx, polys, colour) -> None:
    import cv2
    if len(polys):
        cv2.fillPoly(img, _many(ctx, polys), colour, cv2.LINE_AA, SHIFT)


def dots(img, ctx: Ctx, xs: np.ndarray, ys: np.ndarray, radius: float, colour) -> None:
    """Round anti-aliased dots of one radius and colour in one call (zero-length thick lines)."""
    import cv2
    if len(xs):
        pts = np.repeat(np.stack([xs, ys], axis=-1)[:, None, :], 2, axis=1)
        cv2.polylines(img, list(_xf(ctx, pts)), False, colour, max(1, int(round(2 * radius * ctx.zoom))), cv2.LINE_AA, SHIFT)


def mix(a, b, k: float) -> tuple:
    return tuple(int(x + (y - x) * k) for x, y in zip(a, b))


class Motif:
    name = "motif"
    words: tuple[str, ...] = ()
    layer = 1
    backdrop = False
    """A ground that fills its layer (sea, ridges): drawn first in the layer, so what stands on it stays in front."""

    def __init__(self, rng: np.random.Generator, w: int, h: int) -> None:
        self.rng = rng
        self.w, self.h = w, h
        self.setup()

    def setup(self) -> None:
        pass

    def draw(self, img: np.ndarray, ctx: Ctx) -> None:
        """The sharp pass, on the full-size frame."""
        raise NotImplementedError

    def soft(self, soft: Soft, ctx: Ctx) -> None:
        """The soft pass (haze, texture, glow), on the coarse canvas before the sharp pass; most motifs have none."""


def _wrap(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + np.mod(x - lo, hi - lo)


# --- sky ------------------------------------------------------------------------------------------
class Stars(Motif):
    name, words, layer = "stars", ("star", "starry", "starlight", "night sky", "constellation", "galaxy", "cosmos", "space"), 0

    def setup(self):
        n = 160
        self.p = self.rng.uniform(0, 1, (n, 4)).astype(np.float32)

    def draw(self, img, ctx):
        n = max(8, int(len(self.p) * ctx.amount))
        p = self.p[:n]
        xs = _wrap(p[:, 0] * ctx.w + ctx.t * 6 * ctx.motion.dx * ctx.s, 0, ctx.w)
        ys = p[:, 1] * ctx.h * ctx.horizon
        tw = 0.5 + 0.5 * np.sin(ctx.t * 3.0 + p[:, 2] * 40.0)
        for big in (0, 1, 2):   # three sizes, three brightnesses: few calls, still twinkling
            for level in (0, 1, 2):
                sel = (np.minimum(2, (p[:, 3] * 3).astype(int)) == big) & (np.minimum(2, (tw * 3).astype(int)) == level)
                r = (0.9 + 0.9 * big + 1.5 * ctx.beat * big) * ctx.s
                dots(img, ctx, xs[sel], ys[sel], r, mix(ctx.mid, ctx.glow, 0.3 + 0.35 * level))


class Moon(Motif):
    name, words, layer = "moon", ("moon", "moonlit", "moonlight", "moonpath", "lunar"), 0

    def _where(self, ctx: Ctx) -> tuple[float, float, float]:
        x, y = ctx.place(0.75, 0.22)
        return x + 0.02 * ctx.w * math.sin(ctx.t * 0.05) + 0.1 * ctx.cam, y, 60 * ctx.s * ctx.amount * (1 + 0.05 * ctx.beat)

    def soft(self, soft, ctx):
        x, y, r = self._where(ctx)
        soft.halo(x, y, 2.6 * r, mix(ctx.light, ctx.glow, 0.5), 0.55 * ctx.glow_gain * min(1.0, ctx.amount * 1.5))
        soft.light_x = x

    def draw(self, img, ctx):
        x, y, r = self._where(ctx)
        circle(img, ctx, x, y, r * 1.12, mix(ctx.light, ctx.glow, 0.3))
        circle(img, ctx, x, y, r, ctx.glow)
        circle(img, ctx, x + 0.35 * r, y - 0.2 * r, 0.85 * r, mix(ctx.dark, ctx.mid, 0.5))

class Sun(Motif):
    name, words, layer = "sun", ("sun", "sunrise", "sunset", "dawn", "sunlit", "sunlight", "sunny", "sunbeam", "golden", "summer", "radiant"), 0

    def _where(self, ctx: Ctx) -> tuple[float, float, float]:
        x, y = ctx.place(0.5, ctx.horizon - 0.12)
        return x + 0.1 * ctx.cam, y, 80 * ctx.s * ctx.amount

    def soft(self, soft, ctx):
        x, y, r = self._where(ctx)
        soft.halo(x, y, 4.0 * r, ctx.accent, 0.6 * ctx.glow_gain * min(1.0, ctx.amount * 1.5))
        soft.halo(x, y, 1.6 * r, ctx.glow, 0.5 * ctx.glow_gain * min(1.0, ctx.amount * 1.5))
        soft.light_x = x

    def draw(self, img, ctx):
        x, y, r = self._where(ctx)
        rays = []
        for i in range(24):
            a = i / 24 * 2 * math.pi + ctx.t * 0.1
            r0, r1 = r * 1.25, r * (1.6 + 0.5 * ctx.beat + 0.15 * math.sin(ctx.t * 2 + i))
            rays.append(np.array([[x + r0 * math.cos(a), y + r0 * math.sin(a)], [x + r1 * math.cos(a), y + r1 * math.sin(a)]]))
        polylines(img, ctx, rays, mix(ctx.accent, ctx.glow, 0.3), max(1, int(2 * ctx.s)))
        circle(img, ctx, x, y, r, ctx.glow)

class Clouds(Motif):
    """Cloud banks from fBm noise, lit from above: a far bank, fine-grained, low and hazy, drifting
    slowly; a near one, coarse and higher, faster (parallax). Soft only: nothing sharp."""

    name, words, layer = "clouds", ("cloud", "cloudy", "thundercloud", "overcast", "sky", "fog", "mist"), 0

    def setup(self):
        self.noise = Noise(self.rng)

    def soft(self, soft, ctx):
        horizon = ctx.h * ctx.horizon
        rows, cols = soft.rows(0, horizon), slice(0, soft.w)
        h = rows.stop - rows.start
        if h < 4:
            return
        y = (soft.ys(rows) / horizon)[:, None]   # 0 at the top, 1 at the horizon
        cover = 0.66 - 0.2 * min(1.0, ctx.amount)
        drift = ctx.t * 0.04 * (1.0 + ctx.motion.dx)
        under = np.asarray(mix(ctx.dark, ctx.mid, 0.55), dtype=np.float32)
        lit = np.asarray(mix(mix(ctx.light, ctx.glow, 0.25 + 0.4 * ctx.beat), ctx.light, 0.0), dtype=np.float32)
        for cells, speed, par, height, haze in ((7.0, 0.5, 0.12, 0.8, 0.5), (2.6, 1.0, 0.3, 0.3, 0.0)):
            d = self.noise.fbm(soft.w, h, cells, dx=drift * speed + ctx.cam * par * cells / ctx.w, dy=0.37 * cells,
                               stretch_y=2.4)
            band = np.exp(-((y - height) / 0.3) ** 2)
            density = smoothstep(cover, cover + 0.16, d * (0.75 + 0.35 * band))
            # Lit from above: where the density grows downward the cloud faces the sky.
            shade = np.clip(0.3 + 9.0 * (d - np.roll(d, 3, axis=0)), 0.0, 1.0)   # mostly body, lit only at the tops
            colour = under + (lit - under) * shade[..., None]
            if haze:
                colour += (np.asarray(ctx.light, dtype=np.float32) - colour) * haze
            soft.over(rows, cols, colour, density * 0.92)

    def draw(self, img, ctx):
        pass

class Birds(Motif):
    name, words, layer = "birds", ("bird", "crow", "gull", "swallow", "wing", "flock", "flying", "raven", "kites"), 0

    def setup(self):
        self.p = self.rng.uniform(0, 1, (18, 4)).astype(np.float32)

    def draw(self, img, ctx):
        m = ctx.motion
        lines = []
        n = max(3, int(len(self.p) * ctx.amount))
        for u, v, ph, size in self.p[:n]:
            if m.swirl > 0.5:   # circling a point above the horizon
                a = ctx.t * (0.4 + 0.3 * size) + ph * 6.28
                cx, cy = ctx.place(0.5, 0.3)
                x = cx + math.cos(a) * ctx.w * (0.12 + 0.2 * u)
                y = cy + math.sin(a) * ctx.h * (0.06 + 0.1 * v)
            else:
                x = float(_wrap(u * ctx.w + ctx.t * (40 + 40 * size) * ctx.s, -50, ctx.w + 50))
                y = ctx.h * (0.1 + 0.4 * v) + 15 * math.sin(ctx.t * 0.7 + ph * 6) * ctx.s
            span = (14 + 14 * size) * ctx.s * (1 + 0.3 * ctx.beat)
            flap = math.sin(ctx.t * 8 + ph * 20) * 0.6 * span
            lines.append(np.array([[x - span, y - flap], [x - span * 0.3, y - 0.2 * flap], [x, y + 0.15 * span],
                                   [x + span * 0.3, y - 0.2 * flap], [x + span, y - flap]]))
        polylines(img, ctx, lines, ctx.dark, max(2, int(3 * ctx.s)))


class Lightning(Motif):
    name, words, layer = "lightning", ("lightning", "thunder", "thunderhead", "thundercloud", "storm", "stormy", "electric"), 0

    def soft(self, soft, ctx):
        if ctx.beat < 0.35:
            return
        rows = soft.rows(0, ctx.h * ctx.horizon)   # the whole sky lights up, most near the top
        alpha = (0.35 * ctx.beat * ctx.glow_gain * np.linspace(1.0, 0.3, rows.stop - rows.start, dtype=np.float32))
        soft.screen(rows, slice(0, soft.w), ctx.glow, np.broadcast_to(alpha[:, None], (alpha.size, soft.w)))

    def draw(self, img, ctx):
        if ctx.beat < 0.35:
            return
        rng = np.random.default_rng(int(ctx.t * 3))
        x = ctx.place(float(rng.uniform(0.2, 0.8)), 0.0)[0] + (rng.uniform(-0.06, 0.06) * ctx.w if ctx.focus else 0.0)
        pts = [(x, 0.0)]
        y = 0.0
        while y < ctx.h * ctx.horizon:
            y += rng.uniform(20, 60) * ctx.s
            x += rng.uniform(-40, 40) * ctx.s
            pts.append((x, y))
        polylines(img, ctx, [np.array(pts)], ctx.glow, max(2, int(4 * ctx.beat * ctx.s * 2)))


class Fireworks(Motif):
    name, words, layer = "fireworks", ("firework", "festival", "celebration", "jubilant", "explosion", "burst", "rocket", "firecracker"), 0

    def setup(self):
        self.c = self.rng.uniform(0, 1, (5, 3)).astype(np.float32)

    def _bursts(self, ctx: Ctx) -> list[tuple[float, float, float, float]]:
        """(x, y, age 0..1, size) of each burst; the focal one, the largest, on the focal point."""
        out = []
        for i, (u, v, ph) in enumerate(self.c[:max(2, int(5 * ctx.amount))]):
            age = (ctx.t * 0.6 + ph) % 1.0
            x, y = ctx.w * (0.15 + 0.7 * u), ctx.h * (0.12 + 0.35 * v)
            size = 1.0
            if i == 0 and ctx.focus is not None:
                x, y = ctx.place(0.5, 0.3)
                size = 1.8
            out.append((x, y, age, size))
        return out

    def soft(self, soft, ctx):
        # Bursts need a night: at full strength the sky above the horizon darkens toward the top.
        rows = soft.rows(0, ctx.h * ctx.horizon)
        if ctx.amount >= 0.6 and rows.stop - rows.start > 1:
            fall = np.linspace(0.85, 0.3, rows.stop - rows.start, dtype=np.float32) * min(1.0, ctx.amount)
            soft.over(rows, slice(0, soft.w), ctx.dark, np.broadcast_to(fall[:, None], (fall.size, soft.w)))
        for x, y, age, size in self._bursts(ctx):
            soft.halo(x, y, (60 + 120 * age) * ctx.s * size, ctx.accent, 0.4 * (1.0 - age) ** 2 * ctx.glow_gain)

    def draw(self, img, ctx):
        # Each burst: stars thrown out along uneven spokes, slowing (drag) and drooping (gravity),
        # each with a trail of its last positions; bright and white-hot young, dim and sparse old.
        k = np.arange(36, dtype=np.float32)
        lag = np.asarray([0.0, 0.06, 0.13, 0.22], dtype=np.float32)[:, None]   # trail: earlier moments
        rising = []
        for i, (x, y, age, size) in enumerate(self._bursts(ctx)):
            if age < 0.12:   # the rocket still climbing from the ground to where it will burst
                climb = age / 0.12
                y1 = ctx.h * ctx.horizon + (y - ctx.h * ctx.horizon) * climb
                rising.append(np.array([[x, y1 + 40 * ctx.s], [x, y1]], dtype=np.float32))
                continue
            age = (age - 0.12) / 0.88
            a = k / 36 * 2 * math.pi + i + 0.15 * np.sin(k * 7.3 + i)
            speed = (170 + 50 * np.sin(k * 3.1 + i * 2)) * ctx.s * (1 + 0.25 * ctx.beat) * size
            tt = np.clip(age - lag, 0.0, None)
            reach = speed * (1 - np.exp(-3.0 * tt)) / 3.0 * 3.0
            px = x + reach * np.cos(a)
            py = y + reach * np.sin(a) + 90 * ctx.s * tt * tt
            trails = np.stack([px, py], -1).transpose(1, 0, 2)   # (36 stars, 4 moments, 2)
            live = (k * 0.61 + i) % 1.0 > age * 0.9               # stars burn out as the burst ages
            colour = mix(mix(ctx.glow, (255, 255, 255), 0.3), mix(ctx.accent, ctx.mid, 0.5), age)
            polylines(img, ctx, trails[live], colour, max(1, int((3.0 - 1.8 * age) * ctx.s * size)))
        polylines(img, ctx, rising, mix(ctx.accent, ctx.glow, 0.6), max(1, int(2 * ctx.s)))


class Lanterns(Motif):
    name, words, layer = "lanterns", ("lantern", "lamplight", "lamp", "candle", "candlelit", "glow", "firefly"), 0

    def setup(self):
        self.p = self.rng.uniform(0, 1, (22, 3)).astype(np.float32)

    def soft(self, soft, ctx):
        p = self.p[:max(4, int(22 * ctx.amount))]
        x = p[:, 0] * ctx.w + 12 * np.sin(ctx.t * 0.8 + p[:, 1] * 9) * ctx.s
        y = _wrap(p[:, 1] * ctx.h - ctx.t * (12 + 12 * p[:, 2]) * ctx.s, -20, ctx.h + 20)
        for xi, yi, big in zip(x, y, p[:, 2]):
            if big > 0.5:   # the nearer lamps light the air around them
                soft.halo(float(xi), float(yi), 40 * ctx.s, ctx.accent, 0.35 * ctx.glow_gain * min(1.0, ctx.amount * 1.5))

    def draw(self, img, ctx):
        p = self.p[:max(4, int(22 * ctx.amount))]
        x = p[:, 0] * ctx.w + 12 * np.sin(ctx.t * 0.8 + p[:, 1] * 9) * ctx.s
        y = _wrap(p[:, 1] * ctx.h - ctx.t * (12 + 12 * p[:, 2]) * ctx.s, -20, ctx.h + 20)
        for big in (0, 1):
            sel = (p[:, 2] > 0.5) == bool(big)
            r = (7 + 7 * big) * ctx.s * (1 + 0.35 * ctx.beat)
            dots(img, ctx, x[sel], y[sel], r * 1.8, mix(ctx.mid, ctx.accent, 0.5))
            dots(img, ctx, x[sel], y[sel], r, ctx.glow)


# --- land -----------------------------------------------------------------------------------------
class Mountains(Motif):
    """Three ridges by distance, far ones hazed toward the sky, a lit rim on each, and textured:
    the flanks turned from the light (upper left) in shade, rock strata that follow the ridge line,
    broken by noise, and snow on the highest stretch. The texture is a coarse map (an eighth of the
    frame's size) darkening the ridges and the snow added, so it costs two small-array passes
    and one upscale, whatever the number of peaks; it fades in below each ridge line, so the
    silhouettes stay sharp."""

    name, words, layer = "mountains", ("mountain", "peak", "ridge", "hill", "dune", "cliff", "valley", "alps"), 1
    backdrop = True
    TEXTURE_STEP = 8
    """Frame pixels (at 720 lines) per texture-map pixel."""

    def setup(self):
        self.k = self.rng.uniform(0, 6.28, (3, 4)).astype(np.float32)
        self.noise = Noise(self.rng, octaves=3)

    def draw(self, img, ctx):
        margin = 0.1 * ctx.w
        xs = np.linspace(-margin, ctx.w + margin, 96, dtype=np.float32)
        horizon = ctx.h * ctx.horizon
        floor = min(ctx.h + 20, horizon + 2) if ctx.water else ctx.h + 20   # the sea runs to the ridges' feet
        tops = []
        for layer in range(3):   # far to near
            k = self.k[layer]
            par = 0.15 + 0.35 * layer   # parallax: the near ridge moves most with the camera
            u = (xs - ctx.cam * par) / ctx.w
            base = ctx.h * (ctx.horizon - 0.18 + 0.1 * layer)
            ridge = (np.abs(np.sin(u * (3 + layer) + k[0] + ctx.t * 0.02 * (layer + 1))) * 0.18
                     + 0.05 * np.sin(u * 11 + k[1]) + 0.012 * (1 + layer) * np.sin(u * 37 + k[2])
                     ) * ctx.h * (1.0 - 0.25 * layer) * ctx.amount
            tops.append(np.minimum(base - ridge, floor - 1))
        bottoms, bodies = [], []
        for layer, top in enumerate(tops):
            # Each ridge is filled down to the lowest point of the one in front only: no overdraw.
            bottom = floor if layer == 2 else min(floor, float(tops[layer + 1].max()) + 2)
            top = tops[layer] = np.minimum(top, bottom - 1)   # below that it is hidden anyway
            bottoms.append(bottom)
            poly = np.concatenate([np.stack([xs, top], 1), [[ctx.w + margin, bottom], [-margin, bottom]]])
            # Aerial perspective: the far ridges take the sky's light colour and lose their contrast.
            body = mix(mix(ctx.mid, ctx.dark, 0.3 + 0.35 * layer), ctx.light, 0.42 * (2 - layer) / 2)
            fill(img, ctx, [poly], body)
            bodies.append(body)
        if ctx.amount >= 0.45:   # as background texture (dim, low) the ridges stay plain: the detail belongs to a subject
            self._texture(img, ctx, xs, tops, bodies, min(float(ctx.h), bottoms[-1]))
        for layer, (top, body) in enumerate(zip(tops, bodies)):
            rim = mix(body, mix(ctx.light, ctx.glow, ctx.beat), 0.25 + 0.3 * layer)
            polylines(img, ctx, [np.stack([xs, top], 1)], rim, max(1, int((1 + 0.5 * layer) * ctx.s)))

    def _texture(self, img, ctx: Ctx, xs: np.ndarray, tops: list[np.ndarray], bodies: list[tuple], bottom: float) -> None:
        import cv2

        # From the highest ridge line to a little below the near ridge's lowest: the foreground under
        # that is left plain (it is mostly hidden by what stands in front, and it is the costly part).
        r0 = max(0, int(min(float(t.min()) for t in tops)))
        r1 = min(img.shape[0], int(math.ceil(min(bottom, float(tops[-1].max()) + 0.12 * ctx.h))))
        step = self.TEXTURE_STEP * ctx.s
        tw, th = max(2, int(ctx.w / step)), max(2, int((r1 - r0) / step))
        if r1 - r0 < 2 * step:
            return
        x = (np.arange(tw, dtype=np.float32) + 0.5) * (ctx.w / tw)
        y = r0 + (np.arange(th, dtype=np.float32)[:, None] + 0.5) * ((r1 - r0) / th)
        # For each map pixel, the nearest ridge that covers it: its depth below its own ridge line,
        # the slope of that line (a flank falling to the right faces away from the light), its colour.
        top = np.stack(tops)
        t = np.stack([np.interp(x, xs, r) for r in top]).astype(np.float32)                     # (3, tw)
        # the slope from the ridge's own points, interpolated: continuous, so no seams between columns
        g = np.stack([np.interp(x, xs, r) for r in np.gradient(top, axis=1) / (xs[1] - xs[0])]).astype(np.float32)
        front = (y[None] >= t[:, None, :]).astype(np.int8)                                       # (3, th, tw)
        covered = front.any(axis=0)
        idx = 2 - np.argmax(front[::-1], axis=0)                                                 # nearest covering ridge
        cols = np.arange(tw)[None, :]
        d = np.where(covered, y - t[idx, cols], -1.0).astype(np.float32)
        slope = g[idx, cols]
        body = np.asarray(bodies, dtype=np.float32)[idx]
        relief = np.ptp(t, axis=1)
        snowline = t.min(axis=1) + 0.3 * relief
        # snow only on ridges with some height to them: a low rolling line gets none
        cap = (np.clip(snowline[:, None] - t, 0.0, None) * np.clip(relief / (0.1 * ctx.h) - 0.5, 0.0, 1.0)[:, None])[idx, cols]
        # down to about half way to the snowline, so its lower edge follows the ridge, softly
        snow = np.clip((0.55 * cap - d) / (14.0 * ctx.s), 0.0, 1.0) * np.clip(cap / (10.0 * ctx.s), 0.0, 1.0) * covered
        n = self.noise.fbm(tw, th, 7.0, dx=ctx.cam * 0.01 / ctx.s, stretch_y=2.0)
        # starting a map pixel below the ridge line, so the upscale never spills it into the sky
        fade = smoothstep(step, step + 16.0 * ctx.s, d) * np.clip((r1 - y) / (0.04 * ctx.h), 0.0, 1.0)
        fade *= smoothstep(0.05, 0.7, slope) * 0.32 + 0.1 * np.sin(d / (9.0 * ctx.s) + 6.0 * n) * smoothstep(0.4, 0.6, n) \
            + 0.35 * (n - 0.45) - 0.16 * smoothstep(0.05, 0.7, -slope)
        # The ridges are flat fills here, so darkening each by a fraction is subtracting that
        # fraction of its colour: a saturating uint8 subtract of the upscaled map.
        dark = np.clip(body * np.clip(fade, 0.0, 0.8)[..., None], 0, 255).astype(np.uint8)
        region = img[r0:r1]
        cv2.subtract(region, cv2.resize(dark, (ctx.w, r1 - r0), interpolation=cv2.INTER_LINEAR), dst=region)
        lift = np.clip(snow * (0.4 + 1.2 * n), 0.0, 1.0) * (1.0 - 0.6 * smoothstep(0.05, 0.7, slope))
        rows = np.flatnonzero(lift.max(axis=1) > 0.02)
        if len(rows):   # snow: light added where it lies, only over the rows it reaches
            a, b = int(rows[0]), int(rows[-1]) + 2
            colour = np.asarray(mix(ctx.light, ctx.glow, 0.6), dtype=np.float32) * 0.85
            y0, y1 = r0 + int(a * (r1 - r0) / th), min(r1, r0 + int(b * (r1 - r0) / th))
            add = cv2.resize((lift[a:b, :, None] * colour).astype(np.uint8), (ctx.w, y1 - y0), interpolation=cv2.INTER_LINEAR)
            # nothing above the skyline of the ridges: the upscale would spill a map pixel's snow into the sky
            line = np.stack([xs, np.min(top, axis=0) - y0], 1)
            sky = np.concatenate([line, [[xs[-1], -1.0], [xs[0], -1.0]]])
            cv2.fillPoly(add, [(sky * ONE).astype(np.int32)], (0, 0, 0), cv2.LINE_AA, SHIFT)
            cv2.add(img[y0:y1], add, dst=img[y0:y1])

class Waves(Motif):
    """The sea: a noise-textured body on the soft canvas (streaks that flatten toward the horizon,
    the sky's light at the far edge, a glitter path under the moon or sun), and crests drawn sharp on it."""

    name, words, layer = "waves", ("wave", "sea", "seascape", "ocean", "shore", "tide", "coast", "water", "waterfall", "lake", "beach", "harbour", "surf", "swell"), 1
    backdrop = True

    def setup(self):
        self.noise = Noise(self.rng, octaves=3)

    def soft(self, soft, ctx):
        y0 = ctx.h * ctx.horizon
        rows, cols = soft.rows(y0, ctx.h), slice(0, soft.w)
        h = rows.stop - rows.start
        if h < 2:
            return
        depth = np.clip((soft.ys(rows) - y0) / max(1.0, ctx.h - y0), 0.0, 1.0)[:, None]   # 0 at the horizon, 1 at the viewer
        d = self.noise.fbm(soft.w, h, 2.5, dx=ctx.cam * 0.5 * 2.5 / ctx.w + 0.05 * math.sin(ctx.t * 0.2),
                           dy=-ctx.t * 0.3, stretch_y=14.0)
        far = np.asarray(mix(ctx.mid, ctx.light, 0.55), dtype=np.float32)
        near = np.asarray(mix(ctx.dark, ctx.mid, 0.35), dtype=np.float32)
        ramp = np.sqrt(depth)[..., None]
        colour = far + (near - far) * ramp + ((d - 0.5) * (30.0 + 40.0 * depth))[..., None]
        soft.over(rows, cols, colour, np.full((h, soft.w), min(1.0, 1.4 * ctx.amount), dtype=np.float32))
        sheen = smoothstep(0.58, 0.78, d) * (1.0 - depth) * 0.5
        if soft.light_x is not None:   # a glitter path under the light, widening toward the viewer
            x = soft.xs(cols)[None, :]
            path = np.exp(-((x - soft.light_x) / (ctx.w * (0.015 + 0.06 * depth))) ** 2)
            sheen = sheen + path * smoothstep(0.4, 0.65, d) * (0.9 - 0.5 * depth)
        soft.screen(rows, cols, mix(ctx.light, ctx.glow, 0.5), (sheen * min(1.0, ctx.amount * 1.4)).astype(np.float32))

    def draw(self, img, ctx):
        # Seven crests from the horizon to the viewer: nearer ones larger, faster and thicker
        # (parallax), farther ones sunk into the sky's light (haze).
        xs = np.linspace(-10, ctx.w + 10, 96, dtype=np.float32)
        water = mix(ctx.dark, ctx.mid, 0.4)
        crest = mix(ctx.light, ctx.glow, 0.5 * ctx.beat)
        for i in range(7):
            near = i / 6
            y0 = ctx.h * (ctx.horizon + 0.008 + (1.0 - ctx.horizon) * near ** 1.6)
            amp = (2 + 9 * near) * ctx.s * (1 + (0.8 + ctx.motion.sway) * ctx.beat) * ctx.amount
            phase = (xs - ctx.cam * (0.2 + 0.8 * near)) / ctx.w * (10 - 5 * near) * math.pi + ctx.t * (1.0 + 0.3 * i) + i
            y = y0 + amp * np.sin(phase)
            colour = mix(mix(water, ctx.light, 0.45), crest, 0.2 + 0.5 * near)
            polylines(img, ctx, [np.stack([xs, y], 1)], colour, max(1, int((1 + 2.5 * near) * ctx.s)))


class Forest(Motif):
    """Trees in three rows by distance, pines in tiers and broadleaves in clumps of foliage, each with
    a lit side: far rows smaller, hazier, stiller and moving least with the camera."""

    name, words, layer = "forest", ("forest", "tree", "treeline", "wood", "woodland", "pine", "orchard", "garden", "willow", "jungle", "branch"), 1

    def setup(self):
        self.p = np.sort(self.rng.uniform(0, 1, (34, 3)).astype(np.float32), axis=0)
        self.rng.shuffle(self.p)
        self.kind = self.rng.uniform(0, 1, 34).astype(np.float32)
        self.clumps = self.rng.uniform(-1, 1, (34, 5, 3)).astype(np.float32)
        a = np.linspace(0, 2 * math.pi, 13, dtype=np.float32)[:-1]
        self.unit = np.stack([np.cos(a), np.sin(a)], 1)

    def _feet(self, ctx: Ctx) -> tuple[Any, ...]:
        n = max(6, int(34 * ctx.amount))
        u, hgt, lean = self.p[:n, 0], self.p[:n, 1], self.p[:n, 2]
        near = 0.45 + 0.75 * lean
        x = _wrap(u * 1.2 * ctx.w + ctx.cam * (0.2 + 0.8 * lean), -0.1 * ctx.w, 1.1 * ctx.w)
        base = ctx.h * (ctx.horizon + 0.1 + 0.17 * lean)
        return n, u, hgt, lean, near, x, base

    def soft(self, soft, ctx):
        # Each tree's soft shadow on the ground, thrown right, away from the light, nearer ones darker.
        n, u, hgt, lean, near, x, base = self._feet(ctx)
        wide = (18 + 22 * hgt) * ctx.s * near
        soft.shadows(np.stack([x + 0.9 * wide, base + 0.1 * wide, 2.2 * wide, 0.35 * wide], 1),
                     0.9 * ctx.shadow * min(1.0, 1.5 * ctx.amount), 10 * ctx.s)

    def draw(self, img, ctx):
        n, u, hgt, lean, near, x, base = self._feet(ctx)
        tall = (80 + 180 * hgt) * ctx.s * near
        top = base - tall
        sway = (6 * np.sin(ctx.t * 0.9 + u * 10) * ctx.motion.sway + 8 * ctx.beat * (lean - 0.5)) * ctx.s * near
        wide = (18 + 22 * hgt) * ctx.s * near
        row = np.minimum(2, (lean * 3).astype(int))
        pine = self.kind[:n] < 0.5
        # Pines: three tiers each, narrower and higher; the lit side is the left half of each tier.
        tier = np.arange(3, dtype=np.float32)[None, :]
        t0 = top[:, None] + tier * 0.24 * tall[:, None]
        w0 = wide[:, None] * (0.55 + 0.3 * tier)
        b0 = t0 + 0.42 * tall[:, None]
        apex_x = x[:, None] + sway[:, None] * (1 - tier / 3)
        tiers = np.stack([np.stack([apex_x, t0], -1), np.stack([x[:, None] + w0, b0], -1),
                          np.stack([x[:, None] - w0, b0], -1)], axis=2)            # (n, 3 tiers, 3 points, 2)
        lit_tiers = tiers.copy()
        lit_tiers[:, :, 1, 0] = x[:, None] - 0.1 * w0
        lit_tiers[:, :, 1, 1] = b0 - 0.1 * tall[:, None]
        # Broadleaves: a crown of five overlapping clumps, each with a smaller lit clump up and to the left.
        cl = self.clumps[:n]
        rad = wide[:, None] * (0.55 + 0.2 * cl[:, :, 2])
        cx = x[:, None] + sway[:, None] + cl[:, :, 0] * wide[:, None] * 0.7
        cy = (top + 0.35 * tall)[:, None] + cl[:, :, 1] * tall[:, None] * 0.17
        centre = np.stack([cx, cy], -1)[:, :, None, :]
        crowns = centre + self.unit[None, None] * rad[..., None, None]                # (n, 5, 12, 2)
        lit_crowns = centre + self.unit[None, None] * (0.55 * rad)[..., None, None] - (0.3 * rad)[..., None, None]
        trunk_top = np.where(pine, top + 0.9 * tall, top + 0.35 * tall)
        trunks = np.stack([np.stack([x, base], -1), np.stack([x + np.where(pine, 0.0, 0.5 * sway), trunk_top], -1)], 1)
        for r in range(3):   # far to near
            sel_p, sel_b = (row == r) & pine, (row == r) & ~pine
            haze = (0.45, 0.22, 0.0)[r]
            colour = mix(mix(ctx.dark, ctx.mid, 0.15), ctx.light, haze)
            lit = mix(colour, mix(ctx.light, ctx.glow, ctx.beat), 0.22 - 0.05 * r)
            polylines(img, ctx, trunks[row == r], mix(colour, ctx.dark, 0.3), max(1, int((1 + 2 * r) * ctx.s)))
            fill(img, ctx, tiers[sel_p].reshape(-1, 3, 2), colour)
            fill(img, ctx, crowns[sel_b].reshape(-1, 12, 2), colour)
            fill(img, ctx, lit_tiers[sel_p].reshape(-1, 3, 2), lit)
            fill(img, ctx, lit_crowns[sel_b].reshape(-1, 12, 2), lit)


class City(Motif):
    """A skyline in three rows by distance: a far one pale with haze and barely moving, a middle one
    with a few lights, and the near one dark with a lit side on each building, a facade (floor bands
    or ribs), stepped roofs, masts, and windows on a grid per building, lit in that building's way
    (whole floors of an office, scattered homes, strips), a few switching; a glow of street light."""

    name, words, layer = "city", ("city", "cityscape", "skyline", "skyscraper", "street", "streetlamp", "station", "square", "town", "building", "neon", "tunnel", "village"), 1
    FLOORS, BAYS = 40, 5
    """The window grid of each building, at most: floors by bays."""

    def setup(self):
        self.b = self.rng.uniform(0, 1, (22, 2)).astype(np.float32)
        self.far = self.rng.uniform(0, 1, (3, 30, 2)).astype(np.float32)
        n = len(self.b)
        # Each building's way of being lit: how many of its windows are, whether whole floors go
        # together (offices) and which of two window shapes and tints it has.
        self.kind = self.rng.uniform(0, 1, (n, 4)).astype(np.float32)
        self.cell = self.rng.uniform(0, 1, (n, self.FLOORS, self.BAYS)).astype(np.float32)
        self.floor = self.rng.uniform(0, 1, (n, self.FLOORS)).astype(np.float32)
        self.mid_lights = self.rng.uniform(0, 1, (60, 3)).astype(np.float32)

    def soft(self, soft, ctx):
        ground = ctx.h * (ctx.horizon + 0.1)
        rows = soft.rows(ground - 200 * ctx.s, ground)
        if rows.stop - rows.start < 2:
            return
        y = soft.ys(rows)
        alpha = (0.4 * ctx.glow_gain * min(1.0, ctx.amount * 1.4) * np.exp(-((ground - y) / (90 * ctx.s)) ** 2)).astype(np.float32)
        soft.screen(rows, slice(0, soft.w), ctx.accent, np.broadcast_to(alpha[:, None], (alpha.size, soft.w)))

    def _row(self, img: np.ndarray, ctx: Ctx, data: np.ndarray, ground: float, par: float, tall: float, colour) -> np.ndarray:
        span = 1.2 * ctx.w
        bw = span / len(data)
        x0 = _wrap(np.arange(len(data), dtype=np.float32) * bw + ctx.cam * par, -0.1 * ctx.w, 1.1 * ctx.w)
        top = ground - (0.25 + 0.75 * data[:, 0]) * tall * (0.4 + 0.6 * ctx.amount)
        # One silhouette polygon per row (roof steps, then down to the ground): a far row is a shape, and
        # one polygon fills faster than thirty.
        order = np.argsort(x0)
        x0, top = x0[order], top[order]
        roofs = np.stack([np.stack([x0, top], 1), np.stack([x0 + bw, top], 1)], axis=1).reshape(-1, 2)
        ends = np.asarray([[roofs[-1, 0], ground + 2], [roofs[0, 0], ground + 2]], dtype=np.float32)
        fill(img, ctx, [np.concatenate([roofs, ends]).astype(np.float32)], colour)
        return np.stack([x0, top], 1)

    def draw(self, img, ctx):
        import cv2

        ground = ctx.h * (ctx.horizon + 0.1)
        # Far rows: pale with haze, moving least with the camera; the middle one with a few lights.
        middle = None
        for row, (haze, par, tall, lift) in enumerate(((0.55, 0.15, 150.0, 0.045), (0.32, 0.35, 220.0, 0.02))):
            middle = self._row(img, ctx, self.far[row], ground - lift * ctx.h, par, tall * ctx.s, mix(mix(ctx.dark, ctx.mid, 0.4), ctx.light, haze))
        if middle is not None:
            bw_mid = 1.2 * ctx.w / len(middle)
            j = (self.mid_lights[:, 0] * len(middle)).astype(int)
            on = self.mid_lights[:, 2] > 0.35 + 0.3 * np.sin(ctx.t * 0.05 + self.mid_lights[:, 1] * 9) ** 2
            mx = middle[j, 0] + 4 + self.mid_lights[:, 1] * (bw_mid - 8)
            my = middle[j, 1] + 6 + self.mid_lights[:, 2] * (ground - 0.02 * ctx.h - middle[j, 1] - 8)
            dots(img, ctx, mx[on], my[on], 1.3 * ctx.s, mix(mix(ctx.dark, ctx.mid, 0.4), ctx.accent, 0.55))
        n = len(self.b)
        bw = 1.2 * ctx.w / n
        x0 = _wrap(np.arange(n, dtype=np.float32) * bw + ctx.cam * 0.8, -0.1 * ctx.w, 1.1 * ctx.w - bw)
        top = ground - (60 + 260 * self.b[:, 0]) * ctx.s * (0.4 + 0.6 * ctx.amount)
        if ctx.focus is not None:   # the focal skyline rises around the focal point and leaves open sky elsewhere
            near = 1.0 - np.abs(x0 + 0.5 * bw - ctx.focus[0] * ctx.w) / (0.4 * ctx.w)
            top = ground - (ground - top) * np.clip(near, 0.12, 1.0)
        x1 = x0 + bw - 4
        style = self.b[:, 1]
        bottom = np.full(n, ctx.h + 5, dtype=np.float32)
        polys = list(np.stack([np.stack([x0, top], 1), np.stack([x1, top], 1), np.stack([x1, bottom], 1),
                               np.stack([x0, bottom], 1)], axis=1))
        crown = (style > 0.6) & (ground - top > 80 * ctx.s)   # stepped crowns, some with a mast
        inset = 0.25 * (x1 - x0)
        for i in np.flatnonzero(crown):
            polys.append(np.array([[x0[i] + inset[i], top[i] - 22 * ctx.s], [x1[i] - inset[i], top[i] - 22 * ctx.s],
                                   [x1[i] - inset[i], top[i]], [x0[i] + inset[i], top[i]]], dtype=np.float32))
        masts = [np.array([[(x0[i] + x1[i]) / 2, top[i] - 22 * ctx.s], [(x0[i] + x1[i]) / 2, top[i] - 60 * ctx.s]], dtype=np.float32)
                 for i in np.flatnonzero(crown & (style > 0.85))]
        fill(img, ctx, polys, ctx.dark)
        polylines(img, ctx, masts, ctx.dark, max(1, int(2 * ctx.s)))
        # The side toward the light (upper left), and the facade: floor bands on some, ribs on others.
        side = mix(ctx.dark, ctx.mid, 0.28)
        lit_w = np.where(self.kind[:, 3] > 0.5, 0.2, 0.12) * (x1 - x0)
        strips = np.stack([np.stack([x0, top], 1), np.stack([x0 + lit_w, top], 1), np.stack([x0 + lit_w, bottom], 1),
                           np.stack([x0, bottom], 1)], axis=1)
        cv2.fillPoly(img, list(_xf(ctx, strips)), side, cv2.LINE_8, SHIFT)   # upright edges: no anti-aliasing needed
        pitch = 15.0 * ctx.s
        face = x0 + lit_w
        ribs = np.flatnonzero(self.kind[:, 2] < 0.35)   # ribs: three lines down the face
        fx = face[ribs, None] + np.arange(1, 4, dtype=np.float32)[None, :] * ((x1 - face)[ribs, None] / 4)
        rib_lines = np.stack([np.stack([fx, np.broadcast_to(top[ribs, None] + 3, fx.shape)], -1),
                              np.stack([fx, np.full(fx.shape, ground, dtype=np.float32)], -1)], 2).reshape(-1, 2, 2)
        bands = np.flatnonzero(self.kind[:, 2] > 0.7)    # bands: a line every third floor
        fy = top[bands, None] + 3 * pitch * np.arange(1, self.FLOORS // 3, dtype=np.float32)[None, :]
        keep = fy < ground
        band_lines = np.stack([np.stack([np.broadcast_to(face[bands, None], fy.shape), fy], -1),
                               np.stack([np.broadcast_to(x1[bands, None], fy.shape), fy], -1)], 2)[keep]
        facade = np.concatenate([rib_lines, band_lines]).astype(np.float32)
        polylines(img, ctx, facade, mix(ctx.dark, ctx.mid, 0.16), 1)
        self._windows(img, ctx, x0 + lit_w, x1, top, ground, pitch)

    def _windows(self, img, ctx: Ctx, left: np.ndarray, right: np.ndarray, top: np.ndarray, ground: float, pitch: float) -> None:
        import cv2

        floors = np.arange(self.FLOORS, dtype=np.float32)
        bays = np.arange(self.BAYS, dtype=np.float32)
        kind = self.kind
        nbays = np.clip(((right - left - 6) / (11.0 * ctx.s)).astype(int), 1, self.BAYS)            # (n,)
        fy = top[:, None] + 8 * ctx.s + floors[None, :] * pitch                                    # (n, floors)
        inside = (fy + 7 * ctx.s < ground)[:, :, None] & (bays[None, None, :] < nbays[:, None, None])
        # Offices light whole floors together, homes one window at a time; a few switch every few seconds.
        share = 0.15 + 0.5 * kind[:, 0] + 0.25 * ctx.beat
        floor_on = self.floor < share[:, None]
        office = kind[:, 1] > 0.55
        p = np.where(office[:, None, None], np.where(floor_on[:, :, None], 0.9, 0.04), share[:, None, None])
        slow = np.floor(ctx.t * 0.12 + self.cell * 40.0)
        flick = np.mod(self.cell * 7.3 + 0.13 * (np.mod(slow * 0.618, 1.0) > 0.92), 1.0)
        lit = inside & (flick < p)
        i, f, b = np.nonzero(lit)
        if not len(i):
            return
        bay_w = (right - left) / nbays
        strip = kind[i, 3] > 0.75   # ribbon windows across the whole bay
        ww = np.where(strip, bay_w[i] - 1.0, np.minimum(5.0 * ctx.s, bay_w[i] * 0.6))
        wh = np.where(strip, 3.0 * ctx.s, 6.5 * ctx.s)
        x = left[i] + b * bay_w[i] + 0.5 * (bay_w[i] - ww)
        y = fy[i, f]
        warm = kind[i, 0] > 0.4
        for sel, colour in ((warm, mix(ctx.accent, ctx.glow, ctx.beat)), (~warm, mix(mix(ctx.light, ctx.glow, 0.5), ctx.accent, 0.25))):
            quads = np.stack([np.stack([x, y], 1), np.stack([x + ww, y], 1), np.stack([x + ww, y + wh], 1),
                              np.stack([x, y + wh], 1)], axis=1)[sel]
            if len(quads):   # small and many: no anti-aliasing, one call per tint
                cv2.fillPoly(img, list(_xf(ctx, quads)), colour, cv2.LINE_8, SHIFT)


class Tower(Motif):
    name, words, layer = "tower", ("tower", "spire", "castle", "lighthouse", "steeple", "ruins", "cathedral"), 1

    def soft(self, soft, ctx):
        x = ctx.place(0.62, 0.0)[0] + 0.6 * ctx.cam
        top = ctx.h * (ctx.horizon + 0.1) - 380 * ctx.s * (0.5 + 0.5 * ctx.amount)
        soft.halo(x, top + 20 * ctx.s, (50 + 30 * ctx.beat) * ctx.s, ctx.accent, 0.6 * ctx.glow_gain)

    def draw(self, img, ctx):
        import cv2
        x = ctx.place(0.62, 0.0)[0] + 0.6 * ctx.cam
        base = ctx.h * (ctx.horizon + 0.1)
        top = base - 380 * ctx.s * (0.5 + 0.5 * ctx.amount)
        hw = 26 * ctx.s
        body = np.array([[x - hw, base], [x - hw * 0.7, top], [x + hw * 0.7, top], [x + hw, base]], dtype=np.float32)
        roof = np.array([[x - hw, top], [x, top - 60 * ctx.s], [x + hw, top]], dtype=np.float32)
        fill(img, ctx, [body, roof], ctx.dark)
        lamp = mix(ctx.accent, ctx.glow, ctx.beat)
        circle(img, ctx, x, top + 20 * ctx.s, (7 + 5 * ctx.beat) * ctx.s, lamp)
        # A lighthouse beam sweeps; a tower just glows.
        a = ctx.t * 0.8
        beam = np.array([[x, top + 20 * ctx.s], [x + math.cos(a) * ctx.w, top + math.sin(a) * 60 * ctx.s]], dtype=np.float32)
        polylines(img, ctx, [beam], mix(ctx.mid, ctx.glow, 0.4 + 0.4 * ctx.beat), max(1, int(2 * ctx.s)))
        for k in range(4):
            y = base - (60 + 70 * k) * ctx.s
            cv2.rectangle(img, _pt(ctx, x - 4 * ctx.s, y), _pt(ctx, x + 4 * ctx.s, y + 10 * ctx.s), lamp, -1, cv2.LINE_AA, SHIFT)


class Boats(Motif):
    name, words, layer = "boats", ("boat", "sail", "sailboat", "sailing", "ship", "harbour", "fleet", "shore"), 1

    def setup(self):
        self.p = self.rng.uniform(0, 1, (5, 2)).astype(np.float32)

    def _hulls(self, ctx: Ctx) -> list[tuple[float, float, float]]:
        out = []
        for u, size in self.p[:max(1, int(5 * ctx.amount))]:
            x = float(_wrap(u * ctx.w + ctx.t * 8 * ctx.s, -60, ctx.w + 60))
            s = (0.6 + 0.6 * size) * ctx.s
            out.append((x, ctx.h * ctx.horizon + 8 * s + 5 * math.sin(ctx.t * 1.5 + u * 9) * s * (1 + 2 * ctx.beat), s))
        return out

    def soft(self, soft, ctx):
        # Each hull darkens the water under it: a soft shadow stretched along the swell.
        soft.shadows(np.asarray([[x + 6 * s, y + 16 * s, 46 * s, 7 * s] for x, y, s in self._hulls(ctx)]),
                     0.8 * ctx.shadow, 5 * ctx.s)

    def draw(self, img, ctx):
        polys = []
        for x, y, s in self._hulls(ctx):
            polys.append(np.array([[x - 40 * s, y], [x + 40 * s, y], [x + 28 * s, y + 14 * s], [x - 28 * s, y + 14 * s]]))
            polys.append(np.array([[x - 2 * s, y - 4 * s], [x - 2 * s, y - 70 * s], [x + 32 * s, y - 6 * s]]))
        fill(img, ctx, polys, mix(ctx.dark, ctx.light, 0.15))


class Grass(Motif):
    name, words, layer = "grass", ("meadow", "grass", "field", "wildflower", "prairie", "lawn"), 1

    def setup(self):
        self.p = self.rng.uniform(0, 1, (140, 3)).astype(np.float32)

    def draw(self, img, ctx):
        p = self.p[:max(20, int(140 * ctx.amount))]
        x = p[:, 0] * ctx.w
        base = np.full_like(x, ctx.h + 5)
        top = base - (60 + 140 * p[:, 1]) * ctx.s
        bend = (20 * np.sin(ctx.t * 1.1 + p[:, 0] * 8 + p[:, 2]) * (0.3 + ctx.motion.sway) + 25 * ctx.beat) * ctx.s
        lines = np.stack([np.stack([x, base], 1), np.stack([x + 0.3 * bend, (base + top) / 2], 1),
                          np.stack([x + bend, top], 1)], axis=1)
        polylines(img, ctx, lines, mix(ctx.dark, ctx.mid, 0.5), max(1, int(2 * ctx.s)))
        heads = p[:, 2] > 0.7
        dots(img, ctx, (x + bend)[heads], top[heads], 5 * ctx.s, ctx.accent)


class Crystals(Motif):
    """Clusters of shards growing out of the ground, in rows by distance (far ones smaller, hazier):
    each shard a tall point with a lit face and a shaded one, an edge catching the light, a soft
    shadow thrown to the right and a glow around the largest; the focal cluster on the focal point."""

    name, words, layer = "crystals", ("crystal", "shard", "gem", "ice", "cavern", "geometry", "prism", "facet"), 1

    def setup(self):
        self.p = self.rng.uniform(0, 1, (7, 5, 4)).astype(np.float32)   # clusters x shards x (lean, height, width, phase)
        self.c = self.rng.uniform(0, 1, (7, 2)).astype(np.float32)       # cluster x, distance

    def _clusters(self, ctx: Ctx) -> list[tuple[float, float, float]]:
        """(x, ground y, scale) per cluster, far to near; with a focal point the first is there and largest."""
        n = max(2, int(7 * ctx.amount))
        out = []
        for i, (u, dist) in enumerate(self.c[:n]):
            x = float(_wrap(u * 1.1 * ctx.w + ctx.cam * (0.3 + 0.7 * dist), -0.05 * ctx.w, 1.05 * ctx.w))
            scale = (0.45 + 0.6 * dist) * ctx.s
            ground = ctx.h * (ctx.horizon + 0.06 + 0.22 * dist)
            if i == 0 and ctx.focus is not None:
                x, scale, ground = ctx.place(0.5, 0.0)[0] + 0.8 * ctx.cam, 1.5 * ctx.s, ctx.h * (ctx.horizon + 0.2)
            out.append((x, ground, scale))
        return sorted(out, key=lambda c: c[1])

    def soft(self, soft, ctx):
        clusters = self._clusters(ctx)
        soft.shadows(np.asarray([[x + 60 * k, g + 6 * k, 90 * k, 14 * k] for x, g, k in clusters]), 0.8 * ctx.shadow, 8 * ctx.s)
        x, g, k = max(clusters, key=lambda c: c[2])
        soft.halo(x, g - 90 * k, 110 * k, mix(ctx.accent, ctx.glow, 0.5), 0.35 * ctx.glow_gain * (1 + 0.5 * ctx.beat))

    def draw(self, img, ctx):
        lit_faces, dark_faces, edges = [], [], []
        for ci, (x, ground, k) in enumerate(self._clusters(ctx)):
            for lean, hgt, wid, ph in self.p[ci]:
                h = (50 + 150 * hgt) * k * (1 + 0.15 * ctx.beat)
                w = (16 + 22 * wid) * k
                tilt = (lean - 0.5) * 1.1 + 0.05 * math.sin(ctx.t * 0.4 + ph * 6)
                bx = x + (lean - 0.5) * 70 * k
                tip = (bx + math.sin(tilt) * h, ground - math.cos(tilt) * h)
                ridge = (bx + math.sin(tilt) * 0.8 * h + 0.15 * w, ground - math.cos(tilt) * 0.8 * h)
                lit_faces.append(np.array([[bx - w, ground], [ridge[0] - 0.6 * w, ridge[1]], tip, ridge, [bx + 0.2 * w, ground]], dtype=np.float32))
                dark_faces.append(np.array([[bx + 0.2 * w, ground], ridge, tip, [ridge[0] + 0.6 * w, ridge[1]], [bx + w, ground]], dtype=np.float32))
                edges.append(np.array([[bx + 0.2 * w, ground], ridge, tip], dtype=np.float32))
        body = mix(ctx.mid, ctx.accent, 0.3)
        fill(img, ctx, lit_faces, mix(body, ctx.light, 0.45))
        fill(img, ctx, dark_faces, mix(body, ctx.dark, 0.45))
        polylines(img, ctx, edges, mix(ctx.light, ctx.glow, 0.4 + 0.6 * ctx.beat), max(1, int(2 * ctx.s)))


# --- front ----------------------------------------------------------------------------------------
class Rain(Motif):
    name, words, layer = "rain", ("rain", "rainy", "raining", "rainfall", "drizzle", "shower", "tears", "downpour", "wet"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (220, 2)).astype(np.float32)

    def draw(self, img, ctx):
        n = max(30, int(len(self.p) * ctx.amount))
        speed = (500 + 300 * ctx.energy) * ctx.s
        x = self.p[:n, 0] * ctx.w
        y = _wrap(self.p[:n, 1] * ctx.h + ctx.t * speed, -30, ctx.h + 30)
        slant = 0.25 + 0.2 * ctx.motion.dx
        ln = (18 + 14 * ctx.beat) * ctx.s
        lines = np.stack([np.stack([x, y], 1), np.stack([x - slant * ln, y - ln], 1)], axis=1)
        polylines(img, ctx, lines, mix(ctx.light, ctx.glow, ctx.beat), 1)


class Snow(Motif):
    name, words, layer = "snow", ("snow", "snowy", "snowfall", "winter", "frost", "blizzard", "flake", "snowflake"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (160, 3)).astype(np.float32)

    def draw(self, img, ctx):
        p = self.p[:max(20, int(160 * ctx.amount))]
        x = p[:, 0] * ctx.w + 20 * np.sin(ctx.t * 0.7 + p[:, 1] * 12) * ctx.s
        y = _wrap(p[:, 1] * ctx.h + ctx.t * (25 + 35 * p[:, 2]) * ctx.s, -5, ctx.h + 5)
        for big in (0, 1):
            sel = (p[:, 2] > 0.5) == bool(big)
            dots(img, ctx, x[sel], y[sel], (1.5 + 2.5 * big) * ctx.s * (1 + 0.5 * ctx.beat), ctx.glow)


class Petals(Motif):
    name, words, layer = "petals", ("petal", "blossom", "blossoming", "flower", "leaves", "leaf", "cherry", "autumn"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (60, 4)).astype(np.float32)

    def draw(self, img, ctx):
        import cv2
        for u, v, size, ph in self.p[:max(10, int(60 * ctx.amount))]:
            x = float(_wrap(u * ctx.w + ctx.t * 30 * ctx.s + 30 * math.sin(ctx.t + ph * 6) * ctx.s, -10, ctx.w + 10))
            y = float(_wrap(v * ctx.h + ctx.t * (20 + 20 * size) * ctx.s, -10, ctx.h + 10))
            ax = int((6 + 6 * size) * ctx.s * ctx.zoom * ONE)
            cv2.ellipse(img, _pt(ctx, x, y), (ax, max(ONE, ax // 2)), (ctx.t * 90 + ph * 360) % 360, 0, 360,
                        mix(ctx.accent, ctx.glow, 0.3 + 0.5 * ctx.beat), -1, cv2.LINE_AA, SHIFT)


class Sparks(Motif):
    name, words, layer = "sparks", ("spark", "sparkling", "sparkler", "swarm", "particle", "ember", "dust", "confetti", "fountain"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (180, 3)).astype(np.float32)

    def draw(self, img, ctx):
        m = ctx.motion
        n = max(20, int(len(self.p) * ctx.amount))
        p = self.p[:n]
        vx = (m.dx if m.dx else 0.3) * 60 * ctx.s
        vy = (m.dy if m.dy else -0.6) * 60 * ctx.s
        x = _wrap(p[:, 0] * ctx.w + ctx.t * vx * (0.5 + p[:, 2]), 0, ctx.w)
        y = _wrap(p[:, 1] * ctx.h + ctx.t * vy * (0.5 + p[:, 2]), 0, ctx.h)
        if m.jitter:
            x = x + m.jitter * 6 * ctx.s * np.sin(ctx.t * 23 + p[:, 2] * 50)
        cx, cy = ctx.w / 2, ctx.h / 2
        x = cx + (x - cx) * (1 + 0.25 * ctx.beat)
        y = cy + (y - cy) * (1 + 0.25 * ctx.beat)
        colour = mix(ctx.accent, ctx.glow, 0.4 + 0.6 * ctx.beat)
        r = (1.5 + 2.5 * ctx.beat) * ctx.s
        for big in (0, 1):
            sel = (p[:, 2] > 0.5) == bool(big)
            dots(img, ctx, x[sel], y[sel], r * (0.8 + 0.8 * big), colour)


class Ribbons(Motif):
    """Ribbons of light as aurora curtains: each a bright edge along a slow wave, with a veil of
    vertical noise streaks hanging above it and fading upward (soft), and a thin sharp core."""

    name, words, layer = "ribbons", ("ribbon", "aurora", "silk", "stream", "thread"), 0

    def setup(self):
        self.noise = Noise(self.rng, octaves=3)

    def _curve(self, ctx: Ctx, xs: np.ndarray, i: int) -> np.ndarray:
        # Curtains hang in the sky, above the ridges and roofs of the land layer.
        amp = ctx.h * (0.05 + 0.02 * i) * (1 + 0.4 * ctx.beat)
        return ctx.h * ctx.horizon * (0.3 + 0.14 * i) + amp * np.sin(xs / ctx.w * (1.6 + 0.5 * i) * math.pi + ctx.t * (0.3 + 0.12 * i) + 2.1 * i)

    def soft(self, soft, ctx):
        cols = slice(0, soft.w)
        xs = soft.xs(cols)
        n = max(1, int(round(3 * min(1.0, ctx.amount + 0.1))))
        rows = soft.rows(0, ctx.h * ctx.horizon)
        y = soft.ys(rows)[:, None]
        streaks = self.noise.fbm(soft.w, rows.stop - rows.start, 9.0, dx=0.02 * ctx.t, dy=0.1 * ctx.t, stretch_y=0.08)
        veil = smoothstep(0.35, 0.75, streaks)
        for i in range(n):
            edge = self._curve(ctx, xs, i)[None, :]
            above = (edge - y) / (ctx.h * (0.16 + 0.04 * i))
            curtain = np.where(above >= 0, np.exp(-above * 2.2), np.exp(-(above * 14.0) ** 2))
            alpha = curtain * (0.35 + 0.65 * veil) * (0.65 - 0.12 * i) * min(1.0, ctx.amount * 1.3)
            soft.screen(rows, cols, mix(ctx.accent, ctx.glow, 0.25 * i + 0.3 * ctx.beat), alpha.astype(np.float32))

    def draw(self, img, ctx):
        xs = np.linspace(-10, ctx.w + 10, 90, dtype=np.float32)
        n = max(1, int(round(3 * min(1.0, ctx.amount + 0.1))))
        lines = [np.stack([xs, self._curve(ctx, xs, i)], 1) for i in range(n)]
        polylines(img, ctx, lines, mix(ctx.glow, (255, 255, 255), 0.3 + 0.4 * ctx.beat), max(1, int(1.5 * ctx.s)))


class Smoke(Motif):
    """Plumes rising from the ground: fBm noise scrolling upward, masked by columns that widen and
    bend as they rise and thin out at the top. Soft only."""

    name, words, layer = "smoke", ("smoke", "vapour", "steam", "haze", "incense", "fumes", "fog"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (7, 2)).astype(np.float32)
        self.noise = Noise(self.rng, octaves=3)

    def soft(self, soft, ctx):
        rows, cols = soft.rows(0.1 * ctx.h, ctx.h), slice(0, soft.w)
        h = rows.stop - rows.start
        if h < 4:
            return
        # The plume mask is smooth: computed at half the canvas size and upscaled.
        import cv2
        hw, hh = max(2, soft.w // 2), max(2, h // 2)
        x = np.linspace(0.0, ctx.w, hw, dtype=np.float32)[None, :]
        rise = np.linspace((ctx.h - soft.ys(rows)[0]) / ctx.h, (ctx.h - soft.ys(rows)[-1]) / ctx.h, hh,
                           dtype=np.float32)[:, None]   # 0 at the bottom, 1 near the top
        mask = np.zeros((hh, hw), dtype=np.float32)
        for u, ph in self.p[:max(2, int(5 * ctx.amount))]:
            cx = u * ctx.w + 0.7 * ctx.cam + (50 * rise + 15) * np.sin(rise * 5 - ctx.t * 0.7 + ph * 6) * ctx.s
            width = (25 + 170 * rise) * ctx.s
            np.maximum(mask, np.exp(-((x - cx) / width) ** 2), out=mask)
        mask *= smoothstep(1.0, 0.45, rise) * 0.8 * min(1.0, 1.4 * ctx.amount)
        mask = cv2.resize(mask, (soft.w, h), interpolation=cv2.INTER_LINEAR)
        d = self.noise.fbm(soft.w, h, 4.0, dx=0.15 * math.sin(ctx.t * 0.1), dy=ctx.t * 0.35, stretch_y=0.7)
        alpha = mask * smoothstep(0.3, 0.72, d)
        soft.over(rows, cols, mix(ctx.mid, ctx.light, 0.55 + 0.2 * ctx.beat), alpha.astype(np.float32))

    def draw(self, img, ctx):
        pass


class Fire(Motif):
    """A fire on the ground: flames from fBm noise scrolling upward through a tapering mask, coloured
    from ember red through the accent to a white-hot core, with a glow on the air around it; sharp
    logs and rising embers on top."""

    name, words, layer = "fire", ("fire", "flame", "bonfire", "campfire", "blaze", "burning", "inferno", "hearth", "torch"), 1

    def setup(self):
        self.noise = Noise(self.rng)
        self.embers = self.rng.uniform(0, 1, (40, 3)).astype(np.float32)

    def _where(self, ctx: Ctx) -> tuple[float, float, float]:
        x = ctx.place(0.5, 0.0)[0] + (0.0 if ctx.focus is not None else 0.8 * ctx.cam)
        base = ctx.h * min(0.95, ctx.horizon + 0.16)
        return x, base, 150 * ctx.s * (0.45 + 0.55 * ctx.amount) * (1 + 0.15 * ctx.beat)

    def soft(self, soft, ctx):
        x, base, size = self._where(ctx)
        soft.halo(x, base - 0.5 * size, 1.4 * size, mix(ctx.accent, (255, 140, 50), 0.5), 0.55 * ctx.glow_gain)
        rows, cols = soft.rows(base - 2.3 * size, base + 0.05 * size), soft.cols(x - 0.8 * size, x + 0.8 * size)
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if h < 3 or w < 3:
            return
        u = ((soft.xs(cols) - x) / (0.6 * size))[None, :]
        v = np.clip((base - soft.ys(rows)) / (2.2 * size), 0.0, 1.0)[:, None]   # 0 at the base, 1 at the tips
        d = self.noise.fbm(w, h, 5.0 * w / max(1.0, 1.6 * size * soft.k), dy=ctx.t * 1.6, stretch_y=0.55)
        # Tongues: the noise, in full contrast, eats the tapering body more the higher it climbs.
        taper = np.clip(1.0 - np.abs(u) / (0.1 + 0.95 * (1.0 - v) ** 0.7), 0.0, 1.0)
        heat = np.clip(taper * 1.4 - 0.75 * v + (d - 0.5) * (0.6 + 2.4 * v), 0.0, 1.0)
        ember = np.asarray(mix(ctx.dark, (200, 40, 20), 0.7), dtype=np.float32)
        hot = np.asarray(mix(ctx.accent, (255, 150, 40), 0.6), dtype=np.float32)
        core = np.asarray(mix(ctx.glow, (255, 245, 210), 0.6), dtype=np.float32)
        k = heat[..., None]
        colour = np.where(k < 0.5, ember + (hot - ember) * (k * 2.0), hot + (core - hot) * (k * 2.0 - 1.0))
        soft.over(rows, cols, colour, smoothstep(0.03, 0.3, heat).astype(np.float32))

    def draw(self, img, ctx):
        x, base, size = self._where(ctx)
        logs = [np.array([[x - 0.7 * size, base + 0.02 * size], [x + 0.6 * size, base - 0.12 * size]], dtype=np.float32),
                np.array([[x + 0.7 * size, base + 0.03 * size], [x - 0.55 * size, base - 0.1 * size]], dtype=np.float32)]
        polylines(img, ctx, logs, mix(ctx.dark, (0, 0, 0), 0.4), max(2, int(0.12 * size)))
        e = self.embers[:max(8, int(40 * ctx.amount))]
        age = (ctx.t * (0.25 + 0.3 * e[:, 2]) + e[:, 1]) % 1.0
        ex = x + (e[:, 0] - 0.5) * size * (0.8 + 1.2 * age) + 20 * np.sin(ctx.t * 2 + e[:, 2] * 9) * ctx.s * age
        ey = base - 0.3 * size - age * 3.0 * size
        dots(img, ctx, ex, ey, (1.2 + ctx.beat) * ctx.s, mix(ctx.glow, (255, 200, 120), 0.5))


class Orbs(Motif):
    name, words, layer = "orbs", ("orb", "bubble", "carousel", "sphere", "bokeh", "planet", "lights"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 6.28, (9, 4)).astype(np.float32)

    def draw(self, img, ctx):
        for i, (a, b, c, d) in enumerate(self.p[:max(3, int(9 * ctx.amount))]):
            x = ctx.w * (0.5 + 0.4 * math.sin(0.31 * ctx.t * (1 + i * 0.1) + a))
            y = ctx.h * (0.5 + 0.35 * math.sin(0.23 * ctx.t * (1 + i * 0.13) + b))
            r = (24 + 22 * math.sin(c)) * ctx.s * (1 + 0.4 * ctx.beat)
            circle(img, ctx, x, y, r, mix(ctx.mid, ctx.accent, 0.6), -1)
            circle(img, ctx, x, y, r, ctx.glow, max(1, int(2 * ctx.s)))
            circle(img, ctx, x - 0.3 * r, y - 0.3 * r, 0.25 * r, ctx.glow)


class Fish(Motif):
    name, words, layer = "fish", ("fish", "reef", "coral", "shoal", "underwater", "koi"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (14, 3)).astype(np.float32)

    def draw(self, img, ctx):
        import cv2
        for u, v, size in self.p[:max(3, int(14 * ctx.amount))]:
            s = (0.7 + 0.8 * size) * ctx.s
            x = float(_wrap(u * ctx.w + ctx.t * (40 + 30 * size) * ctx.s, -40, ctx.w + 40))
            y = ctx.h * (0.3 + 0.6 * v) + 10 * math.sin(ctx.t * 2 + u * 9) * s
            wag = math.sin(ctx.t * 9 + v * 20) * 6 * s * (1 + ctx.beat)
            col = mix(ctx.accent, ctx.glow, 0.3 * ctx.beat)
            cv2.ellipse(img, _pt(ctx, x, y), (int(20 * s * ONE), int(8 * s * ONE)), 0, 0, 360, col, -1, cv2.LINE_AA, SHIFT)
            fill(img, ctx, [np.array([[x - 16 * s, y], [x - 32 * s, y - 9 * s + wag], [x - 32 * s, y + 9 * s + wag]])], col)


class Rings(Motif):
    name, words, layer = "rings", ("ring", "ripple", "radial", "circular", "pulse", "echo", "halo", "centre"), 2

    def draw(self, img, ctx):
        cx, cy = ctx.place(0.5, 0.5)
        for i in range(6):
            age = (ctx.t * 0.35 + i / 6) % 1.0
            r = (20 + age * 0.6 * ctx.w) * (1 + 0.15 * ctx.beat)
            k = 1.0 - age
            circle(img, ctx, cx, cy, r, mix(ctx.dark, mix(ctx.light, ctx.glow, ctx.beat), k),
                   max(1, int((2 + 6 * k * ctx.amount) * ctx.s)))


class Spiral(Motif):
    name, words, layer = "spiral", ("spiral", "spiralling", "vortex", "whirl", "whirling", "swirl", "swirling", "galaxy", "whirlpool"), 2

    def _where(self, ctx: Ctx) -> tuple[float, float, float, float]:
        """Centre, radius and vertical squash: over the sea a whirlpool lies flat on the water,
        in perspective, below the focal point; elsewhere a spiral stands in the sky."""
        cx, cy = ctx.place(0.5, 0.5)
        r = ctx.h * 0.45 * (1 + 0.12 * ctx.beat) * (0.3 + 0.7 * ctx.amount)
        if ctx.water:
            horizon = ctx.h * ctx.horizon
            cy = horizon + 0.45 * (ctx.h - horizon)
            return cx + 0.5 * ctx.cam, cy, 1.5 * r, min(0.28, 0.9 * (cy - horizon) / (1.5 * r))
        return cx, cy, r, 1.0

    def soft(self, soft, ctx):
        if ctx.water:   # the funnel: a dark hollow in the water, deepest at the centre
            cx, cy, r, squash = self._where(ctx)
            soft.shadows(np.asarray([[cx, cy, 0.35 * r, 0.35 * r * squash], [cx, cy, 0.12 * r, 0.12 * r * squash]]),
                         0.5 * min(1.0, 1.5 * ctx.amount), 0.12 * r)

    def draw(self, img, ctx):
        arms = []
        th = np.linspace(0, 4 * math.pi, 160, dtype=np.float32)
        cx, cy, rr, squash = self._where(ctx)
        for arm in range(3):
            a = th + ctx.t * 0.6 * (1 + ctx.motion.swirl) + arm * 2.094
            r = th / (4 * math.pi) * rr
            arms.append(np.stack([cx + r * np.cos(a), cy + r * np.sin(a) * squash], 1))
        colour = mix(ctx.accent, ctx.glow, ctx.beat)
        if ctx.water:   # foam: thick and bright at the rim, thin toward the eye
            arms = [a_[i:i + 60] for a_ in arms for i in (0, 50, 100)]
            for j, k in enumerate((0.4, 0.7, 1.0)):
                polylines(img, ctx, arms[j::3], mix(mix(ctx.mid, ctx.light, 0.5), colour, 0.5 * k), max(1, int((1 + 3 * k) * ctx.s)))
            return
        polylines(img, ctx, arms, colour, max(2, int(4 * ctx.s)))


class Grid(Motif):
    name, words, layer = "grid", ("grid", "pattern", "rows", "lattice", "rhythmic", "tile", "crowded", "mosaic", "digital"), 2

    def draw(self, img, ctx):
        lines = []
        horizon = ctx.h * ctx.horizon * 0.8
        for i in range(-12, 13):   # a floor in perspective running towards the viewer
            lines.append(np.array([[ctx.w / 2 + i * 8 * ctx.s, horizon], [ctx.w / 2 + i * 140 * ctx.s, ctx.h + 10]]))
        for k in range(10):
            d = ((k + ctx.t * 1.2) % 10) / 10.0
            y = horizon + (ctx.h - horizon) * d * d
            lines.append(np.array([[-10, y], [ctx.w + 10, y]]))
        polylines(img, ctx, lines, mix(ctx.accent, ctx.glow, ctx.beat), max(1, int(2 * ctx.s)))


def _sign_shapes() -> list[list[np.ndarray]]:
    """Neon tube pictograms in unit coordinates (-1..1): a framed bar, an arrow, a ring with a dot,
    a wave, an equaliser, a diamond. Shapes, not letters: a sign reads as a sign in any language."""
    a = np.linspace(0, 2 * math.pi, 25, dtype=np.float32)
    ring = np.stack([np.cos(a), np.sin(a)], 1) * 0.8
    wx = np.linspace(-1, 1, 17, dtype=np.float32)
    frame = np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]], dtype=np.float32)
    return [
        [np.vstack([frame, frame[:1]]), np.array([[-0.6, 0], [0.6, 0]], dtype=np.float32)],
        [np.array([[-0.9, 0], [0.7, 0]], dtype=np.float32), np.array([[0.2, -0.5], [0.8, 0], [0.2, 0.5]], dtype=np.float32)],
        [ring, ring[:2] * 0.08],
        [np.stack([wx, 0.45 * np.sin(wx * 6.0)], 1)],
        [np.array([[x, 0.8], [x, 0.8 - h]], dtype=np.float32) for x, h in ((-0.6, 0.9), (-0.2, 1.5), (0.2, 1.1), (0.6, 1.6))],
        [np.array([[0, -0.9], [0.7, 0], [0, 0.9], [-0.7, 0], [0, -0.9]], dtype=np.float32)],
    ]


class Glyphs(Motif):
    """Neon signs: glowing tube pictograms over the street, a few flickering, brighter on the beat."""

    name, words, layer = "glyphs", ("sign", "letter", "word", "text", "neon", "code", "poem", "glyph", "graffiti"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (16, 4)).astype(np.float32)
        self.shapes = _sign_shapes()

    def draw(self, img, ctx):
        halo = {0: [], 1: []}   # two colour groups, one halo and one core call each
        core = {0: [], 1: []}
        for u, v, size, ph in self.p[:max(3, int(16 * ctx.amount))]:
            # a few tubes stutter: dark for a moment every few seconds, each at its own time
            if ph > 0.7 and (ph * 97 + ctx.t * (0.6 + ph)) % 1.0 < 0.12 + 0.2 * ctx.beat * (ph > 0.9):
                continue
            x, y = u * ctx.w, ctx.h * (0.25 + 0.5 * v)
            r = (18 + 30 * size) * ctx.s
            group = int(ph * 10) % 2
            for line in self.shapes[int(ph * 60) % len(self.shapes)]:
                pts = np.asarray(line) * r + np.asarray([x, y], dtype=np.float32)
                halo[group].append(pts)
                core[group].append(pts)
        for group, colour in ((0, ctx.accent), (1, mix(ctx.light, ctx.accent, 0.3))):
            polylines(img, ctx, halo[group], mix(ctx.mid, colour, 0.55), max(3, int(7 * ctx.s)))
            polylines(img, ctx, core[group], mix(colour, ctx.glow, 0.35 + 0.5 * ctx.beat), max(1, int(2 * ctx.s)))


class Kites(Motif):
    name, words, layer = "kites", ("kite", "flag", "banner", "pennant"), 0

    def setup(self):
        self.p = self.rng.uniform(0, 1, (5, 3)).astype(np.float32)

    def draw(self, img, ctx):
        polys, strings = [], []
        for u, v, ph in self.p[:max(2, int(5 * ctx.amount))]:
            x = ctx.w * (0.15 + 0.7 * u) + 30 * math.sin(ctx.t * 0.8 + ph * 6) * ctx.s
            y = ctx.h * (0.12 + 0.3 * v) + 20 * math.cos(ctx.t * 0.6 + ph * 6) * ctx.s
            s = 30 * ctx.s * (1 + 0.2 * ctx.beat)
            polys.append(np.array([[x, y - s], [x + 0.7 * s, y], [x, y + 1.4 * s], [x - 0.7 * s, y]]))
            tail = np.stack([x + 15 * ctx.s * np.sin(np.linspace(0, 6, 12) + ctx.t * 3),
                             np.linspace(y + 1.4 * s, y + 5 * s, 12)], 1)
            strings.append(tail)
        fill(img, ctx, polys, ctx.accent)
        polylines(img, ctx, strings, ctx.light, 1)


class Crowd(Motif):
    """People seen from behind along the bottom edge, two rows (the far one smaller and hazier):
    heads and shoulders, a few arms raised, bobbing on the beat, their heads rimmed by the light
    of what they watch."""

    name, words, layer = "crowd", ("crowd", "dancer", "audience", "parade", "procession", "reveller", "spectator", "onlooker"), 2

    def setup(self):
        self.p = self.rng.uniform(0, 1, (46, 4)).astype(np.float32)
        a = np.linspace(0, 2 * math.pi, 11, dtype=np.float32)[:-1]
        self.head = np.stack([np.cos(a), np.sin(a)], 1)
        b = np.linspace(math.pi, 2 * math.pi, 9, dtype=np.float32)
        self.shoulders = np.concatenate([np.stack([np.cos(b), 0.55 * np.sin(b)], 1), [[1.0, 3.0], [-1.0, 3.0]]])

    def draw(self, img, ctx):
        n = max(12, int(len(self.p) * min(1.0, 0.4 + ctx.amount)))
        p = self.p[:n]
        far = p[:, 3] < 0.45
        scale = np.where(far, 0.6, 1.0) * (0.85 + 0.3 * p[:, 1]) * ctx.s
        x = _wrap(p[:, 0] * 1.1 * ctx.w + ctx.cam * np.where(far, 0.9, 1.2), -0.05 * ctx.w, 1.05 * ctx.w)
        bob = (4 * np.sin(ctx.t * 2.0 + p[:, 2] * 20) + 10 * ctx.beat * (p[:, 2] > 0.5)) * scale
        base = ctx.h - np.where(far, 62, 28) * ctx.s - bob
        head_r = 13 * scale
        heads = self.head[None] * head_r[:, None, None] + np.stack([x, base - 30 * scale], 1)[:, None, :]
        bodies = self.shoulders[None] * (34 * scale)[:, None, None] + np.stack([x, base + 4 * scale], 1)[:, None, :]
        up = p[:, 2] > 0.78   # arms raised, waving
        wave = 10 * np.sin(ctx.t * 3.0 + p[:, 1] * 9) * scale
        arms = np.stack([np.stack([x + 22 * scale, base - 10 * scale], 1), np.stack([x + 34 * scale + wave, base - 62 * scale], 1)], 1)[up]
        for sel, colour in ((far, mix(ctx.dark, ctx.mid, 0.35)), (~far, ctx.dark)):
            fill(img, ctx, bodies[sel], colour)
            fill(img, ctx, heads[sel], colour)
            if (sel & up).any():
                polylines(img, ctx, arms[sel[up]], colour, max(2, int(7 * ctx.s)))
        rim = heads[:, 5:10] + np.asarray([0.0, -1.0], dtype=np.float32) * ctx.s   # the upper arc of each head
        polylines(img, ctx, rim[~far], mix(ctx.dark, mix(ctx.accent, ctx.glow, 0.3 + 0.5 * ctx.beat), 0.6), 1)


class Fairground(Motif):
    """A big wheel turning over tents strung with lights: its rim, spokes and gondolas sharp, lamps
    along the rim chasing round, a glow behind the hub and soft shadows under the tents."""

    name, words, layer = "fairground", ("fairground", "fair", "funfair", "carnival", "ferris", "amusement", "big wheel"), 1

    def setup(self):
        self.tents = self.rng.uniform(0, 1, (5, 3)).astype(np.float32)

    def _where(self, ctx: Ctx) -> tuple[float, float, float, float]:
        ground = ctx.h * min(0.95, ctx.horizon + 0.14)
        x = ctx.place(0.33, 0.4)[0] + 0.5 * ctx.cam
        r = ctx.h * 0.24 * (0.5 + 0.5 * ctx.amount)
        return x, ground - r - 0.09 * ctx.h, r, ground

    def _tent_feet(self, ctx: Ctx, ground: float) -> np.ndarray:
        u, size, _ = self.tents.T
        return np.stack([_wrap(u * 1.1 * ctx.w + 0.5 * ctx.cam, -0.05 * ctx.w, 1.05 * ctx.w), (60 + 50 * size) * ctx.s], 1)

    def soft(self, soft, ctx):
        x, y, r, ground = self._where(ctx)
        soft.halo(x, y, 1.3 * r, mix(ctx.accent, ctx.glow, 0.4), 0.45 * ctx.glow_gain * min(1.0, 1.5 * ctx.amount))
        feet = self._tent_feet(ctx, ground)
        soft.shadows(np.stack([feet[:, 0] + 0.4 * feet[:, 1], np.full(len(feet), ground + 4 * ctx.s),
                               1.3 * feet[:, 1], np.full(len(feet), 9 * ctx.s)], 1), 0.8 * ctx.shadow, 8 * ctx.s)

    def draw(self, img, ctx):
        x, y, r, ground = self._where(ctx)
        frame_c = mix(ctx.dark, ctx.mid, 0.25)
        turn = ctx.t * 0.15
        k = np.arange(16, dtype=np.float32)
        a = k / 16 * 2 * math.pi + turn
        rim = np.stack([x + r * np.cos(a), y + r * np.sin(a)], 1)
        legs = [np.array([[x, y], [x - 0.55 * r, ground]]), np.array([[x, y], [x + 0.55 * r, ground]])]
        polylines(img, ctx, legs, frame_c, max(2, int(6 * ctx.s)))
        polylines(img, ctx, [np.array([[x, y], p]) for p in rim], frame_c, max(1, int(2 * ctx.s)))
        circle(img, ctx, x, y, r, frame_c, max(2, int(5 * ctx.s)))
        circle(img, ctx, x, y, 0.93 * r, frame_c, max(1, int(2 * ctx.s)))
        circle(img, ctx, x, y, 0.1 * r, frame_c)
        g = 0.07 * r   # gondolas hang below the rim, level whatever the wheel's turn
        cars = np.stack([rim + [-g, 0.2 * g], rim + [g, 0.2 * g], rim + [0.8 * g, 1.6 * g], rim + [-0.8 * g, 1.6 * g]], 1)
        fill(img, ctx, cars, mix(ctx.dark, ctx.accent, 0.35))
        # Lamps on the rim, a wave of light chasing round, brighter on the beat.
        b = np.arange(48, dtype=np.float32) / 48 * 2 * math.pi + turn
        on = np.cos(b * 3 - ctx.t * 2.5) > 0.2 - 0.5 * ctx.beat
        dots(img, ctx, (x + r * np.cos(b))[on], (y + r * np.sin(b))[on], 2.6 * ctx.s, mix(ctx.accent, ctx.glow, 0.6))
        dots(img, ctx, (x + r * np.cos(b))[~on], (y + r * np.sin(b))[~on], 1.6 * ctx.s, mix(ctx.accent, ctx.mid, 0.4))
        # Tents, striped roofs in two tones, strung together with lights.
        feet = self._tent_feet(ctx, ground)
        bodies, roofs, stripes, strings = [], [], [], []
        for fx, w in feet:
            bodies.append(np.array([[fx - 0.5 * w, ground], [fx - 0.5 * w, ground - 0.45 * w], [fx + 0.5 * w, ground - 0.45 * w],
                                    [fx + 0.5 * w, ground]], dtype=np.float32))
            roofs.append(np.array([[fx - 0.62 * w, ground - 0.42 * w], [fx, ground - 1.05 * w], [fx + 0.62 * w, ground - 0.42 * w]], dtype=np.float32))
            stripes += [np.array([[fx, ground - 1.05 * w], [fx + c * 0.62 * w, ground - 0.42 * w]], dtype=np.float32) for c in (-0.5, 0.0, 0.5)]
        order = np.argsort(feet[:, 0])
        for i, j in zip(order[:-1], order[1:]):
            (xa, wa), (xb, wb) = feet[i], feet[j]
            s_ = np.linspace(0.0, 1.0, 9, dtype=np.float32)
            strings.append(np.stack([xa + (xb - xa) * s_, ground - 1.0 * wa + (wa - wb) * s_ * 0 + 30 * ctx.s * np.sin(s_ * math.pi)], 1))
        fill(img, ctx, bodies, mix(ctx.dark, ctx.mid, 0.2))
        fill(img, ctx, roofs, mix(ctx.mid, ctx.accent, 0.45))
        polylines(img, ctx, stripes, mix(ctx.light, ctx.glow, 0.3), max(2, int(5 * ctx.s)))
        if strings:
            polylines(img, ctx, strings, frame_c, 1)
            bulbs = np.concatenate(strings)
            dots(img, ctx, bulbs[:, 0], bulbs[:, 1], 2.2 * ctx.s, mix(ctx.accent, ctx.glow, 0.5 + 0.5 * ctx.beat))


MOTIFS: tuple[type[Motif], ...] = (
    Stars, Moon, Sun, Clouds, Birds, Lightning, Fireworks, Lanterns, Kites,
    Mountains, Waves, Forest, City, Tower, Boats, Grass, Crystals,
    Rain, Snow, Petals, Sparks, Ribbons, Smoke, Orbs, Fish, Rings, Spiral, Grid, Glyphs, Fire, Crowd, Fairground,
)
MOTIF_NAMES: tuple[str, ...] = tuple(m.name for m in MOTIFS)
BY_NAME = {m.name: m for m in MOTIFS}

SHAPE_MOTIFS = {"waves": ("waves",), "mountains": ("mountains",), "orbs": ("orbs",), "stars": ("stars", "moon"),
                "forest": ("forest",), "city": ("city",), "clouds": ("clouds",), "particles": ("sparks",),
                "ribbons": ("ribbons",), "crystals": ("crystals",)}
"""What the caption's `shapes` hint (the scene facet's drawing) calls up when its words name nothing."""


def _forms(word: str) -> list[str]:
    """A word and its plural (the last word of a phrase): "tree" -> trees, "firefly" -> fireflies, "leaf" -> leaves."""
    forms = [word, word + "s", word + "es"]
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        forms.append(word[:-1] + "ies")
    if word.endswith("f"):
        forms.append(word[:-1] + "ves")
    return forms


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(motif: type[Motif]) -> re.Pattern[str]:
    """Whole words only: "light" is not "lightning", "towering" is not a tower, and a word that
    opens a compound ("bird's-eye") is not the thing."""
    pattern = _PATTERNS.get(motif.name)
    if pattern is None:
        forms = sorted({f for w in motif.words for f in _forms(w)}, key=len, reverse=True)
        pattern = _PATTERNS[motif.name] = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in forms) + r")\b(?!['’]s-)")
    return pattern


def motifs_named_in(text: str) -> list[str]:
    """Motif names whose words (whole words, or their plurals) occur in `text`, in the order they first occur."""
    low = text.lower()
    found: list[tuple[int, str]] = []
    for motif in MOTIFS:
        hit = _pattern(motif).search(low)
        if hit:
            found.append((hit.start(), motif.name))
    return [name for _, name in sorted(found)]


def choose_motifs(text: str, shapes: str | None = None, fallback: tuple[str, ...] = (), limit: int = 4) -> tuple[str, ...]:
    """The motif set for a caption: named motifs first, then the shapes hint's, then the scene's own."""
    chosen: list[str] = []
    for name in motifs_named_in(text) + list(SHAPE_MOTIFS.get(shapes or "", ())) + list(fallback):
        if name in BY_NAME and name not in chosen:
            chosen.append(name)
        if len(chosen) >= limit:
            break
    return tuple(sorted(chosen, key=lambda n: BY_NAME[n].layer))
