"""The mood a visitor's comment asks for, as valence-arousal, so it moves tempo, mode and density.

The comment is embedded with the same sentence model as the pictures and tunes
(models.composing.index.TextEncoder) and compared with the nine mood phrases of the valence-arousal
grid (models.seeing.content.MOODS); a softmax over those similarities weights the cells' centres.
A comment that reads like none of them (all similarities within `FLAT_MARGIN`) asks for nothing.
"""
from __future__ import annotations

import numpy as np

from models.seeing.content import MOODS

TEMPERATURE = 0.05
"""Softmax temperature over cosine similarities: 0.05 lets the nearest cell or two decide."""
FLAT_MARGIN = 0.05
"""A comment whose best mood similarity is within this of the mean reads as no mood at all."""


def comment_va(text: str, encoder) -> tuple[float, float] | None:
    """(valence, arousal) the comment asks for, or None when it reads as no mood."""
    text = text.strip()
    if not text:
        return None
    cells = list(MOODS)
    vectors = encoder.encode([text] + [f"{MOODS[c]} music" for c in cells])
    sims = vectors[1:] @ vectors[0]
    if float(sims.max() - sims.mean()) < FLAT_MARGIN:
        return None
    weights = np.exp((sims - sims.max()) / TEMPERATURE)
    weights /= weights.sum()
    centres = np.array([(0.67 * v, 0.67 * a) for v, a in cells], dtype=float)
    v, a = weights @ centres
    return float(v), float(a)
