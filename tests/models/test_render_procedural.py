"""The procedural renderer: frames, colours that carry the music's VA, beat pulse, caption blends."""
from __future__ import annotations

import math

import numpy as np
import pytest

from installation.errors import UserError
from installation.records import Caption, MusicState
from models.seeing.va import ColourVA
from models.procedural.renderer import ProceduralRenderer
from models.procedural.fields import LAYOUTS, SHAPES, look_from_caption
from scenes.scene import available_scenes, parse_scene


def run(renderer: ProceduralRenderer, state: MusicState, start_s: float, seconds: float, fps: float = 30.0):
    frame = None
    for i in range(int(seconds * fps)):
        frame = renderer.render(state, start_s + i / fps)
    return frame


@pytest.mark.parametrize("size", [(512, 512), (1280, 720), (200, 330)])
def test_frames_have_the_render_size(size):
    width, height = size
    renderer = ProceduralRenderer(width, height)
    frame = renderer.render(MusicState(t_s=0.0), 0.0)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    assert frame.flags["C_CONTIGUOUS"]
    assert frame.std() > 1.0   # a picture, not a flat card


def test_every_shape_and_layout_renders_a_picture():
    renderer = ProceduralRenderer(256, 144)
    pictures = {}
    for i, shapes in enumerate(SHAPES):
        layout = LAYOUTS[i % len(LAYOUTS)]
        renderer.update_prompt(Caption(t_s=0.0, prompt="", hints={"shapes": shapes, "layout": layout},
                                       transition_s=0.0))
        frame = renderer.render(MusicState(t_s=0.0, valence=0.3, arousal=0.3), float(i))
        assert frame.shape == (144, 256, 3)
        pictures[shapes] = frame.astype(np.float32)
    # Different shapes give visibly different pictures.
    diffs = [np.abs(pictures[a] - pictures[b]).mean() for a, b in zip(SHAPES, SHAPES[1:])]
    assert min(diffs) > 2.0


@pytest.mark.parametrize("va", [(-0.7, -0.6), (0.7, 0.6), (0.6, -0.6), (-0.5, 0.5), (0.0, 0.0), (0.3, -0.2)])
def test_colours_carry_the_music_va(va):
    """The acceptance target: the colour head reads the music's VA back within 0.3 per axis."""
    renderer = ProceduralRenderer(512, 512)
    renderer.update_prompt(Caption(t_s=0.0, prompt="", valence=va[0], arousal=va[1], transition_s=0.0))
    head = ColourVA()
    readings = []
    for i in range(150):
        state = MusicState(t_s=i / 30, valence=va[0], arousal=va[1], beat_phase=(i / 15) % 1.0, beat_confidence=0.7)
        frame = renderer.render(state, i / 30)
        if i >= 90:
            readings.append(head.estimate(frame)[:2])
    mean = np.mean(readings, axis=0)
    assert abs(mean[0] - va[0]) <= 0.3 and abs(mean[1] - va[1]) <= 0.3, mean


def test_colours_follow_the_music_even_against_the_captions_palette():
    """A caption's palette sets hues; brightness and saturation still follow the music."""
    renderer = ProceduralRenderer(256, 256)
    renderer.update_prompt(Caption(t_s=0.0, prompt="", transition_s=0.0,
                                   hints={"palette": ("#ffe08a", "#ffb347", "#ff6f61")}))   # bright, warm
    frame = run(renderer, MusicState(t_s=0.0, valence=-0.7, arousal=-0.6), 0.0, 4.0)
    v, a, _ = ColourVA().estimate(frame)
    assert v < -0.4 and a < -0.3


def test_the_beat_pulses_the_picture():
    renderer = ProceduralRenderer(256, 144)
    renderer.prepare(parse_scene({"name": "t", "render": {"beat": 2.0, "accents": {"jump": 0, "kick": 0}}}))
    run(renderer, MusicState(t_s=0.0, valence=0.2, arousal=0.2, silent=False), 0.0, 3.0)
    beat = MusicState(t_s=3.0, valence=0.2, arousal=0.2, tempo_bpm=120.0, beat_phase=0.95, beat_confidence=0.8,
                      silent=False)
    before = renderer.render(beat, 3.0)       # 25 ms before the beat
    on_beat = renderer.render(beat, 3.033)    # the first frame after it
    assert on_beat.mean() > before.mean() + 5.0


def test_the_beat_is_predicted_between_listener_states():
    """One state a hop (0.1 s) but the accent lands on the frame the beat falls on, from phase and tempo."""
    renderer = ProceduralRenderer(160, 90)
    renderer.prepare(parse_scene({"name": "t", "render": {"beat": 2.0}}))
    state = MusicState(t_s=10.0, valence=0.0, arousal=0.3, tempo_bpm=120.0, beat_phase=0.79, beat_confidence=0.9,
                       silent=False)
    levels = []
    for i in range(12):                     # frames every 20 ms; the next beat is 0.105 s after the state
        renderer.render(state, 10.0 + 0.02 * i)
        levels.append(renderer.last_accent)
    assert int(np.argmax(levels)) == 6      # the first frame after the beat (15 ms after it)
    assert levels[6] > 0.6 and levels[5] < 0.05


