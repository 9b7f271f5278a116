"""Music-derived captions: a structured music description, five facet agents, a director and a critic.

Flow (captioner thread): MusicState -> `describe()` -> five `FacetAgent`s choose phrases from the
curated banks in scenes/phrases/ (by VA proximity, descriptor tags, diversity and coherence with
the chosen scene) -> `Director` composes prompt + negative prompt within CLIP's 77 tokens and
publishes a new `Caption` only on meaningful musical change. `Director.critique` compares the VA of
what is projected with the music's and nudges colour (valence) and motion (arousal).
An optional LLM backend (models/captions/llm.py) may rewrite the facets; it never blocks.
"""
from __future__ import annotations

import collections
import logging
import math
import random
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping

from installation.errors import UserError
from installation.records import VA, Caption, MusicState, clamp_va
from models.captions.banks import (FACETS, LAYOUTS, PHRASES_DIR, SHAPES, TAG_WORDS, TAGS, Phrase,  # noqa: F401
                                  load_phrase_banks)
from models.captions.safety import CLIP_MAX_TOKENS, ContentFilter, TokenCounter, clean_text

log = logging.getLogger(__name__)


# --- 1. structured music caption ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MusicDescription:
    """Words for what the music does now. `tags` are in salience order (what a reason names first)."""

    tempo: str
    mode: str
    energy: str
    dynamics: str
    timbre: str
    texture: str
    rhythm: str
    emotion: str
    section_change: bool
    silent: bool
    valence: float
    arousal: float
    tempo_bpm: float
    tags: tuple[str, ...]

    @property
    def va(self) -> VA:
        return (self.valence, self.arousal)

    @property
    def text(self) -> str:
        """One readable line, e.g. "slow minor-key music, soft and dark, sparse, melancholy (V -0.40, A -0.60)"."""
        if self.silent:
            return f"silence (V {self.valence:+.2f}, A {self.arousal:+.2f})"
        tempo = f"{self.tempo} ({self.tempo_bpm:.0f} BPM)" if self.tempo_bpm > 0 else self.tempo
        parts = [f"{tempo} {self.mode}-key music", f"{self.dynamics} and {self.timbre}", f"{self.texture}, {self.rhythm}",
                 f"{self.energy}, {self.emotion}"]
        if self.section_change:
            parts.append("a new section begins")
        return ", ".join(parts) + f" (V {self.valence:+.2f}, A {self.arousal:+.2f})"


def describe(state: MusicState) -> MusicDescription:
    """The structured caption of one MusicState: words and tags, no model involved (< 0.1 ms)."""
    v, a = clamp_va(state.valence, state.arousal)
    bpm = state.tempo_bpm if math.isfinite(state.tempo_bpm) else 0.0
    if bpm <= 0:
        tempo = "slow" if a < -0.3 else "fast" if a > 0.4 else "moderate"
    else:
        tempo = "slow" if bpm < 84 else "fast" if bpm > 124 else "moderate"
    mode = "minor" if state.mode == "minor" else "major"
    db = state.loudness_dbfs if math.isfinite(state.loudness_dbfs) else -120.0
    dynamics = "hushed" if db < -40 else "soft" if db < -24 else "full" if db < -14 else "loud"
    brightness = state.brightness if math.isfinite(state.brightness) else 0.0
    timbre = "dark" if brightness < 0.35 else "bright" if brightness > 0.6 else "warm"
    harmonic = state.harmonic_ratio if math.isfinite(state.harmonic_ratio) else 0.5
    onsets = state.onset_rate_hz if math.isfinite(state.onset_rate_hz) else 0.0
    texture = "percussive" if harmonic < 0.4 else "sustained" if harmonic > 0.7 and onsets < 1.5 else "tonal"
    density = "sparse" if onsets < 1.0 else "busy" if onsets > 3.0 else "flowing"
    pulsing = bpm > 0 and state.beat_confidence >= 0.5
    rhythm = f"{density}, steady beat" if pulsing else density
    energy = "calm" if a < -0.3 else "energetic" if a > 0.4 else "moderate energy"
    if v >= 0.15:
        emotion = "joyful" if a >= 0 else "serene"
    elif v <= -0.15:
        emotion = "tense" if a >= 0 else "melancholy"
    else:
        emotion = "neutral"
    tags = [mode, tempo, dynamics, timbre, density]
    if emotion != "neutral":
        tags.append(emotion)
    if energy != "moderate energy":
        tags.append(energy)
    tags.append(texture)
    if pulsing:
        tags.append("pulsing")
    if state.section_change:
        tags.insert(0, "change")
    if state.silent:
        tags.insert(0, "silence")
    return MusicDescription(tempo=tempo, mode=mode, energy=energy, dynamics=dynamics, timbre=timbre, texture=texture,
                            rhythm=rhythm, emotion=emotion, section_change=bool(state.section_change),
                            silent=bool(state.silent), valence=v, arousal=a, tempo_bpm=max(0.0, bpm), tags=tuple(tags))


# --- 2. phrase banks: models/captions/banks.py ----------------------------------------------


# --- scene settings --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SceneStyle:
    """One entry of a scene preset's `[captions] styles` list."""

    text: str
    va: VA


@dataclass(frozen=True, slots=True)
class SceneCaptionSettings:
    """The `[captions]` table of a scene preset."""

    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({f: 1.0 for f in FACETS}))
    prefer_tags: frozenset[str] = frozenset()
    avoid_tags: frozenset[str] = frozenset()
    styles: tuple[SceneStyle, ...] = ()
    """The scene's own styles, each at a VA point; the one nearest the mood goes with the style facet."""


SCENE_KEYS = ("weights", "prefer_tags", "avoid_tags", "styles", "phrases", "shared")
"""`phrases` and `shared` (the scene's own phrase banks) are read by models/captions/scenes.py."""


