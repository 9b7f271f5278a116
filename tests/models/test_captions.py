"""Captions: music description, phrase banks, facet agents and the director on real records."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from installation.config import CaptionsConfig
from installation.records import Caption, MusicState
from models.captions.safety import TokenCounter
from models.captions.banks import FACETS, LAYOUTS, SHAPES, load_phrase_banks
from models.captions.describe import describe
from models.captions.director import Director
from models.captions.settings import CaptionSettings
from scenes.scene import load_scene


def state(t_s: float, v: float = 0.0, a: float = 0.0, **kw) -> MusicState:
    base = dict(mode="minor" if v < 0 else "major", loudness_dbfs=-25.0, silent=False, brightness=0.5)
    base.update(kw)
    return MusicState(t_s=t_s, valence=v, arousal=a, **base)


def test_banks_load_and_every_phrase_has_renderer_hints():
    banks = load_phrase_banks()
    assert set(banks) == set(FACETS)
    for p in banks["colour"]:
        assert 3 <= len(p.hints["palette"]) <= 5
    assert all(p.hints["shapes"] in SHAPES for p in banks["scene"])
    assert all(p.hints["layout"] in LAYOUTS for p in banks["composition"])
    assert all(0 <= p.hints["motion_speed"] <= 1 for p in banks["motion"])


def test_first_update_returns_a_caption_that_fits_clip():
    director = Director(CaptionsConfig().settings(), load_scene("nocturne"))
    caption = director.update(state(0.0, -0.5, -0.6, tempo_bpm=70), 0.0)
    assert isinstance(caption, Caption)
    assert set(caption.facets) == set(FACETS) and set(caption.reasons) == set(FACETS)
    assert all("->" in r for r in caption.reasons.values())
    assert TokenCounter().count(caption.prompt) <= 77
    assert director.current is caption
    assert director.update(state(0.1, -0.5, -0.6, tempo_bpm=70), 0.1) is None


def test_describe_words_follow_the_state():
    d = describe(state(0.0, -0.6, -0.7, tempo_bpm=62, loudness_dbfs=-35, brightness=0.2))
    assert (d.tempo, d.mode, d.dynamics, d.timbre, d.emotion) == ("slow", "minor", "soft", "dark", "melancholy")
    d = describe(state(0.0, 0.7, 0.8, tempo_bpm=140, loudness_dbfs=-8, brightness=0.8, beat_confidence=0.9))
    assert (d.tempo, d.mode, d.dynamics, d.timbre, d.emotion) == ("fast", "major", "loud", "bright", "joyful")
    assert "pulsing" in d.tags
    nan = describe(MusicState(t_s=0, valence=math.nan, arousal=math.inf, tempo_bpm=math.nan))
    assert math.isfinite(nan.valence) and math.isfinite(nan.arousal)


def config(**kw) -> CaptionSettings:
    return CaptionsConfig(**kw).settings()


def test_settings_carry_every_captions_key():
    section = CaptionsConfig(mode="single_agent", blocklist=("sea",), critic_gain=2.0)
    assert dataclasses.asdict(section.settings()) == section.model_dump()  # no key lost, no second default


def run(director: Director, states) -> list[tuple[float, Caption]]:
    out = []
    for s in states:
        c = director.update(s, s.t_s)
        if c is not None:
            out.append((s.t_s, c))
    return out


def steady(t0: float, t1: float, v: float, a: float, hop_s: float = 0.1, **kw):
    n = int(round((t1 - t0) / hop_s))
    return [state(t0 + i * hop_s, v, a, **kw) for i in range(n)]


def test_steady_music_changes_only_at_max_hold():
    director = Director(config(min_hold_s=4, max_hold_s=20), load_scene("nocturne"))
    published = run(director, steady(0, 65, 0.3, -0.2))
    times = [t for t, _ in published]
    assert times[0] == 0.0
    assert [round(b - a, 1) for a, b in zip(times, times[1:])] == [20.0, 20.0, 20.0]


def test_va_jump_waits_for_min_hold_then_follows():
    director = Director(config(min_hold_s=4, max_hold_s=60), load_scene("nocturne"))
    states = steady(0, 1, -0.6, -0.6) + steady(1, 10, 0.7, 0.7)
    published = run(director, states)
    assert [round(t, 1) for t, _ in published] == [0.0, 4.0]
    first, second = published[0][1], published[1][1]
    assert second.valence > 0.5 and first.valence < -0.5
    assert set(first.facets.values()).isdisjoint(second.facets.values())


def test_section_change_is_latched_and_lands_on_a_bar_line():
    director = Director(config(min_hold_s=4, max_hold_s=60, beats_per_bar=4), load_scene("nocturne"))
    hop, bpm = 0.05, 120.0  # a beat every 0.5 s, a bar every 2 s
    states = []
    for i in range(int(12 / hop)):
        t = i * hop
        states.append(state(t, 0.2 if t < 1.0 else 0.35, 0.1, tempo_bpm=bpm, beat_confidence=0.9,
                            beat_phase=(t * bpm / 60.0) % 1.0, section_change=abs(t - 1.0) < 1e-9))
    published = run(director, states)
    assert len(published) == 2
    t_change = published[1][0]
    assert 4.0 <= t_change <= 4.0 + 2.0 + hop  # after min_hold, within one bar of it
    assert abs(t_change / 2.0 - round(t_change / 2.0)) < 0.06  # on a bar line (beats counted from the start)
    assert director.last_reason == "section"


def test_no_beat_no_bar_wait():
    director = Director(config(min_hold_s=0.5, max_hold_s=60), load_scene("nocturne"))
    states = steady(0, 1, 0.0, 0.0) + [state(1.0, 0.15, 0.0, section_change=True)]
    published = run(director, states)
    assert [round(t, 1) for t, _ in published] == [0.0, 1.0]


def test_a_section_alarm_without_a_change_of_mood_keeps_the_picture():
    director = Director(config(min_hold_s=0.5, max_hold_s=60), load_scene("nocturne"))
    states = steady(0, 1, 0.0, 0.0) + [state(1.0, 0.03, 0.02, section_change=True)] + steady(1.1, 3, 0.03, 0.02)
    assert [round(t, 1) for t, _ in run(director, states)] == [0.0]


def test_simulated_show_changes_at_music_not_every_tick_and_never_repeats_within_five():
    from models.evaluation.caption_bench import simulated_run
    result = simulated_run(config(), load_scene("nocturne"), duration_s=600.0, seed=3)
    assert result["repeats_within_5"] == 0
    assert result["section_changes_followed"] == result["section_changes"]
    assert result["hold_s"]["min"] >= 4.0
    assert 1.0 <= result["changes_per_minute"] <= 8.0
    assert result["max_tokens"] <= 77


def test_lexicon_valence_rises_with_music_valence():
    from models.evaluation.caption_bench import lexicon_sweep
    result = lexicon_sweep(config(), load_scene("nocturne"), steps=7)
    assert result["spearman"] >= 0.5


def test_critic_brightens_a_picture_that_is_too_dark():
    director = Director(config(min_hold_s=1, max_hold_s=600, critic_threshold=0.2, critic_tau_s=2.0), load_scene("nocturne"))
    first = director.update(state(0.0, 0.6, 0.0), 0.0)
    t, published = 0.0, []
    while t < 30:
        t = round(t + 0.1, 1)
        director.critique((-0.4, 0.0), t)  # the projector shows something gloomy while the music is happy
        c = director.update(state(t, 0.6, 0.0), t)
        if c is not None:
            published.append((director.last_reason, c))
    drift = director.drift
    assert drift is not None and drift.smoothed_va[0] > 0.8 and drift.nudge_va[0] > 0.2
    assert published and published[0][0] == "critic"
    corrected = published[0][1]
    assert "critic (colour-only): brighter" in corrected.reasons["colour"]  # no CLIP weights: said so
    lum = lambda pal: sum(int(c[1:3], 16) + int(c[3:5], 16) + int(c[5:7], 16) for c in pal) / len(pal)
    bank = {p.text: p for p in load_phrase_banks()["colour"]}
    assert lum(corrected.hints["palette"]) > lum(bank[corrected.facets["colour"]].hints["palette"])
    assert drift.corrections >= 1 and len(director.drift_history) == 300
    # the correction and its effect on the drift (still gloomy here, so not improved) are logged
    events = director.pop_critic_events()
    assert events[0]["event"] == "correction" and events[0]["kind"] == "colour"
    effects = [e for e in events if e["event"] == "effect"]
    assert effects and effects[0]["improved"] is False and director.pop_critic_events() == []


def test_critic_uses_clip_when_its_weights_are_there(tmp_path):
    from installation.config import WatchConfig
    from models.captions.critic import build_critic_va, critic_kind
    from models.seeing.va import ColourVA
    colour = ColourVA()
    cfg = WatchConfig(image_va_head="colour", clip_checkpoint="", clip_model="ViT-B-32", clip_head="").settings()
    head, kind, why = build_critic_va(cfg, colour)
    assert head is colour and kind == "colour" and "colour-only" in why
    weights = tmp_path / "clip.pt"
    weights.write_bytes(b"not really weights")
    assert critic_kind(dataclasses.replace(cfg, clip_checkpoint=str(weights)))[0] == "clip"  # check and the show log say CLIP when weights are present


def test_blocklist_keeps_listed_words_out_of_every_prompt():
    director = Director(config(blocklist=("water", "Sea"), min_hold_s=0), load_scene("nocturne"))
    for i in range(60):
        c = director.update(state(i * 1.0, -0.5 + (i % 5) * 0.25, -0.8 + (i % 7) * 0.25, section_change=True), i * 1.0)
        if c is not None:
            words = c.prompt.lower().replace(",", " ").split()
            assert "water" not in words and "sea" not in words
    assert "water" in director.current.negative_prompt


def test_operator_prompt_is_filtered_and_holds():
    director = Director(config(blocklist=("clown",), min_hold_s=0, override_hold_s=30), load_scene("nocturne"))
    director.update(state(0.0, 0.5, 0.5), 0.0)
    refused = director.override_prompt("a scary Clowns parade", 1.0)
    assert refused.source == "safety" and "clown" not in refused.prompt.lower()
    assert "refused" in refused.reasons["safety"]
    builtin = director.override_prompt("nude figure", 1.5)
    assert builtin.source == "safety" and "nude" not in builtin.prompt
    accepted = director.override_prompt("a lighthouse made of glass\x00 " + "very " * 100, 2.0)
    assert accepted.source == "operator" and "\x00" not in accepted.prompt
    assert TokenCounter().count(accepted.prompt) <= 77
    assert accepted.hints == refused.hints or accepted.hints
    assert director.update(state(3.0, -0.8, -0.8, section_change=True), 3.0) is None  # the override holds
    later = director.update(state(33.0, -0.8, -0.8), 33.0)
    assert later is not None and later.source == "agents"


def test_scene_style_with_blocked_word_is_stripped_not_rendered():
    from scenes.scene import parse_scene
    scene = parse_scene({"name": "edgy", "style": "blood splatter, ink"})
    c = Director(config(), scene).update(state(0.0, 0.0, 0.0), 0.0)
    assert "blood" not in c.prompt and "ink" in c.prompt and c.source == "safety"


def test_set_scene_publishes_new_style_at_once():
    director = Director(config(min_hold_s=10), load_scene("nocturne"))
    director.update(state(0.0, 0.2, 0.2), 0.0)
    director.set_scene(load_scene("pulse"))
    c = director.update(state(0.1, 0.2, 0.2), 0.1)
    assert c is not None and "neon light" in c.prompt


def test_bad_scene_table_and_bad_bank_are_user_errors(tmp_path):
    from installation.errors import UserError
    from scenes.scene import parse_scene
    with pytest.raises(UserError, match="weights.mood"):
        Director(config(), parse_scene({"name": "x", "captions": {"weights": {"mood": 1}}}))
    with pytest.raises(UserError, match="unknown tag 'groovy'"):
        Director(config(), parse_scene({"name": "x", "captions": {"prefer_tags": ["groovy"]}}))
    import shutil
    from models.captions.banks import PHRASES_DIR
    for facet in FACETS:
        shutil.copy(PHRASES_DIR / f"{facet}.toml", tmp_path / f"{facet}.toml")
    text = (tmp_path / "colour.toml").read_text().replace('"#f6c945"', '"#f6c94"', 1)
    (tmp_path / "colour.toml").write_text(text)
    with pytest.raises(UserError, match="palette"):
        load_phrase_banks(tmp_path)
    (tmp_path / "motion.toml").unlink()
    with pytest.raises(UserError, match="missing"):
        load_phrase_banks(tmp_path)


def test_token_counter_matches_open_clip():
    from open_clip.tokenizer import SimpleTokenizer
    reference = SimpleTokenizer()
    counter = TokenCounter()
    assert counter.exact
    texts = [p.text for bank in load_phrase_banks().values() for p in bank]
    texts += ["oil painting, soft light, rich texture", "café-crème 1234 O'Neill's &amp; neon!!", ""]
    for text in texts:
        assert counter.count(text) == len(reference.encode(text)) + 2, text
    long = "glass lighthouse " * 60
    assert len(reference.encode(counter.trim(long))) + 2 <= 77


def test_bench_command_writes_the_figures(tmp_path):
    import json
    from installation.cli import main
    out = tmp_path / "captions.json"
    code = main(["bench", "captions", "--json", str(out), "--duration", "120", "--steps", "5", "--captions", "50"])
    figures = json.loads(out.read_text())
    assert code == 0
    assert figures["latency_ms_p95"] > 0 and -1 <= figures["lexicon_spearman"] <= 1
    assert figures["show"]["captions"] >= 2 and len(figures["sweep"]) == 25


def test_shipped_embeddings_cover_every_phrase_style_and_anchor():
    import tomllib

    from models.captions.embed import PhraseEmbeddings, bank_texts
    from models.captions.scenes import scene_settings
    styles = [s.text for name in ("nocturne", "pulse") for s in scene_settings(load_scene(name)).styles]
    assert styles
    emb = PhraseEmbeddings(bank_texts(load_phrase_banks(), styles), compute_missing=False)
    assert emb.missing == ()  # after editing a bank: python tools/listening/embed_phrases.py
    assert tomllib  # banks are TOML


def test_agents_choose_facets_that_cohere_better_than_a_single_agent():
    from models.evaluation.caption_bench import sweep_state
    coherence = {}
    emb = Director(config(), load_scene("nocturne")).writer.agents  # MiniLM cosines from the cached vectors
    emb._refresh()
    for mode in ("single_agent", "agents"):
        director = Director(config(mode=mode, min_hold_s=0), load_scene("nocturne"))
        values = []
        for k, (v, a) in enumerate([(-0.7, -0.6), (-0.6, 0.8), (0.7, 0.6), (0.6, -0.6), (0.0, 0.0)] * 3):
            state = dataclasses.replace(sweep_state(v, a, k * 40.0), section_change=True, beat_confidence=0.0)
            c = director.update(state, k * 40.0)
            chosen = {f: next(i for i, p in enumerate(director.writer.banks[f]) if p.text == c.facets[f]) for f in FACETS}
            values += [emb.cosine((f, chosen[f]), (g, chosen[g])) for f in FACETS for g in FACETS if f < g]
            if mode == "agents":  # reasons name the music's evidence and the neighbouring facets
                evidence, _, rest = c.reasons["scene"].partition(" -> ")
                assert any(ch.isdigit() for ch in evidence) and "; fits " in rest  # measured values, neighbours
                assert c.hints["palette"] and c.hints["layout"] and c.hints["shapes"]
        coherence[mode] = sum(values) / len(values)
    assert coherence["agents"] > coherence["single_agent"] + 0.02


def test_scene_style_follows_the_mood_from_the_scenes_own_list():
    from models.evaluation.caption_bench import sweep_state
    director = Director(config(min_hold_s=0), load_scene("nocturne"))
    dark = director.update(sweep_state(-0.6, 0.7, 0.0), 0.0)
    director = Director(config(min_hold_s=0), load_scene("nocturne"))
    calm = director.update(sweep_state(0.6, -0.6, 0.0), 0.0)
    assert "stormy oil painting" in dark.prompt and "pastoral oil sketch" in calm.prompt


def test_caption_only_mode_words_the_music_caption():
    from models.evaluation.caption_bench import sweep_state
    c = Director(config(mode="caption_only"), load_scene("nocturne")).update(sweep_state(-0.6, -0.6, 0.0), 0.0)
    assert c.facets["scene"] == "abstract mournful landscape" and c.hints["palette"]


def test_eval_captions_compares_the_three_modes_side_by_side(tmp_path, monkeypatch):
    import numpy as np

    import models.captions.embed as embed
    from installation.cli import main
    shipped = embed._read(embed.SHIPPED)

    def cached_or_hashed(texts):  # the shipped MiniLM vectors, so the test does not load the model (~15 s)
        out = [shipped.get(t) if t in shipped else np.random.default_rng(abs(hash(t)) % 2**32).normal(size=embed.DIM)
               for t in texts]
        return np.stack([v / np.linalg.norm(v) for v in out]).astype(np.float32)

    monkeypatch.setattr(embed, "embed_texts", cached_or_hashed)
    out = tmp_path / "ablation.json"
    assert main(["eval", "captions", "--duration", "60", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["simulated_show"]
    assert set(figures) == {"caption_only", "single_agent", "agents"}
    for row in figures.values():
        assert {"distinct_prompts", "top_phrase_share", "coherence", "valence_agreement", "arousal_agreement",
                "changes_per_minute", "hold_s_median", "repeats_within_5", "valence_agreement_fair",
                "arousal_agreement_fair", "valence_agreement_afinn", "revised_share"} <= set(row)
    assert figures["agents"]["repeats_within_5"] == 0 and figures["caption_only"]["top_phrase_share"] > 0.3
    assert figures["single_agent"]["revised_share"] == 0.0


def _chosen(director: Director, caption: Caption) -> dict[str, int]:
    return {f: next(i for i, p in enumerate(director.writer.banks[f]) if p.text == caption.facets[f]) for f in FACETS}


@pytest.mark.parametrize("coherence", [3.0, 100.0])
def test_agents_set_carries_the_music_valence_however_much_coherence_weighs(monkeypatch, coherence):
    from models.evaluation.caption_bench import sweep_state
    from models.captions.agents import Agents
    monkeypatch.setattr(Agents, "COHERENCE", coherence)  # cooperation may break ties, never override fit
    for a in (-0.6, 0.0, 0.7):
        lean = {}
        for v in (-0.8, 0.8):
            director = Director(config(), load_scene("nocturne"))
            caption = director.update(sweep_state(v, a), 0.0)
            chosen = _chosen(director, caption)
            lean[v] = sum(director.writer.banks[f][chosen[f]].va[0] for f in FACETS) / len(FACETS)  # curated valence
            assert director.writer.agents.fit_gap <= Agents.FIT_MARGIN + 1e-9
            assert f"for music V {v:+.2f} A {a:+.2f}" in caption.reasons["scene"]
        assert lean[-0.8] < -0.2 < 0.2 < lean[0.8], (a, lean)


def test_coherence_only_breaks_ties_when_the_fit_margin_is_zero(monkeypatch):
    from models.evaluation.caption_bench import sweep_state
    from models.captions.agents import Agents
    monkeypatch.setattr(Agents, "FIT_MARGIN", 0.0)
    monkeypatch.setattr(Agents, "ROUNDS", 0)
    picks = {}
    for coherence in (0.0, 100.0):
        monkeypatch.setattr(Agents, "COHERENCE", coherence)
        director = Director(config(min_hold_s=0), load_scene("nocturne"), seed=3)
        picks[coherence] = [director.update(dataclasses.replace(sweep_state(v, a, k * 40.0), section_change=True,
                                                                beat_confidence=0.0), k * 40.0).prompt
                            for k, (v, a) in enumerate([(-0.7, -0.6), (0.7, 0.6), (-0.5, 0.8), (0.6, -0.5)])]
    assert picks[0.0] == picks[100.0]


def test_each_agent_revises_its_draft_after_seeing_the_others(monkeypatch):
    from models.evaluation.caption_bench import sweep_state
    from models.captions.agents import Agents
    monkeypatch.setattr(Agents, "TOP_K", 1)  # drafts are each agent's own best: the second round must do the joining
    revised = 0
    coherence = {}
    for rounds in (0, 2):
        monkeypatch.setattr(Agents, "ROUNDS", rounds)
        director = Director(config(min_hold_s=0), load_scene("nocturne"))
        agents = director.writer.agents
        values = []
        for k, (v, a) in enumerate([(-0.7, -0.6), (-0.6, 0.8), (0.7, 0.6), (0.6, -0.6), (0.0, 0.0)] * 2):
            c = director.update(dataclasses.replace(sweep_state(v, a, k * 40.0), section_change=True,
                                                    beat_confidence=0.0), k * 40.0)
            chosen = _chosen(director, c)
            values += [agents.cosine((f, chosen[f]), (g, chosen[g])) for f in FACETS for g in FACETS if f < g]
            assert agents.fit_gap <= Agents.FIT_MARGIN + 1e-9
            for facet, draft, final in agents.revisions:
                assert rounds and draft != final == c.facets[facet]
                assert f"revised from '{draft}'" in c.reasons[facet]
                revised += 1
        coherence[rounds] = sum(values) / len(values)
    assert revised >= 3 and coherence[2] > coherence[0] + 0.02


def test_fair_agreement_leaves_out_the_words_caption_only_is_written_with():
    import numpy as np

    from models.evaluation.captions import TEMPLATE_WORDS, measure
    from models.captions.describe import caption_only_facets
    assert {"mournful", "radiant", "still", "turbulent"} <= TEMPLATE_WORDS
    from models.evaluation.caption_bench import sweep_state
    captions = []
    for k, v in enumerate((-0.8, -0.4, 0.4, 0.8)):
        facets = caption_only_facets(describe(sweep_state(v, -0.5)))
        captions.append(Caption(t_s=k * 20.0, prompt=", ".join(facets.values()), negative_prompt="", facets=facets,
                                reasons={}, valence=v, arousal=-0.5, transition_s=1.0, source="agents", hints={}))
    vectors = {t: np.ones(4) / 2 for c in captions for t in c.facets.values()}
    row = measure(captions, 80.0, vectors)
    assert row["valence_agreement"] > 0.5  # the lookup table's "mournful" ... "radiant", read back
    assert row["valence_agreement_fair"] == 0.0 and row["valence_agreement_afinn"] == 0.0


def test_every_phrase_of_the_set_carries_the_music_arousal():
    from models.evaluation.caption_bench import sweep_state
    for v in (-0.6, 0.0, 0.6):
        for a in (-0.8, 0.8):
            director = Director(config(), load_scene("nocturne"))
            chosen = _chosen(director, director.update(sweep_state(v, a), 0.0))
            curated = [director.writer.banks[f][chosen[f]].va[1] for f in FACETS]  # the curator's arousal of each phrase
            wrong_side = [x for x in curated if x * a < 0]
            assert len(wrong_side) <= 1, (v, a, curated)


def test_the_weaker_minilm_reading_of_arousal_counts_for_less():
    import numpy as np

    from models.captions.agents import Agents
    agents = Director(config(), load_scene("nocturne")).writer.agents
    agreement = agents.reading_agreement
    assert {axis for _, axis in agreement} == {0, 1} and all(-1 <= r <= 1 for r in agreement.values())
    mean = [np.mean([agreement[(f, axis)] for f in FACETS]) for axis in (0, 1)]
    assert mean[1] < mean[0]  # the arousal poles read the banks less like their curators than the valence poles do
    assert Agents.TEXT_VA_BLEND[1] < Agents.TEXT_VA_BLEND[0]
    for f in FACETS:  # so a phrase's text arousal stays nearer its curated arousal than its text valence does
        curated = np.array([p.va for p in agents.banks[f]])
        gap = np.abs(agents.text_va[f] - curated).mean(axis=0)
        assert gap[1] < gap[0] + 0.05, (f, gap)
