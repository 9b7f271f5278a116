"""Image valence-arousal heads on real photographs (scikit-image) and controlled pictures."""
from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data

from installation.config import WatchConfig
from installation.errors import UserError
from models.seeing.va import (ClipVA, ColourVA, brightness_saturation_for, build_image_va, colour_features,
                             fit_linear_head, load_linear_head)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch's OpenMP pool spins against other processes on a shared 2-core machine; one thread is
    faster there and keeps timings steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def hsv_picture(hue: float, saturation: float, value: float, size: int = 96, texture: float = 0.15) -> np.ndarray:
    """A textured picture of one hue; `texture` varies brightness so it is not a flat card."""
    import cv2

    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.uniform(-1, 1, (size, size)).astype(np.float32), (0, 0), 4)
    noise /= np.abs(noise).max()
    hsv = np.zeros((size, size, 3), np.float32)
    hsv[..., 0] = hue
    hsv[..., 1] = saturation
    hsv[..., 2] = np.clip(value + texture * noise, 0, 1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return (rgb * 255).astype(np.uint8)


def test_colour_head_orders_real_photographs():
    head = ColourVA()
    hubble = head.estimate(skimage.data.hubble_deep_field())
    coffee = head.estimate(skimage.data.coffee())
    chelsea = head.estimate(skimage.data.chelsea())
    # The night sky is dark and unsaturated: low valence and low arousal.
    assert hubble[0] < -0.5 and hubble[1] < -0.2
    # Coffee is warm and saturated: more aroused than the cat, more pleasant than the night sky.
    assert coffee[1] > chelsea[1] + 0.3
    assert coffee[0] > hubble[0] + 0.5
    for v, a, c in (hubble, coffee, chelsea):
        assert -1 <= v <= 1 and -1 <= a <= 1 and 0 <= c <= 1


def test_brightness_raises_valence_and_saturation_raises_arousal():
    head = ColourVA()
    dark = head.estimate(hsv_picture(0.6 * 180, 0.5, 0.25))
    light = head.estimate(hsv_picture(0.6 * 180, 0.5, 0.85))
    assert light[0] > dark[0] + 0.4
    dull = head.estimate(hsv_picture(20, 0.1, 0.6))
    vivid = head.estimate(hsv_picture(20, 0.95, 0.6))
    assert vivid[1] > dull[1] + 0.4


def test_colour_head_never_returns_nan():
    head = ColourVA()
    black = np.zeros((32, 48, 3), np.uint8)
    white = np.full((2, 2, 3), 255, np.uint8)
    nan_float = np.full((16, 16, 3), np.nan, np.float32)
    rgba = np.dstack([skimage.data.astronaut(), np.full((512, 512), 255, np.uint8)])
    for picture in (black, white, nan_float, rgba):
        v, a, c = head.estimate(picture)
        assert all(math.isfinite(x) for x in (v, a, c))
        assert -1 <= v <= 1 and -1 <= a <= 1
    # A black frame carries no colour, and the head says so with low confidence.
    assert head.estimate(black)[2] < 0.1
    with pytest.raises(ValueError):
        head.estimate(np.zeros((8, 8), np.uint8))


def test_aim_brightness_and_saturation_follow_the_circumplex():
    calm_happy = brightness_saturation_for(0.7, -0.6)
    tense_sad = brightness_saturation_for(-0.6, 0.7)
    excited = brightness_saturation_for(0.6, 0.8)
    depressed = brightness_saturation_for(-0.7, -0.7)
    assert calm_happy[0] > tense_sad[0]         # pleasant: brighter
    assert excited[1] > depressed[1]            # aroused: more saturated
    for b, s in (calm_happy, tense_sad, excited, depressed):
        assert 0 <= b <= 1 and 0 <= s <= 1


def test_features_are_in_unit_ranges():
    f = colour_features(skimage.data.astronaut())
    for value in (f.brightness, f.saturation, f.colourfulness, f.contrast, f.clipped_fraction):
        assert 0 <= value <= 1.5


TINY_CLIP = "chromesthesia-test-tiny-clip"


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    """A tiny random-weight open_clip model registered under its own name and saved like a download.

    The architecture is real CLIP (ViT image tower, transformer text tower, CLIP's BPE vocabulary),
    only narrow, so the test exercises the same loading and scoring code in a second."""
    import json

    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("clip")
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(config), encoding="utf-8")
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