def scene_settings(scene: Any) -> SceneCaptionSettings:
    """Validate `scene.table("captions")`; a bad value is a UserError naming the preset and key."""
    table = dict(scene.table("captions")) if scene is not None else {}
    where = f"scene {getattr(scene, 'name', '?')} ({getattr(scene, 'path', None) or 'preset'}) [captions]"
    unknown = sorted(set(table) - set(SCENE_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(SCENE_KEYS)}.")
    weights = {f: 1.0 for f in FACETS}
    raw_weights = table.get("weights", {})
    if not isinstance(raw_weights, Mapping):
        raise UserError(f"{where}: weights must be a table like {{ scene = 1.2, style = 0.8 }}.")
    for facet, value in raw_weights.items():
        if facet not in FACETS:
            raise UserError(f"{where}: weights.{facet} is not a facet; facets are {', '.join(FACETS)}.")
        if not isinstance(value, (int, float)) or not 0 <= value <= 2:
            raise UserError(f"{where}: weights.{facet} = {value!r}; use a number in 0..2 (0 leaves the facet out).")
        weights[facet] = float(value)
    sets = {}
    for key in ("prefer_tags", "avoid_tags"):
        raw = table.get(key, [])
        if not isinstance(raw, (list, tuple)) or not all(isinstance(t, str) for t in raw):
            raise UserError(f"{where}: {key} must be a list of descriptor tags.")
        bad = sorted(set(raw) - TAGS)
        if bad:
            raise UserError(f"{where}: {key} has unknown tag '{bad[0]}'; allowed tags: {', '.join(sorted(TAGS))}.")
        sets[key] = frozenset(raw)
    styles = []
    raw_styles = table.get("styles", [])
    if not isinstance(raw_styles, (list, tuple)):
        raise UserError(f"{where}: styles must be a list like [{{ text = \"ink wash\", va = [-0.3, -0.5] }}].")
    for item in raw_styles:
        text = item.get("text") if isinstance(item, Mapping) else None
        va = item.get("va") if isinstance(item, Mapping) else None
        if (not isinstance(text, str) or not clean_text(text) or not isinstance(va, (list, tuple)) or len(va) != 2
                or not all(isinstance(x, (int, float)) and -1 <= x <= 1 for x in va)):
            raise UserError(f"{where}: styles entry {item!r} needs text = \"...\" and va = [valence, arousal] in -1..1.")
        styles.append(SceneStyle(clean_text(text), (float(va[0]), float(va[1]))))
    return SceneCaptionSettings(weights=MappingProxyType(weights), styles=tuple(styles), **sets)


# --- 3. facet agents -------------------------------------------------------------------------
MODES = ("caption_only", "single_agent", "agents")
"""captions.mode: the structured music caption alone; one agent choosing each facet on its own;
five agents whose candidates are chosen jointly for fit and coherence."""


def _rank_correlation(x: Any, y: Any) -> float:
    """Spearman's rho of two 1-d arrays (ties ranked by position; 0 when either is constant)."""
    import numpy as np

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    rx, ry = np.argsort(np.argsort(x)).astype(float), np.argsort(np.argsort(y)).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def _distance(a: VA, b: VA) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def evidence(desc: MusicDescription, state: MusicState) -> dict[str, str]:
    """Tag -> the musical evidence behind it, with the measured value (what a reason names)."""
    bpm = f"{desc.tempo_bpm:.0f} BPM" if desc.tempo_bpm > 0 else "no clear beat"
    db = state.loudness_dbfs if math.isfinite(state.loudness_dbfs) else -120.0
    out = {desc.mode: f"{state.key} {desc.mode} (held valence {desc.valence:+.2f})", desc.tempo: f"{desc.tempo} {bpm}",
           desc.dynamics: f"{desc.dynamics} {db:.0f} dBFS",
           desc.timbre: f"{desc.timbre} timbre (brightness {state.brightness:.2f})",
           desc.texture: f"{desc.texture} (harmonic {state.harmonic_ratio:.2f})",
           "sparse": f"sparse onsets {state.onset_rate_hz:.1f}/s", "flowing": f"flowing onsets {state.onset_rate_hz:.1f}/s",
           "busy": f"busy onsets {state.onset_rate_hz:.1f}/s", "pulsing": f"steady beat {bpm}",
           desc.emotion: f"{desc.emotion} (V {desc.valence:+.2f}, A {desc.arousal:+.2f})",
           "calm": f"calm (arousal {desc.arousal:+.2f})", "energetic": f"energetic (arousal {desc.arousal:+.2f})",
           "change": "a new section", "silence": "silence"}
    return {t: out.get(t, TAG_WORDS[t]) for t in desc.tags}


class FacetAgent:
    """One facet's agent: scores its whole bank against the music (VA distance, shared descriptor
    tags, MiniLM similarity to the music's tag anchors, the scene's preferred tags) minus how often
    each phrase was used lately; phrases used in the diversity window, blocked or avoided are out.
    `propose` returns its best `k` candidates with their scores."""

    TAG_BONUS = 0.1
    PREFER_BONUS = 0.2
    SEMANTIC = 0.8
    USE_PENALTY = 0.25
    JITTER = 0.05

    def __init__(self, facet: str, phrases: tuple[Phrase, ...], rng: random.Random,
                 prior: Collection[float] | None = None) -> None:
        import numpy as np

        self.facet = facet
        self._prior = np.asarray(list(prior) if prior is not None else [0.0] * len(phrases), np.float64)
        """Per phrase, a score offset from the scene (models/captions/scenes.py: shared phrases trail its own)."""
        self.phrases = phrases
        self._rng = rng
        self._va = np.array([p.va for p in phrases], np.float64)
        self._index = {p.text: i for i, p in enumerate(phrases)}
        self._texts = [p.text for p in phrases]
        self._tag_order = sorted(TAGS)
        self._tags = np.array([[t in p.tags for t in self._tag_order] for p in phrases], np.float64)

    def _tag_vector(self, tags: Collection[str]) -> Any:
        import numpy as np

        return np.array([t in tags for t in self._tag_order], np.float64)

    def scores(self, desc: MusicDescription, target_va: VA, semantic: Any, *, uses: Mapping[str, int],
               recent: Collection[str] = (), prefer: frozenset[str] = frozenset(), avoid: frozenset[str] = frozenset(),
               is_blocked: Callable[[str], bool] = lambda text: False) -> Any:
        """Score per phrase (-inf where ruled out). `semantic`: cosine of each phrase with the music."""
        import numpy as np

        score = self._prior - np.hypot(self._va[:, 0] - target_va[0], self._va[:, 1] - target_va[1])
        score += self._tags @ (self.TAG_BONUS * self._tag_vector(desc.tags) + self.PREFER_BONUS * self._tag_vector(prefer))
        if uses:
            score -= self.USE_PENALTY * np.array([uses.get(t, 0) for t in self._texts], np.float64)
        if semantic is not None:
            score += self.SEMANTIC * semantic
        score += self.JITTER * np.array([self._rng.random() for _ in self._texts])
        safe = np.array([not is_blocked(t) for t in self._texts])
        allowed = safe & ~(self._tags @ self._tag_vector(avoid) > 0) if avoid else safe
        if not allowed.any():  # a blocklist or scene that rules out the whole bank: all that are safe
            allowed = safe if safe.any() else np.ones(len(self._texts), bool)
        fresh = allowed & np.array([t not in recent for t in self._texts])
        keep = fresh if fresh.any() else allowed
        return np.where(keep, score, -np.inf)

    def propose(self, scores: Any, k: int) -> list[int]:
        import numpy as np

        order = np.argsort(-scores, kind="stable")
        return [int(i) for i in order[:k] if np.isfinite(scores[i])] or [int(order[0])]


class Agents:
    """The five facet agents and how their candidates become one set of facets.

    `agents`, in two rounds:

    1. **Drafts, chosen together.** Each agent proposes its `TOP_K` best phrases; every combination
       (TOP_K ** 5) gets a *fit*: the weighted sum of the agents' own scores, each less
       `PHRASE_VALENCE` / `PHRASE_AROUSAL` x how far its phrase's text VA is from the music's (every
       phrase carries the mood), minus `VALENCE` / `AROUSAL` x how far the set's mean text VA is from
       it (together the set carries it too). Only sets whose fit is within `FIT_MARGIN` of the best
       are eligible; among those the mean pairwise MiniLM cosine of the five phrases
       (x `COHERENCE`) decides. Cooperation is a tie-breaker: it never buys a set that fits the
       music clearly worse.
    2. **Revision.** Each agent in turn sees the other four drafts and may replace its own with any
       phrase of its whole bank (not only its first proposals) when the set's fit plus coherence
       rises, under the same fit bar. Up to `ROUNDS` passes, until nobody changes.

    A phrase's *text VA* blends its curated `va` with where its MiniLM vector sits between two
    anchor poles (`caption_embed.VALENCE_ANCHORS`, `AROUSAL_ANCHORS`), rescaled to the bank's own
    spread: what the words of the phrase say, not only what a curator meant (`TEXT_VA_BLEND`: half
    for valence; arousal, whose reading is the weaker, is the curated one). `single_agent`: each facet's best phrase
    on its own score. Vectors come from `caption_embed.PhraseEmbeddings` (nothing is embedded here).
    """

    TOP_K = 6
    COHERENCE = 6.0
    VALENCE = 1.5
    AROUSAL = 1.0
    PHRASE_VALENCE = 0.7
    PHRASE_AROUSAL = 0.9  # 0.6 under the features head; with the blend head's valence, 0.6 let arousal trail (docs/captions.md)
    """Every agent answers for its own phrase's mood on both axes: a calm scene beside a racing motion
    reads as neither, whatever the set's mean."""
    FIT_MARGIN = 0.4
    TEXT_VA_BLEND = (0.5, 0.0)  # arousal 0.25 under the features head; with the blend head any MiniLM share cost arousal on recordings
    """How much of a phrase's (valence, arousal) is read from MiniLM rather than taken from its curated
    `va`. Arousal is taken from the curation alone: the MiniLM reading agrees with the curated arousal
    far less (rank correlation 0.31-0.61 per bank) than the valence reading does with the curated
    valence (0.48-0.84; see `reading_agreement`), and with the blend head any share of it cost arousal
    agreement on recordings (24 seeds). Valence keeps half the reading: less lowered the valence
    agreement of the VA sweep (`bench captions`)."""
    ROUNDS = 2

    def __init__(self, banks: Mapping[str, tuple[Phrase, ...]], rng: random.Random, embeddings: Any,
                 priors: Mapping[str, Collection[float]] | None = None) -> None:
        import numpy as np

        self.banks = banks
        self.agents = {f: FacetAgent(f, banks[f], rng, (priors or {}).get(f)) for f in FACETS}
        self.embeddings = embeddings
        self._version = -1
        self._vectors: dict[str, Any] = {}
        self._have: dict[str, Any] = {}
        self._anchors: Any = None
        self._anchor_have: Any = None
        self._annotated = {f: np.array([p.va for p in banks[f]], np.float64).reshape(-1, 2) for f in FACETS}
        self.text_va: dict[str, Any] = {f: a.copy() for f, a in self._annotated.items()}
        """Per facet, (phrases, 2): the valence and arousal its words carry (curated va blended with MiniLM)."""
        self.reading_agreement: dict[tuple[str, int], float] = {}
        """(facet, axis) -> rank correlation between the MiniLM reading and the curated `va` on that axis."""
        self.revisions: list[tuple[str, str, str]] = []
        """The last choice's second-round revisions: (facet, draft text, revised text)."""
        self._pair_tables: dict[tuple[str, str], Any] = {}
        self.fit_gap = 0.0
        """How much fit the last chosen set gave up against the best-fitting set of the first round
        (at most FIT_MARGIN; negative when a revision found a set that fits better than any of them)."""

    def _refresh(self) -> None:
        import numpy as np

        from models.captions.embed import AROUSAL_ANCHORS, TAG_ANCHORS, VALENCE_ANCHORS

        if self.embeddings is None or self._version == self.embeddings.version:
            return
        self._version = self.embeddings.version
        self._pair_tables.clear()
        for f in FACETS:
            self._vectors[f], self._have[f] = self.embeddings.matrix(p.text for p in self.banks[f])
        self._anchors, self._anchor_have = self.embeddings.matrix(TAG_ANCHORS[t] for t in sorted(TAGS))
        for axis, anchors in enumerate((VALENCE_ANCHORS, AROUSAL_ANCHORS)):
            poles = []
            for texts in anchors.values():  # the high pole, then the low pole
                vecs, have = self.embeddings.matrix(texts)
                poles.append(vecs[have].mean(axis=0) if have.any() else None)
            for f in FACETS:
                annotated = self._annotated[f][:, axis]
                have = self._have[f]
                self.text_va[f][:, axis] = annotated
                if poles[0] is None or poles[1] is None or have.sum() < 3:
                    continue
                lean = self._vectors[f] @ (poles[0] - poles[1])
                z = (lean - lean[have].mean()) / max(float(lean[have].std()), 1e-6)
                read = np.clip(annotated[have].mean() + annotated[have].std() * z, -1, 1)
                self.reading_agreement[(f, axis)] = _rank_correlation(lean[have], annotated[have])
                blend = self.TEXT_VA_BLEND[axis]
                self.text_va[f][:, axis] = np.where(have, (1 - blend) * annotated + blend * read, annotated)

    def warm(self) -> None:
        """Read the vectors and build the pair tables now, so that the first caption costs no more than the rest."""
        self._refresh()
        for fa in FACETS:
            for fb in FACETS:
                if fa != fb:
                    self._pair_table(fa, fb)

    def music_vector(self, desc: MusicDescription) -> Any:
        """The music in embedding space: the mean of its tags' anchors, earlier (more salient) tags first."""
        import numpy as np

        self._refresh()
        if self._anchors is None:
            return None
        order = sorted(TAGS)
        vec = np.zeros(self._anchors.shape[1], np.float32)
        for rank, tag in enumerate(desc.tags):
            i = order.index(tag)
            if self._anchor_have[i]:
                vec += self._anchors[i] / (1.0 + 0.25 * rank)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else None

    def semantic(self, facet: str, music_vec: Any) -> Any:
        if music_vec is None or facet not in self._vectors:
            return None
        return (self._vectors[facet] @ music_vec) * self._have[facet]

    def cosine(self, a: tuple[str, int], b: tuple[str, int]) -> float | None:
        """MiniLM cosine between phrase b[1] of facet a... (None when either is not embedded yet)."""
        fa, ia = a
        fb, ib = b
        if fa not in self._vectors or not (self._have[fa][ia] and self._have[fb][ib]):
            return None
        return float(self._vectors[fa][ia] @ self._vectors[fb][ib])

    def _pair_table(self, fa: str, fb: str) -> Any:
        """Coherence of every phrase of facet fa with every phrase of facet fb: MiniLM cosines, and
        for a pair not embedded yet VA closeness on a similar scale. Cached until the vectors change."""
        table = self._pair_tables.get((fa, fb))
        if table is None:
            import numpy as np

            key = (fa, fb)
            if (fb, fa) in self._pair_tables:
                self._pair_tables[key] = self._pair_tables[(fb, fa)].T
                return self._pair_tables[key]
            va_a = np.array([p.va for p in self.banks[fa]], np.float64)
            va_b = np.array([p.va for p in self.banks[fb]], np.float64)
            table = 0.3 - 0.15 * np.hypot(va_a[:, None, 0] - va_b[None, :, 0], va_a[:, None, 1] - va_b[None, :, 1])
            if fa in self._vectors:
                have = self._have[fa][:, None] & self._have[fb][None, :]
                table = np.where(have, self._vectors[fa] @ self._vectors[fb].T, table)
            self._pair_tables[key] = table
        return table

    def pair_matrix(self, fa: str, ia: Any, fb: str, ib: Any) -> Any:
        """Coherence of phrases `ia` of facet fa with phrases `ib` of facet fb (see `_pair_table`)."""
        import numpy as np

        return self._pair_table(fa, fb)[np.ix_(np.asarray(ia, int), np.asarray(ib, int))]

    def choose(self, mode: str, desc: MusicDescription, targets: Mapping[str, VA], weights: Mapping[str, float],
               recents: Mapping[str, Collection[str]] | None = None, **kw: Any) -> tuple[dict[str, int], dict[str, Any]]:
        """Indices of the chosen phrase per facet, and each facet's score array. `recents`: each
        facet's phrases in the diversity window; `kw` goes to FacetAgent.scores."""
        import itertools

        import numpy as np

        recents = recents or {}
        self.revisions = []
        music_vec = self.music_vector(desc) if mode == "agents" else None
        scores = {f: self.agents[f].scores(desc, targets[f], self.semantic(f, music_vec), recent=recents.get(f, ()), **kw)
                  for f in FACETS}
        if mode != "agents":
            return {f: self.agents[f].propose(scores[f], 1)[0] for f in FACETS}, scores
        w = {f: max(0.2, weights.get(f, 1.0)) for f in FACETS}
        w_sum = sum(w.values())
        target = [sum(w[f] * targets[f][k] for f in FACETS) / w_sum for k in (0, 1)]
        tva = self.text_va

        def misfit(lean_v: Any, lean_a: Any) -> Any:
            return self.VALENCE * np.abs(lean_v / w_sum - target[0]) + self.AROUSAL * np.abs(lean_a / w_sum - target[1])

        # each agent's own score, less how far its phrase's text VA is from the target: every phrase
        # carries the mood, a set does not fit it by averaging a bright phrase with a dark one
        own_f = {f: w[f] * (scores[f] - self.PHRASE_VALENCE * np.abs(tva[f][:, 0] - target[0])
                            - self.PHRASE_AROUSAL * np.abs(tva[f][:, 1] - target[1]))
                 for f in FACETS}
        cands = {f: self.agents[f].propose(scores[f], self.TOP_K) for f in FACETS}
        # Round 1: every combination of the proposals at once.
        own = np.zeros([len(cands[f]) for f in FACETS])
        lean_v = np.zeros_like(own)
        lean_a = np.zeros_like(own)
        for axis, f in enumerate(FACETS):
            shape = [1] * len(FACETS)
            shape[axis] = len(cands[f])
            own = own + own_f[f][cands[f]].reshape(shape)
            lean_v = lean_v + w[f] * tva[f][cands[f], 0].reshape(shape)
            lean_a = lean_a + w[f] * tva[f][cands[f], 1].reshape(shape)
        fit = own - misfit(lean_v, lean_a)
        pairs = list(itertools.combinations(range(len(FACETS)), 2))
        coherence = np.zeros_like(fit)
        for i, j in pairs:
            fi, fj = FACETS[i], FACETS[j]
            shape = [1] * len(FACETS)
            shape[i], shape[j] = len(cands[fi]), len(cands[fj])
            coherence = coherence + self.pair_matrix(fi, cands[fi], fj, cands[fj]).reshape(shape)
        coherence = coherence / len(pairs)
        bar = float(fit.max()) - self.FIT_MARGIN
        total = np.where(fit >= bar, fit + self.COHERENCE * coherence, -np.inf)
        best = np.unravel_index(int(np.argmax(total)), total.shape)
        chosen = {f: cands[f][int(best[axis])] for axis, f in enumerate(FACETS)}
        drafts = dict(chosen)
        # Round 2: each agent sees the others' drafts and may revise its own from its whole bank.
        def pair_sums() -> Any:  # per facet: its coherence with the other four drafts
            sums = np.zeros(len(FACETS))
            for i, j in pairs:
                c = self._pair_table(FACETS[i], FACETS[j])[chosen[FACETS[i]], chosen[FACETS[j]]]
                sums[i] += c
                sums[j] += c
            return sums

        order = sorted(FACETS, key=lambda f: -w[f])
        sums = pair_sums()
        for _ in range(self.ROUNDS):
            changed = False
            for f in order:
                others = [g for g in FACETS if g != f]
                fixed_own = sum(own_f[g][chosen[g]] for g in others)
                fixed_lean = sum(w[g] * tva[g][chosen[g]] for g in others)
                fixed_coh = sums.sum() / 2 - sums[FACETS.index(f)]
                with_others = sum(self._pair_table(f, g)[:, chosen[g]] for g in others)
                fit_f = (fixed_own + own_f[f]
                         - misfit(fixed_lean[0] + w[f] * tva[f][:, 0], fixed_lean[1] + w[f] * tva[f][:, 1]))
                total_f = fit_f + self.COHERENCE * (fixed_coh + with_others) / len(pairs)
                total_f = np.where(np.isfinite(scores[f]) & (fit_f >= bar), total_f, -np.inf)
                pick = int(np.argmax(total_f))
                if pick != chosen[f] and total_f[pick] > total_f[chosen[f]] + 1e-9:
                    chosen[f] = pick
                    sums = pair_sums()
                    changed = True
            if not changed:
                break
        self.revisions = [(f, self.banks[f][drafts[f]].text, self.banks[f][chosen[f]].text)
                          for f in FACETS if chosen[f] != drafts[f]]
        final_lean = sum(w[f] * tva[f][chosen[f]] for f in FACETS)
        final_fit = sum(own_f[f][chosen[f]] for f in FACETS) - misfit(final_lean[0], final_lean[1])
        self.fit_gap = float(fit.max() - final_fit)
        return chosen, scores

    def set_va(self, chosen: Mapping[str, int], weights: Mapping[str, float]) -> VA:
        """The weighted mean text VA of a chosen set."""
        w = {f: max(0.2, weights.get(f, 1.0)) for f in FACETS}
        lean = sum(w[f] * self.text_va[f][chosen[f]] for f in FACETS) / sum(w.values())
        return (float(lean[0]), float(lean[1]))

    def neighbours(self, chosen: Mapping[str, int], facet: str, n: int = 2) -> list[tuple[str, float]]:
        """The other facets whose phrases sit closest to this facet's phrase, with their cosines."""
        sims = []
        for other in FACETS:
            if other == facet:
                continue
            c = self.cosine((facet, chosen[facet]), (other, chosen[other]))
            if c is not None:
                sims.append((other, c))
        return sorted(sims, key=lambda x: -x[1])[:n]

    def style_for(self, styles: tuple[SceneStyle, ...], va: VA, chosen: Mapping[str, int],
                  is_blocked: Callable[[str], tuple[str, ...]]) -> tuple[SceneStyle | None, float | None]:
        """The scene's own style nearest the mood, tilted to the one that fits the chosen phrases."""
        import numpy as np

        best, best_score, best_coh = None, -math.inf, None
        for s in styles:
            if is_blocked(s.text):
                continue
            score = -_distance(s.va, va)
            coh = None
            vec = self.embeddings.vector(s.text) if self.embeddings is not None else None
            if vec is not None and self._vectors:
                coh = float(np.mean([self._vectors[f][chosen[f]] @ vec for f in FACETS if self._have[f][chosen[f]]] or [0.0]))
                score += 0.5 * coh
            if score > best_score:
                best, best_score, best_coh = s, score, coh
        return best, best_coh


CAPTION_ONLY_WORDS: Mapping[str, Mapping[str, str]] = {
    "emotion": {"joyful": "radiant", "serene": "tranquil", "melancholy": "mournful", "tense": "menacing",
                "neutral": "quiet"},
    "energy": {"calm": "still", "energetic": "turbulent", "moderate energy": "drifting"},
    "timbre": {"dark": "dark colours", "warm": "warm colours", "bright": "bright colours"},
    "texture": {"percussive": "sharp painting", "sustained": "smooth painting", "tonal": "painterly"},
}


CAPTION_ONLY_FIXED = ("abstract", "landscape", "motion", "composition", "key", "mood", "pulsing")
"""The words every caption_only template holds besides CAPTION_ONLY_WORDS and the descriptors."""


def caption_only_facets(desc: MusicDescription) -> dict[str, str]:
    """The caption-only ablation: five facets worded straight from the structured music caption."""
    w = CAPTION_ONLY_WORDS
    return {"scene": f"abstract {w['emotion'][desc.emotion]} landscape",
            "motion": f"{desc.rhythm.replace(', steady beat', ' pulsing')} {w['energy'][desc.energy]} motion",
            "style": w["texture"][desc.texture], "colour": f"{w['timbre'][desc.timbre]}, {desc.mode} key mood",
            "composition": f"{desc.dynamics} {desc.tempo} composition"}


# --- drift record ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DriftRecord:
    """What the critic saw last: music VA, projected image VA, their difference and the nudge applied."""

    t_s: float
    music_va: VA
    image_va: VA
    drift_va: VA
    """music minus image, this sample."""
    smoothed_va: VA
    """The drift averaged over `critic_tau_s`."""
    nudge_va: VA
    """Added to the colour agent's valence target and the motion agent's arousal target."""
    samples: int
    corrections: int
    """Captions published because the picture drifted from the music."""


# --- 4. director -----------------------------------------------------------------------------
@dataclass(slots=True)
class _Pending:
    reason: str
    since_s: float
    ready_s: float | None = None
    request_id: int | None = None
    request_deadline_s: float = 0.0
    llm_done: bool = False
    """The LLM request has ended (answered, failed or late): later hops must not poll or count it again."""
    llm_facets: dict[str, str] | None = None
    """The LLM's answer, kept while the caption waits for the bar line."""


class Director:
    """Owned by the captioner thread; `critique`, `set_scene` and `override_prompt` may be called
    from other threads (a lock guards the state). Construction reads the phrase banks and the CLIP
    merges (~0.1 s); afterwards every call returns in well under a millisecond."""

    def __init__(self, captions_cfg: Any, scene: Any, seed: int = 0, banks: dict[str, tuple[Phrase, ...]] | None = None,
                 llm: Any = None, embeddings: Any = None) -> None:
        self.cfg = captions_cfg
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._shared_banks = banks if banks is not None else load_phrase_banks(getattr(captions_cfg, "phrases_dir", "") or None)
        self.mode = str(getattr(captions_cfg, "mode", "agents"))
        if self.mode not in MODES:
            raise UserError(f"captions.mode = {self.mode!r} is not a mode; choose one of {', '.join(MODES)}.")
        self._own_embeddings = embeddings is None
        self.embeddings = embeddings
        self.filter = ContentFilter(captions_cfg.blocklist, captions_cfg.negative_prompt,
                                    builtin=bool(getattr(captions_cfg, "default_blocklist", True)))
        self._tokens = TokenCounter()
        self._use_banks(scene)
        window = int(getattr(captions_cfg, "diversity_window", 5))
        self._recent: dict[str, collections.deque[str]] = {f: collections.deque(maxlen=max(0, window)) for f in FACETS}
        self._uses: collections.Counter[str] = collections.Counter()
        self._use_log: collections.deque[tuple[str, ...]] = collections.deque()
        self._negative_cache: tuple[Any, str] | None = None
        self.last_reason = ""
        """Why the current caption was published: start, section, va, hold, critic, scene, operator."""
        self._scene = scene
        self._settings = scene_settings(scene)
        self._current: Caption | None = None
        self._last_agents: Caption | None = None
        self._last_state: MusicState | None = None
        self._last_change_s = -math.inf
        self._caption_va: VA = (0.0, 0.0)
        self._pending: _Pending | None = None
        self._override_until_s = -math.inf
        self._scene_changed = False
        self._va_over_since: float | None = None
        # beat tracking for bar quantisation
        self._prev_phase: float | None = None
        self._beat_count = 0
        self._at_bar = False
        # critic
        self._drift: DriftRecord | None = None
        self._drift_history: collections.deque[DriftRecord] = collections.deque(maxlen=600)
        self._smoothed: VA = (0.0, 0.0)
        self._nudge: VA = (0.0, 0.0)
        self._nudge_at_caption: VA = (0.0, 0.0)
        self._critic_t: float | None = None
        self._critic_samples = 0
        self._corrections = 0
        self._drifting = False
        self.critic_kind = "colour"
        """Which image VA head rates the projection: "clip", or "colour" (colour-only, see caption_critic)."""
        self._open_corrections: list[dict[str, Any]] = []
        self._critic_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        # LLM
        self._llm = llm
        if self._llm is None and captions_cfg.backend == "llm":
            url = captions_cfg.llm_url.strip()
            if not url.startswith(("http://", "https://")):
                raise UserError(f"captions.backend = \"llm\" needs captions.llm_url to be an http(s) address, not {url!r}; "
                                f"set it (e.g. \"http://127.0.0.1:11434/v1\") or use backend = \"agents\".")
            from models.captions.llm import LlmAgents
            self._llm = LlmAgents(captions_cfg.llm_url, captions_cfg.llm_model, captions_cfg.llm_timeout_s, self.filter,
                                  api_key=captions_cfg.llm_api_key)
        self._next_request_id = 0
        self.stats: dict[str, int] = collections.Counter()

    # -- public API ------------------------------------------------------------------------------
    @property
    def current(self) -> Caption | None:
        with self._lock:
            return self._current

    @property
    def drift(self) -> DriftRecord | None:
        with self._lock:
            return self._drift

    @property
    def drift_history(self) -> tuple[DriftRecord, ...]:
        with self._lock:
            return tuple(self._drift_history)

    @property
    def scene(self) -> Any:
        return self._scene

    def update(self, state: MusicState, t_s: float) -> Caption | None:
        """Called every listener hop. Returns a new Caption on meaningful musical change, else None."""
        with self._lock:
            self._last_state = state
            self._track_beat(state)
            if self._current is None:
                return self._publish(state, t_s, "start", None)
            reason = self._trigger(state, t_s)
            if reason and self._pending is None:
                self._pending = _Pending(reason, t_s)
            elif reason == "section" and self._pending is not None:
                self._pending.reason = "section"
            pending = self._pending
            if pending is None:
                return None
            if t_s < self._override_until_s and pending.reason not in ("scene",):
                return None
            if pending.reason != "scene" and t_s - self._last_change_s < self.cfg.min_hold_s:
                return None
            if self._llm is not None and not pending.llm_done:
                pending.llm_facets, waiting = self._poll_llm(pending, state, t_s)
                if waiting:
                    return None
                pending.llm_done = True
            llm_facets = pending.llm_facets
            if pending.ready_s is None:
                pending.ready_s = t_s
            if pending.reason != "scene" and self._beat_known(state) and not self._at_bar:
                bar_s = 60.0 / state.tempo_bpm * self._beats_per_bar
                if t_s - pending.ready_s < bar_s * 1.25:
                    return None  # wait for the bar line; the bound keeps a lost beat from stalling
            return self._publish(state, t_s, pending.reason, llm_facets)

    def critique(self, projected_va: tuple[float, float], t_s: float) -> None:
        """Image VA of what is projected now. Accumulates a nudge while the picture drifts from the music."""
        with self._lock:
            image = clamp_va(*projected_va)
            state = self._last_state
            music = clamp_va(*state.va) if state is not None else self._caption_va
            drift = (music[0] - image[0], music[1] - image[1])
            tau = float(getattr(self.cfg, "critic_tau_s", 8.0))
            dt = 0.0 if self._critic_t is None else min(2.0, max(0.0, t_s - self._critic_t))
            self._critic_t = t_s
            alpha = 1.0 if self._critic_samples == 0 else 1.0 - math.exp(-dt / tau)
            self._smoothed = tuple(s + alpha * (d - s) for s, d in zip(self._smoothed, drift))  # type: ignore[assignment]
            threshold = float(getattr(self.cfg, "critic_threshold", 0.2))
            gain = float(getattr(self.cfg, "critic_gain", 1.0))
            nudge = []
            for s, n in zip(self._smoothed, self._nudge):
                if abs(s) > threshold:  # integrate outside the dead band, so a stubborn picture gets a growing push
                    n += gain * (s - math.copysign(threshold, s)) * dt / tau * 4.0
                else:
                    n *= math.exp(-dt / (4.0 * tau))
                nudge.append(max(-0.6, min(0.6, n)))
            self._nudge = (nudge[0], nudge[1])
            self._critic_samples += 1
            drifting = max(abs(self._smoothed[0]), abs(self._smoothed[1])) > threshold
            if drifting != self._drifting:
                self._drifting = drifting
                log.debug("critic: picture %s the music (music VA %+.2f %+.2f, image VA %+.2f %+.2f, nudge %+.2f %+.2f)",
                          "drifts from" if drifting else "is back with", *music, *image, *self._nudge)
            self._drift = DriftRecord(t_s=t_s, music_va=music, image_va=image, drift_va=drift,
                                      smoothed_va=self._smoothed, nudge_va=self._nudge, samples=self._critic_samples,
                                      corrections=self._corrections)
            self._drift_history.append(self._drift)
            self._note_correction_effects(t_s)

    CORRECTION_EFFECT_S = 10.0
    """A critic correction's effect is the drift this long after the caption it caused."""

    def set_critic(self, kind: str) -> None:
        """Say which head rates the projection ("clip" or "colour"); reasons and the log name it."""
        with self._lock:
            self.critic_kind = kind

    def pop_critic_events(self) -> list[dict[str, Any]]:
        """Critic corrections and their measured effect since the last call (for the show log)."""
        with self._lock:
            events = list(self._critic_events)
            self._critic_events.clear()
            return events

    def _note_correction_effects(self, t_s: float) -> None:
        keep = []
        for c in self._open_corrections:
            if t_s - c["at_s"] < self.CORRECTION_EFFECT_S:
                keep.append(c)
                continue
            before, after = c["drift_before"], [round(x, 3) for x in self._smoothed]
            event = {**c, "event": "effect", "drift_after": after,
                     "improved": math.hypot(*after) < math.hypot(*before)}
            self._critic_events.append(event)
            log.debug("critic (%s) correction at %.1f s: drift %+.2f %+.2f -> %+.2f %+.2f after %.0f s",
                      self.critic_kind, c["at_s"], *before, *after, self.CORRECTION_EFFECT_S)
        self._open_corrections = keep

    def set_scene(self, scene: Any) -> None:
        """Switch presets and their phrase banks; the next `update` publishes a caption for the new
        scene without waiting."""
        settings = scene_settings(scene)  # validate before changing anything
        with self._lock:
            self._use_banks(scene)
            self._scene = scene
            self._settings = settings
            self._scene_changed = True
            self._override_until_s = -math.inf

    def override_prompt(self, text: str, t_s: float) -> Caption:
        """Operator /prompt: shown for `override_hold_s` unless the filter blocks it (then the agents' caption)."""
        with self._lock:
            prompt = clean_text(text)
            terms = self.filter.refuse(prompt, "operator") if prompt else ("empty",)
            base = self._current or self._last_agents
            if terms:
                self.stats["operator_blocked"] += 1
                state = self._last_state or MusicState(t_s=t_s)
                caption = self._compose(state, t_s, "safety", None)
                why = "an empty prompt" if terms == ("empty",) else f"blocked words ({', '.join(terms)})"
                caption = _replace(caption, reasons=MappingProxyType({**caption.reasons, "safety": f"operator prompt refused: {why}"}))
            else:
                prompt = self._fit(prompt)
                facets = dict(base.facets) if base else {}
                reasons = {f: f"operator prompt; look kept from {facets[f]!r}" for f in facets}
                va = self._last_state.va if self._last_state else (0.0, 0.0)
                caption = Caption(t_s=t_s, prompt=prompt, negative_prompt=self._negative(), facets=MappingProxyType(facets),
                                  reasons=MappingProxyType(reasons), valence=clamp_va(*va)[0], arousal=clamp_va(*va)[1],
                                  transition_s=float(self.cfg.transition_s), source="operator",
                                  hints=base.hints if base else MappingProxyType({}))
                self._override_until_s = t_s + float(getattr(self.cfg, "override_hold_s", 60.0))
            self._current = caption
            self._last_change_s = t_s
            self._pending = None
            self.stats["captions"] += 1
            self.last_reason = "operator"
            return caption

    def close(self) -> None:
        """Stop the LLM worker, if any."""
        if self._llm is not None:
            self._llm.close()

    # -- internals -------------------------------------------------------------------------------
    def _use_banks(self, scene: Any) -> None:
        """The scene's banks (its own phrases, then the shared ones it lets in; models/captions/scenes.py)
        and agents over them. Raises UserError before changing anything when the preset is bad."""
        from models.captions.scenes import scene_banks

        chosen = scene_banks(self._shared_banks, scene)
        banks = dict(chosen.banks)
        if self.mode == "agents":
            from models.captions.embed import PhraseEmbeddings, bank_texts
            texts = bank_texts(banks, [st.text for st in scene_settings(scene).styles])
            if self.embeddings is None or (self._own_embeddings and not set(texts) <= set(self.embeddings.texts)):
                self.embeddings = PhraseEmbeddings(texts)
        self._banks = banks
        self._agents = Agents(banks, self._rng, self.embeddings, chosen.priors)
        if self.mode == "agents":
            self._agents.warm()
        # Phrases the filter refuses, and the BPE cache warmed with every bank word, so that a
        # caption costs a few hundred microseconds from the first one on.
        self._blocked_phrases = frozenset(p.text for bank in banks.values() for p in bank if not self.filter.is_safe(p.text))
        for bank in banks.values():
            for p in bank:
                self._tokens.count(p.text)

    @property
    def _beats_per_bar(self) -> int:
        return int(getattr(self.cfg, "beats_per_bar", 4))

    @staticmethod
    def _beat_known(state: MusicState) -> bool:
        return (not state.silent and math.isfinite(state.tempo_bpm) and 30 <= state.tempo_bpm <= 300
                and state.beat_confidence >= 0.3)

    def _track_beat(self, state: MusicState) -> None:
        phase = state.beat_phase if math.isfinite(state.beat_phase) else 0.0
        self._at_bar = False
        if self._prev_phase is not None and self._prev_phase - phase > 0.5:  # the phase wrapped: a beat passed
            self._beat_count += 1
            self._at_bar = self._beat_count % self._beats_per_bar == 0
        self._prev_phase = phase

    def _trigger(self, state: MusicState, t_s: float) -> str | None:
        if self._scene_changed:
            self._scene_changed = False
            return "scene"
        if state.section_change and _distance(clamp_va(*state.va), self._caption_va) >= self.SECTION_MIN_VA_CHANGE:
            return "section"
        if _distance(clamp_va(*state.va), self._caption_va) > self.cfg.va_threshold:
            if self._va_over_since is None:
                self._va_over_since = t_s
            if t_s - self._va_over_since >= self.VA_SUSTAIN_S:
                return "va"
        else:
            self._va_over_since = None
        if t_s - self._last_change_s >= self.cfg.max_hold_s:
            return "hold"
        critic_threshold = float(getattr(self.cfg, "critic_threshold", 0.2))
        if _distance(self._nudge, self._nudge_at_caption) > critic_threshold:
            return "critic"
        return None

    def _poll_llm(self, pending: _Pending, state: MusicState, t_s: float) -> tuple[dict[str, str] | None, bool]:
        """(facets from the LLM or None, whether to keep waiting). Never waits itself."""
        llm = self._llm
        if pending.request_id is None:
            if not llm.available(t_s):
                self.stats["llm_skipped"] += 1
                return None, False
            self._next_request_id += 1
            pending.request_id = self._next_request_id
            pending.request_deadline_s = t_s + float(self.cfg.llm_timeout_s) * getattr(llm, "rounds", 1)
            desc = describe(state)
            suggestion = self._compose(state, t_s, "agents", None, remember=False)
            llm.submit(pending.request_id, desc, dict(suggestion.facets))
            return None, True
        result = llm.poll(pending.request_id)
        if result is None:
            if t_s < pending.request_deadline_s:
                return None, True
            self.stats["llm_late"] += 1
            llm.note_failure(t_s, "late")
            return None, False
        if result.facets is None:
            self.stats["llm_failed"] += 1
            llm.note_failure(t_s, result.error)
            return None, False
        return dict(result.facets), False

    def _publish(self, state: MusicState, t_s: float, reason: str, llm_facets: dict[str, str] | None) -> Caption:
        caption = self._compose(state, t_s, "llm" if llm_facets else "agents", llm_facets)
        if reason == "critic":
            self._corrections += 1
            correction = {"at_s": round(t_s, 3), "kind": self.critic_kind,
                          "drift_before": [round(x, 3) for x in self._smoothed],
                          "nudge": [round(x, 3) for x in self._nudge], "colour": caption.facets.get("colour", ""),
                          "motion": caption.facets.get("motion", "")}
            self._open_corrections.append(correction)
            self._critic_events.append({**correction, "event": "correction"})
            log.debug("critic (%s) correction: drift %+.2f %+.2f, nudge %+.2f %+.2f -> colour %r, motion %r",
                      self.critic_kind, *self._smoothed, *self._nudge, correction["colour"], correction["motion"])
        self._current = caption
        self._caption_va = clamp_va(*state.va)
        self._va_over_since = None
        self._nudge_at_caption = self._nudge
        self._last_change_s = t_s
        self._pending = None
        self._override_until_s = -math.inf
        self.stats["captions"] += 1
        self.stats[f"reason_{reason}"] += 1
        self.last_reason = reason
        log.debug("caption (%s, %s): %s", reason, caption.source, caption.prompt)
        return caption

    def _fit(self, text: str, max_tokens: int = CLIP_MAX_TOKENS) -> str:
        return self._tokens.trim(text, max_tokens)

    def count_tokens(self, text: str) -> int:
        """CLIP tokens of `text`, start and end included."""
        return self._tokens.count(text)

    def _negative(self) -> str:
        if self._negative_cache is None or self._negative_cache[0] is not self._scene:
            self._negative_cache = (self._scene, self._build_negative())
        return self._negative_cache[1]

    def _build_negative(self) -> str:
        parts = [self.filter.negative_prompt, clean_text(getattr(self._scene, "negative_prompt", "") or "")]
        parts += list(self.filter.operator_terms)
        seen: list[str] = []
        for part in ", ".join(p for p in parts if p).split(","):
            part = part.strip()
            if part and part.lower() not in (s.lower() for s in seen):
                seen.append(part)
        return self._fit(", ".join(seen))

    VA_SUSTAIN_S = 1.5
    """A VA move past `va_threshold` must last this long: arousal is quick (about 1 s), and on
    recordings its swings within a phrase changed the picture every few seconds."""

    SECTION_MIN_VA_CHANGE = 0.1
    """A heard section change starts a new caption only when the music's VA moved at least this far
    since the last one: on real recordings the novelty detector also fires inside a section (a
    crescendo, a new instrument), and following every alarm changed the picture every 5 s."""

    USE_WINDOW = 150
    """Captions over which a phrase's uses count against it, so hours of music spread over the banks."""

    def _compose(self, state: MusicState, t_s: float, source: str, llm_facets: dict[str, str] | None,
                 remember: bool = True) -> Caption:
        desc = describe(state)
        va = desc.va
        bias = tuple(getattr(self._scene, "palette_bias", (0.0, 0.0)) or (0.0, 0.0))
        nv, na = self._nudge
        targets = {"scene": va, "style": va, "composition": va,
                   "colour": clamp_va(va[0] + bias[0] + nv, va[1] + bias[1]),
                   "motion": clamp_va(va[0], va[1] + na)}
        critic = "critic" if self.critic_kind == "clip" else "critic (colour-only)"
        notes = {"colour": f"{critic}: brighter" if nv > 0.1 else f"{critic}: darker" if nv < -0.1 else "",
                 "motion": f"{critic}: livelier" if na > 0.1 else f"{critic}: calmer" if na < -0.1 else ""}
        s = self._settings
        mode = "single_agent" if self.mode == "caption_only" else self.mode
        picked, _ = self._agents.choose(mode, desc, targets, s.weights, recents=self._recent, uses=self._uses,
                                        prefer=s.prefer_tags, avoid=s.avoid_tags,
                                        is_blocked=self._blocked_phrases.__contains__)
        choices = {f: self._banks[f][picked[f]] for f in FACETS}
        revised = {f: draft for f, draft, _ in self._agents.revisions} if self.mode == "agents" else {}
        ev = evidence(desc, state)
        reasons = {}
        for f in FACETS:
            phrase = choices[f]
            matched = [ev[t] for t in desc.tags if t in phrase.tags][:3]
            if len(matched) < 2:
                matched += [ev[t] for t in desc.tags if ev[t] not in matched][: 2 - len(matched)]
            reason = f"{', '.join(matched)} -> {phrase.text}"
            if self.mode == "agents":
                near = self._agents.neighbours(picked, f)
                if near:
                    reason += "; fits " + ", ".join(f"{o} '{choices[o].text}' ({c:.2f})" for o, c in near)
                if f == "scene":
                    lean = self._agents.set_va(picked, s.weights)
                    reason += f"; the five lean V {lean[0]:+.2f} A {lean[1]:+.2f} for music V {va[0]:+.2f} A {va[1]:+.2f}"
                draft = revised.get(f)
                if draft:
                    reason += f"; revised from '{draft}' after seeing the others' drafts"
            if notes.get(f):
                reason += f"; {notes[f]}"
            reasons[f] = reason
        facets = {f: choices[f].text for f in FACETS}
        style = None
        if self.mode == "caption_only":
            facets = caption_only_facets(desc)
            reasons = {f: f"music caption: {desc.text}" for f in FACETS}
        elif s.styles:
            style, coh = self._agents.style_for(s.styles, va, picked, self.filter.blocked_terms)
            if style is not None:
                reasons["style"] += f"; scene style '{style.text}' for V {va[0]:+.2f} A {va[1]:+.2f}" + (
                    f" ({coh:.2f} with the facets)" if coh is not None else "")
        if llm_facets:
            for f in FACETS:
                if llm_facets.get(f):
                    reasons[f] = f"{', '.join(TAG_WORDS[t] for t in desc.tags[:3])} -> {llm_facets[f]} (LLM; bank: {facets[f]})"
                    facets[f] = llm_facets[f]
        prompt = self._prompt(facets, style)
        terms = self.filter.refuse(prompt, source) if source == "llm" or not self.filter.is_safe(prompt) else ()
        if terms and source == "llm":  # the LLM said something blocked: the agents' own phrases instead
            self.stats["llm_blocked"] += 1
            facets = {f: choices[f].text for f in FACETS}
            reasons = {f: f"{reasons[f].split(' (LLM; bank:')[0]}" for f in FACETS}
            source = "safety"
            prompt = self._prompt(facets, style)
            terms = self.filter.blocked_terms(prompt)
        if terms:  # the scene's own style holds a blocked word: remove the words themselves
            prompt = self._fit(self.filter.strip(prompt)) or "abstract colour field"
            source = "safety"
        if remember and self.mode != "caption_only":
            self._remember(choices)
        hints = self._hints(choices, va)
        a = va[1]
        transition = float(self.cfg.transition_s) * (1.0 - 0.4 * max(0.0, a)) * (0.5 if desc.section_change else 1.0)
        caption = Caption(t_s=t_s, prompt=prompt, negative_prompt=self._negative(), facets=MappingProxyType(facets),
                          reasons=MappingProxyType(reasons), valence=va[0], arousal=va[1],
                          transition_s=round(transition, 3), source=source, hints=MappingProxyType(hints))
        if source in ("agents", "llm") and remember:
            self._last_agents = caption
        return caption

    def _remember(self, choices: Mapping[str, Phrase]) -> None:
        texts = tuple(choices[f].text for f in FACETS)
        for f in FACETS:
            self._recent[f].append(choices[f].text)
        self._use_log.append(texts)
        self._uses.update(texts)
        while len(self._use_log) > self.USE_WINDOW:
            self._uses.subtract(self._use_log.popleft())

    def _prompt(self, facets: Mapping[str, str], style: SceneStyle | None = None) -> str:
        """Facets in the order of the scene's weights (CLIP weighs early tokens most); the lowest
        weighted facets go first when the prompt would pass 77 tokens. The scene's style (the one
        chosen for the mood from its list, else its single `style`) goes with the style facet."""
        weights = self._settings.weights
        order = {"scene": 0, "colour": 1, "style": 2, "motion": 3, "composition": 4}
        ranked = sorted((f for f in FACETS if weights[f] > 0), key=lambda f: (-weights[f], order[f]))
        scene_style = style.text if style is not None else clean_text(getattr(self._scene, "style", "") or "")
        parts: list[tuple[str, str]] = []
        for f in ranked:
            text = facets[f]
            if f == "style" and scene_style:
                text = f"{scene_style}, {text}"
            parts.append((f, text))
        while True:
            prompt = clean_text(", ".join(t for _, t in parts))
            if len(parts) <= 1 or self.count_tokens(prompt) <= CLIP_MAX_TOKENS:
                return self._fit(prompt)
            parts.pop()

    def _hints(self, choices: Mapping[str, Phrase], va: VA) -> dict[str, Any]:
        nv, na = self._nudge
        hints: dict[str, Any] = {}
        palette = choices["colour"].hints.get("palette")
        if palette:
            hints["palette"] = tuple(_shade(c, 0.5 * nv) for c in palette)
        a01 = (va[1] + 1.0) / 2.0
        speed = choices["motion"].hints.get("motion_speed", a01)
        turbulence = choices["motion"].hints.get("turbulence", 0.3)
        # the phrase sets the character; the live arousal and the critic keep it honest
        hints["motion_speed"] = round(min(1.0, max(0.0, 0.7 * speed + 0.3 * a01 + 0.3 * na)), 3)
        hints["turbulence"] = round(min(1.0, max(0.0, turbulence + 0.2 * na)), 3)
        layout = choices["composition"].hints.get("layout")
        if layout:
            hints["layout"] = layout
        shapes = choices["scene"].hints.get("shapes")
        if shapes:
            hints["shapes"] = shapes
        return hints


def _shade(colour: str, amount: float) -> str:
    """Mix towards white (amount > 0) or black (amount < 0) by |amount|."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    target = 255 if amount > 0 else 0
    k = min(1.0, abs(amount))
    mix = [round(c + (target - c) * k) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _replace(caption: Caption, **changes: Any) -> Caption:
    import dataclasses
    return dataclasses.replace(caption, **changes)


# --- readable forms for the show log, the status line and OSC feedback ------------------------
def caption_summary(caption: Caption, max_chars: int = 80) -> str:
    """One short line for the status line: the scene facet and source."""
    scene = caption.facets.get("scene") or caption.prompt
    text = f"{scene} [{caption.source}]"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def caption_record(caption: Caption) -> dict[str, Any]:
    """A JSON-ready dict for show.jsonl and OSC feedback: prompt, facets, reasons, VA, hints."""
    return {"t_s": round(caption.t_s, 3), "prompt": caption.prompt, "negative_prompt": caption.negative_prompt,
            "facets": dict(caption.facets), "reasons": dict(caption.reasons),
            "va": [round(caption.valence, 3), round(caption.arousal, 3)], "transition_s": caption.transition_s,
            "source": caption.source, "hints": {k: list(v) if isinstance(v, tuple) else v for k, v in caption.hints.items()}}
