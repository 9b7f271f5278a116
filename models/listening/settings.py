"""The listener's settings, built by installation/config.py from the validated [listen] section
(where the defaults live)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListenSettings:
    """What the listener, its VA head, the onset detector and the offline analysis read of [listen]."""

    hop_s: float
    window_s: float
    va_head: str
    learned_head: str
    fitted_weights: str
    smoothing_s: float
    silence_dbfs: float
    onset_hop: int
    onset_threshold: float
    beat_range_bpm: tuple[float, float]
