"""Figures for the captions: lexicon agreement over a VA sweep, and a simulated 10-minute show.

Both drive the real `Director` with `MusicState` records. The simulated show is synthesised, not
heard: `synthetic_show()` documents its construction. Used by `run.py bench captions` and the tests.
"""
from __future__ import annotations

import collections
import math
import dataclasses
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Iterator

from installation.records import Caption, MusicState
from models.captions.banks import FACETS, load_phrase_banks
from models.captions.director import Director
from models.captions.settings import CaptionSettings
from models.stats import latency_summary, percentile, rank_correlation


def sweep_state(valence: float, arousal: float, t_s: float = 0.0) -> MusicState:
    """A plausible MusicState at one VA point: the descriptors follow VA the way real music tends to
    (minor below neutral valence, faster/louder/busier with arousal, brighter with valence)."""
    return MusicState(
        t_s=t_s, valence=valence, arousal=arousal, va_confidence=0.8,
        loudness_dbfs=-28.0 + 16.0 * arousal, onset_rate_hz=max(0.0, 2.0 + 2.2 * arousal),
        tempo_bpm=100.0 + 45.0 * arousal, beat_confidence=0.6 if arousal > -0.5 else 0.2,
        mode="minor" if valence < 0 else "major", key_confidence=0.7,
        brightness=min(1.0, max(0.0, 0.48 + 0.3 * valence)), harmonic_ratio=0.6 - 0.25 * arousal, silent=False)


