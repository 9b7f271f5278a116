"""Scene banks: each preset's own phrases lead its captions, so scenes open and go on differently."""
from __future__ import annotations

import dataclasses
import itertools
import re
from types import MappingProxyType

import pytest

from installation.config import CaptionsConfig
from installation.errors import UserError
from models.evaluation.caption_bench import sweep_state
from models.captions.scenes import SHARED_PENALTY, scene_banks
from models.captions.banks import FACETS, load_phrase_banks
from models.captions.director import Director
from scenes.scene import Scene, available_scenes, load_scene

MOODS = [(-0.6, 0.7), (0.6, 0.6), (0.5, -0.6), (-0.5, -0.5), (0.0, 0.2), (-0.7, -0.1)]


def sixty_seconds():
    """A 60 s run at 10 Hz: six 10 s sections across the VA plane, each announced as a section change."""
    for k in range(600):
        t_s = k * 0.1
        v, a = MOODS[k // 100]
        state = sweep_state(v, a, t_s)
        yield dataclasses.replace(state, section_change=k % 100 == 15, beat_confidence=0.0)


def scene_captions(name: str) -> list:
    director = Director(CaptionsConfig().settings(), load_scene(name))
    return [c for s in sixty_seconds() if (c := director.update(s, s.t_s)) is not None]


def test_every_scene_opens_on_its_own_caption_and_keeps_to_its_own_scene_phrases():
    runs = {name: scene_captions(name) for name in available_scenes()}
    assert len(runs) == 8
    openings = {name: caps[0].facets["scene"] for name, caps in runs.items()}
    assert len(set(openings.values())) == 8, openings
    used = {name: [c.facets["scene"] for c in caps] for name, caps in runs.items()}
    assert all(len(phrases) >= 4 for phrases in used.values()), used   # the director still changes within a scene
    for a, b in itertools.permutations(used, 2):
        shared = sum(p in set(used[b]) for p in used[a]) / len(used[a])
        assert shared <= 0.2, (a, b, shared)


def test_storm_shows_weather_not_skylines():
    own = {p.text for p in scene_banks(load_phrase_banks(), load_scene("storm")).banks["scene"]}
    for caption in scene_captions("storm"):
        assert caption.facets["scene"] in own
        assert caption.hints["shapes"] in ("clouds", "waves", "particles")
        assert not re.search(r"\b(city|skyline|street|towers?|buildings?)\b", caption.prompt), caption.prompt


def test_shared_weight_lets_the_shared_bank_trail_the_scenes_own():
    shared = load_phrase_banks()
    banks = scene_banks(shared, load_scene("tide"))
    assert banks.own["scene"] == len(banks.banks["scene"])   # scene = 0: its own words alone
    n = banks.own["motion"]
    assert len(banks.banks["motion"]) == n + len(shared["motion"])
    assert set(banks.priors["motion"][:n]) == {0.0} and set(banks.priors["motion"][n:]) == {-0.5 * SHARED_PENALTY}
    nocturne = scene_banks(shared, load_scene("nocturne"))   # no own phrases: the shared banks whole
    assert all(nocturne.banks[f] == shared[f] for f in FACETS)


def _scene(captions: dict) -> Scene:
    return Scene(name="bad", tables=MappingProxyType({"captions": MappingProxyType(captions)}))


@pytest.mark.parametrize("captions, words", [
    ({"phrases": {"scene": [{"text": "a lone pine", "va": [0.1, 0.1]}]}}, "needs shapes"),
    ({"phrases": {"weather": []}}, "not a facet"),
    ({"shared": {"scene": 2}}, "0..1"),
    ({"shared": {"scene": 0.0}, "phrases": {"scene": [{"text": "a lone pine", "va": [0.1, 0.1], "shapes": "forest"}]}},
     "at least 8"),
])
def test_a_bad_scene_bank_is_one_sentence_naming_the_preset(captions, words):
    with pytest.raises(UserError, match=words):
        scene_banks(load_phrase_banks(), _scene(captions))


def test_switching_scene_switches_the_banks_and_keeps_the_old_on_a_bad_preset():
    director = Director(CaptionsConfig(min_hold_s=0).settings(), load_scene("nocturne"))
    director.update(sweep_state(-0.5, 0.6, 0.0), 0.0)
    director.set_scene(load_scene("storm"))
    caption = director.update(sweep_state(-0.5, 0.6, 0.1), 0.1)
    storm = {p.text for p in scene_banks(load_phrase_banks(), load_scene("storm")).banks["scene"]}
    assert caption is not None and caption.facets["scene"] in storm
    with pytest.raises(UserError):
        director.set_scene(_scene({"shared": {"scene": 3}}))
    assert director.scene.name == "storm"


def test_shipped_embeddings_cover_every_scenes_own_phrases():
    from models.captions.embed import PhraseEmbeddings, bank_texts
    shared = load_phrase_banks()
    texts = [t for name in available_scenes() for t in bank_texts(scene_banks(shared, load_scene(name)).banks)]
    assert PhraseEmbeddings(texts, compute_missing=False).missing == ()   # else: python tools/listening/embed_phrases.py
