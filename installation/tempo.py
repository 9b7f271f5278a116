"""One beat timeline for the composer's bars and the visuals' beat: internal, MIDI clock or Ableton Link.

`tempo.source` in the config picks it:
  internal  a steady clock of our own (the /tempo command moves it; the music's own tempo otherwise)
  midi      follows MIDI clock in (24 ticks a quarter note) with a robust line over tick times
  link      follows (and leads) an Ableton Link session: every peer shares tempo and bar phase

Every source answers the same questions (`Tempo`): the tempo now, the beat at a time, the time of a
beat. Beat 0 is a bar line; bars are `quantum` beats long. Any thread may ask.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import threading
from typing import Protocol

import numpy as np

from installation.records import MusicState

TEMPO_RANGE_BPM = (20.0, 300.0)
TICKS_PER_BEAT = 24
OUTLIER_S = 0.012
"""A tick further than this from the robust line is late (or early) and left out of the fit."""
LOST_TICKS_GAP = (1.6, 3.5)
"""A gap between two ticks of this many fitted periods may mean one or two ticks were lost."""
LOST_TICKS_PROOF = 6
"""Ticks on each side of such a gap that tell a loss (the line stays a period behind) from a late
tick (the ticks after it catch up)."""


class Tempo(Protocol):
    source: str
    quantum: float

    def tempo_bpm(self) -> float: ...

    def beat_at(self, t_s: float) -> float: ...

    def time_at_beat(self, beat: float) -> float: ...

    def set_tempo(self, bpm: float, t_s: float | None = None) -> None: ...

    def open(self) -> None: ...

    def close(self) -> None: ...


# --- helpers every consumer uses ------------------------------------------------------------------
def next_bar_s(tempo: Tempo, t_s: float) -> float:
    """The first bar line at or after `t_s` (the composer starts its next bar there)."""
    beat = tempo.beat_at(t_s)
    bar = math.ceil(beat / tempo.quantum - 1e-9) * tempo.quantum
    return tempo.time_at_beat(bar)


def bar_line_s(tempo: Tempo, t_s: float, snap_beats: float = 0.25) -> float:
    """The bar line within `snap_beats` of `t_s` (a plan that ends a hair after one), else the next."""
    beat = tempo.beat_at(t_s)
    nearest = round(beat / tempo.quantum) * tempo.quantum
    if abs(beat - nearest) <= snap_beats:
        return tempo.time_at_beat(nearest)
    return next_bar_s(tempo, t_s)


def lock_music(music: MusicState, tempo: Tempo, t_s: float) -> MusicState:
    """`music` with tempo and beat phase taken from the shared timeline (what the visuals pulse to)."""
    beat = tempo.beat_at(t_s)
    descriptors = dataclasses.replace(music.descriptors, tempo_bpm=tempo.tempo_bpm(), beat_phase=beat % 1.0,
                                      beat_confidence=1.0)
    return dataclasses.replace(music, descriptors=descriptors)


class TempoLockedMusic:
    """A view of the listener's Latest[MusicState] whose beat is the shared timeline's at read time.

    Handed to the renderer in place of the Latest itself, so the visuals pulse on Link's (or the
    MIDI clock's) beat without the renderer knowing where the beat comes from.
    """

    def __init__(self, music, tempo: Tempo, clock) -> None:
        self._music = music
        self._tempo = tempo
        self._clock = clock

    def put(self, item: MusicState) -> None:
        self._music.put(item)

    def _locked(self, item: MusicState | None) -> MusicState | None:
        return None if item is None else lock_music(item, self._tempo, self._clock.now_s())

    def peek(self) -> MusicState | None:
        return self._locked(self._music.peek())

    def take(self, timeout_s: float | None = None, after_version: int | None = None) -> MusicState | None:
        return self._locked(self._music.take(timeout_s, after_version))

    @property
    def version(self) -> int:
        return self._music.version

    @property
    def dropped(self) -> int:
        return self._music.dropped


class TempoLockedComposer:
    """The composer with its bars on the shared timeline: each plan starts on a bar line of the
    session and uses the session's tempo. An operator's /tempo is proposed to the session (on Link
    every peer follows it). Everything else is the wrapped composer's."""

    def __init__(self, composer, tempo: Tempo) -> None:
        self._composer = composer
        self._tempo = tempo
        self._proposed_bpm: float | None = None

    def plan(self, image, start_s: float, tempo_bpm: float | None = None, **picture):
        if tempo_bpm is not None and tempo_bpm != self._proposed_bpm:
            self._tempo.set_tempo(tempo_bpm)
        self._proposed_bpm = tempo_bpm
        return self._composer.plan(image, bar_line_s(self._tempo, start_s), tempo_bpm=self._tempo.tempo_bpm(), **picture)

    def __getattr__(self, name: str):
        return getattr(self._composer, name)


