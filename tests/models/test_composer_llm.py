"""The LLM composer against a fake OpenAI-compatible server over real HTTP on loopback.

Whatever the server does (good ABC, fenced ABC, garbage, prose, a wrong metre, a hang, nobody
there) a plan comes back in time: the LLM's melody when valid, the corpus composer's otherwise.
"""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import skimage.data

from installation.config import ComposeConfig
from installation.records import ImageState
from models.composing.composer import Composer
from models.composing.llm import LlmComposer, abc_to_phrase, extract_abc
from scenes.scene import load_scene
from tests.fakes import FakeLlm

PICTURE = ImageState(t_s=0.0, valence=0.6, arousal=-0.2, brightness=0.6, dominant_hues_deg=(10.0,),
                     description="A calm, bright picture of open sky.")
KEY_OF_PICTURE = "C"  # red on the circle-of-fifths wheel, major-like valence: C, 4/4


def melody_for(body: dict) -> str:
    """A valid four-bar answer in the key and metre the request asks for."""
    text = body["messages"][1]["content"]
    text = text if isinstance(text, str) else text[0]["text"]
    metre = text.split("Keep M:")[1].split(",")[0]
    bar = {"4/4": "C4 E4 G4 c4 |", "3/4": "C4 E4 G4 |", "6/8": "C2 E2 G2 c4 z2 |"}[metre]
    return f"X:1\nM:{metre}\nL:1/16\nK:C\n{bar * 4}"


CONTENTS = {
    "good": melody_for,
    "fenced": lambda body: "Here is your tune:\n```abc\n" + melody_for(body) + "\n```\nEnjoy!",
    "prose": "I would write something gentle in C major with long notes.",
    "wrong_metre": "X:1\nM:5/4\nL:1/16\nK:C\nC4 E4 G4 c4 e4 | C4 E4 G4 c4 e4 | C4 E4 G4 c4 e4 | C4 E4 G4 c4 e4 |",
    "too_short": "X:1\nM:4/4\nL:1/16\nK:C\nC4 E4 G4 c4 |",
}


@pytest.fixture
def fake_llm():
    server = FakeLlm(CONTENTS)
    yield server
    server.stop()


def llm_composer(url: str, timeout_s: float = 10.0, retries: int = 1) -> LlmComposer:
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=2)
    return LlmComposer(composer, url, "tiny-vision", timeout_s=timeout_s, retries=retries)


def melody(plan) -> list[int]:
    return [e.note for e in plan.events if e.voice == "melody"]


def test_a_valid_answer_is_sung_in_the_composers_harmony_and_the_picture_is_sent(fake_llm):
    for mode in ("good", "fenced"):
        fake_llm.mode = mode
        llm = llm_composer(fake_llm.url)
        plan = llm.plan(PICTURE, 0.0, frame=skimage.data.coffee())
        assert plan.key == KEY_OF_PICTURE and any(r.startswith("melody written by the LLM tiny-vision") for r in plan.reasons)
        notes = melody(plan)
        assert notes[:4] == [notes[0], notes[0] + 4, notes[0] + 7, notes[0] + 12]  # C E G c as written
        assert {"chords", "bass"} <= {e.voice for e in plan.events}
        assert llm.stats["written"] == 1 and llm.stats["fallbacks"] == 0
    content = fake_llm.requests[-1]["messages"][1]["content"]
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "valence +0.60" in content[0]["text"] and "X:1" in content[0]["text"]  # target VA and the example
    # The other bars of the phrase follow without asking again.
    before = len(fake_llm.requests)
    t = plan.end_s
    for _ in range(3):
        t = llm.plan(PICTURE, t).end_s
    assert len(fake_llm.requests) == before


@pytest.mark.parametrize("mode", ["garbage", "prose", "wrong_metre", "too_short"])
def test_invalid_answers_are_retried_then_the_corpus_composer_plays(fake_llm, mode):
    fake_llm.mode = mode
    llm = llm_composer(fake_llm.url, retries=2)
    plan = llm.plan(PICTURE, 0.0)
    assert plan.events and melody(plan)
    assert any("the corpus composer plays this phrase" in r for r in plan.reasons)
    assert len(fake_llm.requests) == 3  # one try and two retries, no more
    assert llm.stats["fallbacks"] == 1 and llm.stats["written"] == 0


