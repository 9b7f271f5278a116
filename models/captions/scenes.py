"""A scene's own phrase banks: the phrases a preset brings in `[captions.phrases]`, merged with the
shared banks of scenes/phrases/ by the preset's `[captions] shared` weights.

Each facet's bank for a scene is the scene's own phrases first, then the shared phrases that the
scene's weight lets in: `shared.FACET = 0` leaves the shared bank out (the scene speaks only in its
own words: a storm shows weather, not skylines), 1 lets shared phrases compete as equals, and a
weight between lowers every shared phrase's score by `(1 - w) x SHARED_PENALTY`, so the scene's
own phrases lead and the shared ones add variety. A preset without `[captions.phrases]` uses the
shared banks as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from installation.errors import UserError
from models.captions.banks import FACETS, Phrase, _parse_phrase

SHARED_PENALTY = 0.6
"""Score a shared phrase loses at shared weight 0 (when it is let in at all); about the gap between
a phrase that fits the music's VA well and one a quadrant away."""
MIN_PHRASES = 8
"""Each facet's merged bank needs at least this many phrases so that diversity never forces a poor choice."""
REQUIRED_HINT = {"scene": "shapes", "colour": "palette", "motion": "motion_speed", "composition": "layout"}
"""The renderer hint every own phrase of a facet must carry, as the shared banks do."""


@dataclass(frozen=True, slots=True)
class SceneBanks:
    """The banks the agents choose from in one scene, and a score offset per phrase."""

    banks: Mapping[str, tuple[Phrase, ...]]
    priors: Mapping[str, tuple[float, ...]]
    """Per facet, one offset per phrase: 0 for the scene's own, -(1 - w) x SHARED_PENALTY for shared ones."""
    own: Mapping[str, int]
    """How many of each bank's first phrases are the scene's own."""


def _where(scene: Any) -> str:
    return f"scene {getattr(scene, 'name', '?')} ({getattr(scene, 'path', None) or 'preset'}) [captions]"


def own_phrases(scene: Any) -> dict[str, tuple[Phrase, ...]]:
    """The scene's own phrases per facet (validated like the shared banks); empty facets left out."""
    table = scene.table("captions") if scene is not None else {}
    raw = table.get("phrases", {})
    where = _where(scene)
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: phrases must be a table of facet = [phrases], e.g. [captions.phrases] scene = [...].")
    out: dict[str, tuple[Phrase, ...]] = {}
    for facet, items in raw.items():
        if facet not in FACETS:
            raise UserError(f"{where}: phrases.{facet} is not a facet; facets are {', '.join(FACETS)}.")
        if not isinstance(items, list):
            raise UserError(f"{where}: phrases.{facet} must be a list of phrases.")
        phrases = tuple(_parse_phrase(facet, item, f"{where} phrases.{facet}") for item in items)
        hint = REQUIRED_HINT.get(facet)
        for p in phrases:
            if hint and hint not in p.hints:
                raise UserError(f"{where} phrases.{facet}: phrase {p.text!r} needs {hint} (the renderer reads it).")
        texts = [p.text.lower() for p in phrases]
        if len(set(texts)) != len(texts):
            dup = next(t for t in texts if texts.count(t) > 1)
            raise UserError(f"{where} phrases.{facet}: phrase {dup!r} appears twice; remove one.")
        out[facet] = phrases
    return out


def shared_weights(scene: Any) -> dict[str, float]:
    """`[captions] shared`: per facet 0..1, how far the shared bank joins the scene's own (1 when absent)."""
    table = scene.table("captions") if scene is not None else {}
    raw = table.get("shared", {})
    where = _where(scene)
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: shared must be a table like {{ scene = 0.0, motion = 0.5 }}.")
    weights = {f: 1.0 for f in FACETS}
    for facet, value in raw.items():
        if facet not in FACETS:
            raise UserError(f"{where}: shared.{facet} is not a facet; facets are {', '.join(FACETS)}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise UserError(f"{where}: shared.{facet} = {value!r}; use a number in 0..1 (0 leaves the shared bank out).")
        weights[facet] = float(value)
    return weights


def scene_banks(shared: Mapping[str, tuple[Phrase, ...]], scene: Any) -> SceneBanks:
    """The scene's banks: its own phrases, then the shared ones its weights let in."""
    own = own_phrases(scene)
    weights = shared_weights(scene)
    banks: dict[str, tuple[Phrase, ...]] = {}
    priors: dict[str, tuple[float, ...]] = {}
    for facet in FACETS:
        mine = own.get(facet, ())
        w = weights[facet] if mine else 1.0   # a facet with no own phrases keeps the shared bank whole
        taken = {p.text.lower() for p in mine}
        others = tuple(p for p in shared[facet] if p.text.lower() not in taken) if w > 0 else ()
        banks[facet] = mine + others
        priors[facet] = (0.0,) * len(mine) + (-(1.0 - w) * SHARED_PENALTY,) * len(others)
        if len(banks[facet]) < MIN_PHRASES:
            raise UserError(f"{_where(scene)}: the {facet} facet has {len(banks[facet])} phrases; give it at least "
                            f"{MIN_PHRASES} of its own or raise shared.{facet} above 0.")
    return SceneBanks(banks=MappingProxyType(banks), priors=MappingProxyType(priors),
                      own=MappingProxyType({f: len(own.get(f, ())) for f in FACETS}))