def test_an_onset_rise_kicks_an_accent_without_a_beat():
    renderer = ProceduralRenderer(160, 90)
    quiet = MusicState(t_s=0.0, onset_strength=0.1, silent=False)
    run(renderer, quiet, 0.0, 1.0)
    assert renderer.last_accent < 0.05
    renderer.render(MusicState(t_s=1.0, onset_strength=0.8, silent=False), 1.0)
    assert renderer.last_accent > 0.5


def test_silence_has_no_accents():
    renderer = ProceduralRenderer(160, 90)
    renderer.render(MusicState(t_s=0.0, tempo_bpm=120, beat_confidence=1.0, onset_strength=1.0, silent=True), 0.0)
    assert renderer.last_accent == 0.0


def test_a_new_caption_blends_over_its_transition():
    renderer = ProceduralRenderer(128, 128)
    state = MusicState(t_s=0.0)
    renderer.update_prompt(Caption(t_s=0.0, prompt="", transition_s=0.0, hints={"palette": ("#0000ff",) * 3}))
    run(renderer, state, 0.0, 1.0)
    renderer.update_prompt(Caption(t_s=1.0, prompt="", transition_s=2.0, hints={"palette": ("#ff0000",) * 3}))

    def redness(frame):
        f = frame.astype(np.float32).reshape(-1, 3).mean(0)
        return f[0] / (f[0] + f[2] + 1e-6)

    series = [redness(renderer.render(state, 1.0 + i * 0.25)) for i in range(13)]
    start, middle, end = series[0], series[4], series[-1]
    # The grade pulls saturation toward the music's (neutral) VA, so blue reads bluish, red reddish.
    span = end - start
    assert span > 0.15
    assert start + 0.2 * span < middle < end - 0.2 * span   # partway there at half the transition
    assert max(np.diff(series)) < 0.5 * (end - start)  # no jump between two frames


def test_missing_or_malformed_hints_are_derived_from_va():
    warm = look_from_caption(Caption(t_s=0.0, prompt="", valence=0.8, arousal=0.2))
    cold = look_from_caption(Caption(t_s=0.0, prompt="", valence=-0.8, arousal=0.2))
    assert warm.palette.shape == (5, 3)
    assert warm.palette[:, 0].mean() > cold.palette[:, 0].mean()   # more red in the warm palette
    assert cold.palette[:, 2].mean() > warm.palette[:, 2].mean()   # more blue in the cold one
    calm = look_from_caption(Caption(t_s=0.0, prompt="", arousal=-0.9))
    wild = look_from_caption(Caption(t_s=0.0, prompt="", arousal=0.9))
    assert wild.motion_speed > calm.motion_speed and wild.turbulence > calm.turbulence

    odd = look_from_caption(Caption(t_s=0.0, prompt="", hints={
        "palette": ["red", 7], "motion_speed": "fast", "turbulence": float("nan"), "layout": "spiral", "shapes": 3}))
    assert odd.palette.shape == (5, 3) and np.all(np.isfinite(odd.palette))
    assert 0 <= odd.motion_speed <= 1 and 0 <= odd.turbulence <= 1
    assert odd.layout in LAYOUTS and odd.shapes in SHAPES
    renderer = ProceduralRenderer(64, 64)
    renderer.update_prompt(Caption(t_s=0.0, prompt="", hints={"palette": ["#12"], "shapes": "orbs"}))
    assert renderer.render(MusicState(t_s=0.0), 0.0).shape == (64, 64, 3)


def test_nan_music_never_reaches_the_picture():
    renderer = ProceduralRenderer(96, 96)
    nan = float("nan")
    state = MusicState(t_s=0.0, valence=nan, arousal=nan, beat_phase=nan, beat_confidence=nan, onset_strength=nan)
    frame = run(renderer, state, 0.0, 1.0)
    assert frame.std() > 1.0
    assert all(math.isfinite(x) for x in renderer.last_measured_va)


def test_scene_render_table_is_applied_and_validated():
    renderer = ProceduralRenderer(96, 96)
    scene = parse_scene({"name": "test", "render": {"shapes": "stars", "layout": "radial", "pulse": 2.0}})
    renderer.prepare(scene)
    renderer.render(MusicState(t_s=0.0), 0.0)
    assert renderer.looks.target.shapes == "stars" and renderer.looks.target.layout == "radial"
    with pytest.raises(UserError, match="shapes"):
        renderer.prepare(parse_scene({"name": "bad", "render": {"shapes": "teapots"}}))
    with pytest.raises(UserError, match="pulse"):
        renderer.prepare(parse_scene({"name": "bad", "render": {"pulse": "lots"}}))
    with pytest.raises(UserError, match="unknown key 'shape'"):
        renderer.prepare(parse_scene({"name": "bad", "render": {"shape": "orbs"}}))


@pytest.mark.parametrize("name", available_scenes())
def test_shipped_scenes_have_valid_render_tables(name):
    from scenes.scene import load_scene

    renderer = ProceduralRenderer(64, 64)
    renderer.prepare(load_scene(name))
    assert renderer.render(MusicState(t_s=0.0), 0.0).shape == (64, 64, 3)


def test_same_seed_same_pictures():
    a = ProceduralRenderer(64, 64, seed=3)
    b = ProceduralRenderer(64, 64, seed=3)
    state = MusicState(t_s=0.0, valence=0.4, arousal=0.1)
    assert np.array_equal(run(a, state, 0.0, 0.5), run(b, state, 0.0, 0.5))
