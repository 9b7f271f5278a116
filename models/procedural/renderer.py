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
from typing import Any, Callable, Mapping

import numpy as np

from installation.errors import UserError
from installation.records import Caption, MusicState, clamp_va
from models.seeing.va import brightness_saturation_for, colour_features, colour_va
from models.procedural import composition
from models.procedural.accents import AccentTracker
from models.procedural.atmosphere import SOFT_SCALE, Soft, horizon_haze
from models.procedural.composition import FULL_STRENGTH, TEXTURE_DIM, CompositionRules, cap_full, parse_rules
from models.procedural.fields import (LAYOUTS, SHAPES, Field, Look, _scene_number, _smoothstep, look_from_caption,
                                      palette_from_va, palette_lut, parse_hex, _to_five)
from models.procedural.motifs import (BY_NAME, MOTIF_NAMES, SHAPE_MOTIFS, Ctx, choose_motifs, mix, motion_from_text,
                                      motifs_named_in)

log = logging.getLogger(__name__)

MEASURE_EVERY_FRAMES = 4
MEASURE_SIDE_PX = 160
MOTIF_FADE_S = 1.2
"""A new motif set grows in (and the old one shrinks away) over this long at most."""
ACCENT_KEYS = ("flash", "pulse", "shake", "burst", "kick", "jump")
DEFAULT_ACCENTS = {"flash": 0.25, "pulse": 0.5, "shake": 0.2, "burst": 0.4, "kick": 0.5, "jump": 1.0}
BEAT_WEIGHT = 0.35
"""Default weight of a predicted beat against an onset hit (1.0)."""
HIT_DECAY_S = 0.08
BLACK_FLOOR = 0.04
"""The darkest a graded colour gets: near-black carries no colour for the colour head."""
"""Decay of the hit accumulator that flash, scale pulse, shake and palette kick follow."""
JUMP_S = 0.35
KICK_HUE = 0.7
"""Radians a full-strength hit turns the palette's hues (accent `kick`)."""
HUE_RELAX_S = 1.5
"""Seconds of animation a full-strength hit jumps ahead (accent `jump`): motion surges on the beat."""
DEFAULT_HAZE = 0.5
"""Mist over the horizon when the scene sets no `haze`."""
CAMERA_PAN = 0.03
"""How far the camera sways sideways, as a fraction of the width at the nearest depth: the layers
move against each other by their distance (parallax)."""
HORIZONS = {"horizon": 0.68, "centre": 0.62, "diagonal": 0.6, "radial": 0.62, "scattered": 0.7, "grid": 0.66}
SCENE_KEYS = {"layout": "one of the layouts", "shapes": "one of the shapes",
              "motifs": "list of motif names the scene draws when captions name none",
              "accents": "table flash/pulse/shake/burst/kick/jump, each 0-2",
              "palette": "list of #rrggbb colours: the scene's own palette",
              "palette_weight": "0-1, how much the scene's palette outweighs the caption's",
              "pulse": "0-3, strength of every accent", "onset": "0-2, weight of onset hits",
              "beat": "0-2, weight of predicted beats (the onsets confirm them; a wrong tempo guess costs less when low)",
              "motion_scale": "0-4, speed multiplier",
              "strength_min": "diffusion img2img strength, calm music",
              "strength_max": "diffusion img2img strength, aroused music",
              "feedback": "0-0.95, diffusion latent carry-over between frames",
              "width": "diffusion render width", "height": "diffusion render height",
              "haze": "0-1, mist over the horizon: far layers sink into the sky's light",
              "glow": "0-2, halos around light sources (moon, sun, lamps, flames, lit windows)",
              **composition.SCENE_KEYS}
