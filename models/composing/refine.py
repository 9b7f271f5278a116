"""Self-refinement: play a phrase to ourselves, rate it, revise it toward the picture, play it out.

At each phrase start the composer plans the whole phrase as a preview, `render` turns it into
audio (the built-in synth; injected by the installation layer, since models/ never imports
hardware/), `rate` gives the music's (valence, arousal) from the project's own music VA head
(models.listening.va), and the composer's revision moves by the error:
  - lift (valence): articulation (detached when happier), register, the light groove;
  - drive (arousal): tempo, note density, loudness, how the chords are struck, drums.
Mode, key and melody stay, so the music is revised rather than replaced. After at most `rounds`
revisions the round rated closest to the target is played; the plan's reasons and `last` say
how many rounds ran and the rated VA before and after.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from installation.records import ImageState

log = logging.getLogger(__name__)

Render = Callable[[Sequence], np.ndarray]
"""Plans (a phrase, times as planned) -> mono float32 audio at the rate `rate` expects."""
Rate = Callable[[np.ndarray], tuple[float, float]]
"""Mono audio -> (valence, arousal) in [-1, 1]."""

GAIN = 0.9
"""Revision per round = GAIN x (target - rated); revisions stay within +-MAX_REVISION."""
MAX_REVISION = 0.9


@dataclass
class Refinement:
    target: tuple[float, float]
    rated: list[tuple[float, float]] = field(default_factory=list)
    revisions: list[tuple[float, float]] = field(default_factory=list)
    chosen: int = 0

    @property
    def before(self) -> tuple[float, float]:
        return self.rated[0]

    @property
    def after(self) -> tuple[float, float]:
        return self.rated[self.chosen]

    def distance(self, i: int) -> float:
        return math.dist(self.rated[i], self.target)

    @property
    def moved_toward(self) -> bool:
        return self.distance(self.chosen) < self.distance(0)

    def reason(self) -> str:
        lift, drive = self.revisions[self.chosen]
        return (f"self-refinement: {len(self.rated) - 1} rounds; rated V{self.before[0]:+.2f} A{self.before[1]:+.2f} "
                f"before, V{self.after[0]:+.2f} A{self.after[1]:+.2f} after (round {self.chosen}), target "
                f"V{self.target[0]:+.2f} A{self.target[1]:+.2f}; revised lift {lift:+.2f} (articulation, register, "
                f"groove), drive {drive:+.2f} (tempo, density, loudness, drums)")


class RefiningComposer:
    """A models.composing.composer.Composer that refines each phrase before it is played. Same `plan` call.

    Called from the composer thread only; a phrase start costs (rounds + 1) renders and ratings."""

    def __init__(self, composer, render: Render, rate: Rate, rounds: int = 2) -> None:
        self.composer = composer
        self.render = render
        self.rate = rate
        self.rounds = int(rounds)
        self.last: Refinement | None = None
        self.history: list[Refinement] = []

    def __getattr__(self, name):  # programs(), set_scene(), table, ... of the wrapped composer
        return getattr(self.composer, name)

    def _preview(self, image: ImageState, start_s: float, tempo_bpm: float | None) -> list:
        composer = self.composer
        plans = [composer.plan(image, start_s, tempo_bpm)]
        while not composer.at_phrase_start:
            plans.append(composer.plan(image, plans[-1].end_s, tempo_bpm))
        # Voices as the scene plays them, even in the middle of a show.
        plans[0] = replace(plans[0], program_changes=composer.programs())
        return plans

    def plan(self, image: ImageState, start_s: float, tempo_bpm: float | None = None):
        composer = self.composer
        if self.rounds <= 0 or not composer.at_phrase_start:
            return composer.plan(image, start_s, tempo_bpm)
        target = (image.valence, image.arousal)
        saved = composer.snapshot()
        revision = (0.0, 0.0)
        result = Refinement(target)
        try:
            for r in range(self.rounds + 1):
                composer.restore(saved)
                composer.revision = revision
                audio = self.render(self._preview(image, start_s, tempo_bpm))
                rated = self.rate(audio)
                result.rated.append(rated)
                result.revisions.append(revision)
                if r == self.rounds:
                    break
                revision = (float(np.clip(revision[0] + GAIN * (target[0] - rated[0]), -MAX_REVISION, MAX_REVISION)),
                            float(np.clip(revision[1] + GAIN * (target[1] - rated[1]), -MAX_REVISION, MAX_REVISION)))
        except Exception:  # a failing renderer or rater must not stop the music: plan unrefined
            log.exception("self-refinement failed; the phrase plays unrefined")
            composer.restore(saved)
            return composer.plan(image, start_s, tempo_bpm)
        result.chosen = min(range(len(result.rated)), key=result.distance)
        composer.restore(saved)
        composer.revision = result.revisions[result.chosen]
        plan = composer.plan(image, start_s, tempo_bpm)
        self.last = result
        self.history.append(result)
        del self.history[:-200]
        log.info("%s", result.reason())
        return replace(plan, reasons=plan.reasons + (result.reason(),))
