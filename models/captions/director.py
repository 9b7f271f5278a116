"""The Director: turns music into captions, one at a time and only on meaningful musical change.

Flow (captioner thread): MusicState -> `describe()` (describe.py) -> the five facet agents choose
phrases from the scene's banks (agents.py, scenes.py) -> the Director composes prompt + negative
prompt within CLIP's 77 tokens, with a reason per facet, and publishes a new `Caption` at a bar line
when the music moved (a section, a sustained VA move, a held caption, the critic, a new scene).
`Director.critique` hands what is projected to the critic's loop (drift.py), whose nudge tilts
colour (valence) and motion (arousal). An optional LLM backend (llm.py) may rewrite the facets; it
never blocks.
"""
from __future__ import annotations

import collections
import logging
import math
import random
import threading
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from installation.errors import UserError
from installation.records import VA, Caption, MusicState
from models.captions.agents import MODES, va_distance
from models.captions.banks import Phrase
from models.captions.describe import describe
from models.captions.drift import DriftCritic, DriftRecord
from models.captions.safety import ContentFilter, clean_text
from models.captions.settings import CaptionSettings
from models.captions.writer import CaptionWriter

log = logging.getLogger(__name__)


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


class BarLines:
    """Counts beats from the listener's beat phase, so that a caption can wait for the bar line."""

    def __init__(self, beats_per_bar: int) -> None:
        self.beats_per_bar = beats_per_bar
        self.at_bar = False
        """The last hop crossed a bar line."""
        self._prev_phase: float | None = None
        self._beat_count = 0

    @staticmethod
    def known(state: MusicState) -> bool:
        """Whether the beat is steady enough to wait for."""
        return (not state.silent and math.isfinite(state.tempo_bpm) and 30 <= state.tempo_bpm <= 300
                and state.beat_confidence >= 0.3)

    def track(self, state: MusicState) -> None:
        """One listener hop: a beat passed when the phase wrapped."""
        phase = state.beat_phase if math.isfinite(state.beat_phase) else 0.0
        self.at_bar = False
        if self._prev_phase is not None and self._prev_phase - phase > 0.5:  # the phase wrapped: a beat passed
            self._beat_count += 1
            self.at_bar = self._beat_count % self.beats_per_bar == 0
        self._prev_phase = phase

    def wait_s(self, state: MusicState) -> float:
        """How long a ready caption may wait for the bar line: 1.25 bars, so a lost beat cannot stall it."""
        return 60.0 / state.tempo_bpm * self.beats_per_bar * 1.25


