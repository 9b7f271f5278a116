"""The procedural renderer: a smooth colour field, caption motifs drawn sharp at the output resolution,
and accents locked to the beat and the onsets.

Always available, the embedded default's visuals, and the init picture of every img2img diffusion
frame. Owned by the renderer thread (one instance, one thread).

Per frame: the field is computed on a small grid and coloured through the graded palette; the soft
layers (haze, noise-textured clouds, water, smoke and flame, halos) are painted on a canvas twice
that size, which is upscaled (it is smooth, nothing is lost); the caption's motifs are drawn on top
with anti-aliased OpenCV primitives at the output size, in rows by distance that move against each
other as the camera sways; then the accents (flash, scale pulse, shake, burst ring, palette
kick) land on the frame the beat falls on.

Colour carries the music's valence-arousal: the grade (brightness, saturation, contrast) is applied
to the palette, so field and motifs share it, and every few frames the renderer measures its own
output with the colour head (models.seeing.va, Valdez & Mehrabian 1994) and corrects the grade.
"""
from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Callable

import numpy as np

from installation.errors import UserError
from installation.records import Caption, MusicState
from models.procedural import composition
from models.procedural.accents import AccentTracker
from models.procedural.atmosphere import SOFT_SCALE, Soft, horizon_haze
from models.procedural.cast import Job, MotifCast
from models.procedural.composition import FULL_STRENGTH, TEXTURE_DIM
from models.procedural.fields import Field, Look, look_from_caption, palette_from_va, palette_lut
from models.procedural.grade import Grade, turn_hue
from models.procedural.looks import LookBlend
from models.procedural.motifs import BY_NAME, MOTIF_NAMES, SHAPE_MOTIFS, Ctx, choose_motifs, mix, motion_from_text, \
    motifs_named_in
from models.procedural.scene import SceneLook, read_scene

log = logging.getLogger(__name__)

MEASURE_EVERY_FRAMES = 4
HIT_DECAY_S = 0.08
"""Decay of the hit accumulator that flash, scale pulse, shake and palette kick follow."""
JUMP_S = 0.35
"""Seconds of animation a full-strength hit jumps ahead (accent `jump`): motion surges on the beat."""
KICK_HUE = 0.7
"""Radians a full-strength hit turns the palette's hues (accent `kick`)."""
HUE_RELAX_S = 1.5
CAMERA_PAN = 0.03
"""How far the camera sways sideways, as a fraction of the width at the nearest depth: the layers
move against each other by their distance (parallax)."""
HORIZONS = {"horizon": 0.68, "centre": 0.62, "diagonal": 0.6, "radial": 0.62, "scattered": 0.7, "grid": 0.66}


