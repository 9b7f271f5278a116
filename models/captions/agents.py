"""The five facet agents: each scores its phrase bank against the music, and `Agents` turns their
candidates into one set of facets (jointly for fit and coherence, then a round of revision)."""
from __future__ import annotations

import itertools
import math
import random
from typing import Any, Callable, Collection, Mapping

from installation.records import VA
from models.captions.banks import FACETS, TAGS, Phrase
from models.captions.describe import MusicDescription
from models.captions.scenes import SceneStyle
from models.stats import rank_correlation

MODES = ("caption_only", "single_agent", "agents")
"""captions.mode: the structured music caption alone; one agent choosing each facet on its own;
five agents whose candidates are chosen jointly for fit and coherence."""


_PAIRS = tuple(itertools.combinations(range(len(FACETS)), 2))
"""Every pair of facets, by index."""


def va_distance(a: VA, b: VA) -> float:
    """Euclidean distance between two VA points."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


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
    anchor poles (`embed.VALENCE_ANCHORS`, `AROUSAL_ANCHORS`), rescaled to the bank's own
    spread: what the words of the phrase say, not only what a curator meant (`TEXT_VA_BLEND`: half
    for valence; arousal, whose reading is the weaker, is the curated one). `single_agent`: each facet's best phrase
    on its own score. Vectors come from `embed.PhraseEmbeddings` (nothing is embedded here).
    """

    TOP_K = 6
    COHERENCE = 6.0
    VALENCE = 1.5
    AROUSAL = 1.0
    PHRASE_VALENCE = 0.7
    PHRASE_AROUSAL = 0.9
    """Every agent answers for its own phrase's mood on both axes: a calm scene beside a racing motion
    reads as neither, whatever the set's mean."""
    FIT_MARGIN = 0.4
    TEXT_VA_BLEND = (0.5, 0.0)
    """How much of a phrase's (valence, arousal) is read from MiniLM rather than its curated `va`. Valence
    keeps half (less lowered the VA sweep's valence agreement); arousal is the curation alone, which the
    MiniLM reading agrees with far less (`reading_agreement`). Measurements: docs/captions.md."""
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
                self.reading_agreement[(f, axis)] = rank_correlation(lean[have], annotated[have])
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
        target = (sum(w[f] * targets[f][0] for f in FACETS) / w_sum, sum(w[f] * targets[f][1] for f in FACETS) / w_sum)
        tva = self.text_va
        # each agent's own score, less how far its phrase's text VA is from the target: every phrase
        # carries the mood, a set does not fit it by averaging a bright phrase with a dark one
        own_f = {f: w[f] * (scores[f] - self.PHRASE_VALENCE * np.abs(tva[f][:, 0] - target[0])
                            - self.PHRASE_AROUSAL * np.abs(tva[f][:, 1] - target[1]))
                 for f in FACETS}
        cands = {f: self.agents[f].propose(scores[f], self.TOP_K) for f in FACETS}
        fit, chosen = self._draft(cands, own_f, w, target)
        drafts = dict(chosen)
        self._revise(chosen, scores, own_f, w, target, bar=float(fit.max()) - self.FIT_MARGIN)
        self.revisions = [(f, self.banks[f][drafts[f]].text, self.banks[f][chosen[f]].text)
                          for f in FACETS if chosen[f] != drafts[f]]
        final_lean = sum(w[f] * tva[f][chosen[f]] for f in FACETS)
        final_fit = sum(own_f[f][chosen[f]] for f in FACETS) - self._misfit(final_lean[0], final_lean[1], w, target)
        self.fit_gap = float(fit.max() - final_fit)
        return chosen, scores

    def _misfit(self, lean_v: Any, lean_a: Any, w: Mapping[str, float], target: VA) -> Any:
        """How far a set's weighted text VA (its sums `lean_v`, `lean_a`) is from the target."""
        import numpy as np

        w_sum = sum(w.values())
        return self.VALENCE * np.abs(lean_v / w_sum - target[0]) + self.AROUSAL * np.abs(lean_a / w_sum - target[1])

    def _draft(self, cands: Mapping[str, list[int]], own_f: Mapping[str, Any], w: Mapping[str, float],
               target: VA) -> tuple[Any, dict[str, int]]:
        """Round 1: every combination of the proposals at once. (fit of every combination, the chosen set)."""
        import numpy as np

        tva = self.text_va
        own = np.zeros([len(cands[f]) for f in FACETS])
        lean_v = np.zeros_like(own)
        lean_a = np.zeros_like(own)
        for axis, f in enumerate(FACETS):
            shape = [1] * len(FACETS)
            shape[axis] = len(cands[f])
            own = own + own_f[f][cands[f]].reshape(shape)
            lean_v = lean_v + w[f] * tva[f][cands[f], 0].reshape(shape)
            lean_a = lean_a + w[f] * tva[f][cands[f], 1].reshape(shape)
        fit = own - self._misfit(lean_v, lean_a, w, target)
        coherence = np.zeros_like(fit)
        for i, j in _PAIRS:
            fi, fj = FACETS[i], FACETS[j]
            shape = [1] * len(FACETS)
            shape[i], shape[j] = len(cands[fi]), len(cands[fj])
            coherence = coherence + self.pair_matrix(fi, cands[fi], fj, cands[fj]).reshape(shape)
        coherence = coherence / len(_PAIRS)
        bar = float(fit.max()) - self.FIT_MARGIN
        total = np.where(fit >= bar, fit + self.COHERENCE * coherence, -np.inf)
        best = np.unravel_index(int(np.argmax(total)), total.shape)
        return fit, {f: cands[f][int(best[axis])] for axis, f in enumerate(FACETS)}

    def _pair_sums(self, chosen: Mapping[str, int]) -> Any:
        """Per facet: its coherence with the other four chosen phrases."""
        import numpy as np

        sums = np.zeros(len(FACETS))
        for i, j in _PAIRS:
            c = self._pair_table(FACETS[i], FACETS[j])[chosen[FACETS[i]], chosen[FACETS[j]]]
            sums[i] += c
            sums[j] += c
        return sums

    def _revise(self, chosen: dict[str, int], scores: Mapping[str, Any], own_f: Mapping[str, Any],
                w: Mapping[str, float], target: VA, bar: float) -> None:
        """Round 2: each agent sees the others' drafts and may revise its own (in `chosen`) from its whole bank."""
        import numpy as np

        tva = self.text_va
        order = sorted(FACETS, key=lambda f: -w[f])
        sums = self._pair_sums(chosen)
        for _ in range(self.ROUNDS):
            changed = False
            for f in order:
                others = [g for g in FACETS if g != f]
                fixed_own = sum(own_f[g][chosen[g]] for g in others)
                fixed_lean = sum(w[g] * tva[g][chosen[g]] for g in others)
                fixed_coh = sums.sum() / 2 - sums[FACETS.index(f)]
                with_others = sum(self._pair_table(f, g)[:, chosen[g]] for g in others)
                fit_f = (fixed_own + own_f[f]
                         - self._misfit(fixed_lean[0] + w[f] * tva[f][:, 0], fixed_lean[1] + w[f] * tva[f][:, 1], w, target))
                total_f = fit_f + self.COHERENCE * (fixed_coh + with_others) / len(_PAIRS)
                total_f = np.where(np.isfinite(scores[f]) & (fit_f >= bar), total_f, -np.inf)
                pick = int(np.argmax(total_f))
                if pick != chosen[f] and total_f[pick] > total_f[chosen[f]] + 1e-9:
                    chosen[f] = pick
                    sums = self._pair_sums(chosen)
                    changed = True
            if not changed:
                break

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
            score = -va_distance(s.va, va)
            coh = None
            vec = self.embeddings.vector(s.text) if self.embeddings is not None else None
            if vec is not None and self._vectors:
                coh = float(np.mean([self._vectors[f][chosen[f]] @ vec for f in FACETS if self._have[f][chosen[f]]] or [0.0]))
                score += 0.5 * coh
            if score > best_score:
                best, best_score, best_coh = s, score, coh
        return best, best_coh