def test_a_hanging_server_costs_no_more_than_the_deadline(fake_llm):
    fake_llm.mode = "hang"
    llm = llm_composer(fake_llm.url, timeout_s=0.5, retries=3)
    started = time.monotonic()
    plan = llm.plan(PICTURE, 0.0)
    assert time.monotonic() - started < 10.0  # generous: the deadline is 0.5 s, the machine is shared
    assert plan.events and "no answer" in llm.last_error
    assert len(fake_llm.requests) == 1  # the deadline was spent on the first try


def test_nobody_listening_falls_back_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    llm = llm_composer(f"http://127.0.0.1:{port}/v1", retries=3)
    plan = llm.plan(PICTURE, 0.0)
    assert plan.events and "no answer" in llm.last_error and llm.stats["requests"] == 1


def test_abc_checks():
    assert extract_abc("Sure!\nX:1\nK:C\nCDEF|") == "X:1\nK:C\nCDEF|"
    phrase = abc_to_phrase("X:1\nM:3/4\nL:1/16\nK:G\nG4 B4 d4 | g12 | d4 B4 G4 | G8 z4 |", "G", "3/4")
    assert phrase[0] == (0, 4) and phrase[3] == (7, 12) and sum(r for _, r in phrase) == 48
    with pytest.raises(ValueError, match="two octaves"):
        abc_to_phrase("X:1\nM:4/4\nL:1/16\nK:C\nC,,,4 E4 G4 c4 | C4 E4 G4 c4 | C4 E4 G4 c4 | C4 E4 G4 c4 |", "C", "4/4")
    assert np.isfinite(len(phrase))


def test_live_the_request_runs_in_the_background_and_the_next_phrase_sings_its_answer(fake_llm):
    from tests.waiting import wait_for
    fake_llm.mode = "good"
    composer = Composer(ComposeConfig(retrieval=False, bars_ahead=4).settings(), load_scene("nocturne"), seed=2)
    llm = LlmComposer(composer, fake_llm.url, "tiny-vision", timeout_s=10.0, background=True)
    first = llm.plan(PICTURE, 0.0)  # nothing ready yet: the corpus phrase plays at once
    assert any("no melody ready yet" in r for r in first.reasons)
    assert wait_for(lambda: llm._ready is not None, 20.0)
    second = llm.plan(PICTURE, first.end_s)
    assert any(r.startswith("melody written by the LLM") for r in second.reasons)
    notes = melody(second)
    assert notes[:4] == [notes[0], notes[0] + 4, notes[0] + 7, notes[0] + 12]


def test_a_copy_of_the_example_in_the_prompt_is_not_credited_to_the_llm(fake_llm):
    def echo_example(body: dict) -> str:
        text = body["messages"][1]["content"]
        text = text if isinstance(text, str) else text[0]["text"]
        return text[text.index("X:"):]  # the example tune, handed back as the answer
    fake_llm.contents["copy"] = echo_example
    fake_llm.mode = "copy"
    llm = llm_composer(fake_llm.url, retries=0)
    plan = llm.plan(PICTURE, 0.0)
    assert llm.stats["written"] == 0 and "copies the example in the prompt" in llm.last_error
    assert any("the corpus composer plays this phrase" in r for r in plan.reasons)


def test_a_copy_of_a_corpus_tune_is_found():
    from models.language.checks import TuneCopyCheck
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=2)
    tune = next(p for ps in composer.table.by_source.values() for p in ps if sum(d is not None for d, _ in p.events) >= 10)
    check = TuneCopyCheck((p.source, p.events) for ps in composer.table.by_source.values() for p in ps)
    assert check.copied(tune.events) == tune.source
    assert check.copied(tuple((d if d is None else d + 0, r) for d, r in tune.events)) == tune.source
    assert check.copied(((0, 4), (2, 4), (4, 4), (7, 4)) * 4) in ("", )  # an arpeggio is no tune of the corpus


