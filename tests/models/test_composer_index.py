"""Retrieval: the picture's words and VA find a real tune in the corpus index, the same one every time."""
from __future__ import annotations

import skimage.data

from installation.config import ComposeConfig
from models.composing.composer import Composer
from models.composing.index import load_index
from models.seeing.features import ImageAnalyser
from scenes.scene import load_scene


def first_tune(picture, seed: int = 0) -> tuple[str, tuple[str, ...]]:
    state = ImageAnalyser().analyse(picture, 0.0)
    plan = Composer(ComposeConfig().settings(), load_scene("nocturne"), seed=seed).plan(state, 0.0)
    found = [r for r in plan.reasons if r.startswith("retrieved tune")]
    assert found, plan.reasons
    return found[0].split()[2], plan.reasons


def test_one_picture_always_retrieves_the_same_tune_and_different_pictures_different_ones():
    coffee, reasons = first_tune(skimage.data.coffee())
    assert first_tune(skimage.data.coffee(), seed=5)[0] == coffee  # the seed varies notes, not the choice
    others = [first_tune(getattr(skimage.data, name)())[0] for name in ("astronaut", "rocket", "chelsea")]
    # The pick among the near-best is a hash of the picture, so two pictures of one mood may meet on a
    # tune (astronaut and chelsea do, on a tune of fields and flowers); four pictures still get three or more.
    assert coffee not in others and len(set(others)) >= 2
    why = next(r for r in reasons if r.startswith("retrieved tune"))
    assert "text match" in why and "VA distance" in why and "A " in why  # and the picture's words follow


def test_the_index_ranks_by_words_and_mood():
    index = load_index()
    assert len(index) > 300 and index.embeddings.shape == (len(index), 384)
    lively = index.rank("A joyful, lively, dancing, bright, vivid picture of yellow flowers.", (0.8, 0.8), top=20)
    sad = index.rank("A sad, gloomy, slow, dark, grey picture of a stormy sky.", (-0.8, -0.6), top=20)
    assert {r.source for r in lively}.isdisjoint({r.source for r in sad})
    mean_va = lambda found: [sum(r.tune_va[k] for r in found) / len(found) for k in (0, 1)]  # noqa: E731
    assert mean_va(lively)[0] > mean_va(sad)[0] + 0.5 and mean_va(lively)[1] > mean_va(sad)[1] + 0.3
    # The same query, the same order; passing over recent tunes gives the next best.
    again = index.rank("A joyful, lively, dancing, bright, vivid picture of yellow flowers.", (0.8, 0.8), top=20)
    assert [r.source for r in again] == [r.source for r in lively]
    fresh = index.rank("A joyful, lively, dancing, bright, vivid picture of yellow flowers.", (0.8, 0.8),
                       exclude=[lively[0].source])
    assert fresh[0].source != lively[0].source


def fake_sentence_model(monkeypatch, gate: str):
    """TextEncoder's model replaced by one whose child imports tests/fake_sentence_model.py."""
    from models.composing.index import TextEncoder
    from models.language.sentence_model import SentenceModel

    monkeypatch.setenv("FAKE_SENTENCE_GATE", gate)
    model = SentenceModel(module="tests.fake_sentence_model")
    monkeypatch.setattr(TextEncoder, "model", model)
    monkeypatch.setattr(TextEncoder, "_loading", None)
    return model


def test_asking_again_while_the_sentence_model_loads_returns_at_once(monkeypatch, tmp_path):
    """A live composer asks for the model before every retrieval; while it loads in the background
    that must not block the composer until the load is done."""
    import threading

    from models.composing.index import TextEncoder
    from tests.waiting import wait_for

    gate = tmp_path / "loaded"
    model = fake_sentence_model(monkeypatch, str(gate))
    try:
        TextEncoder.warm_up()
        assert wait_for(model.loading, 30)  # the load is under way
        again = threading.Thread(target=TextEncoder.warm_up, daemon=True)
        again.start()
        again.join(10)
        assert not again.is_alive() and not TextEncoder.ready()
        gate.touch()
        assert wait_for(TextEncoder.ready, 60)
    finally:
        gate.touch()
        if TextEncoder._loading is not None:
            TextEncoder._loading.join(60)
        model.close()


