"""Builds the composer the config asks for: used by the composition root and the compose commands."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.composing.composer import Composer
    from models.composing.llm import LlmComposer
    from models.composing.refine import RefiningComposer


def refinement_callables(cfg, sample_rate_hz: int = 16000):
    """(render, rate) for models.composing.refine: the built-in synth (hardware.sound.offline) and the
    configured music VA head (listen.va_head) through models.listening.va's offline path, as the
    listener would hear it."""
    from hardware.sound.offline import render_internal
    from models.listening.va import analyze_signal

    def render(plans):
        return render_internal(plans, sample_rate_hz, offset_s=plans[0].start_s)

    def rate(audio):
        analysis = analyze_signal(audio, sample_rate_hz, cfg.listen.settings())
        return analysis.valence, analysis.arousal
    return render, rate


def build_composer(cfg, scene, seed: int, table=None, index=None, live: bool = False):
    """The composer the config asks for: corpus or learned head, LLM backend, self-refinement.
    `live`: the LLM is asked in the background (a phrase never waits for it)."""
    from models.composing.composer import Composer
    composer: Composer | LlmComposer | RefiningComposer
    composer = Composer(cfg.compose.settings(), scene, seed=seed, table=table, index=index)
    composer.wait_for_words = not live  # live, the first phrases never wait for the sentence model
    if cfg.compose.head == "learned":
        from models.composing.learned import LearnedMelody
        composer.melody_source = LearnedMelody(cfg.compose.learned_weights, seed=seed, wait_for_words=not live)
    if cfg.compose.backend == "llm":
        from models.composing.llm import LlmComposer
        composer = LlmComposer(composer, cfg.compose.llm_url, cfg.compose.llm_model, cfg.compose.llm_timeout_s,
                               cfg.compose.llm_retries, cfg.compose.llm_vision, background=live,
                               api_key=cfg.compose.llm_api_key)
    if cfg.compose.refine_rounds > 0:
        from models.composing.refine import RefiningComposer
        render, rate = refinement_callables(cfg)
        composer = RefiningComposer(composer, render, rate, cfg.compose.refine_rounds)
    return composer
