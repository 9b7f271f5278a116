"""The cached corpus table and the music metrics."""
from __future__ import annotations

import random

from models.composing.corpus import METRES, Note, load_table, music_metrics


def test_table_has_real_phrases_for_every_mode_class_and_metre():
    table = load_table()
    assert table.sources["bach_chorales"] >= 100 and table.sources["essen"] + table.sources["oneills"] >= 500
    for mode_class in ("major", "minor"):
        for metre, bar16 in METRES.items():
            phrases = table.phrases[(mode_class, metre)]
            assert phrases, (mode_class, metre)
            for p in phrases[:20]:
                assert sum(d for _, d in p.events) == 4 * bar16  # exactly four bars


def test_markov_tables_give_plausible_material():
    table = load_table()
    rng = random.Random(1)
    steps = [table.next_step("major", 1, rng) for _ in range(500)]
    assert all(-7 <= s <= 7 for s in steps)
    assert sum(abs(s) <= 2 for s in steps) > 300  # folk melodies move mostly by step
    weights = table.bass_weights("major", 4)  # after the dominant, the chorales go home most
    assert max(weights, key=weights.get) in (0, 4)


def test_metrics_of_a_known_example():
    scale = [Note(i, 1.0, p) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
    m = music_metrics(scale)
    assert m["scale_consistency"] == 1.0
    assert m["polyphony"] == 1.0 and m["polyphony_rate"] == 0.0
    assert abs(m["pitch_entropy"] - 3.0) < 1e-9  # eight distinct pitches
    assert m["empty_beat_rate"] == 0.0
    chord = [Note(0, 4.0, p) for p in (60, 64, 67)] + [Note(0, 4.0, 61)]
    m = music_metrics(chord)
    assert m["polyphony"] == 4.0 and m["polyphony_rate"] == 1.0 and m["scale_consistency"] == 0.75
    assert m["empty_beat_rate"] == 0.75


def test_the_papers_metrics_come_from_muspy_on_the_plans_written_notes():
    import muspy

    from models.evaluation.composing import compose_offline, muspy_metrics, plans_to_notes
    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from models.composing.corpus import music_metrics
    from scenes.scene import load_scene
    state = ImageState(t_s=0.0, valence=0.3, arousal=0.2, dominant_hues_deg=(120.0,))
    plans = compose_offline(Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne")), lambda t: state, 12.0)
    got = muspy_metrics(plans)
    notes = plans_to_notes(plans)
    # muspy's pitch entropy is the Shannon entropy of the pitch histogram, as the corpus table's.
    assert abs(got["pitch_entropy"] - music_metrics(notes)["pitch_entropy"]) < 1e-9
    # polyphony rate: steps with more than two pitches on, over all steps; chords of three sound on most.
    assert 0.5 < got["polyphony_rate"] <= 1.0 and 0.0 <= got["groove_consistency"] <= 1.0
    music = muspy.Music(resolution=4, tracks=[muspy.Track(notes=[muspy.Note(0, 60, 4, 64), muspy.Note(0, 64, 4, 64),
                                                                  muspy.Note(0, 67, 2, 64)])])
    assert muspy.polyphony_rate(music) == 0.5  # three pitches for two of four steps
