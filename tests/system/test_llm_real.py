"""The LLM captions and composer against a real small model (SmolLM2-135M) on a real local server.

Behaviour, not quality: an answer arrives and is used, or the fallback is taken with a counted
reason; no published caption carries the prompt's instructions; no melody copied from the prompt
is credited to the model. The server is real (see the `real_llm` fixture); answers take seconds.
"""
from __future__ import annotations

import pytest

from installation.config import CaptionsConfig, ComposeConfig
from installation.records import ImageState, MusicState
from models.captions.llm import _ECHO, LlmFacets
from models.captions.banks import FACETS
from models.captions.director import Director
from models.composing.composer import Composer
from models.composing.llm import InvalidAbc, LlmComposer, abc_to_phrase
from models.language.probe import describe_llm_server
from scenes.scene import load_scene
from tests.waiting import wait_for

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(340)]  # under the 360 s hang watchdog

ANSWER_S = 120.0
"""Per answer: 160 tokens at a few tokens a second on a shared 2-core machine."""


class Desc:
    text = "slow quiet piano in a minor key, soft and sad, about 60 bpm"


DRAFTS = {"scene": "misty lake at dawn", "motion": "slow drifting mist", "style": "soft watercolour",
          "colour": "grey blue and silver", "composition": "wide low horizon"}


def test_check_sees_that_the_server_takes_a_schema(real_llm, request):
    line = describe_llm_server(real_llm, "SmolLM2-135M-Instruct.Q4_1", timeout_s=ANSWER_S)
    assert "answers" in line and "JSON schema: taken" in line
    if request.node.callspec.params.get("real_llm", "transformers") == "llama.cpp":
        assert "ABC grammar: taken" in line
    else:
        assert "ABC grammar: refused (HTTP 400" in line  # tools/gguf_chat_server.py has no GBNF


def test_one_caption_call_answers_or_fails_with_a_reason(real_llm):
    llm = LlmFacets(real_llm, "smollm2", timeout_s=ANSWER_S)
    llm.submit(1, Desc(), DRAFTS)
    result = wait_for(lambda: llm.poll(1), ANSWER_S + 10, interval_s=0.2)
    llm.close()
    assert result is not None, "no result from the worker"
    assert llm.stats["requests"] == 1 and llm.stats["ok"] + llm.stats["failed"] == 1
    if result.facets is None:
        assert result.error  # counted, with its reason
    else:
        assert set(result.facets) == set(FACETS)
        assert not any(_ECHO.echo(v) for v in result.facets.values())
        assert dict(result.facets) != DRAFTS


def test_the_director_publishes_only_clean_captions_from_a_real_model(real_llm):
    """The director and the one-call backend, on a clock that waits for each answer."""
    llm = LlmFacets(real_llm, "smollm2", timeout_s=ANSWER_S)
    llm._failures_before_rest = 100  # every request is a sample here, not a reason to rest
    cfg = CaptionsConfig(backend="llm", llm_url=real_llm, llm_model="smollm2", llm_timeout_s=30.0, min_hold_s=0.3).settings()
    director = Director(cfg, load_scene("nocturne"), llm=llm)
    captions, t_s = [], 0.0
    try:
        while llm.stats["requests"] < 2 or llm.stats["ok"] + llm.stats["failed"] < llm.stats["requests"] \
                or llm._results:
            v = 0.6 if int(t_s) % 2 else -0.6
            state = MusicState(t_s=t_s, valence=v, arousal=0.2, mode="major" if v > 0 else "minor",
                               loudness_dbfs=-20, silent=False, section_change=True)
            caption = director.update(state, t_s)
            if caption is not None:
                captions.append(caption)
            answered = llm.stats["ok"] + llm.stats["failed"]
            if answered < llm.stats["requests"] or llm._request is not None:
                assert wait_for(lambda: llm.stats["ok"] + llm.stats["failed"] > answered, ANSWER_S + 10, 0.2)
            else:
                t_s += 0.02
            assert t_s < 60, "the director stopped asking"
    finally:
        director.close()
    assert len(captions) >= 2
    for c in captions:
        assert c.source in ("agents", "llm")
        for f in FACETS:
            assert not _ECHO.echo(c.facets[f]), f"{f} echoes the instructions: {c.facets[f]!r}"
    llm_captions = sum(c.source == "llm" for c in captions)
    # Each answer the director did not use is counted as a failure (unusable, or handed back the drafts).
    assert llm_captions <= llm.stats["ok"]
    assert llm.stats["ok"] + llm.stats["failed"] == llm.stats["requests"]