class ProceduralRenderer:
    """Scene-driven CPU visuals; `render` returns (height, width, 3) uint8 RGB. Satisfies models.renderer.Renderer."""

    name = "procedural"

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        import cv2  # noqa: F401  (fail here, not in the first frame, when opencv is missing)

        if width < 8 or height < 8:
            raise UserError(f"render size {width}x{height} is too small; set render.width and render.height to 64 or more.")
        self.width, self.height = int(width), int(height)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._field = Field(self.width, self.height, self._rng)
        self._motifs: dict[str, Any] = {}
        self._accents = AccentTracker()
        self.scene = SceneLook()
        """The scene's settings (models.procedural.scene); the defaults until `prepare`."""
        self.looks = LookBlend(Look(palette=palette_from_va(0.0, 0.0)))
        self.cast = MotifCast(self.scene.motifs, composition.plan(self.scene.motifs, self.scene.rules, "horizon"))
        self.grade = Grade()
        self._motion = motion_from_text("")
        self._phase = 0.0
        self._hit = 0.0
        self._hue = 0.0
        self._last_t_s: float | None = None
        self._va_smooth = (0.0, 0.0)
        self._frames = 0
        self.drawn: tuple[str, ...] = ()
        """Names of the motifs drawn in the last frame."""
        self.last_accent: float = 0.0
        """The accent level (0..~2) of the last frame."""
        self.composition: dict[str, Any] = {"full_strength": 0, "focal": None, "support": None, "texture": []}
        """The last frame's composition: motif families at full strength (at most 2), and who plays which part."""

    @property
    def last_measured_va(self) -> tuple[float, float]:
        """Colour-head VA of a recent frame, as the renderer measured it for its own grading."""
        return self.grade.last_measured_va

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: palette rules, motif set, motion, accents and the diffusion keys (validated)."""
        target = self.looks.target
        self.scene = look = read_scene(scene, target.layout, target.shapes)
        layout = look.layout or target.layout
        self.looks.hold(Look(palette=target.palette, motion_speed=target.motion_speed, turbulence=target.turbulence,
                             layout=layout, shapes=look.shapes or target.shapes))
        names = tuple(sorted(look.motifs[:4], key=lambda n: BY_NAME[n].layer))
        self.cast.set(names, composition.plan(composition.rank((), names, look.rules), look.rules, layout))

    def update_prompt(self, caption: Caption) -> None:
        """Blend to the caption's look over caption.transition_s; its motifs grow in within MOTIF_FADE_S."""
        target = look_from_caption(caption, previous=self.looks.target)
        transition_s = max(0.0, float(caption.transition_s)) if math.isfinite(caption.transition_s) else 0.0
        self.looks.aim(target, transition_s, self._last_t_s if self._last_t_s is not None else 0.0)
        facets = caption.facets or {}
        motion_text = str(facets.get("motion", "")) if caption.source != "operator" else caption.prompt
        self._motion = motion_from_text(motion_text, target.motion_speed, target.turbulence)
        names = self.motifs_for(caption)
        words = caption.prompt if caption.source == "operator" or not facets else \
            " ".join(str(facets.get(k, "")) for k in ("scene", "composition"))
        lead = (*motifs_named_in(words), *SHAPE_MOTIFS.get(str((caption.hints or {}).get("shapes", "")), ()))
        rules = self.scene.rules
        ranked = composition.rank(lead, names, rules)
        self.cast.set(names, composition.plan(ranked, rules, target.layout, key=words))

    def motifs_for(self, caption: Caption) -> tuple[str, ...]:
        """The motif set a caption calls up, with the scene's own first motifs kept so the scene stays
        recognisable. An operator's prompt is read on its own words (its facets are the look it
        replaced) and gets three motifs; an agents' caption gets two, from its scene and composition
        facets, then its shapes hint."""
        facets = caption.facets or {}
        if caption.source == "operator":
            named = motifs_named_in(caption.prompt)
            if not named:   # nothing drawable named: still a visible change, chosen by the words
                digest = hashlib.sha1(caption.prompt.encode("utf-8")).digest()
                pool = [n for n in MOTIF_NAMES if n not in self.cast.names]
                named = [pool[b % len(pool)] for b in digest[:3]]
            own = choose_motifs(" ".join(named), None, (), limit=3)
            keep = self.scene.motifs[:1]
        else:
            text = " ".join(str(facets.get(k, "")) for k in ("scene", "composition")) if facets else caption.prompt
            own = choose_motifs(text, (caption.hints or {}).get("shapes"), (), limit=2)
            keep = self.scene.motifs[:2]
        names = list(dict.fromkeys([*own, *keep]))
        return tuple(sorted(names, key=lambda n: BY_NAME[n].layer))

    def close(self) -> None:
        self._motifs.clear()

    def _set_motifs(self, names: tuple[str, ...]) -> None:
        """A motif set of the renderer's own choosing, planned by the scene's rules and the current layout."""
        rules = self.scene.rules
        self.cast.set(names, composition.plan(composition.rank((), names, rules), rules, self.looks.target.layout))

    def _motif(self, name: str):
        motif = self._motifs.get(name)
        if motif is None:
            seed = self._seed * 1000 + MOTIF_NAMES.index(name)
            motif = self._motifs[name] = BY_NAME[name](np.random.default_rng(seed), self.width, self.height)
        return motif

    # --- frame -------------------------------------------------------------------------------
    def render(self, music: MusicState, t_s: float, init_rgb: np.ndarray | None = None) -> np.ndarray:
        """A frame for render time `t_s` from the freshest `music`; `init_rgb` is ignored (a source)."""
        import cv2

        if not math.isfinite(t_s):
            t_s = self._last_t_s if self._last_t_s is not None else 0.0
        self.looks.begin(t_s)
        self.cast.begin(t_s)
        dt_s = 0.0 if self._last_t_s is None else min(0.25, max(0.0, t_s - self._last_t_s))
        self._last_t_s = t_s
        look = self.looks.at(t_s)
        level, impulse, beat, onset = self._advance(music, t_s, dt_s, look)
        g = self.scene.accent_gain
        palette = turn_hue(self.grade.graded(look.palette, self.scene.palette, self.scene.palette_weight), self._hue)
        lut = palette_lut(palette)
        field = self._field.compute(self._phase, look.turbulence)
        field = 1.0 - np.abs(np.mod(field, 2.0) - 1.0)
        idx = (field * 255.0).astype(np.uint8)
        small = lut[idx] * self._field.vignette[..., None]
        small8 = (np.clip(small, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        # The soft layers (haze, cloud banks, water, smoke, flame, halos) on a canvas twice the field's
        # grid, upscaled once; the sharp motifs are drawn on the full-size frame on top of them.
        f = self._field
        canvas = cv2.resize(small8, (f.w * SOFT_SCALE, f.h * SOFT_SCALE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        soft = Soft(canvas, self.width, self.height)
        ctx = self._ctx(palette, look, level, beat, onset)
        jobs = self.cast.jobs(t_s)
        ctx.water = any(name == "waves" and amount > 0.02 for name, amount, _ in jobs)
        haze = self.scene.haze * (0.4 if look.layout == "radial" else 1.0)
        horizon_haze(soft, ctx.h * ctx.horizon, mix(ctx.light, ctx.mid, 0.3), haze)
        self._draw_jobs(jobs, ctx, lambda motif: motif.soft(soft, ctx))
        # Saturating cast in one pass (a NaN from a soft pass gone wrong becomes black, not an error).
        frame = cv2.resize(cv2.convertScaleAbs(canvas), (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        self._draw_jobs(jobs, ctx, lambda motif: motif.draw(frame, ctx), record=True)
        if g["burst"] > 0 and level > 0.05 and self._accents.since_beat_s < 0.5:
            r = (0.05 + 1.6 * self._accents.since_beat_s) * self.width * 0.5
            colour = mix(ctx.light, ctx.glow, 0.5)
            cv2.circle(frame, (self.width // 2 * 16, self.height // 2 * 16), int(r * 16), colour,
                       max(1, int(14 * g["burst"] * level * ctx.s)), cv2.LINE_AA, 4)
        flash = g["flash"] * level
        if flash > 0.02:
            cv2.convertScaleAbs(frame, frame, 1.0 + 0.5 * flash, 45.0 * flash)
        if self._frames % MEASURE_EVERY_FRAMES == 0:
            self.grade.correct(frame, self._va_smooth, self.scene.palette_bias)
        self._frames += 1
        return frame

    def _advance(self, music: MusicState, t_s: float, dt_s: float, look: Look) -> tuple[float, float, float, float]:
        """Move the frame's state on by `dt_s`: smoothed VA, accents, phase and the palette's hue turn.
        Returns (accent level, impulse, beat, onset)."""
        # Smooth the music's VA so colours glide rather than flicker with each listener hop.
        v, a = music.valence, music.arousal
        k = 1.0 - math.exp(-dt_s / 0.8) if dt_s > 0 else (1.0 if self._frames == 0 else 0.0)
        sv, sa = self._va_smooth
        self._va_smooth = (sv + k * (v - sv), sa + k * (a - sa))
        scene = self.scene
        speed = (0.15 + 1.6 * look.motion_speed) * scene.motion_scale
        beat, onset = self._accents.update(music, t_s)
        tracker = self._accents
        impulse = scene.pulse_gain * min(1.5, scene.beat_gain * (tracker.impulse - tracker.impulse_onset)
                                         + scene.onset_gain * tracker.impulse_onset)
        # Hits add up and decay: the picture changes most on the frame of the hit, and a dense
        # passage brightens overall instead of flattening into one long flash.
        self._hit = self._hit * math.exp(-dt_s / HIT_DECAY_S) + impulse
        level = 1.0 - math.exp(-self._hit)
        self.last_accent = level
        g = scene.accent_gain
        # Between hits the picture drifts; on a hit it steps ahead, so it changes on the beat itself.
        self._phase += dt_s * speed + g["jump"] * JUMP_S * impulse
        # Palette kick: each hit turns the palette's hues (lightness and chroma stay, so the colour
        # head's valence-arousal does too); the turn relaxes back to the caption's colours.
        self._hue = self._hue * math.exp(-dt_s / HUE_RELAX_S) + g["kick"] * KICK_HUE * impulse
        return level, impulse, beat, onset

    def _ctx(self, palette: np.ndarray, look: Look, level: float, beat: float, onset: float) -> Ctx:
        rgb = [tuple(int(c) for c in np.clip(p * 255.0 + 0.5, 0, 255)) for p in palette]
        # Glow is the palette's lightest colour, whitened only as far as the grade asks for tension:
        # bright lines on a dark field read as aroused to the colour head.
        glow = tuple(min(255, int(c + (0.1 + 0.5 * self.grade.highlight) * (255 - c))) for c in rgb[4])
        g = self.scene.accent_gain
        shake = g["shake"] * level * 10.0 * self.height / 720.0
        jig = math.sin(self._phase * 91.0), math.cos(self._phase * 77.0)
        # A slow camera sway, slower than the motion itself: near layers cross the frame, far ones barely move.
        cam = CAMERA_PAN * self.width * (math.sin(0.11 * self._phase) + 0.4 * math.sin(0.047 * self._phase + 1.3))
        return Ctx(cam=cam, glow_gain=self.scene.glow, shadow=self.scene.rules.shadow, w=self.width, h=self.height, t=self._phase, beat=min(1.0, level),
                   onset=onset, energy=(self._va_smooth[1] + 1.0) / 2.0, zoom=1.0 + 0.05 * g["pulse"] * level,
                   ox=shake * jig[0], oy=shake * jig[1], horizon=HORIZONS.get(look.layout, 0.68), motion=self._motion,
                   dark=rgb[0], mid=rgb[2], light=rgb[3], accent=mix(rgb[3], rgb[4], 0.5), glow=glow)

    def _draw_jobs(self, jobs: list[Job], ctx: Ctx, paint: Callable[[Any], None], record: bool = False) -> None:
        """Paint each job's motif (its soft pass or its sharp pass) at its part's strength and colours."""
        new = self.cast.plan
        drawn, full = [], 0
        colours = (ctx.dark, ctx.mid, ctx.light, ctx.accent, ctx.glow)
        dim = tuple(mix(c, colours[1], TEXTURE_DIM) for c in colours)
        for name, amount, role in jobs:
            plan = self.cast.plan_of(name)
            ctx.amount = amount
            ctx.focus = plan.focus if role == "focal" else None
            # Texture is background: sparse, and sunk toward the field's middle colour.
            ctx.dark, ctx.mid, ctx.light, ctx.accent, ctx.glow = dim if role == "texture" else colours
            try:
                paint(self._motif(name))
                drawn.append(name)
                full += amount >= FULL_STRENGTH
            except Exception:   # one bad motif must not take the picture down
                log.exception("motif %s failed; dropped from the set", name)
                self.cast.drop(name)
        ctx.dark, ctx.mid, ctx.light, ctx.accent, ctx.glow = colours
        ctx.focus = None
        if not record:
            return
        roles = new.roles
        self.composition = {"full_strength": full, "focal": next((n for n, r in roles.items() if r == "focal"), None),
                            "support": next((n for n, r in roles.items() if r == "support"), None),
                            "texture": [n for n, r in roles.items() if r == "texture"],
                            "focus": [round(x, 3) for x in new.focus]}
        self.drawn = tuple(drawn)
