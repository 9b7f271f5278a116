"""Captions: music -> prompts for the renderer, with the reasons behind each phrase.

describe.py  what the music says, in words and tags (the facet agents' input)
banks.py     the shared phrase banks of scenes/phrases/ and their validation
scenes.py    what a scene preset's [captions] table says: its settings and its own phrases
agents.py    the five facet agents and how their candidates become one set of facets
director.py  the Director: when to caption (bar lines, holds), the LLM hand-off, the prompt
drift.py     the critic's loop: the projection's VA against the music's, a nudge for colour and motion
critic.py    which eye the critic judges the projection with
settings.py  the wing's typed settings, built by installation/config.py
safety.py, embed.py, llm.py: the content filter and CLIP tokens, MiniLM vectors, the LLM backend

The captioner stage (installation/stages/captioner.py) takes a `Captioner`; the Director is one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # naming the door imports nothing heavy
    from installation.records import Caption, MusicState


class Captioner(Protocol):
    """What the captioner stage asks of a captioner; every call returns promptly."""

    def set_scene(self, scene: Any) -> None:
        """Switch presets; the next `update` captions the new scene without waiting."""

    def override_prompt(self, text: str, t_s: float) -> Caption:
        """The operator's prompt (or, when refused, the agents' caption saying so)."""

    def critique(self, projected_va: tuple[float, float], t_s: float) -> None:
        """The VA of what is projected now."""

    def pop_critic_events(self) -> list[dict[str, Any]]:
        """The critic's corrections and their measured effect since the last call (for the show log)."""

    def update(self, state: MusicState, t_s: float) -> Caption | None:
        """A new caption on meaningful musical change, else None."""
