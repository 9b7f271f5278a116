"""Beat- and onset-locked accent envelopes from the listener's MusicState.

The listener publishes a state every hop (~0.1 s), which alone would put an accent up to a hop late.
So the beat accent is predicted: the last state's beat phase and tempo are run forward to the time of
the frame being drawn, and the envelope peaks on the beat itself (lag ~0 for a steady beat). The onset
accent reacts to what is not on the grid: a rise in onset strength between two states kicks it.

Both envelopes have an instant attack and a short exponential decay, so the frame changes most on the
frame of the hit. Renderer thread only.
"""
from __future__ import annotations

import math

from installation.records import MusicState


def _finite(x: float, default: float = 0.0) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else default


class AccentTracker:
    """`update(music, t_s)` -> (beat, onset), each 0..1, for the frame drawn at render time `t_s`.

    `impulse` is the energy that arrived since the previous frame (a beat crossed, an onset rise
    seen): accents that step the picture forward use it, so the picture changes on the hit and not
    while an envelope decays."""

    def __init__(self, beat_decay_s: float = 0.06, onset_decay_s: float = 0.06) -> None:
        self.beat_decay_s = beat_decay_s
        self.onset_decay_s = onset_decay_s
        self._state_t: float | None = None
        self._seen_at_s = 0.0
        self._prev_onset = 0.0
        self._rise_ref = 0.05
        self._kick = 0.0
        self._kick_at_s = -1e9
        self.since_beat_s = 1e9
        """Seconds since the predicted beat (for accents that grow after the hit, e.g. a ring)."""
        self.impulse = 0.0
        self.impulse_onset = 0.0
        """Of `impulse`, the part from onsets (the rest came from the beat)."""

    def update(self, music: MusicState, t_s: float) -> tuple[float, float]:
        self.impulse = self.impulse_onset = 0.0
        if music.silent:
            self._prev_onset = 0.0
            self.since_beat_s = 1e9
            return 0.0, 0.0
        if music.t_s != self._state_t:                       # a fresh state from the listener
            self._state_t = music.t_s
            self._seen_at_s = t_s
            onset = min(1.0, max(0.0, _finite(music.onset_strength)))
            rise = onset - self._prev_onset
            self._prev_onset = onset
            if rise > 0:
                self._rise_ref += 0.1 * (rise - self._rise_ref)
                self._kick = min(1.0, rise / (2.0 * self._rise_ref + 1e-3))
                self._kick_at_s = t_s
                self.impulse_onset = self._kick
                self.impulse += self._kick
        elapsed_s = min(2.0, max(0.0, t_s - self._seen_at_s))
        onset_env = self._kick * math.exp(-max(0.0, t_s - self._kick_at_s) / self.onset_decay_s)
        tempo = _finite(music.tempo_bpm)
        conf = _finite(music.beat_confidence)
        if tempo <= 0 or conf <= 0.02:
            self.since_beat_s = 1e9
            return 0.0, onset_env
        period_s = 60.0 / tempo
        phase = _finite(music.beat_phase) % 1.0
        since_s = (phase * period_s + elapsed_s) % period_s
        gate = min(1.0, max(0.0, (conf - 0.02) / 0.25))
        if since_s < self.since_beat_s and self.since_beat_s < 1e8:   # a beat fell since the last frame
            self.impulse += gate
        self.since_beat_s = since_s
        decay_s = min(self.beat_decay_s, 0.3 * period_s)
        return gate * math.exp(-since_s / decay_s), onset_env
