"""Drawing with depth: the soft layers (noise, haze, glow) stay finite and in range at the sizes the
renderer uses, far layers move less with the camera than near ones, and captions name motifs by
whole words."""
from __future__ import annotations

import numpy as np
import pytest

from installation.records import MusicState
from models.procedural.atmosphere import SOFT_SCALE, Soft, horizon_haze
from models.procedural.fields import Field
from models.procedural.motifs import BY_NAME, MOTIF_NAMES, Ctx, motifs_named_in
from models.procedural.noise import Noise
from models.procedural.renderer import ProceduralRenderer
from scenes.scene import parse_scene

SIZES = ((320, 180), (1280, 720), (1920, 1080))
COLOURS = dict(dark=(12, 14, 30), mid=(70, 80, 120), light=(200, 190, 170), accent=(240, 160, 70), glow=(255, 245, 225))


def soft_canvas(w: int, h: int) -> Soft:
    field = Field(w, h, np.random.default_rng(0))
    canvas = np.full((field.h * SOFT_SCALE, field.w * SOFT_SCALE, 3), 90.0, dtype=np.float32)
    return Soft(canvas, w, h)


def test_noise_is_finite_in_range_and_moves_with_its_offset():
    noise = Noise(np.random.default_rng(1))
    a = noise.fbm(320, 120, 3.0)
    b = noise.fbm(320, 120, 3.0, dx=0.5)
    assert a.shape == (120, 320) and a.dtype == np.float32
    assert np.isfinite(a).all() and -0.1 <= a.min() and a.max() <= 1.1
    assert a.std() > 0.03                      # a texture, not a flat field
    assert np.abs(a - b).mean() > 0.02         # drifting moves it


@pytest.mark.parametrize("w,h", SIZES)
def test_every_soft_pass_keeps_the_canvas_finite_and_in_range(w, h):
    for name in MOTIF_NAMES:
        motif = BY_NAME[name](np.random.default_rng(3), w, h)
        for t, amount, focus, cam, beat in ((0.0, 1.0, None, 0.0, 0.0), (7.3, 0.3, (0.67, 0.33), -40.0, 1.0),
                                           (61.0, 0.6, (0.5, 0.5), 55.0, 0.5)):
            soft = soft_canvas(w, h)
            ctx = Ctx(w=w, h=h, t=t, beat=beat, amount=amount, focus=focus, cam=cam, water=True, glow_gain=2.0, **COLOURS)
            horizon_haze(soft, h * ctx.horizon, ctx.light, 1.0)
            motif.soft(soft, ctx)
            assert np.isfinite(soft.canvas).all(), name
            assert soft.canvas.min() >= -1.0 and soft.canvas.max() <= 256.0, name
            frame = np.zeros((h, w, 3), np.uint8)
            motif.draw(frame, ctx)   # the sharp pass runs at every size too


@pytest.mark.parametrize("w,h", SIZES[1:])
def test_frames_with_the_textured_motifs_are_whole_at_the_output_sizes(w, h):
    renderer = ProceduralRenderer(w, h)
    renderer.prepare(parse_scene({"name": "t", "render": {"motifs": ["clouds", "waves", "fire", "smoke"], "haze": 1.0, "glow": 2.0}}))
    for i in range(4):
        frame = renderer.render(MusicState(t_s=i * 0.7, valence=0.2, arousal=0.4, silent=False), i * 0.7)
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    assert set(renderer.drawn) == {"clouds", "waves", "fire", "smoke"}
    assert frame.std() > 8.0   # a picture, not a wash


def _ridge_tops(frame: np.ndarray, below: int) -> np.ndarray:
    """Per column, the first row darker than `below` (grey)."""
    dark = frame[..., 0] < below
    return np.where(dark.any(axis=0), dark.argmax(axis=0), frame.shape[0]).astype(np.float32)


def _shift(a: np.ndarray, b: np.ndarray, most: int) -> int:
    """The x shift that best lays profile `a` onto `b`."""
    errors = [np.abs(a[most:-most] - b[most + s:len(b) - most + s]).mean() for s in range(-most, most + 1)]
    return int(np.argmin(errors)) - most


def test_far_ridges_move_less_with_the_camera_than_near_ones():
    w, h = 640, 360
    mountains = BY_NAME["mountains"](np.random.default_rng(0), w, h)
    tops = []
    for cam in (0.0, 80.0):
        frame = np.full((h, w, 3), 255, np.uint8)
        mountains.draw(frame, Ctx(w=w, h=h, cam=cam, dark=(0, 0, 0), mid=(0, 0, 0), light=(255, 255, 255),
                                  accent=(255, 255, 255), glow=(255, 255, 255)))
        tops.append((_ridge_tops(frame, 200), _ridge_tops(frame, 10)))   # far ridge (palest) and near ridge (black)
    far = _shift(tops[0][0], tops[1][0], 100)
    near = _shift(tops[0][1], tops[1][1], 100)
    assert near >= 3 * max(1, far), (far, near)
    assert 40 <= near <= 80


def test_far_layers_take_the_sky_colour():
    w, h = 640, 360
    city = BY_NAME["city"](np.random.default_rng(0), w, h)
    frame = np.zeros((h, w, 3), np.uint8)
    ctx = Ctx(w=w, h=h, dark=(0, 0, 0), mid=(0, 0, 0), light=(200, 200, 200), accent=(0, 0, 0), glow=(0, 0, 0))
    city.draw(frame, ctx)
    greys = {int(v) for v in np.unique(frame[..., 1])}
    assert any(90 <= v <= 120 for v in greys) and any(50 <= v <= 70 for v in greys)   # two hazy rows behind
    assert 0 in greys                                                                  # and the dark near row


@pytest.mark.parametrize("text,named,not_named", [
    ("dappled light under old beech trees", ["forest"], ["ribbons"]),
    ("tiny subject under a towering sky", ["clouds"], ["tower"]),
    ("lightning splitting a violet sky", ["lightning", "clouds"], ["ribbons"]),
    ("fireflies over the lanterns", ["lanterns"], []),
    ("leaves falling on a lake", ["petals", "waves"], []),
    ("moonlit watercolour wash", ["moon"], ["waves"]),
    ("stuttering neon over a crowded crossing", ["city", "glyphs"], ["birds"]),
    ("campfire smoke in the pines", ["forest", "smoke", "fire"], []),
    ("sunken ship", ["boats"], ["sun"]),
])
def test_motifs_are_named_by_whole_words(text, named, not_named):
    found = motifs_named_in(text)
    for name in named:
        assert name in found, (text, found)
    for name in not_named:
        assert name not in found, (text, found)
