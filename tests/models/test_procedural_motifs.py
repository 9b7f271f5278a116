"""The motif library and how captions choose from it: what a caption names is what gets drawn."""
from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest

from installation.errors import UserError
from installation.records import Caption, MusicState
from models.procedural.motifs import BY_NAME, MOTIF_NAMES, choose_motifs, motion_from_text
from models.procedural.renderer import ProceduralRenderer
from models.renderer import Renderer
from scenes.scene import parse_scene

LIVE = dict(valence=0.2, arousal=0.3, tempo_bpm=120.0, beat_confidence=0.6, silent=False)


def frames(renderer, seconds, start_s=0.0, fps=30):
    frame = None
    for i in range(int(seconds * fps)):
        frame = renderer.render(MusicState(t_s=start_s + i / fps, beat_phase=(i / 15) % 1.0, **LIVE), start_s + i / fps)
    return frame


def test_the_renderer_satisfies_the_renderer_protocol():
    renderer = ProceduralRenderer(128, 72)
    for member in ("prepare", "update_prompt", "render", "close"):
        assert callable(getattr(renderer, member))
    assert renderer.name == "procedural"
    params = list(inspect.signature(renderer.render).parameters)
    assert params == list(inspect.signature(Renderer.render).parameters)[1:]
    init = np.zeros((72, 128, 3), np.uint8)
    assert renderer.render(MusicState(t_s=0.0), 0.0, init_rgb=init).shape == (72, 128, 3)
    renderer.close()


def test_the_library_holds_twenty_motifs_each_drawing_something_of_its_own():
    assert len(MOTIF_NAMES) >= 20 and len(set(MOTIF_NAMES)) == len(MOTIF_NAMES)
    renderer = ProceduralRenderer(320, 180)
    bare = None
    pictures = {}
    for name in (None,) + MOTIF_NAMES:
        r = ProceduralRenderer(320, 180)
        r.prepare(parse_scene({"name": "t", "render": {"motifs": [name or "stars"], "accents": {"flash": 0, "burst": 0}}}))
        if name is None:
            r._set_motifs(())
        state = MusicState(t_s=2.0, beat_phase=0.02, **LIVE)
        for i in range(3):
            frame = r.render(state, 2.0 + i)   # past the crossfade from the default set
        if name is None:
            bare = frame.astype(np.int16)
        else:
            assert r.drawn == (name,)
            pictures[name] = frame.astype(np.int16)
    del renderer
    for name, picture in pictures.items():
        changed = np.mean(np.abs(picture - bare).max(axis=2) > 12)
        assert changed > 0.001, f"{name} draws nothing visible"


def test_motifs_are_drawn_sharp_at_the_output_resolution():
    renderer = ProceduralRenderer(1280, 720)
    renderer.prepare(parse_scene({"name": "t", "render": {"motifs": ["city", "rain", "mountains"]}}))
    frame = frames(renderer, 0.5)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    sharpness = cv2.Laplacian(grey, cv2.CV_64F).var()
    assert sharpness >= 25.0
    # Edges one or two pixels wide: the frame is not an upscaled small picture.
    small = cv2.resize(cv2.resize(grey, (160, 90), interpolation=cv2.INTER_AREA), (1280, 720))
    assert sharpness > 5 * cv2.Laplacian(small, cv2.CV_64F).var()


def test_caption_facets_choose_the_motifs():
    renderer = ProceduralRenderer(160, 90)
    caption = Caption(t_s=0.0, prompt="x", facets={"scene": "anxious crows circling a bleak tower",
                                                   "composition": "low horizon under a vast sky",
                                                   "motion": "furious whirling storm"},
                      hints={"shapes": "particles"})
    renderer.update_prompt(caption)
    frames(renderer, 2.0)
    assert {"birds", "tower"} <= set(renderer.drawn)
    assert renderer._motion.swirl > 0 and renderer._motion.speed > 1.0


def test_a_changed_operator_prompt_changes_the_motifs_drawn_within_two_seconds():
    renderer = ProceduralRenderer(320, 180)
    renderer.update_prompt(Caption(t_s=0.0, prompt="mist over still water", facets={"scene": "mist over still water"},
                                   hints={"shapes": "waves"}))
    frames(renderer, 2.0)
    before = set(renderer.drawn)
    # The operator's caption keeps the agents' facets and hints; its own words must still show.
    renderer.update_prompt(Caption(t_s=2.0, prompt="crows circling a tower in the rain", source="operator",
                                   facets={"scene": "mist over still water"}, hints={"shapes": "waves"}))
    frames(renderer, 2.0, start_s=2.0)
    after = set(renderer.drawn)
    assert after != before and {"birds", "tower", "rain"} <= after
    # A prompt that names nothing drawable still changes the set.
    renderer.update_prompt(Caption(t_s=4.0, prompt="the quiet shape of a thought", source="operator"))
    frames(renderer, 2.0, start_s=4.0)
    assert set(renderer.drawn) != after


def test_choose_motifs_orders_by_layer_and_falls_back_to_the_scene():
    assert set(choose_motifs("rain over a city", None)) == {"rain", "city"}
    chosen = choose_motifs("nothing drawable here", "crystals", ("stars",))
    assert chosen == ("stars", "crystals")
    layers = [BY_NAME[n].layer for n in choose_motifs("snow, forest, moon and birds", None)]
    assert layers == sorted(layers)


def test_motion_words_set_direction_and_speed():
    assert motion_from_text("triumphant rising sweep").dy < 0
    assert motion_from_text("mournful slow falling").dy > 0
    assert motion_from_text("slow turning spiral").swirl > 0
    assert motion_from_text("frantic chaotic bursts").speed > motion_from_text("frozen silence").speed


def test_scene_motifs_and_accents_are_validated():
    renderer = ProceduralRenderer(64, 64)
    with pytest.raises(UserError, match="motifs"):
        renderer.prepare(parse_scene({"name": "b", "render": {"motifs": ["teapots"]}}))
    with pytest.raises(UserError, match="accents.glitter"):
        renderer.prepare(parse_scene({"name": "b", "render": {"accents": {"glitter": 1.0}}}))
    with pytest.raises(UserError, match="flash"):
        renderer.prepare(parse_scene({"name": "b", "render": {"accents": {"flash": 9}}}))
    with pytest.raises(UserError, match="palette"):
        renderer.prepare(parse_scene({"name": "b", "render": {"palette": ["blue"]}}))


def test_eight_scenes_each_a_distinct_look_and_sound():
    from models.captions.scenes import scene_settings
    from scenes.scene import available_scenes, load_scene

    names = available_scenes()
    assert len(names) >= 8
    looks, sounds = set(), set()
    for name in names:
        scene = load_scene(name)
        scene_settings(scene)          # the captions room accepts its table
        table = scene.table("render")
        renderer = ProceduralRenderer(160, 90)
        renderer.prepare(scene)
        looks.add((tuple(table["motifs"]), tuple(table.get("palette", ())), tuple(sorted(table["accents"].items()))))
        sounds.add((tuple(sorted(scene.programs.items())), scene.tempo_range_bpm))
    assert len(looks) == len(names) and len(sounds) == len(names)
