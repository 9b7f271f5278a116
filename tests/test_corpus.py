"""The cached corpus table and the music metrics."""
from __future__ import annotations

import random

from models.corpus import METRES, Note, load_table, music_metrics


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
