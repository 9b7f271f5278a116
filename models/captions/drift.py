"""The critic's loop: the VA of what is projected against the music's, smoothed over `critic_tau_s`,
and a nudge for the colour agent's valence target and the motion agent's arousal target while the
picture drifts. It records each correction it causes and, `CORRECTION_EFFECT_S` later, its effect."""
from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

from installation.records import VA, clamp_va

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """What the critic saw last: music VA, projected image VA, their difference and the nudge applied."""

    t_s: float
    music_va: VA
    image_va: VA
    drift_va: VA
    """music minus image, this sample."""
    smoothed_va: VA
    """The drift averaged over `critic_tau_s`."""
    nudge_va: VA
    """Added to the colour agent's valence target and the motion agent's arousal target."""
    samples: int
    corrections: int
    """Captions published because the picture drifted from the music."""


class DriftCritic:
    """The drift between picture and music, and the nudge it earns. Holds no lock: the Director
    calls it under its own."""

    CORRECTION_EFFECT_S = 10.0
    """A critic correction's effect is the drift this long after the caption it caused."""

    def __init__(self, tau_s: float, threshold: float, gain: float) -> None:
        self.tau_s = tau_s
        self.threshold = threshold
        """Drift inside this dead band (either axis) earns no push."""
        self.gain = gain
        self.kind = "colour"
        """Which image VA head rates the projection: "clip", or "colour" (colour-only, see models/captions/critic.py)."""
        self.drift: DriftRecord | None = None
        self.history: collections.deque[DriftRecord] = collections.deque(maxlen=600)
        self.smoothed: VA = (0.0, 0.0)
        self.nudge: VA = (0.0, 0.0)
        self._t_s: float | None = None
        self._samples = 0
        self._corrections = 0
        self._drifting = False
        self._open: list[dict[str, Any]] = []
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)

    def observe(self, music: VA, projected_va: tuple[float, float], t_s: float) -> None:
        """One reading of the projection; accumulates a nudge while the picture drifts from `music`."""
        image = clamp_va(*projected_va)  # a raw reading: bounded before the drift is taken from it
        drift = (music[0] - image[0], music[1] - image[1])
        tau = self.tau_s
        dt = 0.0 if self._t_s is None else min(2.0, max(0.0, t_s - self._t_s))
        self._t_s = t_s
        alpha = 1.0 if self._samples == 0 else 1.0 - math.exp(-dt / tau)
        self.smoothed = tuple(s + alpha * (d - s) for s, d in zip(self.smoothed, drift))  # type: ignore[assignment]
        threshold = self.threshold
        nudge = []
        for s, n in zip(self.smoothed, self.nudge):
            if abs(s) > threshold:  # integrate outside the dead band, so a stubborn picture gets a growing push
                n += self.gain * (s - math.copysign(threshold, s)) * dt / tau * 4.0
            else:
                n *= math.exp(-dt / (4.0 * tau))
            nudge.append(max(-0.6, min(0.6, n)))
        self.nudge = (nudge[0], nudge[1])
        self._samples += 1
        drifting = max(abs(self.smoothed[0]), abs(self.smoothed[1])) > threshold
        if drifting != self._drifting:
            self._drifting = drifting
            log.debug("critic: picture %s the music (music VA %+.2f %+.2f, image VA %+.2f %+.2f, nudge %+.2f %+.2f)",
                      "drifts from" if drifting else "is back with", *music, *image, *self.nudge)
        self.drift = DriftRecord(t_s=t_s, music_va=music, image_va=image, drift_va=drift,
                                 smoothed_va=self.smoothed, nudge_va=self.nudge, samples=self._samples,
                                 corrections=self._corrections)
        self.history.append(self.drift)
        self._note_effects(t_s)

    def correct(self, t_s: float, facets: Mapping[str, str]) -> None:
        """A caption was published because of the drift: note it, to measure its effect later."""
        self._corrections += 1
        correction = {"at_s": round(t_s, 3), "kind": self.kind,
                      "drift_before": [round(x, 3) for x in self.smoothed],
                      "nudge": [round(x, 3) for x in self.nudge], "colour": facets.get("colour", ""),
                      "motion": facets.get("motion", "")}
        self._open.append(correction)
        self._events.append({**correction, "event": "correction"})
        log.debug("critic (%s) correction: drift %+.2f %+.2f, nudge %+.2f %+.2f -> colour %r, motion %r",
                  self.kind, *self.smoothed, *self.nudge, correction["colour"], correction["motion"])

    def pop_events(self) -> list[dict[str, Any]]:
        """Corrections and their measured effect since the last call."""
        events = list(self._events)
        self._events.clear()
        return events

    def _note_effects(self, t_s: float) -> None:
        keep = []
        for c in self._open:
            if t_s - c["at_s"] < self.CORRECTION_EFFECT_S:
                keep.append(c)
                continue
            before, after = c["drift_before"], [round(x, 3) for x in self.smoothed]
            event = {**c, "event": "effect", "drift_after": after,
                     "improved": math.hypot(*after) < math.hypot(*before)}
            self._events.append(event)
            log.debug("critic (%s) correction at %.1f s: drift %+.2f %+.2f -> %+.2f %+.2f after %.0f s",
                      self.kind, c["at_s"], *before, *after, self.CORRECTION_EFFECT_S)
        self._open = keep
