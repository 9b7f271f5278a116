"""Texture, shadows and the festival's vocabulary: soft shadows darken only under what casts them
and follow the scene's `shadow`, mountains and buildings are textured rather than flat, and the
new motifs are drawn and named by their words."""
from __future__ import annotations

import numpy as np
import pytest

from installation.errors import UserError
from models.procedural.atmosphere import SOFT_SCALE, Soft
from models.procedural.composition import DEFAULT_SHADOW, parse_rules
from models.procedural.fields import Field
from models.procedural.motifs import BY_NAME, MOTIF_NAMES, Ctx, motifs_named_in
from scenes.scene import load_scene

W, H = 640, 360
COLOURS = dict(dark=(12, 14, 30), mid=(70, 80, 120), light=(200, 190, 170), accent=(240, 160, 70), glow=(255, 245, 225))


def canvas(w: int = W, h: int = H) -> Soft:
    field = Field(w, h, np.random.default_rng(0))
    return Soft(np.full((field.h * SOFT_SCALE, field.w * SOFT_SCALE, 3), 150.0, dtype=np.float32), w, h)


def test_soft_shadows_darken_under_the_caster_only():
    soft = canvas()
    soft.shadows(np.asarray([[W * 0.25, H * 0.5, 40.0, 12.0]]), 0.8, 6.0)
    c = soft.canvas
    under = c[int(H * 0.5 * soft.k), int(W * 0.25 * soft.k)]
    far = c[int(H * 0.5 * soft.k), int(W * 0.8 * soft.k)]
    assert under.max() < 150 * 0.6 and np.allclose(far, 150.0)
    assert np.isfinite(c).all() and c.min() >= 0.0
    untouched = canvas()
    untouched.shadows(np.asarray([[W * 0.25, H * 0.5, 40.0, 12.0]]), 0.0, 6.0)
    assert np.allclose(untouched.canvas, 150.0)


def test_the_scene_shadow_key_is_read_and_checked():
    assert parse_rules({}, "t", MOTIF_NAMES).shadow == DEFAULT_SHADOW
    assert parse_rules({"shadow": 0.8}, "t", MOTIF_NAMES).shadow == 0.8
    with pytest.raises(UserError, match="shadow"):
        parse_rules({"shadow": 1.5}, "t", MOTIF_NAMES)
    assert 0.0 <= load_scene("grove").table("render")["shadow"] <= 1.0


@pytest.mark.parametrize("name", ["forest", "boats", "crystals", "fairground"])
def test_shadows_follow_the_ctx_strength(name):
    motif = BY_NAME[name](np.random.default_rng(2), W, H)
    means = []
    for shadow in (0.0, 1.0):
        soft = canvas()
        motif.soft(soft, Ctx(w=W, h=H, t=3.0, shadow=shadow, glow_gain=0.0, **COLOURS))
        means.append(float(soft.canvas.mean()))
    assert means[1] < means[0] - 0.3, means


def test_mountains_are_textured_and_keep_their_silhouette(monkeypatch):
    def draw() -> np.ndarray:
        mountains = BY_NAME["mountains"](np.random.default_rng(0), W, H)
        frame = np.full((H, W, 3), 255, np.uint8)
        mountains.draw(frame, Ctx(w=W, h=H, t=5.0, **COLOURS))
        return frame

    textured = draw()
    monkeypatch.setattr(BY_NAME["mountains"], "_texture", lambda *args: None)
    plain = draw()
    ridges = (plain != 255).any(axis=-1)
    changed = (np.abs(textured.astype(int) - plain).max(axis=-1) >= 3) & ridges
    assert changed.sum() > 0.25 * ridges.sum()        # shade, strata and snow, not three flat fills
    assert (textured[~ridges] == 255).all()           # nothing drawn outside the ridges: the silhouettes hold


def test_city_windows_are_lit_building_by_building_and_facades_drawn():
    city = BY_NAME["city"](np.random.default_rng(0), W, H)
    ctx = Ctx(w=W, h=H, t=2.0, **COLOURS)
    frame = np.zeros((H, W, 3), np.uint8)
    city.draw(frame, ctx)
    lit = (frame[..., 0] >= 200) & (frame[..., 2] < 120)   # warm windows (accent-coloured)
    ground = int(H * (ctx.horizon + 0.1))
    bw = 1.2 * W / len(city.b)
    shares = [lit[:ground, int(x):int(x + bw)].mean() for x in np.arange(0, W - bw, bw)]
    assert max(shares) > 0.01 and np.std(shares) > 0.2 * np.mean(shares)   # not a uniform sprinkle
    later = np.zeros_like(frame)
    city.draw(later, Ctx(w=W, h=H, t=80.0, **COLOURS))
    changed = ((frame != later).any(axis=-1)).mean()
    assert 0.0 < changed < 0.05                   # a few windows switch, the skyline holds


def test_festival_motifs_are_drawn_and_named():
    assert "crowd" in motifs_named_in("crowd silhouettes along the bottom edge")
    assert "fairground" in motifs_named_in("rain on a deserted fairground")
    assert "fireworks" in motifs_named_in("rockets screaming into a red sky")
    assert "birds" not in motifs_named_in("bird's-eye spiral")
    assert "moon" in motifs_named_in("the moon's path")
    for name in ("crowd", "fairground"):
        motif = BY_NAME[name](np.random.default_rng(1), W, H)
        frame = np.full((H, W, 3), 128, np.uint8)
        motif.draw(frame, Ctx(w=W, h=H, t=1.0, focus=(0.5, 0.4), **COLOURS))
        assert (frame != 128).any(axis=-1).mean() > 0.03, name


def test_a_whirlpool_lies_on_the_sea():
    spiral = BY_NAME["spiral"](np.random.default_rng(0), W, H)
    frame = np.zeros((H, W, 3), np.uint8)
    ctx = Ctx(w=W, h=H, t=1.0, water=True, focus=(0.5, 0.5), **COLOURS)
    spiral.draw(frame, ctx)
    rows = np.flatnonzero(frame.any(axis=(1, 2)))
    assert rows.min() >= H * ctx.horizon - 2    # below the horizon: on the water, not in the sky


def test_the_scene_shadow_reaches_the_drawing():
    from installation.records import MusicState
    from models.procedural.renderer import ProceduralRenderer
    from scenes.scene import parse_scene

    means = []
    for shadow in (0.0, 1.0):
        renderer = ProceduralRenderer(320, 180, seed=3)
        renderer.prepare(parse_scene({"name": "t", "render": {"motifs": ["forest"], "shadow": shadow}}))
        assert renderer.scene.rules.shadow == shadow
        for t_s in (0.0, 0.5, 1.0, 1.5, 2.0):   # the motif set grows in over MOTIF_FADE_S
            frame = renderer.render(MusicState(t_s=t_s, valence=0.2, arousal=0.0, silent=False), t_s)
        means.append(float(frame.mean()))
    assert means[1] < means[0] - 0.2, means
