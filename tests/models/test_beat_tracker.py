"""The beat tracker against riffs whose own period competes with the beat's: a grouping of 3+3+2
eighths over a backbeat reads the beat (not two thirds of it), and a few bars of a related period do
not move a tempo that has held."""
from __future__ import annotations

import numpy as np
import pytest

from models.listening.beat_tracker import BeatTracker

FRAME_RATE_HZ = 22050 / 256


def envelope(hits: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """Flux per hop: each (time s, strength) hit spread over two hops, as an attack lands."""
    flux = np.full(int(seconds * FRAME_RATE_HZ), 0.01)
    for t_s, strength in hits:
        i = int(t_s * FRAME_RATE_HZ)
        if i + 1 < flux.size:
            flux[i] += strength
            flux[i + 1] += 0.4 * strength
    return flux


def riff(bpm: float, bars: int, start_s: float = 0.0, accents: tuple[int, ...] = (0, 3, 6)) -> list[tuple[float, float]]:
    """Kick and guitar on the riff's accented eighths, snare on beats 2 and 4, soft eighths between."""
    eighth_s = 30.0 / bpm
    hits = []
    for bar in range(bars):
        for e in range(8):
            t_s = start_s + (bar * 8 + e) * eighth_s
            strength = 1.0 if e in accents else 0.15
            if e in (2, 6):
                strength += 0.6
            hits.append((t_s, strength))
    return hits


def feed(tracker: BeatTracker, flux: np.ndarray) -> list[float]:
    tempi = []
    for i, f in enumerate(flux):
        tracker.push(float(f), (i + 1) / FRAME_RATE_HZ)
        tempi.append(tracker.tempo_bpm)
    return tempi


@pytest.mark.parametrize("bpm", [150.0, 170.0, 190.0])
def test_a_riff_grouped_three_three_two_reads_the_beat(bpm):
    seconds = 16.0
    tempi = feed(BeatTracker(FRAME_RATE_HZ), envelope(riff(bpm, int(seconds * bpm / 240)), seconds))
    late = np.array(tempi[int(6.0 * FRAME_RATE_HZ):])
    assert np.all(np.abs(late / bpm - 1.0) <= 0.02), f"read {np.unique(np.round(late))} for {bpm}"


def test_a_few_bars_of_a_related_period_do_not_move_a_held_tempo():
    bpm = 160.0
    steady = riff(bpm, 40, accents=(0, 2, 4, 6))  # 15 s of a plain rock beat
    end_s = 40 * 240 / bpm
    dotted_s = 3 * 30.0 / bpm  # then 2 s of hits every dotted quarter alone
    stray = [(end_s + k * dotted_s, 1.0) for k in range(int(2.0 / dotted_s))]
    tempi = feed(BeatTracker(FRAME_RATE_HZ), envelope(steady + stray, end_s + 2.0))
    late = np.array(tempi[int(6.0 * FRAME_RATE_HZ):])
    assert np.all(np.abs(late / bpm - 1.0) <= 0.02), f"read {np.unique(np.round(late))}"