# --- internal -------------------------------------------------------------------------------------
class InternalTempo:
    """A steady beat of our own. A tempo change keeps the beat position continuous."""

    source = "internal"

    def __init__(self, clock, bpm: float = 120.0, quantum: float = 4.0) -> None:
        self._clock = clock
        self.quantum = float(quantum)
        self._lock = threading.Lock()
        self._anchor_s = clock.now_s()
        self._anchor_beat = 0.0
        self._bpm = float(bpm)

    def tempo_bpm(self) -> float:
        with self._lock:
            return self._bpm

    def beat_at(self, t_s: float) -> float:
        with self._lock:
            return self._anchor_beat + (t_s - self._anchor_s) * self._bpm / 60.0

    def time_at_beat(self, beat: float) -> float:
        with self._lock:
            return self._anchor_s + (beat - self._anchor_beat) * 60.0 / self._bpm

    def set_tempo(self, bpm: float, t_s: float | None = None) -> None:
        t_s = self._clock.now_s() if t_s is None else t_s
        beat = self.beat_at(t_s)
        with self._lock:
            self._anchor_s, self._anchor_beat, self._bpm = t_s, beat, float(bpm)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- MIDI clock -----------------------------------------------------------------------------------
class ClockFollower:
    """Tempo and beat position from MIDI clock ticks, held against late and bunched ticks.

    Messages arrive quantised to the audio period (JACK delivers MIDI once a period) and now and
    then late: a sender that misses its deadline sends the late ticks in a burst. So the tick
    interval is a robust fit, never one interval: the median over the last `window_ticks` of the
    time one beat (24 ticks) took, and the phase the median offset of the ticks from that line.
    A burst of late ticks moves few of those beat spans, and a median does not follow a few; a
    whole beat of ticks off the line is a tempo change, and the fit starts again from them.

    What the follower reports (the tempo in force, `exact_bpm`) then moves toward the fit by at
    most `max_step_bpm_per_beat` each beat, and a change is said (`tick` returns it) once it is
    `min_change_bpm` away from the last one said (a smaller one once the tempo held still for two
    beats): a real tempo change goes through within a few beats, a late burst not at all.

    After MIDI Stop the ticks a sender goes on sending are not followed (no tempo is said) until
    Start or Continue: a stopped transport releases the tempo, and keeps it released.
    """

    def __init__(self, window_ticks: int = 192, min_ticks: int = 48, min_change_bpm: float = 1.0,
                 max_step_bpm_per_beat: float = 8.0) -> None:
        self._window = max(window_ticks, 2 * TICKS_PER_BEAT)
        self._min_ticks = max(min_ticks, TICKS_PER_BEAT + 2)
        self._min_change_bpm = min_change_bpm
        self._max_step_per_tick = max_step_bpm_per_beat / TICKS_PER_BEAT
        self._ticks: collections.deque[tuple[int, float]] = collections.deque(maxlen=self._window)
        self._count = 0
        self._fit: tuple[int, float, float] | None = None  # (reference tick, time at it, seconds per tick)
        self._force_bpm: float | None = None
        self._off_line = 0
        self._settled = 0
        self._previous_bpm = 0.0
        self._stopped = False
        self._lock = threading.Lock()
        self.bpm: float | None = None
        """The tempo last said (what became a /tempo command); None when released."""

    def start(self) -> None:
        """MIDI Start: the next tick is beat 0."""
        with self._lock:
            self._ticks.clear()
            self._count = 0
            self._fit = None
            self._stopped = False

    def resume(self) -> None:
        """MIDI Continue: follow the ticks again from where they are."""
        with self._lock:
            self._stopped = False

    def stop(self) -> None:
        with self._lock:
            self._ticks.clear()
            self._fit = None
            self._force_bpm = None
            self.bpm = None
            self._stopped = True

    def tick(self, t_s: float) -> float | None:
        """A clock tick at `t_s`; returns the tempo in force when it moved by min_change_bpm."""
        with self._lock:
            if self._stopped:
                return None
            if self._ticks and t_s - self._ticks[-1][1] > 1.0:
                self._ticks.clear()  # the clock paused: do not fit across the gap
                self._fit = None
            if self._fit is not None and len(self._ticks) >= self._min_ticks:  # not while refitting
                ref, t_ref, period = self._fit
                off = abs(t_s - (t_ref + (self._count - ref) * period)) > OUTLIER_S
                self._off_line = self._off_line + 1 if off else 0
                # a whole beat off the line, at a steady pace: the tempo changed
                if self._off_line >= TICKS_PER_BEAT and \
                        _steady([v for _, v in list(self._ticks)[1 - TICKS_PER_BEAT:]] + [t_s]):
                    for _ in range(len(self._ticks) - TICKS_PER_BEAT + 1):
                        self._ticks.popleft()
                    self._off_line = 0
                    self._force_bpm = None  # proven by a whole beat: no slew toward it
            self._ticks.append((self._count, t_s))
            self._count += 1
            if len(self._ticks) < (self._min_ticks if self._force_bpm is not None or self._fit is None
                                   else TICKS_PER_BEAT + 2):
                return None
            fit = self._refit()
            if fit is None:
                return None
            fitted_bpm = 60.0 / (TICKS_PER_BEAT * fit[2])
            if not TEMPO_RANGE_BPM[0] <= fitted_bpm <= TEMPO_RANGE_BPM[1]:
                return None
            self._fit = fit
            if self._force_bpm is None:
                self._force_bpm = fitted_bpm
            else:
                step = self._max_step_per_tick
                self._force_bpm += min(step, max(-step, fitted_bpm - self._force_bpm))
            bpm = round(self._force_bpm, 1)
            self._settled = self._settled + 1 if abs(self._force_bpm - self._previous_bpm) < 0.05 else 0
            self._previous_bpm = self._force_bpm
            # Hysteresis: a change of min_change_bpm is said at once; a smaller one only once the
            # tempo has held still for two beats (so the value said ends up exact, without chatter).
            if self.bpm is None or abs(bpm - self.bpm) >= self._min_change_bpm \
                    or (abs(bpm - self.bpm) >= 0.2 and self._settled >= 2 * TICKS_PER_BEAT):
                self.bpm = bpm
                return bpm
            return None

    def _refit(self) -> tuple[int, float, float] | None:
        """The line through the window, after counting the ticks the MIDI transport lost (see
        _count_lost). Without that a dropped tick shifts the count of every later one off the line."""
        n = np.fromiter((k for k, _ in self._ticks), dtype=np.float64, count=len(self._ticks))
        t = np.fromiter((v for _, v in self._ticks), dtype=np.float64, count=len(self._ticks))
        fit = _robust_line(n, t)
        if fit is None or len(t) < self._min_ticks:  # too few ticks to tell a lost one from a late one
            return fit
        counted = _count_lost(n, t, fit)
        if counted is not None:
            n = counted
            self._ticks = collections.deque(zip(n.astype(int).tolist(), t.tolist()), maxlen=self._window)
            self._count = int(n[-1]) + 1
            fit = _robust_line(n, t)
        return fit

    def exact_bpm(self) -> float | None:
        """The tempo in force (limited in its change per beat); None before a fit or after Stop."""
        with self._lock:
            return self._force_bpm

    def beat_at(self, t_s: float) -> float | None:
        """Beats since Start (or the first tick) at `t_s`, on the fitted line; None before a fit."""
        with self._lock:
            if self._fit is None:
                return None
            ref, t_ref, period = self._fit
            return (ref + (t_s - t_ref) / period) / TICKS_PER_BEAT

    def time_at_beat(self, beat: float) -> float | None:
        with self._lock:
            if self._fit is None:
                return None
            ref, t_ref, period = self._fit
            return t_ref + (beat * TICKS_PER_BEAT - ref) * period


