"""The flash guard: no picture may make a fourth flash in a second over a quarter of the wall.

Modelled on the photosensitive-epilepsy rules broadcasters use (ITU-R BT.1702, Ofcom's guidance,
WCAG 2.3.1's general flash and red flash thresholds); not a certified Harding/PEAT test:
- relative luminance L = 0.2126 R + 0.7152 G + 0.0722 B of linearised sRGB, averaged over each cell
  of a 16 x 9 grid (on a copy about 160 pixels wide, so it stays well under a millisecond);
- a transition: L moves 0.1 or more away from the last peak or valley, the darker state below 0.8; a
  general flash is two opposing transitions;
- a red transition: red = max(0, R - G - B) * 320 changes by 20 or more and either state is saturated
  red (R / (R + G + B) >= 0.8); a red flash is two opposing red transitions;
- a picture is limited when cells covering more than a quarter of it would then hold more than six
  transitions (three flashes) of either kind in the last 1.1 s, one of them new: it is blended
  towards the last picture shown just far enough that none of those cells changes by more than 0.8
  of a transition (the margins absorb refresh jitter, video coding and rounding).

`FlashGuard(limit=False)` measures without changing anything (tools/visuals/flash_figures.py).
"""
from __future__ import annotations

import numpy as np

GRID = (16, 9)
"""(columns, rows) of cells, each judged on its own; a quarter of the picture is 36 of them."""
SAMPLE_WIDTH = 160
LUMA_STEP = 0.1
DARK_BELOW = 0.8
RED_SCALE = 320.0
RED_STEP = 20.0
SATURATED_RED = 0.8
MAX_TRANSITIONS = 6
"""Three flashes, two transitions each."""
WINDOW_S = 1.0
GUARD_WINDOW_S = 1.1
"""The limiting guard counts over a little more than the rules' second, and ..."""
MARGIN = 0.8
"""... keeps a limited picture's changes under this share of the thresholds: the projector's refresh
jitter, the video coding of a recording and rounding must not make a transition of what it held back."""
AREA_SHARE = 0.25
SLOTS = 32
"""Transition times kept per cell (whether there are more than six is all that counts)."""
STEPS = 6
"""Halvings that find how far towards the new picture is still safe (to 1/64)."""

