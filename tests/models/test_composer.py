"""The composer: pure, deterministic, phrase-stable, explainable, and following the picture."""
from __future__ import annotations

from dataclasses import replace

import pytest
from music21 import converter

from installation.config import ComposeConfig
from installation.errors import UserError
from installation.records import ImageState
from models.composing.composer import Composer
from models.composing.theory import MODE_ORDER
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
    a = run(Composer(ComposeConfig().settings(), scene, seed=3), LIVELY, 20)
    b = run(Composer(ComposeConfig().settings(), scene, seed=3), LIVELY, 20)
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
    composer = Composer(ComposeConfig(bars_ahead=1).settings(), load_scene("nocturne"))
    plans = [composer.plan(CALM if i < 2 else LIVELY, float(i)) for i in range(8)]
    assert [p.phrase_start for p in plans] == [True, False, False, False] * 2
    assert len({(p.key, p.mode, p.tempo_bpm) for p in plans[:4]}) == 1  # the picture changed at bar 3
    assert (plans[4].key, plans[4].mode) != (plans[0].key, plans[0].mode)


def test_the_picture_drives_tempo_mode_key_and_density():
    scene = load_scene("nocturne")
    calm = run(Composer(ComposeConfig().settings(), scene), CALM, 30)
    lively = run(Composer(ComposeConfig().settings(), scene), LIVELY, 30)
    assert lively[0].tempo_bpm > calm[0].tempo_bpm + 30
    assert MODE_ORDER.index(lively[0].mode) > MODE_ORDER.index(calm[0].mode)
    assert lively[0].key == "C"  # red on the circle-of-fifths wheel
    assert calm[0].key != "C"
    rate = lambda plans: sum(len(p.events) for p in plans) / plans[-1].end_s  # noqa: E731
    assert rate(lively) > 1.5 * rate(calm)
    assert max(e.velocity for p in lively for e in p.events) > max(e.velocity for p in calm for e in p.events)
    assert any("tempo" in r for r in calm[0].reasons) and any("corpus phrase" in r for r in calm[0].reasons)


def test_every_plan_is_valid_abc_matching_its_melody():
    composer = Composer(ComposeConfig(bars_ahead=2).settings(), load_scene("nocturne"), seed=5)
    for state in (CALM, LIVELY, replace(CALM, valence=0.0, dominant_hues_deg=(100.0,))):
        plan = composer.plan(state, 0.0)
        score = converter.parse(plan.abc, format="abc")
        melody = [e for e in plan.events if e.voice == "melody"]
        parsed = [n.pitch.midi for n in score.parts[0].flatten().notes]
        assert parsed == [e.note for e in melody]


def test_scene_change_waits_for_the_phrase_boundary_and_bad_tables_are_user_errors():
    composer = Composer(ComposeConfig().settings(), load_scene("nocturne"))
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


def _voice(plans, voice):
    return [e for p in plans for e in p.events if e.voice == voice]


def _sounding_share(plans, voice):
    """Sounding length over written length of a voice's notes: 1.0 legato, about 0.5 detached."""
    pairs = [(e.duration_s, w) for p in plans for e, w in zip(p.events, p.notated_s) if e.voice == voice]
    return sum(d for d, _ in pairs) / sum(w for _, w in pairs)


def test_arousal_brings_loudness_struck_chords_and_a_drum_kit():
    scene = load_scene("nocturne")
    calm = run(Composer(ComposeConfig().settings(), scene), CALM, 20)
    lively = run(Composer(ComposeConfig().settings(), scene), LIVELY, 20)
    assert _voice(calm, "drums") == []
    drums = _voice(lively, "drums")
    assert drums and {e.channel for e in drums} == {9}
    assert {36, 38, 42} <= {e.note for e in drums}  # kick, snare, closed hi-hat
    hats_per_s = sum(e.note == 42 for e in drums) / lively[-1].end_s
    beats_per_s = lively[0].tempo_bpm / 60.0
    assert hats_per_s >= 2 * beats_per_s  # eighths in the lively 6/8
    common_time = parse_scene({"name": "four", "compose": {"metre": "4/4"}})
    straight = _voice(run(Composer(ComposeConfig().settings(), common_time), LIVELY, 10), "drums")
    assert sum(e.note == 42 for e in straight) / 10.0 > 3 * beats_per_s  # sixteenths in 4/4
    mean = lambda es: sum(e.velocity for e in es) / len(es)  # noqa: E731
    assert mean(_voice(lively, "chords")) > mean(_voice(calm, "chords")) + 30
    # Calm: one held chord a slot; lively: struck on every beat.
    onsets = lambda plans: len({e.start_s for e in _voice(plans, "chords")}) / plans[-1].end_s  # noqa: E731
    assert onsets(lively) > 3 * onsets(calm)
    assert any(r.startswith("percussion: kit") for r in lively[0].reasons)


