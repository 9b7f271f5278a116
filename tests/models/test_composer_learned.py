"""The learned composer: trained for seconds on the real corpus table, then used live by the composer."""
from __future__ import annotations

import pytest

from installation.config import ComposeConfig
from installation.errors import UserError
from installation.records import ImageState
from models.composing.composer import Composer
from models.composing.learned import LearnedMelody, train
from models.composing.corpus import METRES, PHRASE_BARS, load_table
from scenes.scene import load_scene


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("learned") / "composer.pt"
    figures = train(load_table(), path, minutes=0.05, max_epochs=1, hidden=24, seed=0, eval_n=6,
                    max_phrases=240)
    torch.set_num_threads(before)
    return path, figures


def test_training_writes_weights_and_reports_the_va_figures(weights):
    path, figures = weights
    assert path.is_file() and figures["epochs"] >= 1 and figures["phrases"] > 200
    for key in ("token_loss", "va_loss", "predictor_mae", "va_mae", "va_mae_shuffled"):
        assert figures[key] >= 0.0


def test_written_melodies_fill_four_bars_and_the_composer_sings_them(weights):
    path, _ = weights
    melody = LearnedMelody(path, seed=3)
    for metre in METRES:
        events = melody.write("major", metre, (0.5, 0.5))
        assert sum(r for _, r in events) == METRES[metre] * PHRASE_BARS and events[0][0] is not None
    composer = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    composer.melody_source = LearnedMelody(path, seed=1)
    plan = composer.plan(ImageState(t_s=0.0, valence=0.4, arousal=0.3, dominant_hues_deg=(50.0,)), 0.0)
    assert any(r.startswith("melody written by the learned composer") for r in plan.reasons)
    assert any(e.voice == "melody" for e in plan.events)
    # Same seed, same melody; another seed, another.
    again = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    again.melody_source = LearnedMelody(path, seed=1)
    other = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne"), seed=1)
    other.melody_source = LearnedMelody(path, seed=2)
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
