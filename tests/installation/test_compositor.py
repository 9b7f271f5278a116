"""The compositor at the projector's refresh: a hit shows on the next composite, its strength against the
recent hits sets the accent's size, silence shows none and settles, slow pictures are cross-faded,
scene tables are checked."""
from __future__ import annotations

import numpy as np
import pytest

from installation.bus import Bus
from installation.clock import ManualClock
from installation.projection.compositor import Compositor, accent_settings
from installation.mailbox import Latest
from installation.projection.projector import Projector
from installation.records import Frame, OnsetState
from scenes.scene import load_scene, parse_scene
from tests.fakes import RecordingDisplay


def picture(value: int = 90, w: int = 64, h: int = 36) -> np.ndarray:
    rgb = np.full((h, w, 3), value, np.uint8)
    rgb[:, : w // 2, 0] = 200  # some colour, so a hue turn shows
    return rgb


def compositor(scene_name: str = "nocturne") -> tuple[Compositor, Latest[OnsetState]]:
    onsets: Latest[OnsetState] = Latest()
    scenes: Latest = Latest()
    scenes.put(load_scene(scene_name))
    return Compositor(onsets, scenes, 1 / 60), onsets


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_a_hit_shows_on_the_next_composite_and_follows_its_strength():
    comp, onsets = compositor()
    base = picture()
    onsets.put(OnsetState(t_s=10.0, silent=False))
    assert change(comp.compose(base, True, 10.0), base) == 0.0  # sound, no hit yet: the picture as rendered
    onsets.put(OnsetState(t_s=10.01, onset_t_s=10.0, strength=1.0, count=1, silent=False))
    strong = change(comp.compose(base, False, 10.016), base)
    assert strong > 10.0
    onsets.put(OnsetState(t_s=12.01, onset_t_s=12.0, strength=0.3, count=2, silent=False))
    weak = change(comp.compose(base, False, 12.016), base)
    assert 0.0 < weak < 0.5 * strong
    assert change(comp.compose(base, False, 13.0), base) < 0.5  # the accent has decayed


def test_silence_draws_no_accent_and_only_drifts():
    comp, onsets = compositor()
    onsets.put(OnsetState(t_s=5.0, silent=True))
    first = comp.compose(picture(90), True, 5.0).copy()
    # The renderer's picture jumps; in silence the wall eases towards it.
    eased = comp.compose(picture(150), True, 5.0 + 1 / 60)
    assert change(eased, first) < 0.05 * change(picture(150), picture(90))
    assert comp.level == 0.0


def moving(k: int, w: int = 64, h: int = 36) -> np.ndarray:
    """The renderer's picture at frame k: a bright bar sweeping across, a new place every frame."""
    rgb = np.full((h, w, 3), 40, np.uint8)
    x = (3 * k) % w
    rgb[:, x:x + 6] = 220
    return rgb


def test_silence_settles_to_still_and_the_first_hit_brings_the_picture_back():
    comp, onsets = compositor()
    fps = 30
    onsets.put(OnsetState(t_s=0.0, silent=True))
    shown = [comp.compose(moving(k), True, k / fps).copy() for k in range(10 * fps)]
    changes = [change(a, b) for a, b in zip(shown[fps:], shown[fps + 1:])]
    renderer = change(moving(0), moving(1))
    # The renderer moves every frame; the wall drifts at most drift_per_s (grey levels a second)
    assert max(changes) < 0.05 * renderer
    assert np.mean(changes) <= comp.settings.drift_per_s / fps + 0.01
    # Sound and a hit: the wall is the renderer's picture again on the next refresh (plus the accent)
    onsets.put(OnsetState(t_s=9.99, onset_t_s=9.98, strength=0.8, count=1, silent=False))
    back = comp.compose(moving(300), True, 300 / fps)
    assert change(back, shown[-1]) > 5.0
    unaccented = comp._held
    assert unaccented is not None and change(unaccented, moving(300)) < 1.0


def test_a_strong_hit_after_weak_ones_stands_out_more_than_one_in_a_run_of_equals():
    def last_accent(strengths: list[float]) -> float:
        comp, onsets = compositor()
        for i, strength in enumerate(strengths):  # eighths at 120 BPM
            t_s = 1.0 + 0.25 * i
            onsets.put(OnsetState(t_s=t_s, onset_t_s=t_s, strength=strength, count=i + 1, silent=False))
            comp.compose(picture(), True, t_s + 0.01)
        return comp.level

    after_weak = last_accent([0.3, 0.3, 0.3, 0.3, 0.6])
    in_a_run = last_accent([0.6, 0.6, 0.6, 0.6, 0.6])
    assert after_weak > 1.5 * in_a_run
    assert last_accent([0.6, 0.6, 0.6, 0.6, 0.3]) < 0.5 * in_a_run  # a soft hit after loud ones: a soft accent


def test_slow_pictures_are_cross_faded_between_arrivals():
    onsets: Latest[OnsetState] = Latest()
    scenes: Latest = Latest()
    scenes.put(parse_scene({"name": "x", "compositor": {"smooth_s": 0.0}}))  # the cross-fade alone
    comp = Compositor(onsets, scenes, 1 / 60)
    onsets.put(OnsetState(t_s=0.0, silent=False))
    for k, value in enumerate((40, 80, 120, 160)):  # a picture every half second (a slow diffusion renderer)
        for i in range(30):  # the projector composes at every refresh in between
            shown = comp.compose(picture(value), i == 0, k * 0.5 + i / 60)
            if k == 3 and i == 15:
                halfway = int(shown[0, -1, 1])
    assert 120 < halfway < 160


def test_the_projector_draws_the_newest_hit_over_the_held_frame():
    clock, bus = ManualClock(10.0), Bus(load_scene("pulse"))
    display = RecordingDisplay(64, 36)
    projector = Projector(bus.frames, bus.live, bus.projected_frames, clock, 30, (64, 36), display=display,
                          compositor=Compositor(bus.onsets, bus.scene, 1 / 30))
    projector.open()
    bus.frames.put(Frame(t_s=10.0, rgb=picture()))
    bus.onsets.put(OnsetState(t_s=10.0, silent=False))
    calm = projector.tick(10.0).copy()
    bus.onsets.put(OnsetState(t_s=10.02, onset_t_s=10.01, strength=1.0, count=1, silent=False))
    hit = projector.tick(10.033)
    assert change(hit, calm) > 10.0
    projector.close()


def test_a_spent_flash_budget_turns_the_flash_into_motion():
    """The guard's room decides at the hit: plenty -> the flash; none -> as much of the flash and then
    of a zoom punch as keeps every cell the guard judges short of a transition: the picture still
    changes, the cells' light hardly does."""
    import cv2
    from installation.projection.flash_guard import LUMA_STEP, MARGIN, measure, sample
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(30, 220, (5, 9, 3), dtype=np.uint8), (320, 180), interpolation=cv2.INTER_CUBIC)
    light = {}
    for room, moved in ((None, 0), (6, 0), (0, 1)):
        comp, onsets = compositor()
        onsets.put(OnsetState(t_s=1.0, onset_t_s=1.0, strength=1.0, count=1, silent=False))
        out = comp.compose(base, True, 1.01, room)
        assert comp.moved == moved and change(out, base) > 3.0
        light[room] = float(np.abs(measure(sample(out))[0] - measure(sample(base))[0]).max())
    assert light[None] == light[6] > LUMA_STEP   # the flash alone would be a transition
    assert light[0] < MARGIN * LUMA_STEP + 0.01, light
    assert accent_settings({"flash_to_motion": 0.0}).flash_to_motion == 0.0
    with pytest.raises(ValueError, match="compositor.flash_to_motion"):
        accent_settings({"flash_to_motion": -1})


def test_scene_compositor_tables_are_checked():
    assert accent_settings({"flash": 1.0, "blend": False}).flash == 1.0
    with pytest.raises(ValueError, match="compositor.flash"):
        accent_settings({"flash": 3.0})
    with pytest.raises(ValueError, match="compositor.sparkle"):
        accent_settings({"sparkle": 1.0})
    scene = parse_scene({"name": "x", "compositor": {"ring": 0.0, "flash": 0.0, "kick": 0.0}})
    onsets: Latest[OnsetState] = Latest()
    scenes: Latest = Latest()
    scenes.put(scene)
    comp = Compositor(onsets, scenes, 1 / 60)
    onsets.put(OnsetState(t_s=1.0, onset_t_s=1.0, strength=1.0, count=1, silent=False))
    base = picture()
    assert change(comp.compose(base, True, 1.01), base) == 0.0  # a scene with every accent off
