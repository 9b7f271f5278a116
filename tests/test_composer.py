"""The composer: pure, deterministic, phrase-stable, explainable, and following the picture."""
from __future__ import annotations

from dataclasses import replace

import pytest
from music21 import converter

from installation.config import ComposeConfig
from installation.errors import UserError
from installation.records import ImageState
from models.composer import MODE_ORDER, Composer
from scenes.scene import load_scene, parse_scene

CALM = ImageState(t_s=0.0, valence=-0.7, arousal=-0.8, brightness=0.3, edge_density=0.1, dominant_hues_deg=(230.0,))
LIVELY = ImageState(t_s=0.0, valence=0.8, arousal=0.9, brightness=0.8, edge_density=0.6, motion=0.5,
                    dominant_hues_deg=(10.0,))


def run(composer, state, seconds):
    plans, t = [], 0.0
    while t < seconds:
        plan = composer.plan(state, t)
        plans.append(plan)
        t = plan.end_s
    return plans


def test_same_seed_same_music_and_plans_are_contiguous():
    scene = load_scene("nocturne")
    a = run(Composer(ComposeConfig(), scene, seed=3), LIVELY, 20)
    b = run(Composer(ComposeConfig(), scene, seed=3), LIVELY, 20)
    assert [p.events for p in a] == [p.events for p in b]
    for p, q in zip(a, a[1:]):
        assert q.start_s == p.end_s
    for p in a:
        assert all(p.start_s <= e.start_s < p.end_s for e in p.events)
        assert all(0 <= e.note <= 127 and 1 <= e.velocity <= 127 for e in p.events)
        assert {"melody", "chords", "bass"} <= {e.voice for e in p.events} <= {"melody", "chords", "bass", "drums"}
    assert a[0].program_changes == ((0, 0), (1, 48), (2, 32), (9, 0))
    assert all(p.program_changes == () for p in a[1:])


def test_key_mode_and_tempo_change_only_at_phrase_boundaries():
    composer = Composer(ComposeConfig(bars_ahead=1), load_scene("nocturne"))
    plans = [composer.plan(CALM if i < 2 else LIVELY, float(i)) for i in range(8)]
    assert [p.phrase_start for p in plans] == [True, False, False, False] * 2
    assert len({(p.key, p.mode, p.tempo_bpm) for p in plans[:4]}) == 1  # the picture changed at bar 3
    assert (plans[4].key, plans[4].mode) != (plans[0].key, plans[0].mode)


def test_the_picture_drives_tempo_mode_key_and_density():
    scene = load_scene("nocturne")
    calm = run(Composer(ComposeConfig(), scene), CALM, 30)
    lively = run(Composer(ComposeConfig(), scene), LIVELY, 30)
    assert lively[0].tempo_bpm > calm[0].tempo_bpm + 30
    assert MODE_ORDER.index(lively[0].mode) > MODE_ORDER.index(calm[0].mode)
    assert lively[0].key == "C"  # red on the circle-of-fifths wheel
    assert calm[0].key != "C"
    rate = lambda plans: sum(len(p.events) for p in plans) / plans[-1].end_s  # noqa: E731
    assert rate(lively) > 1.5 * rate(calm)
    assert max(e.velocity for p in lively for e in p.events) > max(e.velocity for p in calm for e in p.events)
    assert any("tempo" in r for r in calm[0].reasons) and any("corpus phrase" in r for r in calm[0].reasons)


def test_every_plan_is_valid_abc_matching_its_melody():
    composer = Composer(ComposeConfig(bars_ahead=2), load_scene("nocturne"), seed=5)
    for state in (CALM, LIVELY, replace(CALM, valence=0.0, dominant_hues_deg=(100.0,))):
        plan = composer.plan(state, 0.0)
        score = converter.parse(plan.abc, format="abc")
        melody = [e for e in plan.events if e.voice == "melody"]
        parsed = [n.pitch.midi for n in score.parts[0].flatten().notes]
        assert parsed == [e.note for e in melody]


def test_scene_change_waits_for_the_phrase_boundary_and_bad_tables_are_user_errors():
    composer = Composer(ComposeConfig(), load_scene("nocturne"))
    first = composer.plan(CALM, 0.0)
    composer.set_scene(load_scene("pulse"))
    second = composer.plan(CALM, first.end_s)
    assert second.program_changes == () and second.tempo_bpm == first.tempo_bpm
    t = second.end_s
    while True:
        plan = composer.plan(CALM, t)
        t = plan.end_s
        if plan.phrase_start:
            break
    assert plan.program_changes == ((0, 80), (1, 89), (2, 38), (9, 0))
    bad = parse_scene({"name": "bad", "compose": {"metre": "5/4"}})
    with pytest.raises(UserError, match="metre"):
        composer.set_scene(bad)
