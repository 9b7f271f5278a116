"""The compositor: the scene's accents drawn over the newest base picture at every projector refresh.

The base picture comes from the renderer at whatever rate it manages (diffusion at a few frames a
second, procedural under load); the hits and beats come from the onset stage at audio-block rate
(`OnsetState`). So a hit reaches the wall on the next refresh whatever the renderer is doing:
- accents: flash (brighter, lifted blacks), pulse (a short zoom), ring (an expanding circle), shake
  (a jolt in a direction chosen per hit) and palette kick (a hue turn); each scene weighs them in
  its `[compositor]` table and every one scales with the hit's strength;
- between slow arrivals (diffusion) the base pictures are cross-faded instead of held;
- the picture eases towards the renderer's (over `smooth_s` with sound, `calm_s` in silence), so in
  silence only a slow drift is left and with sound only the hits change it at once;
- when the flash guard's budget is (nearly) spent, a hit shows as much of its flash as no cell makes
  a transition of, plus a zoom punch (`flash_to_motion`, `stand_in`): the hit still changes the
  picture, the cells' light hardly does and the guard has nothing to hold back.

Main thread only; numpy/OpenCV. Every picture returned is a new array (sinks read it on their own
threads); only intermediate buffers are reused.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

import numpy as np

from installation.mailbox import Latest
from installation.projection.flash_guard import LUMA_STEP, MARGIN, STEPS, measure
from installation.records import OnsetState

ACCENT_KEYS = ("flash", "pulse", "ring", "shake", "kick")
RING_DECAYS = 2.0
"""A ring grows for this many `decay_s` (0.45 s at most)."""
FLASH_ROOM = 4
"""A hit may flash while the flash guard has room for this many more transitions (two flashes) ..."""
LAST_FLASH_ACCENT = 0.6
"""... and the last flash the guard allows goes to a hit whose accent reaches this (one that stands out)."""
MAX_PUNCH = 0.15
"""The largest zoom punch that stands in for a flash (15 %)."""
KICK_TURN = 0.8
"""Radians of hue turn a palette kick of weight 1 gives at a full accent."""
PROBE_WIDTH = 160
"""A stand-in is sized on a copy this wide."""


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
    decay_s: float = 0.06
    calm_s: float = 8.0
    """In silence the held picture cross-fades to the renderer's over at least this long ..."""
    drift_per_s: float = 0.05
    """... and at most this fast: grey levels a second, mean over the picture (0: held still)."""
    smooth_s: float = 1.0
    """With sound, between hits, the picture eases towards the renderer's with this time constant
    (0: follows it at once): its own motion and jumps spread out, so the hits lead."""
    catch: float = 1.0
    """Share of the way to the renderer's picture a full accent closes at once (0: none)."""
    contrast: float = 1.0
    """A hit's accent is its strength times (strength / the recent hits' mean) ** contrast (0: off)."""
    recent_s: float = 1.5
    """The hits of this many seconds before set the level a new hit is weighed against."""
    blend: bool = True
    """Cross-fade slow base pictures (diffusion) between arrivals instead of holding each."""
    flash_to_motion: float = 1.0
    """When the flash guard has room for fewer than two more flashes, a hit shows the share of its flash
    that makes no transition and a zoom punch, together changing the picture up to this many times
    as much as the whole flash would, mean grey levels (0: the flash, for the guard to hold back)."""


LIMITS: dict[str, tuple[float, float]] = {**{k: (0.0, 2.0) for k in ACCENT_KEYS}, "onset": (0.0, 2.0),
                                          "beat": (0.0, 2.0), "decay_s": (0.02, 1.0), "calm_s": (0.1, 120.0),
                                          "drift_per_s": (0.0, 50.0), "smooth_s": (0.0, 2.0), "catch": (0.0, 1.0),
                                          "contrast": (0.0, 3.0), "recent_s": (0.1, 10.0),
                                          "flash_to_motion": (0.0, 4.0)}


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


