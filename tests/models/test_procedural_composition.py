"""Composition: one focal motif family, at most one supporting, the rest texture, in every scene."""
from __future__ import annotations

import pytest

from installation.errors import UserError
from installation.records import Caption, MusicState
from models.procedural.composition import FULL_STRENGTH, THIRDS, CompositionRules, cap_full, parse_rules, plan, rank
from models.procedural.motifs import MOTIF_NAMES
from models.procedural.renderer import ProceduralRenderer
from scenes.scene import available_scenes, load_scene, parse_scene

DENSE = Caption(t_s=0.0, prompt="dense", transition_s=1.0, source="agents",
                facets={"scene": "city lights in the rain under the stars with birds over mountains",
                        "composition": "rings of light over a grid"},
                hints={"shapes": "orbs", "layout": "diagonal"})
CALM = Caption(t_s=3.0, prompt="calm", transition_s=1.0, source="agents",
               facets={"scene": "waves under the moon", "composition": "boats in the middle"},
               hints={"shapes": "waves", "layout": "centre"})


@pytest.mark.parametrize("scene", available_scenes())
def test_a_dense_caption_keeps_at_most_two_families_at_full_strength(scene):
    renderer = ProceduralRenderer(256, 144, seed=0)
    renderer.prepare(load_scene(scene))
    renderer.update_prompt(DENSE)
    counts = []
    for i in range(300):   # 5 s at 60 frames a second, a second caption at 3 s: a cross-fade in the middle
        t_s = i / 60.0
        if i == 180:
            renderer.update_prompt(CALM)
        renderer.render(MusicState(t_s=t_s, valence=0.2, arousal=0.6, beat_phase=(t_s * 2) % 1.0, beat_confidence=0.8,
                                   onset_strength=0.5, tempo_bpm=120.0, silent=False), t_s)
        counts.append(renderer.composition["full_strength"])
        if i == 170:
            dense = dict(renderer.composition)
            drawn = renderer.drawn
    assert max(counts) <= 2
    assert len(drawn) >= 3   # the rest is drawn, as texture
    assert dense["focal"] in ("city", "rain", "stars", "birds", "mountains", "rings", "grid", "ribbons")   # named
    assert dense["support"] is not None
    assert len(dense["texture"]) >= 1
    assert renderer.composition["focal"] in ("waves", "moon") and renderer.composition["focus"] == [0.5, 0.45]   # centred


def test_roles_follow_the_captions_words_and_the_scenes_rules():
    rules = CompositionRules(focal=("lightning",), supporting=0, texture=0.2)
    assert rank((), ("clouds", "lightning", "rain"), rules)[0] == "lightning"   # the scene's choice when the caption names none
    p = plan(rank(("clouds",), ("clouds", "lightning", "rain"), rules), rules, "diagonal", key="x")
    assert p.roles == {"clouds": "focal", "lightning": "texture", "rain": "texture"}
    # weather names no place to look: the scene's choice leads, the rain stays behind it
    assert rank(("rain",), ("clouds", "lightning", "rain"), rules)[:2] == ("lightning", "rain")
    assert rank(("rain", "waves"), ("rain", "waves", "mountains"), CompositionRules(focal=("moon",)))[:2] == ("waves", "rain")
    assert rank(("rain",), ("rain",), rules) == ("rain",)
    assert rank(("rain", "lightning"), ("clouds", "lightning", "rain"), rules)[:2] == ("lightning", "rain")
    assert p.focus in (THIRDS, (1 - THIRDS[0], THIRDS[1]))
    assert cap_full({"a": 1.0, "b": 0.9, "c": 0.7}) == {"a": 1.0, "b": 0.9, "c": FULL_STRENGTH - 0.01}


def test_bad_rules_are_one_sentence_naming_the_key():
    with pytest.raises(UserError, match="focal"):
        parse_rules({"focal": ["dragons"]}, "storm [render]", MOTIF_NAMES)
    with pytest.raises(UserError, match="texture"):
        parse_rules({"texture": 0.9}, "storm [render]", MOTIF_NAMES)
    with pytest.raises(UserError, match="supporting"):
        ProceduralRenderer(64, 64).prepare(parse_scene({"name": "t", "render": {"supporting": 3}}))


def test_the_renderer_stage_puts_the_composition_in_status():
    from installation.bus import Bus
    from installation.clock import ManualClock
    from installation.stages.renderer import RendererStage

    clock, bus = ManualClock(), Bus("storm")
    bus.scene.put(load_scene("storm"))
    bus.captions.put(DENSE)
    stage = RendererStage([ProceduralRenderer(128, 72)], bus.music, bus.captions, bus.scene, bus.live, bus.frames, clock,
                          fps=10)
    for _ in range(20):
        stage.step()
    status = stage.status()["composition"]
    assert status["full_strength"] <= 2 and status["focal"] == "city"
