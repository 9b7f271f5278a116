"""Beat tracking against a chart's tempo map: how soon the tempo settles, how close the beats fall.

Ground truth is a song folder in the Frets on Fire layout: `notes.mid` (its `set_tempo` events and
ticks per beat give every quarter-note beat), the audio as stems (`song.ogg`, `guitar.ogg`,
`rhythm.ogg`, ...; the room hears them mixed) and `song.ini` (its `delay`, in ms, shifts the chart
against the audio).

Scoring follows what the projector does with an `OnsetState`: a beat is drawn at
`beat_t_s + k * 60 / tempo_bpm` while the confidence is above the compositor's floor and the room
is not silent. The tempo has settled when it stays within `tolerance` of the chart's tempo for
`hold_s`; half or double time is outside the tolerance, so an octave error is a miss.
"""
from __future__ import annotations

import configparser
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEM_NAMES = ("song", "guitar", "rhythm", "drums", "bass", "vocals", "keys")
AUDIO_SUFFIXES = (".ogg", ".oga", ".wav", ".flac", ".mp3", ".opus")
CONFIDENCE_FLOOR = 0.05
"""The compositor draws beats only above this confidence (installation/projection/compositor.py)."""


@dataclass(frozen=True)
class TempoMap:
    """A chart's beats on the audio's clock and the tempo in force at any time."""

    change_t_s: np.ndarray
    change_bpm: np.ndarray
    beats_s: np.ndarray

    def bpm_at(self, t_s: float) -> float:
        i = int(np.searchsorted(self.change_t_s, t_s, side="right")) - 1
        return float(self.change_bpm[max(0, i)])


@dataclass(frozen=True)
class TrackPoint:
    """The tracker's state as the projector would read it at `t_s`."""

    t_s: float
    tempo_bpm: float
    beat_t_s: float
    confidence: float
    silent: bool


@dataclass(frozen=True)
class BeatScore:
    settle_s: float | None
    """Audio time at which the tempo entered the band it then kept for `hold_s`; None: never."""
    in_band_after: float
    """Share of the time after settling with the tempo inside the band (nan if never settled)."""
    octave_share: float
    """Share of all tracked time at half or double the chart's tempo (within the tolerance)."""
    beat_p50_ms: float
    beat_p95_ms: float
    beats: int
    """Predicted beats scored (after settling, while the projector would draw them)."""
    chart_bpm: float


