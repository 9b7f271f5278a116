"""Composing: pictures -> music, by retrieval over the corpus, self-refinement, a learned model or an LLM.

The composer stage takes a `Planner`: models.composing.composer.Composer, or one of its wrappers
(models.composing.llm.LlmComposer, models.composing.refine.RefiningComposer)."""
from __future__ import annotations

from typing import Any, Protocol

from installation.records import ImageState, Plan


class Planner(Protocol):
    def set_scene(self, scene: Any) -> None:
        """The scene to compose for from the next phrase on."""
        ...

    def plan(self, image: ImageState, start_s: float, tempo_bpm: float | None = None) -> Plan:
        """The next bar(s) from `start_s` for the picture; `tempo_bpm` an outside tempo, or None."""
        ...
