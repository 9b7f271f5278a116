"""The image VA head's settings, built by installation/config.py from the validated [watch] section
(where the defaults live)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WatchSettings:
    """Which head rates a picture's valence-arousal, and the CLIP files when it is CLIP."""

    image_va_head: Literal["colour", "clip"]
    clip_model: str
    clip_checkpoint: str
    clip_head: str
