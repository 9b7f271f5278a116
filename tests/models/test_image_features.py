"""Image analysis on real photographs and on frames with known answers."""
from __future__ import annotations

import numpy as np
import skimage.data

from models.seeing.features import ImageAnalyser, dominant_hues


def test_features_of_real_photographs_are_in_range_and_differ():
    analyser = ImageAnalyser()
    moon = analyser.analyse(np.repeat(skimage.data.moon()[:, :, None], 3, axis=2), 0.0)
    analyser.reset()
    coffee = analyser.analyse(skimage.data.coffee(), 1.0)
    for s in (moon, coffee):
        for value in (s.valence, s.arousal):
            assert -1.0 <= value <= 1.0 and np.isfinite(value)
        for value in (s.brightness, s.saturation, s.contrast, s.colourfulness, s.edge_density, s.motion):
            assert 0.0 <= value <= 1.0
    assert moon.saturation < 0.05 and moon.dominant_hues_deg == ()  # a grey photograph has no hue
    assert coffee.saturation > moon.saturation and coffee.colourfulness > moon.colourfulness
    assert coffee.motion == 0.0  # reset: no previous frame, no motion


def test_motion_is_found_where_the_picture_changes():
    analyser = ImageAnalyser()
    still = np.full((120, 160, 3), 90, np.uint8)
    analyser.analyse(still, 0.0)
    assert analyser.analyse(still, 0.2).motion == 0.0
    moved = still.copy()
    moved[80:120, 110:160] = 250  # someone enters at the bottom right
    state = analyser.analyse(moved, 0.4)
    assert state.motion > 0.0 and state.presence
    assert int(np.argmax(state.regions_motion)) == 8
    assert state.regions_motion[0] == 0.0


def test_dominant_hue_of_pure_colours():
    import cv2
    for rgb, lo, hi in (((255, 0, 0), 0, 20), ((0, 200, 0), 110, 130), ((0, 0, 255), 230, 250)):
        frame = np.zeros((20, 20, 3), np.uint8)
        frame[:] = rgb
        hue = dominant_hues(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV))[0]
        assert lo <= hue <= hi, (rgb, hue)


def test_a_failing_head_gives_neutral_va_and_is_counted():
    class BrokenHead:
        def estimate(self, rgb):
            raise RuntimeError("weights gone")

    analyser = ImageAnalyser(BrokenHead())
    state = analyser.analyse(skimage.data.astronaut(), 0.0)
    assert (state.valence, state.arousal, state.va_confidence) == (0.0, 0.0, 0.0)
    assert analyser.stats["head_failures"] == 1
    assert state.brightness > 0.1  # the other features are still there


def test_content_descriptors_see_faces_sky_and_plants_and_words_join_the_description():
    from models.seeing.content import CONTENT_KEYS, content
    analyser = ImageAnalyser()
    astronaut = analyser.analyse(skimage.data.astronaut(), 0.0)
    assert astronaut.content["faces"] >= 1 and astronaut.presence and "person" in astronaut.description
    rocket = content(skimage.data.rocket())
    grass = content(skimage.data.grass())
    assert set(CONTENT_KEYS) <= set(rocket)
    assert rocket["sky"] > 0.2 and rocket["openness"] > 0.4 and rocket["horizon_y"] > 0.6
    assert grass["texture"] > rocket["texture"]
    green = np.zeros((90, 160, 3), np.uint8)
    green[...] = (40, 150, 40)
    green += np.random.default_rng(0).integers(0, 60, green.shape, dtype=np.uint8)  # leafy texture
    assert content(green)["vegetation"] > 0.5
    # Level lines: a horizontal stripe pattern; upright lines: vertical stripes.
    stripes = np.zeros((90, 160, 3), np.uint8)
    stripes[::8] = 255
    assert content(stripes)["edges_horizontal"] > 0.8 and content(stripes.transpose(1, 0, 2))["edges_vertical"] > 0.8

    said = analyser.comment("the sea\x00 at night \n is lonely", t_s=1.0)
    assert said == "the sea at night is lonely"
    analyser.reset()
    with_words = analyser.analyse(skimage.data.coffee(), 2.0)
    assert with_words.description.endswith("A visitor says: the sea at night is lonely.")
    analyser.reset()
    later = analyser.analyse(skimage.data.coffee(), 2.0 + analyser.comment_ttl_s + 1.0)
    assert "visitor" not in later.description  # a comment fades after its time


def test_a_comment_over_the_command_table_reaches_the_analyser():
    from installation.operators import routes
    from installation.records import Command
    ctx = routes.RouteContext(lambda: ["nocturne"], {}, blocklist=("gore",))
    route, text, why = routes.parse(Command(0.0, "/comment", ("  the sea\tis lonely ",)), ctx)
    assert route.effect == "comment" and text == "the sea is lonely" and why is None
    assert routes.parse(Command(0.0, "/comment", ("so much gore",)), ctx)[2].startswith("comment contains a blocked")
    assert routes.parse(Command(0.0, "/comment", ()), ctx)[2].startswith("/comment needs text")
    analyser = ImageAnalyser()
    analyser.comment(text, 0.0)  # what the composition root's "comment" effect does
    assert analyser.analyse(skimage.data.coffee(), 1.0).description.endswith("A visitor says: the sea is lonely.")
