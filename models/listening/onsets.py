"""Onsets and beats at audio-block rate, for accents that must reach the wall within a frame.

`OnsetDetector` cuts each audio block into hops of `hop` samples (256 at 22.05 kHz: 11.6 ms) and
computes the spectral flux of the newest `window` samples on every hop. An onset is the hop whose
flux rises above an adaptive threshold (the recent median plus a share of the recent hits' level),
reported in the hop where the hit lands: peak picking would wait for the flux to fall again, which
costs aubio's onset tracker 35-50 ms here. Its strength is the flux over the recent hits' level, so
a soft hit gives a soft accent; hops below the silence level give none.

The beat tracker (models.listening.beat_tracker) follows tempo and phase on the same hops' flux, the tempo
inside `tempo_range_bpm` with the octave chosen by what is played between the beats.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, replace

import numpy as np

from installation.records import AudioBlock, OnsetState
from models.listening.beat_tracker import BeatSettings, BeatTracker
from models.listening.settings import ListenSettings


@dataclass(frozen=True)
class OnsetSettings:
    """How the detector listens; every value has a unit or is a ratio."""

    hop: int = 256
    window: int = 512
    silence_dbfs: float = -55.0
    threshold: float = 0.35
    """Share of the recent hits' flux a hop must rise above the median to count as a hit."""
    floor: float = 0.02
    """Flux (mean log-magnitude rise per bin) below which nothing counts, however quiet the room."""
    min_gap_s: float = 0.06
    retrigger_s: float = 0.05
    """After a hit the threshold starts at the hit's flux and falls back with this time constant, so a
    ringing tail is not a second hit."""
    median_s: float = 0.5
    reference_decay_s: float = 8.0
    """How fast the recent hits' level forgets a loud hit, so the next passage sets its own scale."""
    strength_range_db: float = 24.0
    """A hit this much quieter than the loudest recent one gets no accent; as loud, full strength."""
    silent_after_s: float = 0.3
    tempo_range_bpm: tuple[float, float] = (70.0, 210.0)


