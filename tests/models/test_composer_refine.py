"""Self-refinement: a phrase is played to a rater, revised toward the picture, then played out."""
from __future__ import annotations

import math

import numpy as np

from hardware.sound.offline import render_internal
from installation.config import ComposeConfig
from installation.records import ImageState
from models.composing.composer import Composer
from models.composing.refine import RefiningComposer
from scenes.scene import load_scene


def loudness_rater(audio: np.ndarray) -> tuple[float, float]:
    """A rater that hears arousal in loudness (RMS -40 dBFS .. -10 dBFS -> -1 .. 1) and valence in
    how much of the time sound is short and detached (the share of quiet 50 ms frames)."""
    rms = float(np.sqrt(np.mean(np.square(audio)))) + 1e-9
    arousal = float(np.clip((20 * math.log10(rms) + 25.0) / 15.0, -1, 1))
    frames = audio[: audio.size // 800 * 800].reshape(-1, 800)
    level = np.sqrt(np.mean(np.square(frames), axis=1))
    valence = float(np.clip(4.0 * (np.mean(level < 0.3 * level.max()) - 0.25), -1, 1))
    return valence, arousal


def render(plans):
    return render_internal(plans, 16000, offset_s=plans[0].start_s)


def test_refinement_moves_the_rated_va_toward_the_picture_and_says_so():
    scene = load_scene("nocturne")
    picture = ImageState(t_s=0.0, valence=0.2, arousal=0.9, brightness=0.5, dominant_hues_deg=(40.0,))
    plain = Composer(ComposeConfig(retrieval=False).settings(), scene, seed=1)
    refining = RefiningComposer(Composer(ComposeConfig(retrieval=False).settings(), scene, seed=1), render, loudness_rater, rounds=2)
    first_plain, first = plain.plan(picture, 0.0), refining.plan(picture, 0.0)
    result = refining.last
    assert result is not None and len(result.rated) == 3
    assert result.distance(result.chosen) <= result.distance(0)
    assert result.moved_toward  # louder and busier than the unrevised phrase, as the target asks
    assert (first.key, first.mode, first.metre) == (first_plain.key, first_plain.mode, first_plain.metre)
    assert any(r.startswith("self-refinement: 2 rounds") and "before" in r and "after" in r for r in first.reasons)
    # The rest of the phrase follows without more rendering; the next phrase refines again.
    t, plans = first.end_s, [first]
    while len(refining.history) < 2:
        plans.append(refining.plan(picture, t))
        t = plans[-1].end_s
    assert len(plans) == 5 and plans[4].phrase_start and sum(p.phrase_start for p in plans) == 2


def test_a_failing_renderer_leaves_the_phrase_unrefined():
    def broken(plans):
        raise RuntimeError("no synth")
    picture = ImageState(t_s=0.0, valence=0.2, arousal=0.9)
    composer = RefiningComposer(Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne")), broken,
                                loudness_rater, rounds=2)
    plan = composer.plan(picture, 0.0)
    assert plan.events and not any("self-refinement" in r for r in plan.reasons)
