"""How often retrieved tunes are about what the picture shows: the measure of content meeting content.

A picture's description names what is seen (models.seeing.content.describe: water, trees and plants,
open sky, a person, buildings, ...); each maps to the tune themes (models.composing.tune_imagery.IMAGERY) that
show the same thing. `content_share` is the share of retrieved tunes whose description carries one
of those themes' phrases; `mood_only` strips a description to its mood, light and colour words, the
baseline query that cannot see content.
"""
from __future__ import annotations

from typing import Sequence

from models.composing.tune_imagery import IMAGERY

SEEN_THEMES: dict[str, tuple[str, ...]] = {
    "water, a sea, a lake or a river": ("sea", "river", "lake", "rain"),
    "trees and plants": ("forest", "flowers", "field", "spring", "birds"),
    "open sky": ("sky", "morning", "birds"),
    "a stormy, clouded sky": ("storm", "rain", "sky"),
    "a wide open view of land, hills or sea": ("field", "mountain", "sea"),
    "a person": ("person", "love", "child", "wedding"),
    "people": ("person", "dance", "wedding", "drink"),
    "upright lines like buildings or trunks": ("town", "castle", "home", "forest"),
}
"""Words of a picture's description -> the tune themes that show the same thing."""


def picture_themes(description: str) -> set[str]:
    """The tune themes matching what a picture's description says is seen."""
    seen = description.split(" picture of ", 1)[-1]
    return {t for words, themes in SEEN_THEMES.items() if words in seen for t in themes}


def mood_only(description: str) -> str:
    """The description without what is seen: 'A calm, peaceful, tender, bright, vivid picture.'"""
    return description.split(" picture of ", 1)[0] + " picture."


def shares_content(tune_description: str, themes: set[str]) -> bool:
    return any(IMAGERY[t] in tune_description for t in themes)


def content_share(tune_descriptions: Sequence[str], themes: set[str]) -> float:
    """Share of the tunes whose description carries one of `themes` (0 when there are none)."""
    if not tune_descriptions or not themes:
        return 0.0
    return sum(shares_content(d, themes) for d in tune_descriptions) / len(tune_descriptions)