def test_the_sentence_model_runs_in_its_own_process_and_answers_unit_vectors(monkeypatch, tmp_path):
    """Its load (torch, transformers: seconds of Python holding the GIL) stalled the OSC server's
    replies when it ran on a thread here; the model's package is never imported in this process."""
    import sys

    import numpy as np

    from models.composing.index import TextEncoder

    gate = tmp_path / "loaded"
    gate.touch()
    model = fake_sentence_model(monkeypatch, str(gate))
    try:
        vectors = TextEncoder().encode(["a calm sea", "a bright dance", "a calm sea"])
        assert vectors.shape == (3, 384) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
        assert "tests.fake_sentence_model" not in sys.modules
        assert model.load_s is not None and model.ready()
    finally:
        model.close()
    assert not model.ready()


def test_a_background_load_cut_short_by_the_programs_exit_is_not_reported_as_a_broken_package(monkeypatch, caplog):
    import logging
    import types

    import models.composing.index as composer_index
    from models.composing.index import TextEncoder

    fake_sentence_model(monkeypatch, "broken")
    exiting = types.SimpleNamespace(is_alive=lambda: False)
    with caplog.at_level(logging.WARNING, logger=composer_index.log.name):
        monkeypatch.setattr(composer_index.threading, "main_thread", lambda: exiting)
        TextEncoder._load_in_background()
        assert not caplog.records
        monkeypatch.undo()
        fake_sentence_model(monkeypatch, "broken")
        TextEncoder._load_in_background()  # while the program runs, a broken package is reported
        assert any("reinstall" in r.getMessage() for r in caplog.records)


def test_no_reason_says_first_unless_the_tune_is_the_top_scored_one():
    """The hash's pick among the near-best is listed first but keeps its true rank by score."""
    index = load_index()
    seen_lower = False
    for n in range(12):
        found = index.rank("A calm picture of a grey sea under clouds.", (0.1 * (n % 5) - 0.2, -0.1),
                           key=f"picture {n}".encode(), top=3)[0]
        best = max(index.rank("A calm picture of a grey sea under clouds.", (0.1 * (n % 5) - 0.2, -0.1), top=1000),
                   key=lambda r: r.score)
        reason = found.reason()
        if found.source == best.source:
            assert found.rank == 0 and "(1st of" in reason
        else:
            seen_lower = True
            assert found.rank > 0 and "(1st of" not in reason and "rank 1" not in reason
            assert f"{found.rank + 1}" in reason and "chosen among the" in reason
    assert seen_lower  # the picks did land below the top, so the check above was exercised


def test_tunes_share_what_the_picture_shows_more_than_a_mood_only_query_does():
    from models.evaluation.content_match import content_share, mood_only, picture_themes
    from models.composing.tune_imagery import imagery
    assert set(imagery("Der Rheinschiffer").themes) >= {"river", "sea"}
    assert "forest" in imagery("Das Waldvoegelein").themes and "birds" in imagery("Das Waldvoegelein").themes
    assert imagery("The Girls of Banbridge", collection="oneills").region == "Ireland"
    index = load_index()
    assert sum("A song of" in text for text in index.texts) > len(index) // 2
    mood = "A calm, peaceful, tender, bright, vivid"
    pictures = {"sea": f"{mood} picture of open sky, water, a sea, a lake or a river, smooth surfaces, blue colours.",
                "forest": f"{mood} picture of trees and plants, upright lines like buildings or trunks, some texture.",
                "field": f"{mood} picture of trees and plants, a wide open view of land, hills or sea with a low horizon, green colours."}
    full, bare = [], []
    where = ("major", "3/4")  # as the composer searches for a calm, pleasant picture: its mode class and metre
    weight = ComposeConfig().content_weight
    for description in pictures.values():
        themes = picture_themes(description)
        assert themes
        full.append(content_share([r.description for r in index.rank(description, (0.5, -0.5), *where, top=10,
                                                                     content_weight=weight)], themes))
        bare.append(content_share([r.description for r in index.rank(mood_only(description), (0.5, -0.5), *where, top=10)],
                                  themes))
    assert sum(full) >= 2 * sum(bare) and sum(full) > 0


