"""The composer's settings: the config's (`ComposeSettings`, built by installation/config.py from the
validated [compose] section, where the defaults live) and a scene's [compose] table laid over them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from installation.errors import UserError
from models.composing.corpus import METRES
from models.composing.theory import KEY_NAMES

VOICES = ("melody", "chords", "bass")


@dataclass(frozen=True)
class ComposeSettings:
    """What the corpus composer reads of [compose]."""

    bars_ahead: int
    variation: float
    key_map: Literal["fifths", "chromatic"]
    comment_weight: float
    percussion: bool
    percussion_channel: int
    retrieval: bool
    content_weight: float


@dataclass(frozen=True)
class SceneComposeSettings:
    """ComposeSettings with a scene's [compose] table over them, validated."""

    metre: str
    key_map: tuple[int, ...]
    key_map_name: str
    voices: tuple[str, ...]
    register_offset: int
    variation: float
    percussion: bool
    percussion_channel: int


def scene_compose_settings(scene: Any, settings: ComposeSettings) -> SceneComposeSettings:
    """The scene's table (scene None: none) over `settings`; UserError naming the bad key."""
    table: Mapping[str, Any] = scene.table("compose") if scene is not None else {}
    where = f"scene {getattr(scene, 'name', '?')} [compose]"
    key_map = table.get("key_map", settings.key_map)
    if key_map == "fifths":
        wheel, wheel_name = tuple((7 * i) % 12 for i in range(12)), "fifths"
    elif key_map == "chromatic":
        wheel, wheel_name = tuple(range(12)), "chromatic"
    elif isinstance(key_map, (list, tuple)) and len(key_map) == 12 and all(k in KEY_NAMES for k in key_map):
        wheel, wheel_name = tuple(KEY_NAMES.index(k) for k in key_map), "scene"
    else:
        raise UserError(f"{where}: key_map = {key_map!r}; use \"fifths\", \"chromatic\" or a list of 12 key names "
                        f"from {', '.join(KEY_NAMES)} (red first, around the hue wheel).")
    metre = table.get("metre", "auto")
    if metre != "auto" and metre not in METRES:
        raise UserError(f"{where}: metre = {metre!r}; use \"auto\" or one of {', '.join(METRES)}.")
    voices = tuple(table.get("voices", VOICES))
    if not voices or any(v not in VOICES for v in voices):
        raise UserError(f"{where}: voices = {list(voices)!r}; use a non-empty list of melody, chords, bass.")
    offset = table.get("register_offset", 0)
    if not isinstance(offset, int) or not -24 <= offset <= 24:
        raise UserError(f"{where}: register_offset = {offset!r}; use whole semitones from -24 to 24.")
    percussion = table.get("percussion", settings.percussion)
    if not isinstance(percussion, bool):
        raise UserError(f"{where}: percussion = {percussion!r}; use true (drums join lively or happy pictures) "
                        f"or false.")
    return SceneComposeSettings(metre=metre, key_map=wheel, key_map_name=wheel_name, voices=voices,
                                register_offset=offset, variation=float(settings.variation), percussion=percussion,
                                percussion_channel=int(settings.percussion_channel))