def test_valence_sets_articulation_and_a_dark_lively_picture_gets_strings_not_drums():
    scene = load_scene("nocturne")
    happy = replace(CALM, valence=0.6, arousal=-0.2)
    sad = replace(CALM, valence=-0.7, arousal=-0.2)
    happy_plans = run(Composer(ComposeConfig().settings(), scene), happy, 16)
    sad_plans = run(Composer(ComposeConfig().settings(), scene), sad, 16)
    assert _sounding_share(sad_plans, "melody") > 0.97
    assert _sounding_share(happy_plans, "melody") < 0.8
    assert _sounding_share(happy_plans, "chords") < 0.8 < _sounding_share(sad_plans, "chords")
    storm = run(Composer(ComposeConfig().settings(), scene), replace(LIVELY, valence=-0.7), 12)
    assert _voice(storm, "drums") == []
    chord_onsets = sorted({e.start_s for e in _voice(storm, "chords")})
    eighth_s = 30.0 / storm[0].tempo_bpm
    assert min(b - a for a, b in zip(chord_onsets, chord_onsets[1:])) == pytest.approx(eighth_s)


def test_percussion_can_be_switched_off_by_config_or_scene():
    lively = run(Composer(ComposeConfig(percussion=False).settings(), load_scene("nocturne")), LIVELY, 8)
    assert _voice(lively, "drums") == [] and all(ch != 9 for ch, _ in lively[0].program_changes)
    quiet = parse_scene({"name": "quiet", "compose": {"percussion": False}})
    assert _voice(run(Composer(ComposeConfig().settings(), quiet), LIVELY, 8), "drums") == []
    with pytest.raises(UserError, match="percussion"):
        Composer(ComposeConfig().settings(), parse_scene({"name": "bad", "compose": {"percussion": "loud"}}))


def test_written_lengths_make_a_four_part_accompaniment_and_a_folk_like_melody():
    from models.evaluation.composing import plans_to_notes
    from models.composing.corpus import load_table, music_metrics
    folk = load_table().metrics["folk"]
    for state in (CALM, LIVELY, replace(LIVELY, valence=-0.6)):
        plans = run(Composer(ComposeConfig().settings(), load_scene("nocturne"), seed=1), state, 20)
        assert all(len(p.notated_s) == len(p.events) for p in plans)
        assert all(w >= e.duration_s - 1e-9 for p in plans for e, w in zip(p.events, p.notated_s))
        accompaniment = music_metrics(plans_to_notes(plans, ("chords", "bass")))
        assert accompaniment["polyphony"] == 4.0
        melody = music_metrics(plans_to_notes(plans, ("melody",)))
        assert melody["polyphony"] == 1.0
        assert melody["scale_consistency"] >= folk["scale_consistency"][0]
        assert 2.0 < melody["pitch_entropy"] < 3.6


def test_a_visitors_comment_moves_tempo_mode_and_density_not_only_the_tune():
    from models.composing.comment_mood import comment_va
    from models.composing.index import TextEncoder
    encoder = TextEncoder()
    lively, sad = comment_va("joyful, lively dancing", encoder), comment_va("sad, gloomy and slow", encoder)
    assert lively is not None and sad is not None
    assert lively[0] > sad[0] + 0.5 and lively[1] > sad[1] + 0.5
    picture = ImageState(t_s=0.0, valence=0.0, arousal=0.0, brightness=0.5, edge_density=0.3, dominant_hues_deg=(120.0,),
                         description="A steady, plain, half-lit, muted picture of some texture.")

    def first_plan(comment: str):
        state = replace(picture, comment=comment, description=picture.description + f" A visitor says: {comment}.")
        plan = Composer(ComposeConfig().settings(), load_scene("nocturne"), seed=1).plan(state, 0.0)
        notes = sum(1 for e in plan.events if e.channel == load_scene("nocturne").channels["melody"])
        return plan, notes

    happy_plan, happy_notes = first_plan("joyful, lively dancing")
    sad_plan, sad_notes = first_plan("sad, gloomy and slow")
    assert happy_plan.tempo_bpm > sad_plan.tempo_bpm
    assert MODE_ORDER.index(happy_plan.mode) > MODE_ORDER.index(sad_plan.mode)
    assert happy_notes >= sad_notes
    assert any(r.startswith('comment "joyful, lively dancing" reads as') for r in happy_plan.reasons)
    plain, _ = first_plan("")
    assert not any(r.startswith("comment") for r in plain.reasons)
    assert (happy_plan.valence, happy_plan.arousal) == (plain.valence, plain.arousal)  # the picture's own VA