class Director:
    """Owned by the captioner thread; `critique`, `set_scene` and `override_prompt` may be called
    from other threads (a lock guards the state). Construction reads the phrase banks and the CLIP
    merges (~0.1 s); afterwards every call returns in well under a millisecond."""

    VA_SUSTAIN_S = 1.5
    """A VA move past `va_threshold` must last this long: arousal is quick (about 1 s), and on
    recordings its swings within a phrase changed the picture every few seconds."""

    SECTION_MIN_VA_CHANGE = 0.1
    """A heard section change starts a new caption only when the music's VA moved at least this far
    since the last one: on real recordings the novelty detector also fires inside a section (a
    crescendo, a new instrument), and following every alarm changed the picture every 5 s."""

    def __init__(self, settings: CaptionSettings, scene: Any, seed: int = 0,
                 banks: dict[str, tuple[Phrase, ...]] | None = None, llm: Any = None, embeddings: Any = None) -> None:
        if settings.mode not in MODES:
            raise UserError(f"captions.mode = {settings.mode!r} is not a mode; choose one of {', '.join(MODES)}.")
        self.settings = settings
        self.mode = settings.mode
        self._lock = threading.RLock()
        self.stats: collections.Counter[str] = collections.Counter()
        self.filter = ContentFilter(settings.blocklist, settings.negative_prompt, builtin=settings.default_blocklist)
        self._critic = DriftCritic(settings.critic_tau_s, settings.critic_threshold, settings.critic_gain)
        self.writer = CaptionWriter(settings, scene, random.Random(seed), self.filter, self._critic, self.stats,
                                    banks=banks, embeddings=embeddings)
        self.last_reason = ""
        """Why the current caption was published: start, section, va, hold, critic, scene, operator."""
        self._current: Caption | None = None
        self._last_state: MusicState | None = None
        self._last_change_s = -math.inf
        self._caption_va: VA = (0.0, 0.0)
        self._pending: _Pending | None = None
        self._override_until_s = -math.inf
        self._scene_changed = False
        self._va_over_since: float | None = None
        self._bars = BarLines(settings.beats_per_bar)
        self._nudge_at_caption: VA = (0.0, 0.0)
        self._llm = llm if llm is not None or settings.backend != "llm" else _llm_backend(settings, self.filter)
        self._next_request_id = 0

    # -- public API ------------------------------------------------------------------------------
    @property
    def current(self) -> Caption | None:
        with self._lock:
            return self._current

    @property
    def drift(self) -> DriftRecord | None:
        with self._lock:
            return self._critic.drift

    @property
    def drift_history(self) -> tuple[DriftRecord, ...]:
        with self._lock:
            return tuple(self._critic.history)

    @property
    def scene(self) -> Any:
        return self.writer.scene

    def update(self, state: MusicState, t_s: float) -> Caption | None:
        """Called every listener hop. Returns a new Caption on meaningful musical change, else None."""
        with self._lock:
            self._last_state = state
            self._bars.track(state)
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
            if pending.reason != "scene" and t_s - self._last_change_s < self.settings.min_hold_s:
                return None
            if self._llm is not None and not pending.llm_done:
                pending.llm_facets, waiting = self._poll_llm(pending, state, t_s)
                if waiting:
                    return None
                pending.llm_done = True
            if pending.ready_s is None:
                pending.ready_s = t_s
            if pending.reason != "scene" and self._bars.known(state) and not self._bars.at_bar:
                if t_s - pending.ready_s < self._bars.wait_s(state):
                    return None  # wait for the bar line
            return self._publish(state, t_s, pending.reason, pending.llm_facets)

    def critique(self, projected_va: tuple[float, float], t_s: float) -> None:
        """Image VA of what is projected now. Accumulates a nudge while the picture drifts from the music."""
        with self._lock:
            music = self._last_state.va if self._last_state is not None else self._caption_va
            self._critic.observe(music, projected_va, t_s)

    def set_critic(self, kind: str) -> None:
        """Say which head rates the projection ("clip" or "colour"); reasons and the log name it."""
        with self._lock:
            self._critic.kind = kind

    def pop_critic_events(self) -> list[dict[str, Any]]:
        """Critic corrections and their measured effect since the last call (for the show log)."""
        with self._lock:
            return self._critic.pop_events()

    def set_scene(self, scene: Any) -> None:
        """Switch presets and their phrase banks; the next `update` publishes a caption for the new
        scene without waiting."""
        with self._lock:
            self.writer.set_scene(scene)
            self._scene_changed = True
            self._override_until_s = -math.inf

    def override_prompt(self, text: str, t_s: float) -> Caption:
        """Operator /prompt: shown for `override_hold_s` unless the filter blocks it (then the agents' caption)."""
        with self._lock:
            prompt = clean_text(text)
            terms = self.filter.refuse(prompt, "operator") if prompt else ("empty",)
            base = self._current or self.writer.last_agents
            if terms:
                self.stats["operator_blocked"] += 1
                state = self._last_state or MusicState(t_s=t_s)
                caption = self.writer.compose(state, t_s, "safety", None)
                why = "an empty prompt" if terms == ("empty",) else f"blocked words ({', '.join(terms)})"
                caption = replace(caption, reasons=MappingProxyType({**caption.reasons, "safety": f"operator prompt refused: {why}"}))
            else:
                prompt = self.writer.fit(prompt)
                facets = dict(base.facets) if base else {}
                reasons = {f: f"operator prompt; look kept from {facets[f]!r}" for f in facets}
                va = self._last_state.va if self._last_state else (0.0, 0.0)
                caption = Caption(t_s=t_s, prompt=prompt, negative_prompt=self.writer.negative(), facets=MappingProxyType(facets),
                                  reasons=MappingProxyType(reasons), valence=va[0], arousal=va[1],
                                  transition_s=float(self.settings.transition_s), source="operator",
                                  hints=base.hints if base else MappingProxyType({}))
                self._override_until_s = t_s + self.settings.override_hold_s
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

    def count_tokens(self, text: str) -> int:
        """CLIP tokens of `text`, start and end included."""
        return self.writer.count_tokens(text)

    # -- internals -------------------------------------------------------------------------------
    def _trigger(self, state: MusicState, t_s: float) -> str | None:
        if self._scene_changed:
            self._scene_changed = False
            return "scene"
        if state.section_change and va_distance(state.va, self._caption_va) >= self.SECTION_MIN_VA_CHANGE:
            return "section"
        if va_distance(state.va, self._caption_va) > self.settings.va_threshold:
            if self._va_over_since is None:
                self._va_over_since = t_s
            if t_s - self._va_over_since >= self.VA_SUSTAIN_S:
                return "va"
        else:
            self._va_over_since = None
        if t_s - self._last_change_s >= self.settings.max_hold_s:
            return "hold"
        if va_distance(self._critic.nudge, self._nudge_at_caption) > self.settings.critic_threshold:
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
            pending.request_deadline_s = t_s + float(self.settings.llm_timeout_s) * getattr(llm, "rounds", 1)
            desc = describe(state)
            suggestion = self.writer.compose(state, t_s, "agents", None, remember=False)
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
        caption = self.writer.compose(state, t_s, "llm" if llm_facets else "agents", llm_facets)
        if reason == "critic":
            self._critic.correct(t_s, caption.facets)
        self._current = caption
        self._caption_va = state.va
        self._va_over_since = None
        self._nudge_at_caption = self._critic.nudge
        self._last_change_s = t_s
        self._pending = None
        self._override_until_s = -math.inf
        self.stats["captions"] += 1
        self.stats[f"reason_{reason}"] += 1
        self.last_reason = reason
        log.debug("caption (%s, %s): %s", reason, caption.source, caption.prompt)
        return caption

