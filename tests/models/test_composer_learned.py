"""The learned composer: trained for seconds on the real corpus table, then used live by the composer."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from installation.config import ComposeConfig
from installation.errors import UserError
from installation.records import ImageState
from models.composing.composer import Composer
from models.composing.learned import CONTENT_DIM, LearnedMelody, describe_weights, train
from models.composing.corpus import METRES, PHRASE_BARS, load_table
from scenes.scene import load_scene


class WordHashEncoder:
    """Stands in for the sentence model: a fixed random 384-d vector per word, summed and normalised."""

    def encode(self, texts):
        out = []
        for text in texts:
            v = np.zeros(384)
            for word in text.lower().replace(",", " ").replace(";", " ").split():
                v += np.random.default_rng(int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")).normal(size=384)
            out.append(v / (np.linalg.norm(v) or 1.0))
        return np.array(out, dtype=np.float32)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("learned") / "composer.pt"
    figures = train(load_table(), path, minutes=0.05, max_epochs=1, hidden=24, seed=0, eval_n=6,
                    max_phrases=240, encoder=WordHashEncoder(), content_per_theme=2)
    torch.set_num_threads(before)
    return path, figures


def test_training_writes_weights_and_reports_the_va_figures(weights):
    path, figures = weights
    assert path.is_file() and figures["epochs"] >= 1 and figures["phrases"] > 200
    for key in ("token_loss", "va_loss", "predictor_mae", "va_mae", "va_mae_shuffled"):
        assert figures[key] >= 0.0
    assert figures["with_imagery"] > 0
    content = figures["content"]
    assert content["melodies"] == 16 and 0.0 <= content["share_asked"] <= 1.0 and "sea" in content["themes"]


def test_the_content_vector_conditions_the_melody(weights):
    path, _ = weights
    melody = LearnedMelody(path, encoder=WordHashEncoder())
    sea = melody.text_content("A song of the sea, waves, ships and the shore.")
    forest = melody.text_content("A song of a forest, woods and trees.")
    assert sea is not None and forest is not None and sea.shape == (CONTENT_DIM,) and not np.allclose(sea, forest)

    def written(content, seed):
        melody.generator.manual_seed(seed)
        return melody.write("major", "4/4", (0.3, 0.2), content)
    assert all(written(sea, s) == written(sea, s) for s in range(3))  # same seed, same content: same melody
    assert any(written(sea, s) != written(forest, s) for s in range(6))  # same seed, other content: another


def test_written_melodies_fill_four_bars_and_the_composer_sings_them(weights):
    path, _ = weights
    melody = LearnedMelody(path, seed=3)
    for metre in METRES:
        events = melody.write("major", metre, (0.5, 0.5))
        assert sum(r for _, r in events) == METRES[metre] * PHRASE_BARS and events[0][0] is not None
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    composer.melody_source = LearnedMelody(path, seed=1, encoder=WordHashEncoder())
    plan = composer.plan(ImageState(t_s=0.0, valence=0.4, arousal=0.3, dominant_hues_deg=(50.0,)), 0.0)
    assert any(r.startswith("melody written by the learned composer") for r in plan.reasons)
    written = next(r for r in plan.reasons if r.startswith("melody written by the learned composer"))
    assert "the picture's content \"" in written and "was not used" in written and "reference" not in written
    assert any(e.voice == "melody" for e in plan.events)
    # Same seed, same melody; another seed, another.
    again = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    again.melody_source = LearnedMelody(path, seed=1, encoder=WordHashEncoder())
    other = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    other.melody_source = LearnedMelody(path, seed=2, encoder=WordHashEncoder())
    picture = ImageState(t_s=0.0, valence=0.4, arousal=0.3, dominant_hues_deg=(50.0,))
    notes = lambda c: [e.note for e in c.plan(picture, 0.0).events if e.voice == "melody"]  # noqa: E731
    assert notes(again) == [e.note for e in plan.events if e.voice == "melody"]
    assert notes(other) != notes(again)


def test_missing_or_broken_weights_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="do not exist"):
        LearnedMelody(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="do not load"):
        LearnedMelody(bad)


def test_weights_without_a_content_vector_still_load_and_check_says_so(weights, tmp_path, capsys):
    import torch

    from installation.cli import main
    from models.composing.corpus import Phrase
    from models.composing.learned import _modules
    old = tmp_path / "old.pt"
    model, predictor = _modules(24, content_dim=0)
    torch.save({"version": 1, "hidden": 24, "model": model.state_dict(), "predictor": predictor.state_dict()}, str(old))
    melody = LearnedMelody(old, seed=1)
    assert melody.projection is None and melody.text_content("the sea") is None
    phrase, why = melody(Phrase("essen/x#1", "major", "4/4", ()), "major", "4/4", (0.2, 0.1), "A calm picture of the sea")
    assert sum(r for _, r in phrase.events) == METRES["4/4"] * PHRASE_BARS
    assert "VA, metre and mode only" in why and "train them again" in why
    assert "old format" in describe_weights(old)
    main(["check", "--set", 'display.mode="headless"', "--set", 'compose.head="learned"',
          "--set", f'compose.learned_weights="{old}"'])
    assert f"learned composer: weights {old} are the old format" in capsys.readouterr().out
    future = tmp_path / "future.pt"
    torch.save({"version": 99, "hidden": 24, "model": model.state_dict()}, str(future))
    with pytest.raises(UserError, match="do not load"):
        LearnedMelody(future)
