"""The captions wing's settings: built by installation/config.py (`CaptionsConfig.settings()`) from the
validated `[captions]` section, which holds the defaults. The critic's eye is the seeing wing's
`WatchSettings` (models/seeing/settings.py)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CaptionSettings:
    """What the director needs from `[captions]` (config.toml explains each key)."""

    backend: str
    """"agents", or "llm": an OpenAI-compatible server at `llm_url` may rewrite the facets."""
    mode: str
    """One of models.captions.agents.MODES."""
    llm_url: str
    llm_model: str
    llm_api_key: str
    llm_timeout_s: float
    va_threshold: float
    min_hold_s: float
    max_hold_s: float
    transition_s: float
    blocklist: tuple[str, ...]
    negative_prompt: str
    default_blocklist: bool
    phrases_dir: str
    """Empty: the shared banks in scenes/phrases/."""
    diversity_window: int
    beats_per_bar: int
    critic_threshold: float
    critic_gain: float
    critic_tau_s: float
    override_hold_s: float