def test_clip_head_zero_shot_and_linear(clip_checkpoint, tmp_path):
    head = ClipVA(str(clip_checkpoint), TINY_CLIP)
    pictures = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.hubble_deep_field()]
    for picture in pictures:
        v, a, c = head.estimate(picture)
        assert -1 <= v <= 1 and -1 <= a <= 1 and 0 <= c <= 1
    words = head.labels(pictures[0])
    assert len(words) == 3 and words == head.labels(pictures[0])  # two scene words and a mood word
    embeddings = np.stack([head.embed(p) for p in pictures])
    assert embeddings.shape[0] == 3 and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-4)

    # A linear head fitted on these embeddings reads their labels back.
    labels = np.array([[0.2, 0.1], [0.5, 0.6], [-0.7, -0.5]], np.float32)
    weight, bias = fit_linear_head(embeddings, labels, ridge=1e-4)
    head_path = tmp_path / "head.npz"
    np.savez(head_path, weight=weight, bias=bias)
    fitted = ClipVA(str(clip_checkpoint), TINY_CLIP, head=str(head_path))
    for picture, (v, a) in zip(pictures, labels):
        got = fitted.estimate(picture)
        assert abs(got[0] - v) < 0.05 and abs(got[1] - a) < 0.05

    cfg = WatchConfig(image_va_head="clip", clip_checkpoint=str(clip_checkpoint), clip_model=TINY_CLIP).settings()
    assert isinstance(build_image_va(cfg), ClipVA)


def test_missing_or_corrupt_clip_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ClipVA(str(tmp_path / "nothing.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="does not load") as info:
        ClipVA(str(corrupt), TINY_CLIP)
    assert "\n" not in str(info.value)
    cfg = WatchConfig(image_va_head="clip", clip_checkpoint="").settings()
    with pytest.raises(UserError, match="watch.clip_checkpoint"):
        build_image_va(cfg)
    assert isinstance(build_image_va(WatchConfig(image_va_head="colour").settings()), ColourVA)


def test_linear_head_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_linear_head(str(tmp_path / "none.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, weight=np.zeros((4, 3)), bias=np.zeros(2))
    with pytest.raises(UserError, match="shapes"):
        load_linear_head(str(bad))


def storm_picture(size: int = 160) -> np.ndarray:
    """Dark, grey-blue, billowing clouds torn by a bright band of light: dark and high in contrast."""
    import cv2

    rng = np.random.default_rng(1)
    clouds = cv2.GaussianBlur(rng.uniform(0, 1, (size, size)).astype(np.float32), (0, 0), 8)
    clouds = (clouds - clouds.min()) / (np.ptp(clouds) + 1e-9)
    value = 0.08 + 0.25 * clouds
    value[int(size * 0.55):int(size * 0.62), :] = 0.95  # light breaking through at the horizon
    value[: int(size * 0.5), size // 2:size // 2 + 3] = 1.0  # a lightning stroke
    hsv = np.stack([np.full_like(value, 215.0), np.full_like(value, 0.2), np.clip(value, 0, 1)], axis=-1)
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).astype(np.uint8)


def test_a_dark_high_contrast_storm_reads_tense():
    head = ColourVA()
    v, a, _ = head.estimate(storm_picture())
    calm_dusk = head.estimate(hsv_picture(215, 0.2, 0.2, size=160, texture=0.05))
    assert v < -0.2 and a > 0.1, (v, a)  # negative valence, raised arousal
    assert a > calm_dusk[1] + 0.3  # the same darkness without the contrast stays calm
