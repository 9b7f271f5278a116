"""One caption for the music now: the agents' phrases over the scene's banks, a reason per facet,
the prompt within CLIP's 77 tokens and safe, the negative prompt and the renderer's hints. The
Director (director.py) decides when; this decides what."""
from __future__ import annotations

import collections
import random
from types import MappingProxyType
from typing import Any, Mapping

from installation.records import VA, Caption, MusicState, clamp_va
from models.captions.agents import Agents
from models.captions.banks import FACETS, TAG_WORDS, Phrase, load_phrase_banks
from models.captions.describe import MusicDescription, caption_only_facets, describe, evidence
from models.captions.drift import DriftCritic
from models.captions.safety import CLIP_MAX_TOKENS, ContentFilter, TokenCounter, clean_text
from models.captions.scenes import SceneStyle, scene_banks, scene_settings
from models.captions.settings import CaptionSettings


class CaptionWriter:
    """Holds the scene's banks, its agents and the phrases used lately. No lock: the Director calls
    it under its own. `stats` (the Director's) counts the LLM's blocked answers."""

    USE_WINDOW = 150
    """Captions over which a phrase's uses count against it, so hours of music spread over the banks."""

    def __init__(self, settings: CaptionSettings, scene: Any, rng: random.Random, content_filter: ContentFilter,
                 critic: DriftCritic, stats: collections.Counter[str], banks: dict[str, tuple[Phrase, ...]] | None = None,
                 embeddings: Any = None) -> None:
        self.mode = settings.mode
        self.transition_s = settings.transition_s
        self.filter = content_filter
        self.critic = critic
        self.stats = stats
        self._rng = rng
        self._shared_banks = banks if banks is not None else load_phrase_banks(settings.phrases_dir or None)
        self._own_embeddings = embeddings is None
        self.embeddings = embeddings
        self._tokens = TokenCounter()
        self._use_banks(scene)
        self._recent: dict[str, collections.deque[str]] = {f: collections.deque(maxlen=max(0, settings.diversity_window))
                                                            for f in FACETS}
        self._uses: collections.Counter[str] = collections.Counter()
        self._use_log: collections.deque[tuple[str, ...]] = collections.deque()
        self._negative_cache: tuple[Any, str] | None = None
        self.scene = scene
        self.scene_settings = scene_settings(scene)
        self.last_agents: Caption | None = None
        """The last caption the agents (or the LLM) wrote and kept."""

    def set_scene(self, scene: Any) -> None:
        """Switch presets and their banks; a bad preset raises UserError before anything changes."""
        validated = scene_settings(scene)
        self._use_banks(scene)
        self.scene = scene
        self.scene_settings = validated

    def count_tokens(self, text: str) -> int:
        """CLIP tokens of `text`, start and end included."""
        return self._tokens.count(text)

    def _use_banks(self, scene: Any) -> None:
        """The scene's banks (its own phrases, then the shared ones it lets in; models/captions/scenes.py)
        and agents over them. Raises UserError before changing anything when the preset is bad."""
        chosen = scene_banks(self._shared_banks, scene)
        banks = dict(chosen.banks)
        if self.mode == "agents":
            from models.captions.embed import PhraseEmbeddings, bank_texts
            texts = bank_texts(banks, [st.text for st in scene_settings(scene).styles])
            if self.embeddings is None or (self._own_embeddings and not set(texts) <= set(self.embeddings.texts)):
                self.embeddings = PhraseEmbeddings(texts)
        self.banks = banks
        self.agents = Agents(banks, self._rng, self.embeddings, chosen.priors)
        if self.mode == "agents":
            self.agents.warm()
        # Phrases the filter refuses, and the BPE cache warmed with every bank word, so that a
        # caption costs a few hundred microseconds from the first one on.
        self._blocked_phrases = frozenset(p.text for bank in banks.values() for p in bank if not self.filter.is_safe(p.text))
        for bank in banks.values():
            for p in bank:
                self._tokens.count(p.text)

    def fit(self, text: str, max_tokens: int = CLIP_MAX_TOKENS) -> str:
        """`text` trimmed to CLIP's tokens."""
        return self._tokens.trim(text, max_tokens)

    def negative(self) -> str:
        """The filter's negative prompt with the scene's and the operator's terms, once each, within 77 tokens."""
        if self._negative_cache is None or self._negative_cache[0] is not self.scene:
            parts = [self.filter.negative_prompt, clean_text(getattr(self.scene, "negative_prompt", "") or "")]
            parts += list(self.filter.operator_terms)
            seen: list[str] = []
            for part in ", ".join(p for p in parts if p).split(","):
                part = part.strip()
                if part and part.lower() not in (s.lower() for s in seen):
                    seen.append(part)
            self._negative_cache = (self.scene, self.fit(", ".join(seen)))
        return self._negative_cache[1]

    def compose(self, state: MusicState, t_s: float, source: str, llm_facets: dict[str, str] | None,
                remember: bool = True) -> Caption:
        """A caption for `state`: the agents' (`source` "agents"), the LLM's facets where given (`llm_facets`,
        "llm"), or "safety"; `remember` counts its phrases as used (diversity)."""
        desc = describe(state)
        va = desc.va
        bias = tuple(getattr(self.scene, "palette_bias", (0.0, 0.0)) or (0.0, 0.0))
        nv, na = self.critic.nudge
        targets = {"scene": va, "style": va, "composition": va,  # a nudged target is bounded before the agents aim at it
                   "colour": clamp_va(va[0] + bias[0] + nv, va[1] + bias[1]),
                   "motion": clamp_va(va[0], va[1] + na)}
        s = self.scene_settings
        mode = "single_agent" if self.mode == "caption_only" else self.mode
        picked, _ = self.agents.choose(mode, desc, targets, s.weights, recents=self._recent, uses=self._uses,
                                       prefer=s.prefer_tags, avoid=s.avoid_tags,
                                       is_blocked=self._blocked_phrases.__contains__)
        choices = {f: self.banks[f][picked[f]] for f in FACETS}
        reasons = self._reasons(desc, state, picked, choices)
        facets = {f: choices[f].text for f in FACETS}
        style = None
        if self.mode == "caption_only":
            facets = caption_only_facets(desc)
            reasons = {f: f"music caption: {desc.text}" for f in FACETS}
        elif s.styles:
            style, coh = self.agents.style_for(s.styles, va, picked, self.filter.blocked_terms)
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
            prompt = self.fit(self.filter.strip(prompt)) or "abstract colour field"
            source = "safety"
        if remember and self.mode != "caption_only":
            self._remember(choices)
        transition = self.transition_s * (1.0 - 0.4 * max(0.0, va[1])) * (0.5 if desc.section_change else 1.0)
        caption = Caption(t_s=t_s, prompt=prompt, negative_prompt=self.negative(), facets=MappingProxyType(facets),
                          reasons=MappingProxyType(reasons), valence=va[0], arousal=va[1],
                          transition_s=round(transition, 3), source=source,
                          hints=MappingProxyType(_hints(choices, va, self.critic.nudge)))
        if source in ("agents", "llm") and remember:
            self.last_agents = caption
        return caption

    def _reasons(self, desc: MusicDescription, state: MusicState, picked: Mapping[str, int],
                 choices: Mapping[str, Phrase]) -> dict[str, str]:
        """Per facet: the musical evidence behind its phrase, the phrases it fits, revisions, the critic's note."""
        nv, na = self.critic.nudge
        critic = "critic" if self.critic.kind == "clip" else "critic (colour-only)"
        notes = {"colour": f"{critic}: brighter" if nv > 0.1 else f"{critic}: darker" if nv < -0.1 else "",
                 "motion": f"{critic}: livelier" if na > 0.1 else f"{critic}: calmer" if na < -0.1 else ""}
        revised = {f: draft for f, draft, _ in self.agents.revisions} if self.mode == "agents" else {}
        ev = evidence(desc, state)
        va = desc.va
        reasons = {}
        for f in FACETS:
            phrase = choices[f]
            matched = [ev[t] for t in desc.tags if t in phrase.tags][:3]
            if len(matched) < 2:
                matched += [ev[t] for t in desc.tags if ev[t] not in matched][: 2 - len(matched)]
            reason = f"{', '.join(matched)} -> {phrase.text}"
            if self.mode == "agents":
                near = self.agents.neighbours(picked, f)
                if near:
                    reason += "; fits " + ", ".join(f"{o} '{choices[o].text}' ({c:.2f})" for o, c in near)
                if f == "scene":
                    lean = self.agents.set_va(picked, self.scene_settings.weights)
                    reason += f"; the five lean V {lean[0]:+.2f} A {lean[1]:+.2f} for music V {va[0]:+.2f} A {va[1]:+.2f}"
                draft = revised.get(f)
                if draft:
                    reason += f"; revised from '{draft}' after seeing the others' drafts"
            if notes.get(f):
                reason += f"; {notes[f]}"
            reasons[f] = reason
        return reasons

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
        weights = self.scene_settings.weights
        order = {"scene": 0, "colour": 1, "style": 2, "motion": 3, "composition": 4}
        ranked = sorted((f for f in FACETS if weights[f] > 0), key=lambda f: (-weights[f], order[f]))
        scene_style = style.text if style is not None else clean_text(getattr(self.scene, "style", "") or "")
        parts = [(f, f"{scene_style}, {facets[f]}" if f == "style" and scene_style else facets[f]) for f in ranked]
        while True:
            prompt = clean_text(", ".join(t for _, t in parts))
            if len(parts) <= 1 or self.count_tokens(prompt) <= CLIP_MAX_TOKENS:
                return self.fit(prompt)
            parts.pop()


def _hints(choices: Mapping[str, Phrase], va: VA, nudge: VA) -> dict[str, Any]:
    """The renderer's structured look: the phrases set the character; the live arousal and the critic keep it honest."""
    nv, na = nudge
    hints: dict[str, Any] = {}
    palette = choices["colour"].hints.get("palette")
    if palette:
        hints["palette"] = tuple(_shade(c, 0.5 * nv) for c in palette)
    a01 = (va[1] + 1.0) / 2.0
    speed = choices["motion"].hints.get("motion_speed", a01)
    turbulence = choices["motion"].hints.get("turbulence", 0.3)
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