def grammar_melody(body: dict) -> str:
    """What a server that honours the grammar answers: the grammar's fixed header, then notes."""
    header = body["grammar"].split('"', 2)[1].encode().decode("unicode_escape")
    metre = header.split("M:")[1].split("\n")[0]
    bar = {"4/4": "C4 E4 G4 c4 |", "3/4": "C4 E4 G4 |", "6/8": "C2 E2 G2 c4 z2 |"}[metre]
    return header + " ".join([bar] * 4)[:-1] + "|]"


def test_abc_is_asked_for_by_grammar_and_a_server_that_takes_it_is_credited(fake_llm):
    fake_llm.contents["grammar"] = grammar_melody
    fake_llm.mode = "grammar"
    llm = llm_composer(fake_llm.url, retries=0)
    plan = llm.plan(PICTURE, 0.0)
    grammar = fake_llm.requests[0]["grammar"]
    assert grammar.startswith('root ::= "X:1\\nM:4/4\\nL:1/16\\nK:C\\n" bar') and "r12 ::=" in grammar
    assert any("ABC constrained by grammar" in r for r in plan.reasons)
    assert llm.stats["written"] == 1 and llm.stats["constrained"] == 1 and llm.grammar


def test_a_server_that_refuses_the_grammar_gets_free_abc_at_once(fake_llm):
    fake_llm.refuse_grammar = True
    llm = llm_composer(fake_llm.url, retries=0)
    plan = llm.plan(PICTURE, 0.0)
    assert [("grammar" in r) for r in fake_llm.requests] == [True, False]  # asked again within the same try
    assert llm.stats["written"] == 1 and not llm.grammar and any("free ABC, validated" in r for r in plan.reasons)
    llm.plan(PICTURE, plan.end_s + 100.0)
    assert "grammar" not in fake_llm.requests[-1]


def test_a_server_that_ignores_the_grammar_is_asked_for_free_abc_from_then_on(fake_llm):
    fake_llm.mode = "fenced"  # prose around the tune: the grammar's header does not open the answer
    llm = llm_composer(fake_llm.url, retries=0)
    plan = llm.plan(PICTURE, 0.0)
    assert "grammar" in fake_llm.requests[0] and not llm.grammar and llm.stats["constrained"] == 0
    assert any("free ABC, validated" in r for r in plan.reasons)  # still valid, still sung


def test_every_bar_the_grammar_allows_fills_its_metre():
    """The grammar's bar rules, walked at random, give ABC the validator takes."""
    import random
    import re
    from models.composing.abc_grammar import abc_grammar
    rng = random.Random(3)
    for metre, key, mode in [("4/4", "C", "major"), ("3/4", "G", "minor"), ("6/8", "D", "dorian")]:
        rules = dict(line.split(" ::= ", 1) for line in abc_grammar(metre, key, mode).splitlines())
        pitches = ["C,", "D,", "G,", "A,", "C", "E", "G", "B", "c", "e", "g", "b"]

        def expand(symbol: str) -> str:
            tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', rules[symbol])
            cuts = [-1] + [i for i, t in enumerate(tokens) if t == "|"] + [len(tokens)]
            at = rng.randrange(len(cuts) - 1)
            out = []
            for token in tokens[cuts[at] + 1:cuts[at + 1]]:
                if token.startswith('"'):
                    out.append(token[1:-1].encode().decode("unicode_escape"))
                elif token in ("pitch", "note"):
                    out.append(rng.choice(pitches + (["z"] if token == "note" else [])))
                elif token == "sep":
                    out.append(rng.choice(["", " "]))
                else:
                    out.append(expand(token))
            return "".join(out)
        for _ in range(20):
            abc = expand("root")
            try:
                phrase = abc_to_phrase(abc, key, metre)
            except ValueError as exc:
                assert "different pitches" in str(exc), abc  # the only check a grammar cannot make
                continue
            assert sum(r for _, r in phrase) == 4 * {"4/4": 16, "3/4": 12, "6/8": 12}[metre]
            assert abc.startswith(f"X:1\nM:{metre}\nL:1/16\nK:{key}") and abc.endswith("|]")
