"""What a scene preset's `[captions]` table says: its settings for the agents (`scene_settings`:
facet weights, preferred and avoided tags, its own styles) and its own phrase banks, merged with the
shared banks of scenes/phrases/ by the preset's `[captions] shared` weights (`scene_banks`).

Each facet's bank for a scene is the scene's own phrases first, then the shared phrases that the
scene's weight lets in: `shared.FACET = 0` leaves the shared bank out (the scene speaks only in its
own words: a storm shows weather, not skylines), 1 lets shared phrases compete as equals, and a
weight between lowers every shared phrase's score by `(1 - w) x SHARED_PENALTY`, so the scene's
own phrases lead and the shared ones add variety. A preset without `[captions.phrases]` uses the
shared banks as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from installation.errors import UserError
from installation.records import VA
from models.captions.banks import FACETS, TAGS, Phrase, _parse_phrase
from models.captions.safety import clean_text

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


@dataclass(frozen=True, slots=True)
class SceneStyle:
    """One entry of a scene preset's `[captions] styles` list."""

    text: str
    va: VA


@dataclass(frozen=True, slots=True)
class SceneCaptionSettings:
    """The `[captions]` table of a scene preset."""

    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({f: 1.0 for f in FACETS}))
    prefer_tags: frozenset[str] = frozenset()
    avoid_tags: frozenset[str] = frozenset()
    styles: tuple[SceneStyle, ...] = ()
    """The scene's own styles, each at a VA point; the one nearest the mood goes with the style facet."""


SCENE_KEYS = ("weights", "prefer_tags", "avoid_tags", "styles", "phrases", "shared")
"""`phrases` and `shared` (the scene's own phrase banks) are read by `scene_banks`."""


def scene_settings(scene: Any) -> SceneCaptionSettings:
    """Validate `scene.table("captions")`; a bad value is a UserError naming the preset and key."""
    table = dict(scene.table("captions")) if scene is not None else {}
    where = _where(scene)
    unknown = sorted(set(table) - set(SCENE_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(SCENE_KEYS)}.")
    weights = {f: 1.0 for f in FACETS}
    raw_weights = table.get("weights", {})
    if not isinstance(raw_weights, Mapping):
        raise UserError(f"{where}: weights must be a table like {{ scene = 1.2, style = 0.8 }}.")
    for facet, value in raw_weights.items():
        if facet not in FACETS:
            raise UserError(f"{where}: weights.{facet} is not a facet; facets are {', '.join(FACETS)}.")
        if not isinstance(value, (int, float)) or not 0 <= value <= 2:
            raise UserError(f"{where}: weights.{facet} = {value!r}; use a number in 0..2 (0 leaves the facet out).")
        weights[facet] = float(value)
    sets = {}
    for key in ("prefer_tags", "avoid_tags"):
        raw = table.get(key, [])
        if not isinstance(raw, (list, tuple)) or not all(isinstance(t, str) for t in raw):
            raise UserError(f"{where}: {key} must be a list of descriptor tags.")
        bad = sorted(set(raw) - TAGS)
        if bad:
            raise UserError(f"{where}: {key} has unknown tag '{bad[0]}'; allowed tags: {', '.join(sorted(TAGS))}.")
        sets[key] = frozenset(raw)
    styles = []
    raw_styles = table.get("styles", [])
    if not isinstance(raw_styles, (list, tuple)):
        raise UserError(f"{where}: styles must be a list like [{{ text = \"ink wash\", va = [-0.3, -0.5] }}].")
    for item in raw_styles:
        text = item.get("text") if isinstance(item, Mapping) else None
        va = item.get("va") if isinstance(item, Mapping) else None
        if (not isinstance(text, str) or not clean_text(text) or not isinstance(va, (list, tuple)) or len(va) != 2
                or not all(isinstance(x, (int, float)) and -1 <= x <= 1 for x in va)):
            raise UserError(f"{where}: styles entry {item!r} needs text = \"...\" and va = [valence, arousal] in -1..1.")
        styles.append(SceneStyle(clean_text(text), (float(va[0]), float(va[1]))))
    return SceneCaptionSettings(weights=MappingProxyType(weights), styles=tuple(styles), **sets)
