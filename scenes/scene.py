"""A scene is a complete look-and-sound, stored as data in scenes/presets/NAME.toml.

Common keys are validated here; each room reads its own table (`[captions]`, `[render]`,
`[compose]`, ...) through `Scene.table(name)` and validates it itself, so rooms can grow their
tables without touching this file. Standard library only.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
COMMON_KEYS = {"name", "title", "description", "style", "negative_prompt", "palette_bias",
               "tempo_range_bpm", "programs", "channels"}
VOICES = ("melody", "chords", "bass")


class SceneError(ValueError):
    """A preset is missing or invalid; the message names the file and key."""


@dataclass(frozen=True)
class Scene:
    name: str
    title: str = ""
    description: str = ""
    style: str = ""
    negative_prompt: str = ""
    palette_bias: tuple[float, float] = (0.0, 0.0)
    """(valence, arousal) added to what the music says before choosing colours, each in [-0.5, 0.5]."""
    tempo_range_bpm: tuple[float, float] = (60.0, 140.0)
    programs: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({"melody": 0, "chords": 48, "bass": 32}))
    """General MIDI program (0-127) per voice."""
    channels: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({"melody": 0, "chords": 1, "bass": 2}))
    """MIDI channel (0-15) per voice."""
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    path: Path | None = None

    def table(self, name: str) -> Mapping[str, Any]:
        """A room's own table from the preset, e.g. scene.table("captions"); empty when absent."""
        return self.tables.get(name, MappingProxyType({}))


def available_scenes(presets_dir: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in presets_dir.glob("*.toml"))


def load_scene(name_or_path: str | Path, presets_dir: Path = PRESETS_DIR) -> Scene:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = presets_dir / f"{name_or_path}.toml"
    if not path.is_file():
        names = ", ".join(available_scenes(presets_dir)) or "none"
        raise SceneError(f"scene '{name_or_path}' not found at {path}; available scenes: {names}.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SceneError(f"{path} is not valid TOML ({exc}); fix that line.") from None
    return parse_scene(data, path)


def parse_scene(data: dict[str, Any], path: Path | None = None) -> Scene:
    where = str(path) if path else "scene"
    common = {k: v for k, v in data.items() if not isinstance(v, dict) or k in ("programs", "channels")}
    unknown = set(common) - COMMON_KEYS
    if unknown:
        raise SceneError(f"{where}: unknown key '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(COMMON_KEYS))}.")
    name = common.get("name") or (path.stem if path else "")
    if not isinstance(name, str) or not name:
        raise SceneError(f"{where}: 'name' must be a non-empty string.")
    for key in ("title", "description", "style", "negative_prompt"):
        if not isinstance(common.get(key, ""), str):
            raise SceneError(f"{where}: '{key}' must be a string, not {common[key]!r}.")
    bias = tuple(common.get("palette_bias", (0.0, 0.0)))
    if len(bias) != 2 or not all(isinstance(x, (int, float)) and -0.5 <= x <= 0.5 for x in bias):
        raise SceneError(f"{where}: palette_bias = {common.get('palette_bias')!r}; use [valence, arousal], each in -0.5..0.5.")
    tempo = tuple(common.get("tempo_range_bpm", (60.0, 140.0)))
    if len(tempo) != 2 or not all(isinstance(x, (int, float)) for x in tempo) or not 20 <= tempo[0] < tempo[1] <= 300:
        raise SceneError(f"{where}: tempo_range_bpm = {common.get('tempo_range_bpm')!r}; use [low, high] with 20 <= low < high <= 300.")
    programs = _voice_map(common.get("programs", {}), 0, 127, "programs", where, {"melody": 0, "chords": 48, "bass": 32})
    channels = _voice_map(common.get("channels", {}), 0, 15, "channels", where, {"melody": 0, "chords": 1, "bass": 2})
    tables = {k: MappingProxyType(dict(v)) for k, v in data.items() if isinstance(v, dict) and k not in ("programs", "channels")}
    return Scene(name=name, title=common.get("title", name), description=common.get("description", ""),
                 style=common.get("style", ""), negative_prompt=common.get("negative_prompt", ""),
                 palette_bias=(float(bias[0]), float(bias[1])),
                 tempo_range_bpm=(float(tempo[0]), float(tempo[1])),
                 programs=MappingProxyType(programs), channels=MappingProxyType(channels),
                 tables=MappingProxyType(tables), path=path)


def _voice_map(raw: Any, low: int, high: int, key: str, where: str, default: dict[str, int]) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise SceneError(f"{where}: '{key}' must be a table of voice = number.")
    result = dict(default)
    for voice, value in raw.items():
        if voice not in VOICES:
            raise SceneError(f"{where}: {key}.{voice} is not a voice; voices are {', '.join(VOICES)}.")
        if not isinstance(value, int) or not low <= value <= high:
            raise SceneError(f"{where}: {key}.{voice} = {value!r}; use an integer {low}-{high}.")
        result[voice] = value
    return result


class FileWatcher:
    """Live reload: which of these files (and presets) changed since the last check.

    Polls size and mtime (no inotify, so it works on every filesystem and in containers); the
    caller validates what changed and keeps the running version when the edit is bad.
    """

    def __init__(self, paths: list[Path], presets_dir: Path | None = PRESETS_DIR) -> None:
        self._paths = [Path(p) for p in paths]
        self._presets_dir = presets_dir
        self._seen = self._scan()

    def _scan(self) -> dict[Path, tuple[int, int]]:
        files = list(self._paths)
        if self._presets_dir is not None:
            files += sorted(self._presets_dir.glob("*.toml"))
        seen = {}
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            seen[path] = (st.st_mtime_ns, st.st_size)
        return seen

    def changed(self) -> list[Path]:
        """Files added, edited or removed since the last call."""
        now = self._scan()
        changed = sorted({p for p in now if self._seen.get(p) != now[p]} | (set(self._seen) - set(now)))
        self._seen = now
        return changed


def reload_scene(name: str, current: Scene, presets_dir: Path = PRESETS_DIR) -> tuple[Scene, str | None]:
    """(the scene to run, error) after an edit: a bad edit keeps `current` and says why."""
    try:
        return load_scene(name, presets_dir), None
    except (SceneError, OSError) as exc:
        return current, str(exc)
