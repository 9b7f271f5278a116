"""Captions: music description, phrase banks, facet agents and the director on real records."""
from __future__ import annotations

import math

import pytest

from installation.config import CaptionsConfig
from installation.records import Caption, MusicState
from models.caption_safety import TokenCounter
from models.captions import FACETS, LAYOUTS, SHAPES, Director, describe, load_phrase_banks
from scenes.scene import load_scene


def state(t_s: float, v: float = 0.0, a: float = 0.0, **kw) -> MusicState:
    base = dict(mode="minor" if v < 0 else "major", loudness_dbfs=-25.0, silent=False, brightness=0.5)
    base.update(kw)
    return MusicState(t_s=t_s, valence=v, arousal=a, **base)


def test_banks_load_and_every_phrase_has_renderer_hints():
    banks = load_phrase_banks()
    assert set(banks) == set(FACETS)
    for p in banks["colour"]:
        assert 3 <= len(p.hints["palette"]) <= 5
    assert all(p.hints["shapes"] in SHAPES for p in banks["scene"])
    assert all(p.hints["layout"] in LAYOUTS for p in banks["composition"])
    assert all(0 <= p.hints["motion_speed"] <= 1 for p in banks["motion"])


def test_first_update_returns_a_caption_that_fits_clip():
    director = Director(CaptionsConfig(), load_scene("nocturne"))
    caption = director.update(state(0.0, -0.5, -0.6, tempo_bpm=70), 0.0)
    assert isinstance(caption, Caption)
    assert set(caption.facets) == set(FACETS) and set(caption.reasons) == set(FACETS)
    assert all("->" in r for r in caption.reasons.values())
    assert TokenCounter().count(caption.prompt) <= 77
    assert director.current is caption
    assert director.update(state(0.1, -0.5, -0.6, tempo_bpm=70), 0.1) is None


def test_describe_words_follow_the_state():
    d = describe(state(0.0, -0.6, -0.7, tempo_bpm=62, loudness_dbfs=-35, brightness=0.2))
    assert (d.tempo, d.mode, d.dynamics, d.timbre, d.emotion) == ("slow", "minor", "soft", "dark", "melancholy")
    d = describe(state(0.0, 0.7, 0.8, tempo_bpm=140, loudness_dbfs=-8, brightness=0.8, beat_confidence=0.9))
    assert (d.tempo, d.mode, d.dynamics, d.timbre, d.emotion) == ("fast", "major", "loud", "bright", "joyful")
    assert "pulsing" in d.tags
    nan = describe(MusicState(t_s=0, valence=math.nan, arousal=math.inf, tempo_bpm=math.nan))
    assert math.isfinite(nan.valence) and math.isfinite(nan.arousal)