def lexicon_sweep(captions_cfg: CaptionSettings, scene: Any, steps: int = 9, seed: int = 0) -> dict[str, Any]:
    """Spearman correlation between music valence and vaderSentiment's compound score of the prompt,
    over a `steps` x `steps` grid of the VA plane in [-0.9, 0.9]; one fresh director per point so
    each caption is chosen for its own point, not for diversity."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    banks = load_phrase_banks(captions_cfg.phrases_dir or None)
    grid = [-0.9 + 1.8 * i / (steps - 1) for i in range(steps)]
    rows = []
    for i, v in enumerate(grid):
        for j, a in enumerate(grid):
            director = Director(captions_cfg, scene, seed=seed + i * steps + j, banks=banks)
            caption = director.update(sweep_state(v, a), 0.0)
            assert caption is not None
            body = ", ".join(caption.facets[f] for f in FACETS)  # the music-derived words, without the scene's fixed style
            rows.append({"valence": round(v, 3), "arousal": round(a, 3), "compound": analyzer.polarity_scores(body)["compound"],
                         "scene": caption.facets["scene"]})
    rho = rank_correlation([r["valence"] for r in rows], [r["compound"] for r in rows])
    rho_arousal = rank_correlation([r["arousal"] for r in rows], [r["compound"] for r in rows])
    return {"spearman": rho, "spearman_vs_arousal": rho_arousal, "points": len(rows), "rows": rows}


@dataclass(frozen=True, slots=True)
class Section:
    start_s: float
    duration_s: float
    va: tuple[float, float]
    tempo_bpm: float


def synthetic_show(duration_s: float = 600.0, hop_s: float = 0.1, seed: int = 0) -> tuple[list[Section], Iterator[MusicState]]:
    """A 10-minute MusicState stream with real section changes, built like this:

    - sections of 20-70 s (uniform), each with a VA target drawn uniformly from [-0.85, 0.85]^2 at
      least 0.5 away from the previous one, and a tempo of 100 + 40 * arousal BPM (+-8 BPM);
    - within a section VA wanders around its target (Ornstein-Uhlenbeck noise, sd ~0.08), and VA
      glides between sections with a 2 s time constant, as the listener's smoothing would;
    - `section_change` is True for one hop 1.5 s after each boundary, as a novelty detector is late;
    - beat_phase advances with the tempo; the beat is confident except in the quietest sections;
    - the other descriptors follow VA as in `sweep_state`.
    """
    rng = random.Random(seed)
    sections: list[Section] = []
    t = 0.0
    prev = (0.0, 0.0)
    while t < duration_s:
        length = rng.uniform(20.0, 70.0)
        while True:
            va = (rng.uniform(-0.85, 0.85), rng.uniform(-0.85, 0.85))
            if math.dist(va, prev) >= 0.5:
                break
        sections.append(Section(t, min(length, duration_s - t), va, 100.0 + 40.0 * va[1] + rng.uniform(-8, 8)))
        prev = va
        t += length

    def stream() -> Iterator[MusicState]:
        v, a = sections[0].va
        nv = na = 0.0
        phase = 0.0
        flagged: set[int] = set()
        n = int(round(duration_s / hop_s))
        for k in range(n):
            t_s = k * hop_s
            index = max(i for i, s in enumerate(sections) if s.start_s <= t_s)
            section = sections[index]
            nv += -nv * hop_s / 3.0 + 0.08 * math.sqrt(2 * hop_s / 3.0) * rng.gauss(0, 1)
            na += -na * hop_s / 3.0 + 0.08 * math.sqrt(2 * hop_s / 3.0) * rng.gauss(0, 1)
            k_glide = 1.0 - math.exp(-hop_s / 2.0)
            v += k_glide * (section.va[0] + nv - v)
            a += k_glide * (section.va[1] + na - a)
            phase = (phase + hop_s * section.tempo_bpm / 60.0) % 1.0
            change = index > 0 and index not in flagged and t_s >= section.start_s + 1.5
            if change:
                flagged.add(index)
            base = sweep_state(max(-1.0, min(1.0, v)), max(-1.0, min(1.0, a)), t_s)
            yield MusicState(**{**{f: getattr(base, f) for f in base.__slots__},
                                "tempo_bpm": section.tempo_bpm, "beat_phase": phase, "section_change": change,
                                "beat_confidence": 0.7 if section.va[1] > -0.6 else 0.2})

    return sections, stream()


def simulated_run(captions_cfg: CaptionSettings, scene: Any, duration_s: float = 600.0, hop_s: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Drive one director through `synthetic_show` and measure what a visitor would see."""
    sections, states = synthetic_show(duration_s, hop_s, seed)
    director = Director(captions_cfg, scene, seed=seed)
    captions: list[tuple[Caption, str]] = []
    update_ms: list[float] = []
    caption_ms: list[float] = []
    for state in states:
        start = time.perf_counter()
        caption = director.update(state, state.t_s)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        update_ms.append(elapsed_ms)
        if caption is not None:
            caption_ms.append(elapsed_ms)
            captions.append((caption, director.last_reason))
    times = [c.t_s for c, _ in captions]
    holds = [b - a for a, b in zip(times, times[1:])]
    repeats = 0
    for i, (caption, _) in enumerate(captions):
        window = captions[max(0, i - 4):i]
        repeats += sum(1 for f in FACETS for prev, _ in window if prev.facets[f] == caption.facets[f])
    boundaries = [s.start_s for s in sections[1:]]
    followed = sum(1 for b in boundaries if any(b <= t <= b + 1.5 + captions_cfg.min_hold_s + 3.0 for t in times))
    reasons: dict[str, int] = {}
    for _, why in captions:
        reasons[why] = reasons.get(why, 0) + 1
    scene_counts = collections.Counter(c.facets["scene"] for c, _ in captions)
    phrase_counts = collections.Counter(c.facets[f] for c, _ in captions for f in FACETS)
    director.close()
    return {
        "distinct_prompts": len({c.prompt for c, _ in captions}),
        "distinct_scenes": len(scene_counts),
        "top_scene_share": round(scene_counts.most_common(1)[0][1] / len(captions), 4) if captions else 0.0,
        "top_scene": scene_counts.most_common(1)[0][0] if captions else "",
        "top_phrase_share": round(phrase_counts.most_common(1)[0][1] / len(captions), 4) if captions else 0.0,
        "duration_s": duration_s, "hop_s": hop_s, "updates": len(update_ms), "sections": len(sections),
        "captions": len(captions), "changes_per_minute": (len(captions) - 1) / (duration_s / 60.0),
        "hold_s": {"min": min(holds), "median": statistics.median(holds), "max": max(holds)} if holds else {},
        "reasons": reasons, "section_changes_followed": followed, "section_changes": len(boundaries),
        "repeats_within_5": repeats,
        "update_ms": latency_summary(update_ms, 4), "caption_ms": latency_summary(caption_ms, 4),
        "max_tokens": max(director.count_tokens(c.prompt) for c, _ in captions),
    }


def latency_bench(captions_cfg: CaptionSettings, scene: Any, captions: int = 1000, seed: int = 0) -> dict[str, float]:
    """Milliseconds per published caption: `update()` calls that each compose a new caption
    (min_hold 0, VA jumping across the plane, no beat so no bar wait)."""
    cfg = dataclasses.replace(captions_cfg, min_hold_s=0.0)
    director = Director(cfg, scene, seed=seed)
    rng = random.Random(seed)
    timings: list[float] = []
    cpu: list[float] = []
    t_s = 0.0
    while len(timings) < captions:
        t_s += 0.1
        state = sweep_state(rng.uniform(-1, 1), rng.uniform(-1, 1), t_s)
        state = MusicState(**{**{f: getattr(state, f) for f in state.__slots__}, "beat_confidence": 0.0, "section_change": True})
        start, start_cpu = time.perf_counter(), time.thread_time()
        caption = director.update(state, t_s)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if caption is not None:
            timings.append(elapsed_ms)
            cpu.append((time.thread_time() - start_cpu) * 1000.0)
    # CPU time beside wall time: on a shared machine the wall figure includes time the thread waited
    return {"n": len(timings), **latency_summary(timings, 4), "cpu_p95": round(percentile(cpu, 95), 4)}
