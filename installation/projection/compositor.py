"""The compositor: the scene's accents drawn over the newest base picture at every projector refresh.

The base picture comes from the renderer at whatever rate it manages (diffusion at a few frames a
second, procedural under load); the hits and beats come from the onset stage at audio-block rate
(`OnsetState`). So a hit reaches the wall on the next refresh whatever the renderer is doing:
- accents: flash (brighter, lifted blacks), pulse (a short zoom), ring (an expanding circle), shake
  (a jolt in a direction chosen per hit) and palette kick (a hue turn); each scene weighs them in
  its `[compositor]` table and every one scales with the hit's strength;
- between slow arrivals (diffusion) the base pictures are cross-faded instead of held;
- the picture eases towards the renderer's (over `smooth_s` with sound, `calm_s` in silence), so in
  silence only a slow drift is left and with sound only the hits change it at once.

Main thread only; numpy/OpenCV. Every picture returned is a new array (sinks read it on their own
threads); only intermediate buffers are reused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from installation.mailbox import Latest
from installation.records import OnsetState

ACCENT_KEYS = ("flash", "pulse", "ring", "shake", "kick")


@dataclass(frozen=True)
class AccentSettings:
    """A scene's `[compositor]` table, validated."""

    flash: float = 0.5
    pulse: float = 0.0
    ring: float = 0.4
    shake: float = 0.0
    kick: float = 0.3
    onset: float = 1.0
    """Weight of detected hits."""
    beat: float = 0.3
    """Weight of predicted beats (models.listening.beat_tracker's tempo and phase)."""
    decay_s: float = 0.12
    calm_s: float = 2.0
    """In silence the picture eases towards the renderer's with this time constant."""
    smooth_s: float = 0.08
    """With sound, it eases with this one (0: off): the renderer's own jumps (a grade correction, a
    caption's new look) spread over a few refreshes, so only the hits change the picture at once."""
    blend: bool = True
    """Cross-fade slow base pictures (diffusion) between arrivals instead of holding each."""


LIMITS: dict[str, tuple[float, float]] = {**{k: (0.0, 2.0) for k in ACCENT_KEYS}, "onset": (0.0, 2.0),
                                          "beat": (0.0, 2.0), "decay_s": (0.02, 1.0), "calm_s": (0.1, 30.0),
                                          "smooth_s": (0.0, 1.0)}


def accent_settings(table: Mapping[str, Any], where: str = "scene") -> AccentSettings:
    """The scene's `[compositor]` table as settings; ValueError naming the key when a value is bad."""
    known = {f.name for f in fields(AccentSettings)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{where}: compositor.{unknown[0]} is not a compositor key; use {', '.join(sorted(known))}.")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "blend":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: compositor.blend = {value!r}; use true or false.")
            values[key] = value
            continue
        low, high = LIMITS[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{where}: compositor.{key} = {value!r}; use a number {low:g}-{high:g}.")
        values[key] = float(value)
    return AccentSettings(**values)


def hue_matrix(angle: float, gain: float, offset: float) -> np.ndarray:
    """3x4 colour matrix: turn hues by `angle` radians about the grey axis, scale by `gain`, add `offset`."""
    c, s = math.cos(angle), math.sin(angle)
    k = math.sqrt(1.0 / 3.0)
    cross = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) * k
    m = c * np.eye(3) + (1.0 - c) / 3.0 * np.ones((3, 3)) + s * cross
    return np.hstack([gain * m, np.full((3, 1), offset)]).astype(np.float32)