def test_the_composer_sings_the_models_melody_or_falls_back_with_a_reason(real_llm):
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=2)
    llm = LlmComposer(composer, real_llm, "smollm2", timeout_s=ANSWER_S, retries=0, vision=False)
    picture = ImageState(t_s=0.0, valence=0.5, arousal=-0.3, brightness=0.6, dominant_hues_deg=(200.0,),
                         description="A calm picture of the sea under an open sky.")
    written = []
    write = llm._write

    def keep(image, frame, preview, example, started, budget):
        melody, why = write(image, frame, preview, example, started, budget)
        written.append((melody, example, preview))
        return melody, why
    llm._write = keep  # type: ignore[method-assign]
    plan = llm.plan(picture, 0.0)
    assert plan.events and llm.stats["phrases"] == 1
    assert llm.stats["written"] + llm.stats["fallbacks"] == 1
    if llm.stats["fallbacks"]:
        assert llm.last_error and any("the corpus composer plays this phrase" in r for r in plan.reasons)
    else:
        melody, example, preview = written[0]
        try:
            shown = abc_to_phrase(example, preview.key, preview.metre)
        except InvalidAbc:
            shown = ()
        assert [n for n in melody if n[0] is not None] != [n for n in shown if n[0] is not None]
        assert any(r.startswith("melody written by the LLM smollm2") for r in plan.reasons)


def test_a_server_without_a_schema_gets_free_text(real_llm, request):
    """The transformers route can refuse `response_format` (as some servers do): the client asks
    again without it and keeps to free text."""
    if request.node.callspec.params.get("real_llm", "transformers") != "transformers":
        pytest.skip("llama.cpp's server always takes a schema")
    from tests.conftest import _local_llm
    with _local_llm().serve("smollm2", "transformers", schema=False, max_tokens=60, ready_timeout_s=200) as url:
        assert "JSON schema: refused (HTTP 400" in describe_llm_server(url, "smollm2", timeout_s=ANSWER_S)
        llm = LlmFacets(url, "smollm2", timeout_s=ANSWER_S)
        llm.submit(1, Desc(), DRAFTS)
        result = wait_for(lambda: llm.poll(1), ANSWER_S + 10, interval_s=0.2)
        llm.close()
    assert result is not None and llm.constrained is False
    assert "refuses" not in (result.error or "")  # the refusal itself is not the failure


def test_abc_by_grammar_from_a_real_llama_server_is_valid(real_llm, request):
    """Where the grammar is taken every answer is four bars of ABC in the metre; what may still fail
    is what a grammar cannot judge (a copy, fewer than three pitches)."""
    if request.node.callspec.params.get("real_llm", "transformers") != "llama.cpp":
        pytest.skip("the transformers route refuses a grammar (the free-text test above covers it)")
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=5)
    llm = LlmComposer(composer, real_llm, "smollm2", timeout_s=ANSWER_S, retries=0, vision=False)
    picture = ImageState(t_s=0.0, valence=-0.4, arousal=0.3, brightness=0.4, dominant_hues_deg=(120.0,),
                         description="A dark forest path after rain.")
    plan = llm.plan(picture, 0.0)
    assert llm.grammar and llm.stats["requests"] == 1 and llm.stats["constrained"] == 1, llm.last_error
    if llm.stats["written"]:
        assert any("ABC constrained by grammar" in r for r in plan.reasons)
    else:
        assert "copies" in llm.last_error or "different pitches" in llm.last_error, llm.last_error
