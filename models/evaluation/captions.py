"""The captions ablation: caption_only, single_agent and agents over the same music, side by side.

`music_states()` turns recordings into the MusicState stream the live listener would publish (one
Listener over the files played one after another); `synthetic_show()` (models.evaluation.caption_bench) gives
the simulated show. `ablation()` drives one Director per mode over the same states and measures:

- variety: captions, distinct prompts, share of the most used phrase (any facet) and scene phrase;
- facet coherence: mean pairwise MiniLM cosine between the five facet texts of each caption
  (the model is run here, offline, on every distinct facet text);
- agreement with the music's VA: Spearman between the music valence at each caption and
  vaderSentiment's compound score of the five facets, and between the music arousal and an arousal
  word score (`AROUSAL_HIGH` minus `AROUSAL_LOW` words, per word). Neither lexicon was used to write
  or tune the banks; the descriptor words the agents match on (TAG_WORDS) are removed from the text
  before scoring, so a caption is not rewarded for echoing the music description;
- the same agreement with the words caption_only is written with also removed (`TEMPLATE_WORDS`:
  "mournful", "radiant", "still", "turbulent" ... are the music's emotion and energy put into
  words by a lookup table, which a lexicon then reads back): `*_fair`, the same exclusion for every
  mode; and valence read by a second lexicon, AFINN-165 (`valence_agreement_afinn`, same exclusion),
  so that no verdict rests on one word list;
- changes per minute, hold times and facet repeats within 5 captions.
"""
from __future__ import annotations

import collections
import math
import re
import dataclasses
import statistics
from pathlib import Path
from typing import Any, Iterable

from installation.records import Caption, MusicState
from models.captions.agents import MODES
from models.captions.banks import FACETS, TAG_WORDS
from models.captions.describe import CAPTION_ONLY_FIXED, CAPTION_ONLY_WORDS
from models.captions.director import Director
from models.captions.settings import CaptionSettings
from models.stats import rank_correlation

# Everyday words for high and low arousal (after the ANEW/Warriner arousal extremes), written for
# this evaluation, not for the banks.
AROUSAL_HIGH = frozenset("""storm storms lightning thunder fire fires burning blaze blazing explosion explosive burst bursts
erupting eruption volcano racing race rushing rush swarm swarming roaring roar crashing crash crashes violent wild
frantic chaotic chaos electric strobe flashing flashes flash sparks sparking spinning leaping jolts pounding hammer
furnace blizzard whirlpool torrent shattered fireworks festival parade dance dancing carousel neon acid harsh howling
vivid bold fierce surge surges explosive intense tremors shaking grinding churning turbulent turbulence rapid quick""".split())
AROUSAL_LOW = frozenset("""still stillness quiet silent silence sleep sleeping sleepy calm peaceful rest resting slow slowly
gentle soft softly drifting drift mist fog haze hazy smooth lazy floating settling sinking faded fading muted pale
hushed dim dusk twilight moonlit moss snowfall lilies candle candles lamplight library breathing sway swaying
unhurried idle tranquil serene dormant empty lonely lone bare""".split())
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_TAG_WORDS = frozenset(w for text in TAG_WORDS.values() for w in text.split()) | frozenset(TAG_WORDS)


TEMPLATE_WORDS = frozenset(w for table in CAPTION_ONLY_WORDS.values() for text in table.values()
                           for w in text.split()) | frozenset(CAPTION_ONLY_FIXED)
"""The caption_only vocabulary (besides the descriptors), left out of the `*_fair` scores for every mode."""


def _words(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _TAG_WORDS and w not in drop]


def arousal_score(text: str) -> float:
    words = _words(text)
    if not words:
        return 0.0
    return (sum(w in AROUSAL_HIGH for w in words) - sum(w in AROUSAL_LOW for w in words)) / math.sqrt(len(words))


def music_states(paths: Iterable[Path], listen_cfg: Any, excerpt_s: float = 40.0, offset_s: float = 20.0) -> list[MusicState]:
    """The listener's states over `excerpt_s` of each file, played one after another."""
    import numpy as np
    import soxr

    from models.listening.va import build_listener, load_audio
    rate = 22050
    parts = []
    for path in paths:
        x, r = load_audio(path, offset_s, excerpt_s, fit_excerpt=True)
        parts.append(soxr.resample(x, r, rate) if r != rate else x)
    x = np.concatenate(parts)
    listener = build_listener(listen_cfg, rate, live=False)
    hop = int(round(listen_cfg.hop_s * rate))
    states = []
    for i in range(0, x.size - hop + 1, hop):
        listener.feed(x[i:i + hop])
        states.append(listener.state((i + hop) / rate))
    listener.close()
    return states


