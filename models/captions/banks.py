"""The phrase banks (scenes/phrases/*.toml): the facets, the descriptor tags and renderer hints a
phrase may carry, and their validation. Read by models/captions/agents.py and writer.py (the agents) and
models/captions/scenes.py (a scene's own phrases)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from installation.errors import UserError
from installation.records import VA
from models.captions.safety import clean_text

FACETS = ("scene", "motion", "style", "colour", "composition")
PHRASES_DIR = Path(__file__).resolve().parents[2] / "scenes" / "phrases"
LAYOUTS = ("horizon", "centre", "diagonal", "radial", "scattered", "grid")
SHAPES = ("waves", "mountains", "orbs", "stars", "forest", "city", "clouds", "particles", "ribbons", "crystals")

TAG_WORDS: Mapping[str, str] = MappingProxyType({
    "major": "major key", "minor": "minor key",
    "slow": "slow", "moderate": "moderate tempo", "fast": "fast",
    "hushed": "hushed", "soft": "soft", "full": "full", "loud": "loud",
    "dark": "dark timbre", "warm": "warm timbre", "bright": "bright timbre",
    "tonal": "tonal", "percussive": "percussive", "sustained": "sustained",
    "sparse": "sparse", "flowing": "flowing", "busy": "busy", "pulsing": "steady beat",
    "calm": "calm", "energetic": "energetic",
    "joyful": "joyful", "serene": "serene", "melancholy": "melancholy", "tense": "tense",
    "change": "new section", "silence": "silence",
})
"""Every descriptor tag a phrase may carry, with the words a reason shows for it."""
TAGS = frozenset(TAG_WORDS)


@dataclass(frozen=True, slots=True)
class Phrase:
    facet: str
    text: str
    va: VA
    tags: frozenset[str]
    hints: Mapping[str, Any] = field(default_factory=dict)


def _hex_ok(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 7 and value[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in value[1:])


def _parse_phrase(facet: str, raw: Any, where: str) -> Phrase:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: each phrase must be a table like {{ text = \"...\", va = [v, a], tags = [...] }}; fix that entry.")
    text = raw.get("text")
    if not isinstance(text, str) or not clean_text(text):
        raise UserError(f"{where}: a phrase has no text ({raw!r}); give every phrase a non-empty text.")
    label = f"{where}: phrase {text!r}"
    va = raw.get("va")
    if (not isinstance(va, list) or len(va) != 2 or not all(isinstance(x, (int, float)) and -1 <= x <= 1 for x in va)):
        raise UserError(f"{label} has va = {va!r}; use [valence, arousal] with each in -1..1.")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise UserError(f"{label} has tags = {tags!r}; use a list of descriptor words.")
    unknown = sorted(set(tags) - TAGS)
    if unknown:
        raise UserError(f"{label} has unknown tag '{unknown[0]}'; allowed tags: {', '.join(sorted(TAGS))}.")
    hints: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("text", "va", "tags"):
            continue
        if key == "palette":
            if not isinstance(value, list) or not 3 <= len(value) <= 5 or not all(_hex_ok(c) for c in value):
                raise UserError(f"{label} has palette = {value!r}; use 3-5 colours written \"#rrggbb\".")
            hints["palette"] = tuple(c.lower() for c in value)
        elif key in ("motion_speed", "turbulence"):
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise UserError(f"{label} has {key} = {value!r}; use a number in 0..1.")
            hints[key] = float(value)
        elif key == "layout":
            if value not in LAYOUTS:
                raise UserError(f"{label} has layout = {value!r}; use one of {', '.join(LAYOUTS)}.")
            hints["layout"] = value
        elif key == "shapes":
            if value not in SHAPES:
                raise UserError(f"{label} has shapes = {value!r}; use one of {', '.join(SHAPES)}.")
            hints["shapes"] = value
        else:
            raise UserError(f"{label} has unknown key '{key}'; allowed: text, va, tags, palette, motion_speed, "
                            f"turbulence, layout, shapes.")
    return Phrase(facet=facet, text=clean_text(text), va=(float(va[0]), float(va[1])), tags=frozenset(tags),
                  hints=MappingProxyType(hints))


def load_phrase_banks(directory: str | Path | None = None) -> dict[str, tuple[Phrase, ...]]:
    """Read and validate scenes/phrases/{scene,motion,style,colour,composition}.toml (or `directory`)."""
    base = Path(directory) if directory else PHRASES_DIR
    banks: dict[str, tuple[Phrase, ...]] = {}
    for facet in FACETS:
        path = base / f"{facet}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"phrase bank {path} is missing; restore it or set captions.phrases_dir to a folder "
                            f"with {', '.join(f + '.toml' for f in FACETS)}.") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path} is not valid TOML ({exc}); fix that line.") from None
        raw = data.get("phrases")
        if not isinstance(raw, list) or len(raw) < 8:
            raise UserError(f"{path}: 'phrases' must list at least 8 phrases so captions can vary; add more.")
        phrases = tuple(_parse_phrase(facet, item, str(path)) for item in raw)
        seen: set[str] = set()
        for p in phrases:
            if p.text.lower() in seen:
                raise UserError(f"{path}: phrase {p.text!r} appears twice; remove one.")
            seen.add(p.text.lower())
        banks[facet] = phrases
    return banks
