"""The beat tracker: tempo and phase from the recent onset envelope, the octave chosen by evidence.

aubio's tempo tracker (used before) read its tempo about 1.5 % fast here (118 BPM clicks read
119.7: the period short by about half an analysis hop), which leaves no room inside a 2 % band;
folding its tempo into a fixed octave made every song outside that octave an octave error; and it
sometimes locked onto the off-beat. This tracker takes the onset detector's flux per hop,
autocorrelates the last `window_s` (unbiased, with parabolic interpolation between lags, so the
period is exact to a fraction of a hop) and scores each period by its metrical family: the mean
autocorrelation at the period, twice it and four times it (the bar). A riff grouped 3+3+2 or in
fives repeats at its own period as strongly as the beat does, but its four periods are not a bar,
so the beat's family wins where the period alone would not. The family scores are smoothed over
estimates (`family_gain`) and the family now followed gets a margin (`hold`), so a related period
must win for seconds before the tempo moves to it. The octave comes from the music: from the
family's slowest member inside the range it moves up an octave while the half period's peak holds
at least `faster_share` of the period's own. A pulse with hits between the beats (eighth-note
hi-hats, double kicks) reads at its faster octave; one whose in-between hits are weak reads slower.

The phase is the offset of a comb at that period that collects the most onset flux over the last
`phase_s` (newer beats weigh more), so the beat sits on the strong hits, not between them. A new
phase within a quarter period of the running prediction pulls it by `phase_gain`; a jump must be
seen `jump_after` times in a row. Confidence is the autocorrelation's height at the beat period
(1 = the envelope repeats exactly at that period).
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BeatSettings:
    range_bpm: tuple[float, float] = (70.0, 210.0)
    window_s: float = 8.0
    min_s: float = 2.5
    """Envelope needed before the first estimate."""
    every: int = 8
    """Hops between estimates (8 x 11.6 ms)."""
    faster_share: float = 0.3
    """Half period's autocorrelation, as a share of the period's, that moves the tempo up an octave."""
    smooth: int = 5
    """Tempo estimates the published tempo is the median of."""
    phase_s: float = 4.0
    phase_gain: float = 0.5
    jump_after: int = 3
    family_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Weights of the period, twice it and four times it in a period's metrical score."""
    family_gain: float = 0.1
    """Share of a new estimate's family scores taken into the running ones (about 1 s at `every`)."""
    hold: float = 0.3
    """Relative margin of the family now followed over any other."""
    lag_s: float = 0.0
    """Time from a hit's attack to the hop its flux peaks in, taken off every beat time."""