def run_mode(captions_cfg: CaptionSettings, scene: Any, mode: str, states: list[MusicState], seed: int = 0,
             revised: list[int] | None = None) -> list[Caption]:
    """One director in `mode` over the states; the captions it published. `revised`, when given,
    gets one entry per caption: how many facets the second round changed."""
    cfg = dataclasses.replace(captions_cfg, mode=mode, backend="agents")
    director = Director(cfg, scene, seed=seed)
    out = []
    for s in states:
        c = director.update(s, s.t_s)
        if c is not None:
            out.append(c)
            if revised is not None:
                revised.append(len(director.writer.agents.revisions) if mode == "agents" else 0)
    director.close()
    return out


def measure(captions: list[Caption], duration_s: float, vectors: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from afinn import Afinn

    analyzer = SentimentIntensityAnalyzer()
    afinn = Afinn(language="en")
    phrase_counts = collections.Counter(c.facets[f] for c in captions for f in FACETS)
    scene_counts = collections.Counter(c.facets["scene"] for c in captions)
    coherences, compounds, arousals, fair_compounds, fair_arousals, afinns = [], [], [], [], [], []
    for c in captions:
        vecs = [vectors[c.facets[f]] for f in FACETS]
        coherences.append(float(np.mean([vecs[i] @ vecs[j] for i in range(5) for j in range(i + 1, 5)])))
        text = ", ".join(c.facets[f] for f in FACETS)
        body = " ".join(_words(text))
        compounds.append(analyzer.polarity_scores(body)["compound"])
        arousals.append(arousal_score(body))
        fair = " ".join(_words(text, TEMPLATE_WORDS))
        fair_compounds.append(analyzer.polarity_scores(fair)["compound"])
        fair_arousals.append(arousal_score(fair))
        afinns.append(float(afinn.score(fair)))
    times = [c.t_s for c in captions]
    holds = [b - a for a, b in zip(times, times[1:])]
    repeats = sum(1 for i, c in enumerate(captions) for prev in captions[max(0, i - 4):i] for f in FACETS
                  if prev.facets[f] == c.facets[f])

    def rho(a, b) -> float:
        return round(rank_correlation(a, b), 4)

    return {
        "captions": len(captions), "distinct_prompts": len({c.prompt for c in captions}),
        "top_phrase_share": round(phrase_counts.most_common(1)[0][1] / len(captions), 4),
        "top_scene_share": round(scene_counts.most_common(1)[0][1] / len(captions), 4),
        "coherence": round(float(np.mean(coherences)), 4),
        "valence_agreement": rho([c.valence for c in captions], compounds),
        "arousal_agreement": rho([c.arousal for c in captions], arousals),
        "valence_agreement_fair": rho([c.valence for c in captions], fair_compounds),
        "arousal_agreement_fair": rho([c.arousal for c in captions], fair_arousals),
        "valence_agreement_afinn": rho([c.valence for c in captions], afinns),
        "changes_per_minute": round((len(captions) - 1) / (duration_s / 60.0), 3),
        "hold_s_median": round(statistics.median(holds), 2) if holds else 0.0,
        "repeats_within_5": repeats,
    }


def ablation(captions_cfg: CaptionSettings, scene: Any, states: list[MusicState], seed: int = 0,
             modes: tuple[str, ...] = MODES) -> dict[str, dict[str, Any]]:
    """Every mode over the same states; figures per mode."""
    from models.captions.embed import embed_texts

    revised: dict[str, list[int]] = {m: [] for m in modes}
    runs = {m: run_mode(captions_cfg, scene, m, states, seed, revised[m]) for m in modes}
    texts = sorted({c.facets[f] for caps in runs.values() for c in caps for f in FACETS})
    vectors = dict(zip(texts, embed_texts(texts)))
    duration = states[-1].t_s - states[0].t_s if states else 1.0
    out = {m: measure(caps, duration, vectors) for m, caps in runs.items()}
    for m, counts in revised.items():
        out[m]["revised_share"] = round(sum(1 for n in counts if n) / max(1, len(counts)), 4)
    return out
