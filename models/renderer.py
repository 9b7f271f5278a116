"""The renderer interface the renderer stage drives: a procedural source, or a diffusion pass over it."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from installation.records import Caption, MusicState


@runtime_checkable
class Renderer(Protocol):
    """Makes one RGB uint8 frame (H, W, 3) per call. Called from the renderer thread only.

    `init_rgb` is the picture to start from: ignored by a source (the procedural layer), required
    by a pass that transforms a picture (img2img diffusion), which gets the procedural frame.
    """

    name: str

    def prepare(self, scene) -> None:
        """Take a scene's look (palette rules, motifs, strengths); called again on a scene change."""
        ...

    def update_prompt(self, caption: Caption) -> None:
        """A new caption: blend towards it over `caption.transition_s`."""
        ...

    def render(self, music: MusicState, t_s: float, init_rgb: np.ndarray | None = None) -> np.ndarray: ...

    def close(self) -> None: ...