def _steady(times: list[float]) -> bool:
    """Whether ticks came at a steady pace of a tempo in range (a new tempo), not bunched (late
    bursts after stalls, which a loaded machine can chain over more than a beat): a mean interval
    in range and few intervals under half of it."""
    intervals = np.diff(np.asarray(times))
    mean = float(intervals.mean()) if len(intervals) else 0.0
    shortest_s = 60.0 / (TICKS_PER_BEAT * TEMPO_RANGE_BPM[1])
    return mean >= 0.8 * shortest_s and float((intervals < 0.5 * mean).mean()) < 0.25


def _count_lost(n, t, fit: tuple[int, float, float]):
    """Tick numbers `n` with the ticks lost in gaps counted in; None when none was found.

    A gap of two or three periods is either lost ticks or a late tick (the ones after it then come
    bunched, catching up). Ticks are only ever late, never early, so the earliest of the ticks
    after the gap tells: lost ticks leave it one period behind the earliest before the gap (for
    good), a late tick does not. Decided once `LOST_TICKS_PROOF` ticks came after the gap.
    """
    ref, t_ref, period = fit
    residual = t - (t_ref + (n - ref) * period)
    gaps = np.diff(t) / period
    proof = LOST_TICKS_PROOF
    counted = None
    for after in np.flatnonzero((gaps >= LOST_TICKS_GAP[0]) & (gaps < LOST_TICKS_GAP[1])) + 1:
        if after < proof or len(t) - after < proof:
            continue
        if float((gaps[after:after + proof] >= 1.5).mean()) >= 0.5:
            continue  # the ticks after it keep coming slow: a slower tempo, not a loss
        behind_s = float(residual[after:after + proof].min() - residual[after - proof:after].min())
        lost = int(round(behind_s / period))
        if 1 <= lost <= round(gaps[after - 1]) - 1 and abs(behind_s - lost * period) < period / 4:
            counted = n.copy() if counted is None else counted
            counted[after:] += lost
            residual[after:] -= lost * period
    return counted


