"""What a scene sets for the diffusion pass: its style and negative prompt, and from its `[render]`
table the strength range, the latent feedback and the render size (validated, one sentence each)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from installation.errors import UserError


@dataclass(frozen=True)
class SceneLook:
    style: str
    negative: str
    strength_range: tuple[float, float]
    feedback: float
    width: int
    height: int


def read_scene(scene, strength_range: tuple[float, float], feedback: float, width: int, height: int) -> SceneLook:
    """The scene's values, the given ones where its table is silent; UserError names the bad key."""
    table = dict(scene.table("render")) if scene is not None else {}
    where = f"{getattr(scene, 'path', None) or getattr(scene, 'name', 'scene')} [render]"
    lo = _number(table, "strength_min", strength_range[0], 0.05, 1.0, where)
    hi = _number(table, "strength_max", strength_range[1], 0.05, 1.0, where)
    if lo > hi:
        raise UserError(f"{where}: strength_min = {lo} is above strength_max = {hi}; swap them.")
    feedback = _number(table, "feedback", feedback, 0.0, 0.95, where)
    width = int(_number(table, "width", width, 64, 4096, where))
    height = int(_number(table, "height", height, 64, 4096, where))
    if ("width" in table or "height" in table) and (width % 8 or height % 8):
        raise UserError(f"{where}: width and height must be multiples of 8 (got {width}x{height}).")
    return SceneLook(style=getattr(scene, "style", "") or "", negative=getattr(scene, "negative_prompt", "") or "",
                     strength_range=(lo, hi), feedback=feedback, width=width, height=height)


def _number(table: dict[str, Any], key: str, default: float, low: float, high: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} = {value!r}; use a number from {low:g} to {high:g}.")
    return float(value)