def tempo_map(notes_mid: Path, end_s: float, delay_s: float = 0.0) -> TempoMap:
    """The tempo map of a standard MIDI file's merged tracks, with its beats up to `end_s`."""
    import mido

    midi = mido.MidiFile(str(notes_mid))
    per_beat = midi.ticks_per_beat
    tick, us_per_beat = 0, 500000
    changes: list[tuple[int, int]] = [(0, us_per_beat)]
    for msg in mido.merge_tracks(midi.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            if changes[-1][0] == tick:
                changes[-1] = (tick, msg.tempo)
            else:
                changes.append((tick, msg.tempo))
    change_t_s, change_bpm, beats = [], [], []
    t_s = delay_s
    for i, (start, tempo) in enumerate(changes):
        if i:
            t_s += (start - changes[i - 1][0]) / per_beat * changes[i - 1][1] / 1e6
        change_t_s.append(t_s)
        change_bpm.append(60e6 / tempo)
    for i, (start, tempo) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else None
        first = -(-start // per_beat) * per_beat  # the first beat tick at or after this change
        k = first
        while stop is None or k < stop:
            b_s = change_t_s[i] + (k - start) / per_beat * tempo / 1e6
            if b_s > end_s:
                break
            beats.append(b_s)
            k += per_beat
    return TempoMap(np.asarray(change_t_s), np.asarray(change_bpm), np.asarray(beats))


def song_delay_s(folder: Path) -> float:
    """`delay` (ms) from the folder's song.ini, 0 when there is none."""
    ini = folder / "song.ini"
    if not ini.is_file():
        return 0.0
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
        return float(parser.get("song", "delay", fallback="0") or 0) / 1000.0
    except (configparser.Error, ValueError):
        return 0.0


def song_folders(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) holding a notes.mid, sorted."""
    return sorted(p.parent for p in Path(root).rglob("notes.mid"))


def mixed_stems(folder: Path, rate_hz: int) -> np.ndarray:
    """The folder's audio stems summed to mono at `rate_hz`, as the room would hear them."""
    import soxr

    from models.listening.va import load_audio

    paths = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in AUDIO_SUFFIXES and p.stem.lower() in STEM_NAMES)
    if not paths:
        raise FileNotFoundError(f"{folder} holds no audio stems ({', '.join(STEM_NAMES)})")
    mix = np.zeros(0, np.float32)
    for p in paths:
        x, rate = load_audio(p)
        if rate != rate_hz:
            x = soxr.resample(x, rate, rate_hz).astype(np.float32)
        if x.size > mix.size:
            x[:mix.size] += mix
            mix = x
        else:
            mix[:x.size] += x
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    return mix / peak * 0.9 if peak > 0.9 else mix


def predicted_beats(track: list[TrackPoint]) -> list[float]:
    """The beats the projector would mark: each predicted beat as it stood when its time came."""
    out: list[float] = []
    upcoming: float | None = None
    for p in track:
        if upcoming is not None and p.t_s >= upcoming:
            out.append(upcoming)
        if p.tempo_bpm > 0 and p.confidence > CONFIDENCE_FLOOR and not p.silent and math.isfinite(p.beat_t_s):
            period_s = 60.0 / p.tempo_bpm
            k = math.floor((p.t_s - p.beat_t_s) / period_s) + 1
            upcoming = p.beat_t_s + k * period_s
        else:
            upcoming = None
    return out


def score(track: list[TrackPoint], chart: TempoMap, tolerance: float = 0.02, hold_s: float = 10.0) -> BeatScore:
    """Settling time, in-band share, octave share and beat distances of one song's track."""
    if not track:
        return BeatScore(None, math.nan, math.nan, math.nan, math.nan, 0, float(chart.change_bpm[0]))
    t = np.array([p.t_s for p in track])
    bpm = np.array([p.tempo_bpm for p in track])
    truth = np.array([chart.bpm_at(x) for x in t])
    ratio = np.where(truth > 0, bpm / truth, 0.0)
    inside = np.abs(ratio - 1.0) <= tolerance
    octave = (np.abs(ratio - 2.0) <= 2 * tolerance) | (np.abs(ratio - 0.5) <= 0.5 * tolerance)
    dt = np.diff(t, append=t[-1])
    settle_s: float | None = None
    start: float | None = None
    for i in range(t.size):
        if not inside[i]:
            start = None
            continue
        if start is None:
            start = float(t[i])
        if t[i] - start >= hold_s:
            settle_s = start
            break
    if settle_s is None:
        in_band, errors = math.nan, np.zeros(0)
    else:
        after = t >= settle_s
        in_band = float(np.sum(dt[after & inside]) / max(np.sum(dt[after]), 1e-9))
        beats = np.array([b for b in predicted_beats(track) if b >= settle_s])
        errors = nearest_distance_s(beats, chart.beats_s)
    return BeatScore(
        settle_s=settle_s, in_band_after=in_band,
        octave_share=float(np.sum(dt[octave]) / max(np.sum(dt), 1e-9)),
        beat_p50_ms=float(np.percentile(errors, 50) * 1000) if errors.size else math.nan,
        beat_p95_ms=float(np.percentile(errors, 95) * 1000) if errors.size else math.nan,
        beats=int(errors.size), chart_bpm=float(chart.change_bpm[0]))


def nearest_distance_s(times_s: np.ndarray, reference_s: np.ndarray) -> np.ndarray:
    """|t - nearest reference| for each t (reference sorted)."""
    if times_s.size == 0 or reference_s.size == 0:
        return np.zeros(0)
    i = np.clip(np.searchsorted(reference_s, times_s), 1, reference_s.size - 1)
    left, right = reference_s[i - 1], reference_s[i]
    return np.minimum(np.abs(times_s - left), np.abs(times_s - right))


def track_song(samples: np.ndarray, rate_hz: int, detector, block: int) -> tuple[list[TrackPoint], float, float]:
    """Feed `samples` to an onset detector block by block on the audio's clock.

    Returns the track, the CPU seconds in all and the 99th percentile of a block's CPU seconds."""
    import time

    from installation.records import AudioBlock

    track: list[TrackPoint] = []
    costs_s: list[float] = []
    for start in range(0, samples.size - block + 1, block):
        t0 = time.process_time()
        state = detector.push(AudioBlock(start / rate_hz, samples[start:start + block], rate_hz))
        costs_s.append(time.process_time() - t0)
        if state is not None:
            track.append(TrackPoint(state.t_s, state.tempo_bpm, state.beat_t_s, state.beat_confidence, state.silent))
    return track, float(np.sum(costs_s)), float(np.percentile(costs_s, 99)) if costs_s else 0.0