def test_the_content_phrases_of_a_description_are_what_is_seen_its_labels_and_the_comment():
    from models.seeing.content import content_phrases
    text = ("A calm, bright picture of open sky, water, a sea, a lake or a river, smooth surfaces, blue colours; "
            "it looks like a calm sea, a sunny beach. A visitor says: gulls over the harbour.")
    assert content_phrases(text) == ("open sky", "water, a sea, a lake or a river", "a calm sea", "a sunny beach",
                                     "gulls over the harbour")
    assert content_phrases("A calm, bright picture.") == ()
    assert content_phrases("A calm, bright picture of smooth surfaces, blue colours.") == ()


def test_content_counts_apart_from_mood_and_the_reason_says_how_much():
    """The content match lifts tunes about what the picture shows, only for a description that shows
    something; a mood-only query ranks as without it, and the reason names the match and its theme."""
    from models.evaluation.content_match import content_share, picture_themes
    index = load_index()
    sea = "A quiet, still, gentle, bright, muted picture of open sky, water, a sea, a lake or a river, smooth surfaces."
    match, theme = index.content_match(sea)
    assert match.shape == (len(index),) and 0.0 <= match.min() and match.max() <= 1.0
    water = [i for i, t in enumerate(theme) if t >= 0 and index.themes[t] in ("sea", "river", "lake")]
    assert water and match[water].min() > 0.2 and (match[~index.tune_themes.any(axis=1)] == 0).all()
    without = index.rank(sea, (0.0, -0.5), top=10)
    with_content = index.rank(sea, (0.0, -0.5), top=10, content_weight=1.0)
    themes = picture_themes(sea)
    assert content_share([r.description for r in with_content], themes) > \
        content_share([r.description for r in without], themes)
    top = with_content[0]
    assert top.content_theme in index.themes and f"content match {top.content_match:.2f} ({top.content_theme})" in top.reason()
    assert all(r.score == max(r.score for r in with_content) for r in with_content[:1])  # best first, no key given
    assert "content match" not in without[0].reason()
    mood = "A quiet, still, gentle, bright, muted picture."
    assert [r.source for r in index.rank(mood, (0.0, -0.5), top=20, content_weight=1.0)] == \
        [r.source for r in index.rank(mood, (0.0, -0.5), top=20)]


def test_closing_while_the_sentence_model_loads_does_not_wait_for_the_load(monkeypatch, tmp_path):
    """At exit a load still under way is killed: an exit never waits the load's 300 s."""
    from models.composing.index import TextEncoder
    from tests.waiting import wait_for

    model = fake_sentence_model(monkeypatch, str(tmp_path / "never"))
    TextEncoder.warm_up()
    assert wait_for(lambda: model._starting is not None and model._starting.alive(), 30)
    model.close()
    TextEncoder._loading.join(30)
    assert not TextEncoder._loading.is_alive() and not model.ready()
    (tmp_path / "never").touch()
    try:
        model.load()  # and a later load starts a new child
        assert model.ready()
    finally:
        model.close()


def test_the_query_cache_keeps_the_newest_in_memory_allocated_once(monkeypatch):
    """New captions for hours: the remembered vectors live in one array from the first query, the
    oldest is replaced first, and every answer is the model's own."""
    import numpy as np

    from models.composing.index import TextEncoder

    asked: list[list[str]] = []

    class Model:
        def encode(self, texts):
            asked.append(list(texts))
            return np.stack([np.full(384, float(len(t)), np.float32) for t in texts])

    monkeypatch.setattr(TextEncoder, "model", Model())
    monkeypatch.setattr(TextEncoder, "CACHE_SIZE", 4)
    encoder = TextEncoder()
    first = encoder.encode(["a", "bb", "a"])
    assert asked == [["a", "bb"]] and first.shape == (3, 384) and first[2, 0] == 1.0
    store = encoder._vectors
    for n in range(3, 40):  # 37 new texts through a cache of 4
        assert encoder.encode(["x" * n])[0, 0] == float(n)
    assert encoder._vectors is store and len(encoder._rows) == 4  # no new array, no more than 4 kept
    asked.clear()
    assert encoder.encode(["x" * 39, "x" * 36])[:, 0].tolist() == [39.0, 36.0] and asked == []  # the newest kept
    assert encoder.encode(["a"])[0, 0] == 1.0 and asked == [["a"]]  # the oldest replaced
    many = [f"t{i}" for i in range(10)]  # more new texts at once than the cache holds
    assert encoder.encode(many)[:, 0].tolist() == [float(len(t)) for t in many]
