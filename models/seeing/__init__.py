"""Seeing: camera frames -> content descriptors, words and valence-arousal.

The watcher stage takes an `ImageAnalyser` (models.seeing.features.ImageAnalyser) and an
`ImageVaHead` (models.seeing.va: the colour head or CLIP) to rate what the projector shows."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from installation.records import ImageState


class ImageVaHead(Protocol):
    def estimate(self, rgb: np.ndarray) -> tuple[float, float, float]:
        """(valence, arousal, confidence) of an RGB uint8 picture."""
        ...


class ImageAnalyser(Protocol):
    def analyse(self, rgb: np.ndarray, t_s: float) -> ImageState:
        """The picture's features, words and valence-arousal at `t_s`."""
        ...