_CODES = np.arange(256) / 255.0
LINEAR = np.where(_CODES <= 0.04045, _CODES / 12.92, ((_CODES + 0.055) / 1.055) ** 2.4).astype(np.float32)
"""sRGB code -> linear light, as WCAG's relative luminance defines it."""
_LINEAR_RGB = np.repeat(LINEAR[None, :, None], 3, axis=2)
"""The same for cv2.LUT on three channels (six times faster than indexing with numpy)."""
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def sample(rgb: np.ndarray) -> np.ndarray:
    """A small copy of an RGB picture (every n-th pixel, about SAMPLE_WIDTH wide)."""
    import cv2
    step = max(1, rgb.shape[1] // SAMPLE_WIDTH)
    size = (max(1, rgb.shape[1] // step), max(1, rgb.shape[0] // step))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)  # five times faster than a strided copy


def measure(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(luminance, dark, red, saturated) per cell of a sampled RGB picture (uint8)."""
    import cv2
    cells = cv2.resize(cv2.LUT(samples, _LINEAR_RGB), GRID, interpolation=cv2.INTER_AREA).reshape(-1, 3)
    luminance = cells @ LUMA
    r, g, b = cells[:, 0], cells[:, 1], cells[:, 2]
    total = r + g + b
    saturated = r >= SATURATED_RED * np.maximum(total, 1e-6)
    return luminance, luminance < DARK_BELOW, np.maximum(0.0, r - g - b) * RED_SCALE, saturated & (total > 0)


class Transitions:
    """One quantity's peaks and valleys per cell and the times of its latest transitions.

    `flag` marks a state that may take part in a transition: for luminance the darker state must be
    dark (`either_end` False: the valley of a rise, the new state of a fall); for red either state
    may be saturated red (`either_end` True)."""

    def __init__(self, value: np.ndarray, flag: np.ndarray, step: float, either_end: bool) -> None:
        self.step, self.either_end = step, either_end
        self.low, self.high = value.copy(), value.copy()
        self.low_flag, self.high_flag = flag.copy(), flag.copy()
        self.direction = np.zeros(value.shape, np.int8)
        self.times_s = np.full((value.size, SLOTS), -np.inf)

    def new(self, value: np.ndarray, flag: np.ndarray, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(rises, falls): the cells where `value` would be a transition (a change of `margin` times the step)."""
        step = self.step * margin
        rise_ok = self.low_flag | (flag & self.either_end)
        fall_ok = flag | (self.high_flag & self.either_end)
        rises = (self.direction != 1) & (value - self.low >= step) & rise_ok
        falls = (self.direction != -1) & (self.high - value >= step) & fall_ok
        return rises, falls

    def over(self, value: np.ndarray, flag: np.ndarray, now_s: float, window_s: float,
             margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(over, new): cells with more than MAX_TRANSITIONS in the last `window_s` with `value` shown,
        and the cells where it would be a transition."""
        rises, falls = self.new(value, flag, margin)
        new = rises | falls
        count = (self.times_s > now_s - window_s).sum(axis=1) + new
        return count > MAX_TRANSITIONS, new

    def count(self, now_s: float) -> np.ndarray:
        """Transitions per cell in the second up to `now_s`."""
        return (self.times_s > now_s - WINDOW_S).sum(axis=1)

    def take(self, value: np.ndarray, flag: np.ndarray, now_s: float) -> None:
        """`value` is shown: record its transitions, move the peaks and valleys."""
        rises, falls = self.new(value, flag)
        new = rises | falls
        if new.any():
            cells = np.flatnonzero(new)
            self.times_s[cells, self.times_s[cells].argmin(axis=1)] = now_s
            self.direction[rises], self.direction[falls] = 1, -1
            self.low[new], self.high[new] = value[new], value[new]
            self.low_flag[new], self.high_flag[new] = flag[new], flag[new]
        lower, higher = value < self.low, value > self.high
        self.low[lower], self.low_flag[lower] = value[lower], flag[lower]
        self.high[higher], self.high_flag[higher] = value[higher], flag[higher]


class FlashGuard:
    """`limit(rgb, now_s)` -> the picture to show instead (`rgb` itself when it is safe). Main thread only.

    `limited` counts the pictures changed (with `limit=False`: the ones that would have been)."""

    def __init__(self, limit: bool = True) -> None:
        self.limit_on = limit
        self.window_s = GUARD_WINDOW_S if limit else WINDOW_S
        self.limited = 0
        self._last: np.ndarray | None = None
        self._samples: np.ndarray | None = None
        self._luma: Transitions | None = None
        self._red: Transitions | None = None

    def limit(self, rgb: np.ndarray, now_s: float, exempt: bool = False) -> np.ndarray:
        """The picture to show at `now_s`; an `exempt` one (an operator's blackout) is shown as it is
        and only counted."""
        samples = sample(rgb)
        if self._last is None or self._last.shape != rgb.shape:
            self._reset(rgb, samples)
            return rgb
        luminance, dark, red, saturated = measure(samples)
        if exempt or self._safe(luminance, dark, red, saturated, now_s):
            return self._take(rgb, samples, now_s, (luminance, dark, red, saturated))
        self.limited += 1
        if not self.limit_on:
            return self._take(rgb, samples, now_s, (luminance, dark, red, saturated))
        alpha = self._safe_share(samples, now_s)
        import cv2
        out = self._last if alpha <= 0 else cv2.addWeighted(self._last, 1.0 - alpha, rgb, alpha, 0.0)
        out_samples = sample(out)
        return self._take(out, out_samples, now_s, measure(out_samples))

    def flashes(self, now_s: float) -> int:
        """The most general or red flashes in the second up to `now_s` that more than a quarter of the
        picture had: the figure the rules cap at three."""
        if self._luma is None or self._red is None:
            return 0
        rank = int(AREA_SHARE * GRID[0] * GRID[1])   # the cells after the top quarter
        return max(int(np.sort(t.count(now_s))[::-1][rank]) // 2 for t in (self._luma, self._red))

    def room(self, now_s: float) -> int:
        """Transitions a picture shown at `now_s` may still add over a quarter of the wall before the
        guard limits it (a flash takes two; 0: the next one is held back). Cheap: the compositor asks at
        every refresh."""
        if self._luma is None or self._red is None:
            return MAX_TRANSITIONS
        rank = int(AREA_SHARE * GRID[0] * GRID[1])
        busiest = max(int(np.sort((t.times_s > now_s - self.window_s).sum(axis=1))[::-1][rank])
                      for t in (self._luma, self._red))
        return max(0, MAX_TRANSITIONS - busiest)

    def _reset(self, rgb: np.ndarray, samples: np.ndarray) -> None:
        luminance, dark, red, saturated = measure(samples)
        self._luma = Transitions(luminance, dark, LUMA_STEP, either_end=False)
        self._red = Transitions(red, saturated, RED_STEP, either_end=True)
        self._last, self._samples = rgb, samples

    def _safe(self, luminance: np.ndarray, dark: np.ndarray, red: np.ndarray, saturated: np.ndarray,
              now_s: float, margin: float = 1.0) -> bool:
        assert self._luma is not None and self._red is not None
        for track, value, flag in ((self._luma, luminance, dark), (self._red, red, saturated)):
            over, new = track.over(value, flag, now_s, self.window_s, margin)
            if over.mean() > AREA_SHARE and (over & new).any():
                return False
        return True

    def _safe_share(self, samples: np.ndarray, now_s: float) -> float:
        """The largest share of the way from the last picture to the new one that is safe."""
        assert self._samples is not None
        last = self._samples.astype(np.float32)
        change = samples.astype(np.float32) - last
        low, high = 0.0, 1.0
        for _ in range(STEPS):
            mid = 0.5 * (low + high)
            blend = np.rint(last + mid * change).astype(np.uint8)
            if self._safe(*measure(blend), now_s, MARGIN):
                low = mid
            else:
                high = mid
        return low

    def _take(self, rgb: np.ndarray, samples: np.ndarray, now_s: float,
              measured: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        assert self._luma is not None and self._red is not None
        luminance, dark, red, saturated = measured
        self._luma.take(luminance, dark, now_s)
        self._red.take(red, saturated, now_s)
        self._last, self._samples = rgb, samples
        return rgb
