"""Composition rules for the procedural renderer: one focal motif family, at most one supporting
family, the rest as texture; the focal subject placed on a rule-of-thirds point or where the
caption's composition facet puts it; negative space kept by drawing texture sparse and dim.

The scene sets the rules (its `[render]` table: `focal`, `supporting`, `texture`, `focus`); the
caption's motifs, in the order its words name them, decide which family leads.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from installation.errors import UserError

FULL_STRENGTH = 0.6
"""A family drawn at or above this strength counts as at full strength (focal or supporting)."""
MAX_FULL = 2
"""At most this many families at full strength in a frame: the focal one and one supporting."""
THIRDS = (2.0 / 3.0, 1.0 / 3.0)
"""The default focal point: the upper-right rule-of-thirds intersection (mirrored per caption)."""
LAYOUT_FOCUS = {"centre": (0.5, 0.45), "radial": (0.5, 0.5)}
"""Composition-facet layouts that place the focal subject themselves; the others use the thirds."""
TEXTURE_DIM = 0.55
"""How far a texture family's colours sink toward the field's middle colour: background, not subject."""
ROLES = ("focal", "support", "texture")
ATMOSPHERE = ("rain", "snow", "petals", "sparks", "smoke")
"""Families that fill the frame or drift through it: texture or support, a subject only when the
scene says so (its `focal` list) or nothing else is drawn."""
SCENE_KEYS = {"focal": "list of motif names the scene puts first when a caption names none of its own",
              "supporting": "0 or 1, how many supporting families beside the focal one",
              "support_strength": "0.6-1, strength of the supporting family",
              "texture": "0-0.55, strength of every other family (0 leaves them out)",
              "focus": "[x, y] in 0..1, the focal point (default: the rule-of-thirds point [0.667, 0.333])",
              "shadow": "0-1, soft shadows under what stands on the ground or floats before the sky (default 0.5)"}
DEFAULT_SHADOW = 0.5


@dataclass(frozen=True, slots=True)
class CompositionRules:
    """A scene's composition rules (`[render]` keys in SCENE_KEYS)."""

    focal: tuple[str, ...] = ()
    supporting: int = 1
    support_strength: float = 0.75
    texture: float = 0.3
    focus: tuple[float, float] = THIRDS
    shadow: float = DEFAULT_SHADOW


@dataclass(frozen=True, slots=True)
class Plan:
    """Who plays which part in the current motif set, and where the focal subject sits."""

    strengths: Mapping[str, float]
    roles: Mapping[str, str]
    focus: tuple[float, float]


def parse_rules(table: Mapping[str, Any], where: str, motif_names: tuple[str, ...]) -> CompositionRules:
    """The scene's rules from its `[render]` table; a bad value is one sentence naming the key."""
    focal = table.get("focal", [])
    if not isinstance(focal, (list, tuple)) or any(m not in motif_names for m in focal):
        raise UserError(f"{where}: focal = {focal!r}; use a list of motif names from {', '.join(motif_names)}.")
    supporting = table.get("supporting", 1)
    if supporting not in (0, 1) or isinstance(supporting, bool):
        raise UserError(f"{where}: supporting = {supporting!r}; use 0 or 1.")
    numbers = {}
    for key, default, low, high in (("support_strength", 0.75, FULL_STRENGTH, 1.0), ("texture", 0.3, 0.0, 0.55),
                                      ("shadow", DEFAULT_SHADOW, 0.0, 1.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise UserError(f"{where}: {key} = {value!r}; use a number in {low:g}..{high:g}.")
        numbers[key] = float(value)
    focus = table.get("focus", THIRDS)
    if (not isinstance(focus, (list, tuple)) or len(focus) != 2
            or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in focus)):
        raise UserError(f"{where}: focus = {focus!r}; use [x, y] with each in 0..1.")
    return CompositionRules(focal=tuple(focal), supporting=int(supporting), focus=(float(focus[0]), float(focus[1])),
                            **numbers)


def plan(ranked: tuple[str, ...], rules: CompositionRules, layout: str, key: str = "") -> Plan:
    """Roles for `ranked` (see `rank`): the first is focal, the next one supports, the rest are texture. `key` (the caption's words) mirrors the thirds point left or
    right so that successive pictures do not all lean the same way."""
    order = list(dict.fromkeys(ranked))
    if not order:
        return Plan({}, {}, rules.focus)
    strengths, roles = {}, {}
    for i, name in enumerate(order):
        if i == 0:
            roles[name], strengths[name] = "focal", 1.0
        elif i == 1 and rules.supporting:
            roles[name], strengths[name] = "support", rules.support_strength
        else:
            roles[name], strengths[name] = "texture", rules.texture
    fx, fy = LAYOUT_FOCUS.get(layout, rules.focus)
    if layout not in LAYOUT_FOCUS and key and hashlib.sha1(key.encode("utf-8")).digest()[0] % 2:
        fx = 1.0 - fx
    return Plan(strengths, roles, (fx, fy))


def rank(caption_motifs: tuple[str, ...], motif_set: tuple[str, ...], rules: CompositionRules) -> tuple[str, ...]:
    """The set ordered for `plan`: the caption's own motifs (those the scene prefers as focal first,
    so "dappled light under old beech trees" puts grove's trees before the light), then the scene's
    focal preferences, then the rest. Weather and drifting particles (ATMOSPHERE) name no place to
    look, so unless the scene prefers them they come after the scene's preferences: "a torrent in
    slanting rain" puts the water first and the rain behind it."""
    named = [m for m in caption_motifs if m in motif_set]
    preferred = [m for m in rules.focal if m in motif_set]
    first = [m for m in preferred if m in named] + [m for m in named if m not in ATMOSPHERE]
    return tuple(dict.fromkeys([*first, *preferred, *named, *motif_set]))


def cap_full(amounts: dict[str, float], limit: int = MAX_FULL) -> dict[str, float]:
    """At most `limit` families at full strength: during a cross-fade the leaving and arriving
    sets overlap, and the weakest of those above the bar are held just under it."""
    full = sorted((a, n) for n, a in amounts.items() if a >= FULL_STRENGTH)
    for _, name in full[:max(0, len(full) - limit)]:
        amounts[name] = FULL_STRENGTH - 0.01
    return amounts