def _robust_line(n, t) -> tuple[int, float, float] | None:
    """t = t_ref + (n - ref) * period through ticks numbered `n` at times `t`, robust to a minority
    of late ones.

    A first line from medians (the median beat span, the median offset) finds the late ticks: more
    than `OUTLIER_S` off it. A least-squares line through the rest then averages the quantisation
    of the arrival times out (a median of quantised spans would be biased by a whole period).
    """
    if len(t) < TICKS_PER_BEAT + 2:
        return None
    lag = TICKS_PER_BEAT
    period = float(np.median((t[lag:] - t[:-lag]) / (n[lag:] - n[:-lag])))
    if not period > 0:
        return None
    ref = int(n[-1])
    x = n - ref
    residual = t - x * period
    keep = np.abs(residual - np.median(residual)) <= max(OUTLIER_S, 0.25 * period * TICKS_PER_BEAT / 4)
    if keep.sum() >= TICKS_PER_BEAT:
        x, t = x[keep], t[keep]
        mean_x, mean_t = float(x.mean()), float(t.mean())
        sxx = float(((x - mean_x) ** 2).sum())
        if sxx > 0:
            fitted = float(((x - mean_x) * (t - mean_t)).sum()) / sxx
            if fitted > 0:
                period = fitted
        return ref, mean_t - mean_x * period, period
    return ref, float(np.median(residual)), period


class MidiClockTempo:
    """Follows MIDI clock in; before the first clock (or after Stop) it runs on at the last tempo."""

    source = "midi"

    def __init__(self, clock, bpm: float = 120.0, quantum: float = 4.0, follower: ClockFollower | None = None) -> None:
        self._clock = clock
        self.quantum = float(quantum)
        self.follower = follower or ClockFollower()
        self._fallback = InternalTempo(clock, bpm, quantum)

    def on_message(self, message) -> float | None:
        """MIDI-in thread: clock/start/stop messages stamped with `.time`; returns a new tempo or None."""
        kind = message.type
        if kind == "clock":
            return self.follower.tick(float(message.time))
        if kind == "start":
            self.follower.start()
        elif kind == "continue":
            self.follower.resume()
        elif kind == "stop":
            bpm = self.follower.exact_bpm()
            if bpm is not None:
                self._fallback.set_tempo(bpm)
            self.follower.stop()
        return None

    def tempo_bpm(self) -> float:
        bpm = self.follower.exact_bpm()
        return self._fallback.tempo_bpm() if bpm is None else bpm

    def beat_at(self, t_s: float) -> float:
        beat = self.follower.beat_at(t_s)
        return self._fallback.beat_at(t_s) if beat is None else beat

    def time_at_beat(self, beat: float) -> float:
        t_s = self.follower.time_at_beat(beat)
        return self._fallback.time_at_beat(beat) if t_s is None else t_s

    def set_tempo(self, bpm: float, t_s: float | None = None) -> None:
        """The clock's sender owns the tempo; an operator's tempo applies only while no clock runs."""
        self._fallback.set_tempo(bpm, t_s)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- construction ---------------------------------------------------------------------------------
def build_tempo(tempo_cfg, clock) -> Tempo:
    """The configured source (not yet opened: call `open()` when the show starts)."""
    if tempo_cfg.source == "link":
        from hardware.link import AbletonLink, load_link_module

        load_link_module()  # a missing package is a start-up error, not a running fault
        return AbletonLink(clock, tempo_cfg.bpm, tempo_cfg.quantum)
    if tempo_cfg.source == "midi":
        return MidiClockTempo(clock, tempo_cfg.bpm, tempo_cfg.quantum)
    return InternalTempo(clock, tempo_cfg.bpm, tempo_cfg.quantum)
