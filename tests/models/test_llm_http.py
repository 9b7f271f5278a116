"""Every LLM read has one overall deadline and a size cap, against servers that trickle or never stop."""
from __future__ import annotations

import pytest

from models.language.client import AnswerTooLarge, post_json
from tests.fakes import FakeLlm, HostileLlm
from tests.waiting import wait_for


@pytest.fixture
def trickle():
    server = HostileLlm("trickle", interval_s=0.05)
    yield server
    server.stop()


@pytest.fixture
def endless():
    server = HostileLlm("endless")
    yield server
    server.stop()


def test_a_trickling_server_meets_the_deadline(trickle):
    with pytest.raises(TimeoutError):
        post_json(trickle.url + "/chat/completions", {"x": 1}, timeout_s=0.5)
    # Bytes kept coming all along: a per-read timeout alone would never have fired.
    assert trickle.sent >= 2
    wait_for(lambda: trickle.cut_off)  # the reader hung up, long before the server's 20 s


def test_an_endless_stream_stops_at_the_size_cap(endless):
    with pytest.raises(AnswerTooLarge):
        post_json(endless.url + "/chat/completions", {"x": 1}, timeout_s=15.0, max_bytes=1 << 20)
    wait_for(lambda: endless.cut_off)
    assert endless.sent < 16 << 20  # what the socket buffers hold beyond the cap, not the 15 s stream


def test_a_good_answer_comes_back_whole():
    server = FakeLlm({"good": "hello"})
    try:
        body = post_json(server.url + "/chat/completions", {"model": "m"}, timeout_s=5.0)
        assert b"hello" in body and server.requests[0]["model"] == "m"
    finally:
        server.stop()


def test_caption_agents_fail_in_time_against_a_trickle(trickle):
    from models.captions.llm import LlmFacets
    llm = LlmFacets(trickle.url, "m", timeout_s=0.5)
    with pytest.raises(TimeoutError):
        llm._ask("music")
    wait_for(lambda: trickle.cut_off)


def test_the_composer_falls_back_against_an_endless_stream(endless):
    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from models.composing.llm import LlmComposer
    from scenes.scene import load_scene
    composer = LlmComposer(Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=2), endless.url, "m",
                           timeout_s=15.0, retries=0)
    plan = composer.plan(ImageState(t_s=0.0, valence=0.2, arousal=0.1), 0.0)
    assert composer.stats["fallbacks"] == 1 and "larger than" in composer.last_error
    assert plan.events