def _llm_backend(settings: CaptionSettings, content_filter: ContentFilter) -> Any:
    """The LLM that may rewrite the facets (captions.backend = "llm")."""
    url = settings.llm_url.strip()
    if not url.startswith(("http://", "https://")):
        raise UserError(f"captions.backend = \"llm\" needs captions.llm_url to be an http(s) address, not {url!r}; "
                        f"set it (e.g. \"http://127.0.0.1:11434/v1\") or use backend = \"agents\".")
    from models.captions.llm import LlmAgents
    return LlmAgents(settings.llm_url, settings.llm_model, settings.llm_timeout_s, content_filter,
                     api_key=settings.llm_api_key)



def caption_record(caption: Caption) -> dict[str, Any]:
    """A JSON-ready dict for show.jsonl and OSC feedback: prompt, facets, reasons, VA, hints."""
    return {"t_s": round(caption.t_s, 3), "prompt": caption.prompt, "negative_prompt": caption.negative_prompt,
            "facets": dict(caption.facets), "reasons": dict(caption.reasons),
            "va": [round(caption.valence, 3), round(caption.arousal, 3)], "transition_s": caption.transition_s,
            "source": caption.source, "hints": {k: list(v) if isinstance(v, tuple) else v for k, v in caption.hints.items()}}
