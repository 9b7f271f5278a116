"""Listening: live audio -> onsets, beats, rolling descriptors and valence-arousal.

The listener stage takes a `Listener` (models.listening.va.Listener, built by build_listener)."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from installation.records import MusicState


class Listener(Protocol):
    def feed(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the listener's rate, as they arrive."""
        ...

    def state(self, t_s: float) -> MusicState:
        """What the music is now: descriptors, valence-arousal, tempo."""
        ...
