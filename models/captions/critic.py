"""Which eye the caption critic judges the projection with.

The colour agent picks palettes, and the colour head (models/seeing/va.py, ColourVA) reads VA from
colour statistics: a critic that used the colour head alone would mostly check the palette it was
given, so it is circular. With CLIP weights present (`watch.clip_checkpoint`) the critic uses the
CLIP head, which judges the whole picture (content, shapes, texture); without them it says plainly
that it is colour-only, at start-up (`check`, the show log) and in the captions' reasons.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.seeing.settings import WatchSettings

log = logging.getLogger(__name__)

COLOUR_ONLY = ("colour-only: no CLIP weights (watch.clip_checkpoint), so the critic judges the projection with "
               "the colour model that also shaped the palette")


def critic_kind(eye: WatchSettings) -> tuple[str, str]:
    """("clip" | "colour", one line saying why), without loading anything."""
    checkpoint = eye.clip_checkpoint
    if eye.image_va_head == "clip" or (checkpoint and Path(checkpoint).expanduser().is_file()):
        return "clip", f"CLIP head ({eye.clip_model}, {Path(checkpoint).name or 'configured'})"
    return "colour", COLOUR_ONLY


def build_critic_va(eye: WatchSettings, image_va: Any) -> tuple[Any, str, str]:
    """(estimator, kind, description) for the critic. Reuses `image_va` when it already is the CLIP
    head; loads one from `watch.clip_checkpoint` when the watcher runs the colour head but the
    weights are there; otherwise the colour head, said to be colour-only."""
    kind, why = critic_kind(eye)
    if kind == "clip" and getattr(image_va, "name", "") != "clip":
        from models.seeing.va import ClipVA
        try:
            return ClipVA(eye.clip_checkpoint, eye.clip_model, head=eye.clip_head), kind, why
        except Exception as exc:  # weights that do not load leave the critic colour-only, said so
            log.warning("critic: CLIP weights %s do not load (%s); the critic is colour-only",
                        eye.clip_checkpoint, exc)
            return image_va, "colour", COLOUR_ONLY
    return image_va, kind, why


def critic_for(director: Any, eye: WatchSettings, image_va: Any, show_log: Any = None) -> Any:
    """Composition-root helper: the critic's estimator, told to the director, the log and the show log."""
    estimator, kind, why = build_critic_va(eye, image_va)
    director.set_critic(kind)
    log.info("caption critic: %s", why)
    if show_log is not None:
        show_log.write("critic", event="head", head=kind, note=why)
    return estimator