class Compositor:
    """`compose(base, fresh, now_s)` -> the picture for this refresh (never `base` itself when drawn on)."""

    def __init__(self, onsets: Latest[OnsetState], scenes: Latest, period_s: float) -> None:
        self.onsets = onsets
        self.scenes = scenes
        self.period_s = period_s
        self.settings = AccentSettings()
        self._scene: Any = None
        self._buffers: list[np.ndarray] = []
        self._previous: np.ndarray | None = None
        self._current: np.ndarray | None = None
        self._arrived_s = 0.0
        self._interval_s = 0.0
        self._shown: np.ndarray | None = None
        self._calm: np.ndarray | None = None
        self._calm_s = 0.0
        self.level = 0.0
        """The accent level of the last composite (0..1.5), for status and tests."""

    def _settings(self) -> AccentSettings:
        scene = self.scenes.peek()
        if scene is not self._scene:
            self._scene = scene
            table: Mapping[str, Any] = getattr(scene, "table", lambda name: {})("compositor")
            try:
                self.settings = accent_settings(table, str(getattr(scene, "path", None) or getattr(scene, "name", "scene")))
            except ValueError:
                self.settings = AccentSettings()   # the scene check reported it when the scene loaded
        return self.settings

    def _buffer(self, i: int, like: np.ndarray) -> np.ndarray:
        while len(self._buffers) <= i:
            self._buffers.append(np.empty_like(like))
        if self._buffers[i].shape != like.shape:
            self._buffers[i] = np.empty_like(like)
        return self._buffers[i]

    def compose(self, base: np.ndarray, fresh: bool, now_s: float) -> np.ndarray:
        settings = self._settings()
        state = self.onsets.peek()
        picture = self._base(base, fresh, now_s, settings)
        picture = self._ease(picture, now_s, state, settings)
        self.level, since_s = self._level(state, now_s, settings)
        if self.level < 0.02:
            self._shown = picture
            return picture
        out = self._accents(picture, state, since_s, settings)
        self._shown = out
        return out

    def _base(self, base: np.ndarray, fresh: bool, now_s: float, settings: AccentSettings) -> np.ndarray:
        """The newest picture, or a cross-fade from the last one shown when pictures come slowly."""
        import cv2
        if fresh:
            if self._current is not None:
                gap_s = now_s - self._arrived_s
                self._interval_s = gap_s if self._interval_s == 0 else 0.7 * self._interval_s + 0.3 * gap_s
            shown = self._shown if self._shown is not None and self._shown.shape == base.shape else self._current
            self._previous = None if shown is None else np.copy(shown)
            self._current, self._arrived_s = base, now_s
        if (not settings.blend or self._previous is None or self._interval_s < 2.5 * self.period_s
                or self._previous.shape != base.shape):
            return base
        alpha = (now_s - self._arrived_s) / self._interval_s
        if alpha >= 1.0:
            self._previous = None
            return base
        return cv2.addWeighted(self._previous, 1.0 - alpha, base, alpha, 0.0)

    def _ease(self, picture: np.ndarray, now_s: float, state: OnsetState | None,
              settings: AccentSettings) -> np.ndarray:
        """Follow the renderer's picture with a time constant: slow in silence (a drift, never a
        jolt), short with sound."""
        import cv2
        silent = state is not None and state.silent
        tau_s = settings.calm_s if silent else settings.smooth_s
        if tau_s <= 0:
            self._calm = None
            return picture
        if self._calm is None or self._calm.shape != picture.shape:
            shown = self._shown if self._shown is not None and self._shown.shape == picture.shape else picture
            self._calm, self._calm_s = shown, now_s
            return shown
        k = 1.0 - math.exp(-max(0.0, now_s - self._calm_s) / tau_s)
        self._calm_s = now_s
        self._calm = cv2.addWeighted(self._calm, 1.0 - k, picture, k, 0.0)
        return self._calm

    @staticmethod
    def _level(state: OnsetState | None, now_s: float, settings: AccentSettings) -> tuple[float, float]:
        """(accent level 0..1.5, seconds since the hit) at `now_s`: the hit's decay plus the predicted beat's."""
        if state is None or state.silent and now_s - state.onset_t_s > 1.0:
            return 0.0, 1e9
        since_s = now_s - state.onset_t_s
        hit = state.strength * math.exp(-since_s / settings.decay_s) if since_s >= -0.05 else 0.0
        beat = 0.0
        if state.tempo_bpm > 0 and state.beat_confidence > 0.05 and not state.silent:
            period_s = 60.0 / state.tempo_bpm
            since_beat_s = (now_s - state.beat_t_s) % period_s
            beat = min(1.0, state.beat_confidence / 0.3) * math.exp(-since_beat_s / min(0.08, 0.3 * period_s))
        return min(1.5, settings.onset * hit + settings.beat * beat), max(0.0, since_s)

    def _accents(self, picture: np.ndarray, state: OnsetState | None, since_s: float,
                 settings: AccentSettings) -> np.ndarray:
        import cv2
        level = self.level
        h, w = picture.shape[:2]
        out = np.empty_like(picture)
        src = picture
        zoom = 1.0 + 0.06 * settings.pulse * level
        angle = (state.count if state is not None else 0) * 2.399963  # the golden angle: each hit jolts elsewhere
        shift = settings.shake * level * 0.02 * w
        dx, dy = int(round(shift * math.cos(angle))), int(round(shift * math.sin(angle)))
        if zoom > 1.002 or dx or dy:
            zoom = max(zoom, 1.0 + 2.0 * max(abs(dx) / w, abs(dy) / h))
            cw, ch = int(w / zoom), int(h / zoom)
            x0 = min(max(0, (w - cw) // 2 + dx), w - cw)
            y0 = min(max(0, (h - ch) // 2 + dy), h - ch)
            src = cv2.resize(picture[y0:y0 + ch, x0:x0 + cw], (w, h), dst=self._buffer(2, picture),
                             interpolation=cv2.INTER_NEAREST)
        flash = settings.flash * level
        turn = settings.kick * level * 0.8
        if flash > 0.01 or turn > 0.01:
            cv2.transform(src, hue_matrix(turn, 1.0 + 0.5 * flash, 60.0 * flash), dst=out)
        else:
            np.copyto(out, src)
        ring = settings.ring * (state.strength if state is not None else 0.0)
        if ring > 0.02 and since_s < 0.45:
            fade = 1.0 - since_s / 0.45
            radius = int((0.08 + 1.6 * since_s) * 0.5 * h)
            tone = int(255 * min(1.0, 0.4 + 0.6 * ring) * fade)
            cv2.circle(out, (w // 2, h // 2), radius, (tone, tone, tone), max(1, int(0.012 * h * ring * fade)),
                       cv2.LINE_8)
        return out
