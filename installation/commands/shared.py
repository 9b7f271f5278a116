"""What several commands share: their figures printed and written as JSON, and the scene they are
asked for (a scene that does not load is one sentence)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from installation.errors import UserError


def write_json(path: Path, figures: Any, indent: int = 2) -> None:
    """`figures` as JSON into `path` (its folder made); UserError when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=indent) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc}); choose a writable path for --json.") from None


def print_figures(figures: Any, path: Path | None, indent: int = 2) -> int:
    """Print `figures` as JSON and, with `path` (--json), write them there too; the exit code, 0."""
    print(json.dumps(figures, indent=indent))
    if path is not None:
        write_json(path, figures, indent)
    return 0


def scene_named(cfg: Any, name: str | None) -> Any:
    """The scene `name` (default: installation.scene)."""
    from scenes.scene import SceneError, load_scene
    try:
        return load_scene(name or cfg.installation.scene)
    except SceneError as exc:
        raise UserError(str(exc)) from None