class BeatTracker:
    """`push(flux, hop_end_t_s)` per hop; `tempo_bpm`, `beat_t_s` (a recent beat), `confidence`."""

    def __init__(self, frame_rate_hz: float, settings: BeatSettings = BeatSettings()) -> None:
        self.s = settings
        self.frame_rate_hz = frame_rate_hz
        self.low_bpm, self.high_bpm = settings.range_bpm
        self._n = int(settings.window_s * frame_rate_hz)
        self._min = int(settings.min_s * frame_rate_hz)
        self._env: collections.deque[float] = collections.deque(maxlen=self._n)
        self._since = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=settings.smooth)
        self._jumps = 0
        self._family: np.ndarray | None = None
        self._base: float | None = None
        self.tempo_bpm = 0.0
        self.beat_t_s = -math.inf
        self.confidence = 0.0

    def push(self, flux: float, hop_end_t_s: float) -> None:
        self._env.append(flux)
        self._since += 1
        if self._since < self.s.every or len(self._env) < self._min:
            return
        self._since = 0
        found = self.estimate()
        if found is None:
            self.confidence = 0.0
            return
        lag, self.confidence = found
        self._recent.append(60.0 * self.frame_rate_hz / lag)
        self.tempo_bpm = float(np.median(self._recent))
        beat_t_s = self._phase(60.0 * self.frame_rate_hz / self.tempo_bpm, hop_end_t_s)
        self._follow(beat_t_s)

    def estimate(self) -> tuple[float, float] | None:
        """(beat period in hops, confidence) of the envelope now held; None when it shows no period."""
        acf = self._autocorrelation()
        if acf is None:
            return None
        lag_of = lambda bpm: 60.0 * self.frame_rate_hz / bpm  # noqa: E731
        # The metrical family (a period with its double and its quadruple, the bar) that the envelope
        # repeats at most strongly, its base inside the range's fastest octave; a riff grouped 3+3+2
        # or in fives repeats at its own period, but not at four of them.
        top = acf.size - 2
        fast, slow = lag_of(self.high_bpm), min(2.0 * lag_of(self.high_bpm), lag_of(self.low_bpm))
        if slow >= top:
            return None
        peaks = np.maximum(np.maximum(acf[:-2], acf[1:-1]), acf[2:])  # a hop either side: 4 periods drift
        grid = np.arange(fast, slow, 0.25)
        family, weight = np.zeros(grid.size), np.zeros(grid.size)
        for k, w in zip((1, 2, 4), self.s.family_weights):
            seen = k * grid < top  # a young envelope does not reach four periods yet
            family += np.where(seen, w * np.interp(k * grid - 1.0, np.arange(peaks.size), peaks), 0.0)
            weight += np.where(seen, w, 0.0)
        family /= np.maximum(weight, 1e-9)
        if self._family is None or self._family.size != family.size:
            self._family = family
        else:
            self._family += self.s.family_gain * (family - self._family)
        held = self._family
        if self._base is not None:  # the family now followed keeps a margin: a switch needs sustained evidence
            held = held * (1.0 + self.s.hold * np.exp(-0.5 * (np.log(grid / self._base) / 0.02) ** 2))
        base = float(grid[int(np.argmax(held))])
        self._base = base
        # The period exact to a fraction of a hop from its longest multiple the envelope reaches (the
        # base need not be a peak of its own: kicks on the beat alone show none at half the period);
        # then its slowest octave inside the range, and up an octave while the half period holds.
        m = next(m for m in (4, 2, 1) if m * base + 2 < acf.size)
        period = self._refine(acf, int(round(m * base))) / m
        near = lambda x: float(peaks[min(max(int(round(x)) - 1, 0), peaks.size - 1)])  # noqa: E731
        k = next(k for k in (4, 2, 1) if k == 1 or k * period <= lag_of(self.low_bpm))
        while k > 1 and near(k * period / 2) >= self.s.faster_share * near(k * period):
            k //= 2
        lag = k * period
        if not lag_of(self.high_bpm) <= lag <= lag_of(self.low_bpm):
            return None
        return lag, float(min(1.0, max(0.0, near(lag))))

    def _phase(self, period: float, hop_end_t_s: float) -> float:
        """Time of the newest beat of the comb at `period` (hops) that collects the most flux."""
        e = np.asarray(self._env, np.float64)
        e = np.convolve(e, (0.25, 0.5, 0.25), mode="same")  # hits land a hop either side of the grid
        n = min(e.size, int(self.s.phase_s * self.frame_rate_hz))
        seg = e[-n:]
        k = np.arange(max(1, int((n - 1) // period)))
        weights = 0.85 ** k
        offsets = np.arange(0.0, period, 0.25)
        positions = (n - 1) - offsets[:, None] - period * k[None, :]
        scores = (np.interp(positions, np.arange(n), seg) * weights).sum(axis=1)
        d = float(offsets[int(np.argmax(scores))])
        hop_s = 1.0 / self.frame_rate_hz
        return hop_end_t_s - (1.0 + d) * hop_s - self.s.lag_s

    def _follow(self, beat_t_s: float) -> None:
        """Pull the running beat towards a new phase estimate; jump only when it keeps disagreeing."""
        period_s = 60.0 / self.tempo_bpm
        if not math.isfinite(self.beat_t_s):
            self.beat_t_s = beat_t_s
            return
        k = round((beat_t_s - self.beat_t_s) / period_s)
        error_s = beat_t_s - (self.beat_t_s + k * period_s)
        if abs(error_s) <= 0.25 * period_s:
            self._jumps = 0
            self.beat_t_s = self.beat_t_s + k * period_s + self.s.phase_gain * error_s
        else:
            self._jumps += 1
            if self._jumps >= self.s.jump_after:
                self._jumps = 0
                self.beat_t_s = beat_t_s

    def _autocorrelation(self) -> np.ndarray | None:
        e = np.asarray(self._env, np.float64)
        e = np.maximum(e - np.convolve(e, np.ones(16) / 16, mode="same"), 0.0)
        e -= e.mean()
        if not np.any(e):
            return None
        size = 1 << int(math.ceil(math.log2(2 * e.size)))
        spec = np.fft.rfft(e, size)
        acf = np.fft.irfft(spec * np.conj(spec), size)[:e.size * 3 // 4]
        acf /= (e.size - np.arange(acf.size))  # unbiased: long lags are not penalised for overlapping less
        return acf / acf[0] if acf[0] > 0 else None

    @staticmethod
    def _refine(acf: np.ndarray, lag: int) -> float:
        """The local maximum within a hop or two of `lag`, to a fraction of a hop (parabolic)."""
        lag = int(min(max(lag, 1), acf.size - 2))
        for _ in range(2):
            nbrs = [lag - 1, lag, lag + 1]
            lag = int(min(max(nbrs[int(np.argmax(acf[nbrs]))], 1), acf.size - 2))
        a, b, c = acf[lag - 1], acf[lag], acf[lag + 1]
        denom = a - 2 * b + c
        return lag + (min(0.5, max(-0.5, 0.5 * (a - c) / denom)) if denom < 0 else 0.0)
