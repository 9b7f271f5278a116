"""What a scene sets for the procedural layer: its `[render]` table read into a frozen `SceneLook`
(palette, motif set, motion, accents, mist and glow, composition rules), one sentence per bad key."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from installation.errors import UserError
from models.procedural import composition
from models.procedural.composition import CompositionRules, parse_rules
from models.procedural.fields import LAYOUTS, SHAPES, _scene_number, _to_five, parse_hex
from models.procedural.motifs import BY_NAME, MOTIF_NAMES, choose_motifs

ACCENT_KEYS = ("flash", "pulse", "shake", "burst", "kick", "jump")
DEFAULT_ACCENTS = {"flash": 0.25, "pulse": 0.5, "shake": 0.2, "burst": 0.4, "kick": 0.5, "jump": 1.0}
BEAT_WEIGHT = 0.35
"""Default weight of a predicted beat against an onset hit (1.0)."""
DEFAULT_HAZE = 0.5
"""Mist over the horizon when the scene sets no `haze`."""
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


@dataclass(frozen=True)
class SceneLook:
    """The procedural layer's scene settings; the defaults are the look before any scene."""

    palette_bias: tuple[float, float] = (0.0, 0.0)
    pulse_gain: float = 1.0
    onset_gain: float = 1.0
    beat_gain: float = BEAT_WEIGHT
    motion_scale: float = 1.0
    haze: float = DEFAULT_HAZE
    glow: float = 1.0
    layout: str | None = None
    """None: the layout the caption's look has."""
    shapes: str | None = None
    motifs: tuple[str, ...] = ("stars", "mountains")
    accent_gain: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACCENTS))
    palette: np.ndarray | None = None
    palette_weight: float = 0.0
    rules: CompositionRules = CompositionRules()


def read_scene(scene, layout: str, shapes: str) -> SceneLook:
    """The scene's `[render]` table, validated; `layout` and `shapes` stand where it sets none."""
    table = dict(scene.table("render")) if scene is not None else {}
    where = f"{getattr(scene, 'path', None) or getattr(scene, 'name', 'scene')} [render]"
    unknown = sorted(set(table) - set(SCENE_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'; the keys allowed are {', '.join(sorted(SCENE_KEYS))}.")
    bias = tuple(getattr(scene, "palette_bias", (0.0, 0.0)))
    gains = {key: _scene_number(table, key, default, 0.0, high, where)
             for key, default, high in (("pulse", 1.0, 3.0), ("onset", 1.0, 2.0), ("beat", BEAT_WEIGHT, 2.0),
                                        ("motion_scale", 1.0, 4.0), ("haze", DEFAULT_HAZE, 1.0), ("glow", 1.0, 2.0))}
    layout = table.get("layout", layout)
    shapes = table.get("shapes", shapes)
    if layout not in LAYOUTS:
        raise UserError(f"{where}: layout = {layout!r}; use one of {', '.join(LAYOUTS)}.")
    if shapes not in SHAPES:
        raise UserError(f"{where}: shapes = {shapes!r}; use one of {', '.join(SHAPES)}.")
    motifs = table.get("motifs", None)
    if motifs is None:
        motifs = choose_motifs("", shapes)
    if not isinstance(motifs, (list, tuple)) or not motifs or any(m not in BY_NAME for m in motifs):
        raise UserError(f"{where}: motifs = {motifs!r}; use a list of motif names from {', '.join(MOTIF_NAMES)}.")
    accent_gain = _accents(table, where)
    palette = _palette(table, where)
    rules = parse_rules(table, where, MOTIF_NAMES)
    weight = _scene_number(table, "palette_weight", 0.5 if palette is not None else 0.0, 0.0, 1.0, where)
    return SceneLook(palette_bias=bias, pulse_gain=gains["pulse"], onset_gain=gains["onset"],  # type: ignore[arg-type]
                     beat_gain=gains["beat"], motion_scale=gains["motion_scale"], haze=gains["haze"],
                     glow=gains["glow"], layout=layout, shapes=shapes, motifs=tuple(motifs), accent_gain=accent_gain,
                     palette=palette, palette_weight=weight, rules=rules)


def _accents(table: Mapping[str, Any], where: str) -> dict[str, float]:
    accents = table.get("accents", {})
    if not isinstance(accents, Mapping):
        raise UserError(f"{where}: accents = {accents!r}; use a table such as {{ flash = 0.5, pulse = 0.5 }}.")
    bad = sorted(set(accents) - set(ACCENT_KEYS))
    if bad:
        raise UserError(f"{where}: accents.{bad[0]} is not an accent; use {', '.join(ACCENT_KEYS)}.")
    gains = dict(DEFAULT_ACCENTS)
    for key in accents:
        gains[key] = _scene_number(accents, key, DEFAULT_ACCENTS[key], 0.0, 2.0, f"{where} accents")
    return gains


def _palette(table: Mapping[str, Any], where: str) -> np.ndarray | None:
    if "palette" not in table:
        return None
    try:
        return _to_five(np.asarray([parse_hex(c) for c in table["palette"]], dtype=np.float32))
    except (TypeError, ValueError, AttributeError):
        raise UserError(f"{where}: palette = {table['palette']!r}; use a list of \"#rrggbb\" colours.") from None