"""Keys a scene's `[render]` table may hold; the diffusion renderer reads strength_min ... height, and
models/procedural/composition.py the composition rules."""
_LUMA = np.asarray([0.2126, 0.7152, 0.0722], dtype=np.float32)


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
        self._accent_gain = dict(DEFAULT_ACCENTS)
        self._pulse_gain = 1.0
        self._onset_gain = 1.0
        self._beat_gain = BEAT_WEIGHT
        self._motion_scale = 1.0
        self._haze = DEFAULT_HAZE
        self._glow = 1.0
        self._palette_bias = (0.0, 0.0)
        self._scene_palette: np.ndarray | None = None
        self._scene_palette_weight = 0.0
        self._scene_motifs: tuple[str, ...] = ("stars", "mountains")
        initial = Look(palette=palette_from_va(0.0, 0.0))
        self._from = self._to = initial
        self._blend_start_s: float | None = None
        self._blend_s = 0.0
        self._pending_blend_s: float | None = None
        self._motif_set: tuple[str, ...] = self._scene_motifs
        self._old_motif_set: tuple[str, ...] = ()
        self._rules = CompositionRules()
        self._plan = composition.plan(self._motif_set, self._rules, "horizon")
        self._old_plan = self._plan
        self._motif_change_s: float | None = None
        self._pending_motif_change = False
        self._motion = motion_from_text("")
        self._phase = 0.0
        self._hit = 0.0
        self._hue = 0.0
        self._last_t_s: float | None = None
        self._va_smooth = (0.0, 0.0)
        self._brightness_gain = 1.0
        self._saturation_gain = 1.0
        self._contrast_gain = 1.0
        self._highlight = 0.0
        self._va_offset = np.zeros(2, dtype=np.float64)
        self._frames = 0
        self.last_measured_va: tuple[float, float] = (0.0, 0.0)
        """Colour-head VA of a recent frame, as the renderer measured it for its own grading."""
        self.drawn: tuple[str, ...] = ()
        """Names of the motifs drawn in the last frame."""
        self.last_accent: float = 0.0
        """The accent level (0..~2) of the last frame."""
        self.composition: dict[str, Any] = {"full_strength": 0, "focal": None, "support": None, "texture": []}
        """The last frame's composition: motif families at full strength (at most 2), and who plays which part."""

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: palette rules, motif set, motion, accents and the diffusion keys (validated)."""
        table = dict(scene.table("render")) if scene is not None else {}
        where = f"{getattr(scene, 'path', None) or getattr(scene, 'name', 'scene')} [render]"
        unknown = sorted(set(table) - set(SCENE_KEYS))
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'; the keys allowed are {', '.join(sorted(SCENE_KEYS))}.")
        self._palette_bias = tuple(getattr(scene, "palette_bias", (0.0, 0.0)))  # type: ignore[assignment]
        self._pulse_gain = _scene_number(table, "pulse", 1.0, 0.0, 3.0, where)
        self._onset_gain = _scene_number(table, "onset", 1.0, 0.0, 2.0, where)
        self._beat_gain = _scene_number(table, "beat", BEAT_WEIGHT, 0.0, 2.0, where)
        self._motion_scale = _scene_number(table, "motion_scale", 1.0, 0.0, 4.0, where)
        self._haze = _scene_number(table, "haze", DEFAULT_HAZE, 0.0, 1.0, where)
        self._glow = _scene_number(table, "glow", 1.0, 0.0, 2.0, where)
        layout = table.get("layout", self._to.layout)
        shapes = table.get("shapes", self._to.shapes)
        if layout not in LAYOUTS:
            raise UserError(f"{where}: layout = {layout!r}; use one of {', '.join(LAYOUTS)}.")
        if shapes not in SHAPES:
            raise UserError(f"{where}: shapes = {shapes!r}; use one of {', '.join(SHAPES)}.")
        motifs = table.get("motifs", None)
        if motifs is None:
            motifs = choose_motifs("", shapes)
        if not isinstance(motifs, (list, tuple)) or not motifs or any(m not in BY_NAME for m in motifs):
            raise UserError(f"{where}: motifs = {motifs!r}; use a list of motif names from {', '.join(MOTIF_NAMES)}.")
        accents = table.get("accents", {})
        if not isinstance(accents, Mapping):
            raise UserError(f"{where}: accents = {accents!r}; use a table such as {{ flash = 0.5, pulse = 0.5 }}.")
        bad = sorted(set(accents) - set(ACCENT_KEYS))
        if bad:
            raise UserError(f"{where}: accents.{bad[0]} is not an accent; use {', '.join(ACCENT_KEYS)}.")
        gains = dict(DEFAULT_ACCENTS)
        for key in accents:
            gains[key] = _scene_number(accents, key, DEFAULT_ACCENTS[key], 0.0, 2.0, f"{where} accents")
        palette = None
        if "palette" in table:
            try:
                palette = _to_five(np.asarray([parse_hex(c) for c in table["palette"]], dtype=np.float32))
            except (TypeError, ValueError, AttributeError):
                raise UserError(f"{where}: palette = {table['palette']!r}; use a list of \"#rrggbb\" colours.") from None
        self._rules = parse_rules(table, where, MOTIF_NAMES)
        self._scene_palette_weight = _scene_number(table, "palette_weight", 0.5 if palette is not None else 0.0, 0.0, 1.0, where)
        self._scene_palette = palette
        self._accent_gain = gains
        self._scene_motifs = tuple(motifs)
        self._from = self._to = Look(palette=self._to.palette, motion_speed=self._to.motion_speed,
                                     turbulence=self._to.turbulence, layout=layout, shapes=shapes)
        self._blend_start_s = None
        names = tuple(sorted(self._scene_motifs[:4], key=lambda n: BY_NAME[n].layer))
        self._set_motifs(names, composition.plan(composition.rank((), names, self._rules), self._rules, layout))

    def update_prompt(self, caption: Caption) -> None:
        """Blend to the caption's look over caption.transition_s; its motifs grow in within MOTIF_FADE_S."""
        current = self._current_look(self._last_t_s if self._last_t_s is not None else 0.0)
        self._from = current
        self._to = look_from_caption(caption, previous=self._to)
        self._pending_blend_s = max(0.0, float(caption.transition_s)) if math.isfinite(caption.transition_s) else 0.0
        self._blend_start_s = None
        facets = caption.facets or {}
        motion_text = str(facets.get("motion", "")) if caption.source != "operator" else caption.prompt
        self._motion = motion_from_text(motion_text, self._to.motion_speed, self._to.turbulence)
        names = self.motifs_for(caption)
        words = caption.prompt if caption.source == "operator" or not facets else \
            " ".join(str(facets.get(k, "")) for k in ("scene", "composition"))
        lead = (*motifs_named_in(words), *SHAPE_MOTIFS.get(str((caption.hints or {}).get("shapes", "")), ()))
        ranked = composition.rank(lead, names, self._rules)
        self._set_motifs(names, composition.plan(ranked, self._rules, self._to.layout, key=words))

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
                pool = [n for n in MOTIF_NAMES if n not in self._motif_set]
                named = [pool[b % len(pool)] for b in digest[:3]]
            own = choose_motifs(" ".join(named), None, (), limit=3)
            keep = self._scene_motifs[:1]
        else:
            text = " ".join(str(facets.get(k, "")) for k in ("scene", "composition")) if facets else caption.prompt
            own = choose_motifs(text, (caption.hints or {}).get("shapes"), (), limit=2)
            keep = self._scene_motifs[:2]
        names = list(dict.fromkeys([*own, *keep]))
        return tuple(sorted(names, key=lambda n: BY_NAME[n].layer))

    def close(self) -> None:
        self._motifs.clear()

    def _set_motifs(self, names: tuple[str, ...], plan: composition.Plan | None = None) -> None:
        if plan is None:
            plan = composition.plan(composition.rank((), names, self._rules), self._rules, self._to.layout)
        if names == self._motif_set and plan == self._plan:
            return
        self._old_motif_set = tuple(n for n in self._motif_set if n not in names)
        self._old_plan = self._plan
        self._motif_set = names
        self._plan = plan
        self._pending_motif_change = True

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
        if self._pending_blend_s is not None:
            self._blend_start_s, self._blend_s, self._pending_blend_s = t_s, self._pending_blend_s, None
        if self._pending_motif_change:
            self._motif_change_s, self._pending_motif_change = t_s, False
        dt_s = 0.0 if self._last_t_s is None else min(0.25, max(0.0, t_s - self._last_t_s))
        self._last_t_s = t_s
        look = self._current_look(t_s)

        # Smooth the music's VA so colours glide rather than flicker with each listener hop.
        v, a = clamp_va(music.valence, music.arousal)
        k = 1.0 - math.exp(-dt_s / 0.8) if dt_s > 0 else (1.0 if self._frames == 0 else 0.0)
        sv, sa = self._va_smooth
        self._va_smooth = (sv + k * (v - sv), sa + k * (a - sa))
        speed = (0.15 + 1.6 * look.motion_speed) * self._motion_scale
        beat, onset = self._accents.update(music, t_s)
        tracker = self._accents
        impulse = self._pulse_gain * min(1.5, self._beat_gain * (tracker.impulse - tracker.impulse_onset)
                                         + self._onset_gain * tracker.impulse_onset)
        # Hits add up and decay: the picture changes most on the frame of the hit, and a dense
        # passage brightens overall instead of flattening into one long flash.
        self._hit = self._hit * math.exp(-dt_s / HIT_DECAY_S) + impulse
        level = 1.0 - math.exp(-self._hit)
        self.last_accent = level
        g = self._accent_gain
        # Between hits the picture drifts; on a hit it steps ahead, so it changes on the beat itself.
        self._phase += dt_s * speed + g["jump"] * JUMP_S * impulse

        # Palette kick: each hit turns the palette's hues (lightness and chroma stay, so the colour
        # head's valence-arousal does too); the turn relaxes back to the caption's colours.
        self._hue = self._hue * math.exp(-dt_s / HUE_RELAX_S) + g["kick"] * KICK_HUE * impulse
        palette = _turn_hue(self._graded(look.palette), self._hue)
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
        jobs = self._jobs(t_s)
        ctx.water = any(name == "waves" and amount > 0.02 for name, amount, _ in jobs)
        horizon_haze(soft, ctx.h * ctx.horizon, mix(ctx.light, ctx.mid, 0.3), self._haze * (0.4 if look.layout == "radial" else 1.0))
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
            self._correct(frame)
        self._frames += 1
        return frame

    def _ctx(self, palette: np.ndarray, look: Look, level: float, beat: float, onset: float) -> Ctx:
        rgb = [tuple(int(c) for c in np.clip(p * 255.0 + 0.5, 0, 255)) for p in palette]
        # Glow is the palette's lightest colour, whitened only as far as the grade asks for tension:
        # bright lines on a dark field read as aroused to the colour head.
        glow = tuple(min(255, int(c + (0.1 + 0.5 * self._highlight) * (255 - c))) for c in rgb[4])
        g = self._accent_gain
        shake = g["shake"] * level * 10.0 * self.height / 720.0
        jig = math.sin(self._phase * 91.0), math.cos(self._phase * 77.0)
        # A slow camera sway, slower than the motion itself: near layers cross the frame, far ones barely move.
        cam = CAMERA_PAN * self.width * (math.sin(0.11 * self._phase) + 0.4 * math.sin(0.047 * self._phase + 1.3))
        return Ctx(cam=cam, glow_gain=self._glow, w=self.width, h=self.height, t=self._phase, beat=min(1.0, level), onset=onset,
                   energy=(self._va_smooth[1] + 1.0) / 2.0, zoom=1.0 + 0.05 * g["pulse"] * level,
                   ox=shake * jig[0], oy=shake * jig[1], horizon=HORIZONS.get(look.layout, 0.68), motion=self._motion,
                   dark=rgb[0], mid=rgb[2], light=rgb[3], accent=mix(rgb[3], rgb[4], 0.5), glow=glow)

    def _jobs(self, t_s: float) -> list[tuple[str, float, str]]:
        """This frame's (motif, strength, part), in drawing order."""
        fade = 1.0
        if self._motif_change_s is not None:
            fade = _smoothstep((t_s - self._motif_change_s) / MOTIF_FADE_S)
            if fade >= 1.0:
                self._motif_change_s, self._old_motif_set = None, ()
        # Each family at its part's strength (focal, supporting, texture); a family in both sets glides
        # from its old part to its new one, the others fade out and in.
        old, new = self._old_plan, self._plan
        amounts = {n: (1.0 - fade) * old.strengths.get(n, 1.0) for n in self._old_motif_set if fade < 1.0}
        for n in self._motif_set:
            was = old.strengths.get(n)
            now = new.strengths.get(n, 1.0)
            amounts[n] = now * fade if was is None or fade >= 1.0 else was + (now - was) * fade
        amounts = cap_full(amounts)
        # Within a layer the grounds (sea, ridges) go first, then the motifs fading out, so a leaving sea
        # never covers an arriving forest; then texture, support and the focal family, so the subject
        # is never hidden behind background.
        order = {"texture": 1, "support": 2, "focal": 3}

        def depth(job: tuple[str, float]) -> tuple[int, bool, int]:
            name = job[0]
            motif = BY_NAME[name]
            return motif.layer, not motif.backdrop, order.get(new.roles.get(name, ""), 1) if name in self._motif_set else 0

        jobs = []
        for name, amount in sorted(amounts.items(), key=depth):
            if amount > 0.02:
                plan = new if name in self._motif_set else old
                jobs.append((name, amount, plan.roles.get(name, "texture")))
        return jobs

    def _draw_jobs(self, jobs: list[tuple[str, float, str]], ctx: Ctx, paint: Callable[[Any], None],
                   record: bool = False) -> None:
        """Paint each job's motif (its soft pass or its sharp pass) at its part's strength and colours."""
        new = self._plan
        drawn, full = [], 0
        colours = (ctx.dark, ctx.mid, ctx.light, ctx.accent, ctx.glow)
        dim = tuple(mix(c, colours[1], TEXTURE_DIM) for c in colours)
        for name, amount, role in jobs:
            plan = new if name in self._motif_set else self._old_plan
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
                self._motif_set = tuple(n for n in self._motif_set if n != name)
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

    # --- colour -------------------------------------------------------------------------------
    def _target_va(self) -> tuple[float, float]:
        v, a = self._va_smooth
        bv, ba = self._palette_bias
        return clamp_va(v + bv, a + ba)

    def _graded(self, palette: np.ndarray) -> np.ndarray:
        """The palette through the grade: every pixel drawn from it gets the same grade."""
        if self._scene_palette is not None and self._scene_palette_weight > 0:
            w = self._scene_palette_weight
            palette = palette * (1 - w) + self._scene_palette * w
        lum = (palette @ _LUMA)[:, None]
        mean = float(lum.mean())
        graded = mean + self._contrast_gain * (lum - mean) + self._saturation_gain * (palette - lum)
        graded = np.clip(graded * self._brightness_gain, BLACK_FLOOR, 1.0)
        # Dark yet aroused music: the light end of the palette is lifted out of the dark (lightning in
        # a storm), which the colour head reads as tension; the rest stays dark.
        graded[3:] += (1.0 - graded[3:]) * self._highlight * np.asarray([[0.6], [1.0]], dtype=np.float32)
        return graded.astype(np.float32)

    def _correct(self, frame: np.ndarray) -> None:
        """Measure the frame with the colour head; nudge the grade toward the music's VA."""
        step = max(1, round(max(self.width, self.height) / MEASURE_SIDE_PX))
        small = frame[step // 2::step, step // 2::step]   # a point sample: colour statistics, not a picture
        features = colour_features(small.astype(np.float32) / 255.0)
        measured = colour_va(features)
        self.last_measured_va = measured
        target = np.asarray(self._target_va())
        # Outer loop: what palette contrast, motifs and accents add, the brightness/saturation aim removes.
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
        short = target[1] - measured[1]
        if target[0] < 0.0 and short > 0.1 and features.brightness < 0.45:
            self._highlight = min(0.9, self._highlight + 0.08 * short)
        else:   # faster down when the picture reads more aroused than the music
            self._highlight = max(0.0, self._highlight - 0.02 - 0.1 * max(0.0, -short))
        if not all(math.isfinite(g) for g in (self._brightness_gain, self._saturation_gain, self._contrast_gain)):
            self._brightness_gain = self._saturation_gain = self._contrast_gain = 1.0
            self._va_offset[:] = 0.0


def _turn_hue(palette: np.ndarray, angle: float) -> np.ndarray:
    """Rotate colours about the grey axis by `angle` radians (Rodrigues): hue turns, grey stays."""
    if abs(angle) < 1e-4:
        return palette
    c, s = math.cos(angle), math.sin(angle)
    k = (1.0 - c) / 3.0
    r = s / math.sqrt(3.0)
    m = np.asarray([[c + k, k - r, k + r], [k + r, c + k, k - r], [k - r, k + r, c + k]], dtype=np.float32)
    return np.clip(palette @ m.T, 0.0, 1.0).astype(np.float32)