def zoomed(picture: np.ndarray, zoom: float) -> np.ndarray:
    """The middle 1 / zoom of the picture, scaled back to its size."""
    import cv2
    h, w = picture.shape[:2]
    cw, ch = max(1, int(w / zoom)), max(1, int(h / zoom))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(picture[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_NEAREST)


def stand_in(picture: np.ndarray, flash: float, share: float, turn: float = 0.0) -> tuple[float, float]:
    """(light, zoom) that stand in for a flash of `flash` (weight times level) and a palette kick's hue
    turn of `turn` radians when the flash guard has no room for them: the largest share of both
    (`light`), then the largest zoom punch (beyond 1, at most MAX_PUNCH, changing the picture by no
    more than `share` times the mean grey levels the whole flash would) under which every cell the
    guard judges keeps its light within the guard's MARGIN of a transition, so that none comes of
    them. Found by halving on a small copy."""
    import cv2
    h, w = picture.shape[:2]
    small = cv2.resize(picture, (PROBE_WIDTH, max(1, PROBE_WIDTH * h // w)), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    target = share * float(np.clip(grey * (1.0 + 0.5 * flash) + 60.0 * flash, 0, 255).mean() - grey.mean())
    cells = measure(small)[0]

    def lit(light: float) -> np.ndarray:
        return cv2.transform(small, hue_matrix(turn * light, 1.0 + 0.5 * flash * light, 60.0 * flash * light))

    def calm(rgb: np.ndarray) -> bool:
        return float(np.abs(measure(rgb)[0] - cells).max()) <= MARGIN * LUMA_STEP

    def largest(fits: Callable[[float], bool], high: float) -> float:
        if fits(high):
            return high
        low = 0.0
        for _ in range(STEPS):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if fits(mid) else (low, mid)
        return low

    light = largest(lambda x: calm(lit(x)), 1.0) if target > 0 else 0.0
    base = lit(light)
    base_grey = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.float32)
    done = float(np.abs(base_grey - grey).mean())
    if done >= target:
        return light, 0.0

    def punch_fits(zoom: float) -> bool:
        moved = zoomed(base, 1.0 + zoom)
        changed = float(np.abs(cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY) - grey).mean())
        return changed <= target and calm(moved)

    return light, largest(punch_fits, MAX_PUNCH)


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
        self._held: np.ndarray | None = None
        """The base picture on the wall, following the renderer's."""
        self._held_s = 0.0
        self._drift: tuple[np.ndarray, np.ndarray, float, float] | None = None
        """In silence: (from, to, start_s, duration_s) of the cross-fade under way."""
        self._count = 0
        self._recent: collections.deque[tuple[float, float]] = collections.deque()
        """(t_s, strength) of the recent hits."""
        self._accent = 0.0
        self._seen_s = -1e9
        """When the newest hit was first drawn: its accent decays from there, whatever the latency."""
        self.level = 0.0
        """The accent level of the last composite (0..1.5), for status and tests."""
        self.moved = 0
        """Hits whose flash was drawn as motion (`flash_to_motion`), for status and tests."""
        self._as_motion = False
        """The newest hit's flash is drawn as motion (decided when it is first drawn, kept while it decays:
        a flash switched off half-way would itself be a transition) ..."""
        self._light, self._punch = 1.0, 0.0
        """... as this share of the flash and a zoom of this much (beyond 1) per unit of accent level."""

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

    def compose(self, base: np.ndarray, fresh: bool, now_s: float, flash_room: int | None = None) -> np.ndarray:
        """`flash_room`: transitions the flash guard still allows over a quarter of the wall
        (`FlashGuard.room`); None: no guard."""
        settings = self._settings()
        state = self.onsets.peek()
        hit = state is not None and state.count != self._count
        if hit and state is not None:
            self._count = state.count
            self._accent = self._weigh(state.strength, state.onset_t_s, settings)
            self._seen_s = now_s
            self._as_motion = self._flash_spent(flash_room, settings)
            self.moved += self._as_motion
        picture = self._base(base, fresh, now_s, settings)
        picture = self._follow(picture, now_s, state, hit, settings)
        self.level, since_s = self._level(state, now_s, settings)
        if hit and self._as_motion:
            self._light, punch = stand_in(picture, settings.flash * self.level, settings.flash_to_motion,
                                          settings.kick * self.level * KICK_TURN)
            self._punch = punch / max(self.level, 0.02)
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

    def _weigh(self, strength: float, t_s: float, settings: AccentSettings) -> float:
        """A new hit's accent: its strength against the mean of the hits of the last `recent_s`."""
        while self._recent and self._recent[0][0] < t_s - settings.recent_s:
            self._recent.popleft()
        reference = max(0.2, sum(v for _, v in self._recent) / len(self._recent)) if self._recent else 0.2
        self._recent.append((t_s, strength))
        return min(1.0, strength * min(2.0, max(0.25, strength / reference)) ** settings.contrast)

    def _flash_spent(self, room: int | None, settings: AccentSettings) -> bool:
        """Whether the new hit's flash is drawn as motion: the guard has room for fewer than two more
        flashes, and for none or this hit does not stand out."""
        if room is None or settings.flash_to_motion <= 0 or settings.flash <= 0:
            return False
        return room < FLASH_ROOM and not (room >= 2 and self._accent >= LAST_FLASH_ACCENT)

    def _follow(self, picture: np.ndarray, now_s: float, state: OnsetState | None, hit: bool,
                settings: AccentSettings) -> np.ndarray:
        """The base picture on the wall: held in silence (a capped drift), with sound easing towards
        the renderer's between hits and catching up on each."""
        import cv2
        if self._held is None or self._held.shape != picture.shape:
            shown = self._shown if self._shown is not None and self._shown.shape == picture.shape else picture
            self._held, self._held_s, self._drift = shown, now_s, None
            return shown
        dt_s, self._held_s = max(0.0, now_s - self._held_s), now_s
        if state is not None and state.silent and not hit:
            return self._settle(picture, now_s, settings)
        self._drift = None
        k = 1.0 - math.exp(-dt_s / settings.smooth_s) if settings.smooth_s > 0 else 1.0
        if hit:
            k = max(k, settings.catch * min(1.0, self._accent))
        if k >= 0.995:
            self._held = picture
        elif k > 0.002:
            self._held = cv2.addWeighted(self._held, 1.0 - k, picture, k, 0.0)
        return self._held

    def _settle(self, picture: np.ndarray, now_s: float, settings: AccentSettings) -> np.ndarray:
        """In silence: cross-fade from the held picture to a copy of the renderer's, over `calm_s` or
        longer where the two differ so much that `drift_per_s` would be exceeded; then the next."""
        import cv2
        held = self._held
        assert held is not None
        if self._drift is not None:
            source, target, start_s, duration_s = self._drift
            alpha = (now_s - start_s) / duration_s
            if alpha < 1.0:
                self._held = cv2.addWeighted(source, 1.0 - alpha, target, alpha, 0.0)
                return self._held
            held = self._held = target
        if settings.drift_per_s <= 0:
            return held
        target = np.copy(picture)
        gap = float(np.abs(target[::4, ::4].astype(np.int16) - held[::4, ::4]).mean())
        self._drift = (held, target, now_s, max(settings.calm_s, gap / settings.drift_per_s))
        return held

    def _level(self, state: OnsetState | None, now_s: float, settings: AccentSettings) -> tuple[float, float]:
        """(accent level 0..1.5, seconds since the hit was first drawn) at `now_s`: the hit's decay plus the
        predicted beat's."""
        if state is None or state.silent and now_s - state.onset_t_s > 1.0:
            return 0.0, 1e9
        since_s = now_s - self._seen_s
        hit = self._accent * math.exp(-since_s / settings.decay_s)
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
        flash = settings.flash * (self._light if self._as_motion else 1.0)
        zoom = 1.0 + (0.06 * settings.pulse + (self._punch if self._as_motion else 0.0)) * level
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
        flash *= level
        turn = settings.kick * level * KICK_TURN * (self._light if self._as_motion else 1.0)
        if flash > 0.01 or turn > 0.01:
            cv2.transform(src, hue_matrix(turn, 1.0 + 0.5 * flash, 60.0 * flash), dst=out)
        else:
            np.copyto(out, src)
        ring = settings.ring * min(1.0, self._accent)
        life_s = min(0.45, RING_DECAYS * settings.decay_s)
        if ring > 0.02 and since_s < life_s:
            fade = 1.0 - since_s / life_s
            radius = int((0.08 + 1.6 * since_s) * 0.5 * h)
            tone = int(255 * min(1.0, 0.4 + 0.6 * ring) * fade)
            cv2.circle(out, (w // 2, h // 2), radius, (tone, tone, tone), max(1, int(0.012 * h * ring * fade)),
                       cv2.LINE_8)
        return out