class OnsetDetector:
    """`push(block) -> OnsetState | None`: the state after the block's last whole hop."""

    def __init__(self, sample_rate_hz: int, settings: OnsetSettings = OnsetSettings(), beats: bool = True) -> None:
        self.s = settings
        self.rate_hz = int(sample_rate_hz)
        self._pending = np.zeros(0, np.float32)
        self._pending_t_s = 0.0
        self._frame = np.zeros(settings.window, np.float32)
        self._hann = np.hanning(settings.window).astype(np.float32)
        self._previous: np.ndarray | None = None
        self._recent: collections.deque[float] = collections.deque(
            maxlen=max(3, int(settings.median_s * sample_rate_hz / settings.hop)))
        self._reference = 0.0
        self._reference_t_s = 0.0
        self._loudest_db = -120.0
        self._last_flux = 0.0
        self._refine = 0
        """Hops left in which a hit's strength may still rise (its attack can land late in a hop)."""
        self._quiet_since_s: float | None = 0.0
        self._silence_power = 10.0 ** (settings.silence_dbfs / 10.0)
        self.beats = (BeatTracker(self.rate_hz / settings.hop, BeatSettings(range_bpm=settings.tempo_range_bpm))
                      if beats else None)
        self.state = OnsetState(t_s=0.0)
        self.count = 0

    def push(self, block: AudioBlock) -> OnsetState | None:
        samples = np.asarray(block.samples, np.float32).reshape(-1)
        if self._pending.size == 0:
            self._pending_t_s = block.t_s
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples
        hop = self.s.hop
        n_hops = self._pending.size // hop
        if n_hops == 0:
            return None
        for i in range(n_hops):
            self._hop(self._pending[i * hop:(i + 1) * hop], self._pending_t_s + i * hop / self.rate_hz)
        self._pending = self._pending[n_hops * hop:].copy()
        self._pending_t_s += n_hops * hop / self.rate_hz
        return self.state

    def _hop(self, x: np.ndarray, t_s: float) -> None:
        s, hop = self.s, x.size
        end_t_s = t_s + hop / self.rate_hz
        self._frame[:-hop] = self._frame[hop:]
        self._frame[-hop:] = x
        power = float(np.mean(x.astype(np.float64) ** 2))
        loud = power > self._silence_power
        if loud:
            self._quiet_since_s = None
        elif self._quiet_since_s is None:
            self._quiet_since_s = t_s
        silent = self._quiet_since_s is not None and end_t_s - self._quiet_since_s >= s.silent_after_s
        log_mag = np.log1p(100.0 * np.abs(np.fft.rfft(self._frame * self._hann)))
        flux = 0.0 if self._previous is None else float(np.maximum(log_mag - self._previous, 0.0).mean())
        self._previous = log_mag
        median = float(np.median(self._recent)) if self._recent else 0.0
        self._recent.append(flux)
        forget_e = max(0.0, end_t_s - self._reference_t_s) / s.reference_decay_s  # in nepers; the first hop's
        self._reference *= math.exp(-forget_e)  # gap from t = 0 can be hours, where exp() underflows to 0
        self._loudest_db -= forget_e * 20.0 / math.log(10.0)
        self._reference_t_s = end_t_s
        level_db = 10.0 * math.log10(max(float(np.mean(self._frame[-hop:].astype(np.float64) ** 2)), 1e-12))
        state = self.state
        retrigger = self._last_flux * math.exp(-max(0.0, t_s - state.onset_t_s) / s.retrigger_s)
        threshold = median + max(s.floor, s.threshold * self._reference, retrigger)
        onset = (loud and flux > threshold and flux > s.floor
                 and t_s - state.onset_t_s >= s.min_gap_s)
        beat_t_s, tempo_bpm, confidence = state.beat_t_s, state.tempo_bpm, state.beat_confidence
        if self.beats is not None:
            self.beats.push(flux, end_t_s)
            beat_t_s, tempo_bpm, confidence = self.beats.beat_t_s, self.beats.tempo_bpm, self.beats.confidence
        if silent:
            confidence = 0.0
        strength, onset_t_s = state.strength, state.onset_t_s
        if onset:
            self.count += 1
            self._reference = max(self._reference, flux)
            self._last_flux = flux
            self._refine = 1
            onset_t_s = t_s
            strength = self._strength(level_db)
        elif self._refine > 0 and loud:
            self._refine -= 1
            strength = max(strength, self._strength(level_db))
        self.state = OnsetState(t_s=end_t_s, onset_t_s=onset_t_s, strength=strength, count=self.count,
                                silent=silent and not onset, tempo_bpm=tempo_bpm, beat_t_s=beat_t_s,
                                beat_confidence=confidence)

    def _strength(self, level_db: float) -> float:
        """The hit's loudness against the loudest recent hit, in [0, 1]."""
        self._loudest_db = max(self._loudest_db, level_db)
        return float(min(1.0, max(0.05, 1.0 + (level_db - self._loudest_db) / self.s.strength_range_db)))


@dataclass(frozen=True)
class DetectorFactory:
    """(sample_rate_hz) -> OnsetDetector with these settings. Picklable, so an audio input's own
    process can build one at its device's rate (`at_device_rate`)."""

    settings: OnsetSettings

    def __call__(self, sample_rate_hz: int) -> OnsetDetector:
        return OnsetDetector(sample_rate_hz, self.settings)

    def at_device_rate(self, rate_hz: int, block_frames: int, analysis_rate_hz: int) -> OnsetDetector:
        """A detector on the device's own blocks: the hop lasts about as long as `settings.hop` at
        `analysis_rate_hz`, rounded to a divisor or multiple of the block, so every block ends on a
        hop boundary and no hit waits in a part-filled hop for the next block."""
        hop = self.settings.hop * rate_hz / analysis_rate_hz
        block = max(1, int(block_frames))
        hop_frames = block // max(1, round(block / hop)) if block >= hop else block * max(1, round(hop / block))
        return OnsetDetector(rate_hz, replace(self.settings, hop=hop_frames, window=2 * hop_frames))


def onset_detector(settings: ListenSettings) -> DetectorFactory:
    """The onset detector's factory with the `[listen]` settings: the onset stage's."""
    return DetectorFactory(OnsetSettings(hop=settings.onset_hop, window=2 * settings.onset_hop,
                                         silence_dbfs=settings.silence_dbfs, threshold=settings.onset_threshold,
                                         tempo_range_bpm=settings.beat_range_bpm))
