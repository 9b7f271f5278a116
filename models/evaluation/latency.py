"""Onset-to-photon scoring for `bench latency`: a kick track with random gaps, the projected frames'
log, and the figures (see installation/commands/latency.py for what each one means)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


RATE_HZ = 22050


PRE_S = 0.25


LOOK_S = 0.25


QUIET_BEFORE_S = 0.6


QUIET_AFTER_S = 0.3


MARGIN_RATIO = 0.5


MARGIN_GREY = 3.0


def kick_track(seconds: float, seed: int = 0, rate_hz: int = RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """(samples, kick start times in s): kicks of random strength after random gaps of 0.4-1.5 s,
    every eighth gap a 3 s silence."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate_hz), np.float32)
    k = np.arange(int(0.35 * rate_hz))  # long enough to fade out: an abrupt end would be a click of its own
    starts = []
    t_s, n = 0.5, 0
    while t_s < seconds - 0.5:
        i = int(t_s * rate_hz)
        amp = rng.uniform(0.35, 0.9)
        body = np.sin(2 * np.pi * (55 + 90 * np.exp(-k / (0.02 * rate_hz))) * k / rate_hz) * np.exp(-k / (0.05 * rate_hz))
        click = rng.standard_normal(k.size) * np.exp(-k / (0.003 * rate_hz))
        seg = x[i:i + k.size]
        seg += (amp * (0.8 * body + 0.3 * click))[:seg.size].astype(np.float32)
        starts.append(i / rate_hz)
        n += 1
        t_s += 3.0 if n % 8 == 0 else rng.uniform(0.4, 1.5)
    np.clip(x, -1.0, 1.0, out=x)
    return x, np.asarray(starts)


@dataclass
class FrameLog:
    """(time handed to the display, change against the previous frame) of every projected frame."""

    times_s: list[float] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)


@dataclass
class OnsetLog:
    """(time the state reached the projector's mailbox, its onset count, its onset time) of every
    onset state published: where a kick's time goes, detection or the wait for a frame."""

    arrived_s: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    onsets_s: list[float] = field(default_factory=list)


def detection_lags(log: OnsetLog, kicks_s: np.ndarray) -> list[tuple[float, float] | None]:
    """Per kick: (s from the kick to the first new onset's state in the mailbox, that onset's own
    date minus the kick), or None when no new onset arrived within LOOK_S."""
    arrived = np.asarray(log.arrived_s, np.float64)
    counts = np.asarray(log.counts, np.int64)
    dated = np.asarray(log.onsets_s, np.float64)
    out: list[tuple[float, float] | None] = []
    for t_s in kicks_s:
        before = np.flatnonzero(arrived < t_s)
        count_before = int(counts[before[-1]]) if before.size else -1
        new = np.flatnonzero((arrived >= t_s) & (arrived <= t_s + LOOK_S) & (counts != count_before))
        out.append((float(arrived[new[0]] - t_s), float(dated[new[0]] - t_s)) if new.size else None)
    return out


def detection_figures(log: OnsetLog, frames: FrameLog, onsets_s: np.ndarray, start_s: float, end_s: float) -> dict:
    """Where the time and the misses go: kick to onset state (detection), state to photon, and
    kicks missed by the detector against kicks detected but with no frame showing them in time."""
    times = np.asarray(frames.times_s, np.float64)
    changes = np.asarray(frames.changes, np.float64)
    scored = onsets_s[(onsets_s >= start_s) & (onsets_s <= end_s - LOOK_S)]
    detected = detection_lags(log, scored)
    photon = [first_change(times, changes, t) for t in scored]
    detect_ms = np.asarray([d[0] for d in detected if d is not None]) * 1e3
    dated_ms = np.asarray([d[1] for d in detected if d is not None]) * 1e3
    to_photon_ms = np.asarray([(p - d[0]) for d, p in zip(detected, photon) if d is not None and p is not None]) * 1e3

    def pct(x: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(x, q)), 1) if x.size else None
    return {"detected": len(detect_ms), "detect_ms_p50": pct(detect_ms, 50), "detect_ms_p95": pct(detect_ms, 95),
            "onset_dated_ms_p50": pct(dated_ms, 50),
            "detect_to_photon_ms_p50": pct(to_photon_ms, 50), "detect_to_photon_ms_p95": pct(to_photon_ms, 95),
            "missed_not_detected": sum(d is None for d in detected),
            "missed_detected_no_frame": sum(d is not None and p is None for d, p in zip(detected, photon))}


def first_change(times_s: np.ndarray, changes: np.ndarray, t_s: float) -> float | None:
    """Seconds from `t_s` to the first frame within LOOK_S whose change beats the pre-onset level by the margin."""
    before = changes[(times_s >= t_s - PRE_S) & (times_s < t_s)]
    if before.size == 0:
        return None
    threshold = float(before.max()) * (1.0 + MARGIN_RATIO) + MARGIN_GREY
    after = np.flatnonzero((times_s >= t_s) & (times_s <= t_s + LOOK_S) & (changes > threshold))
    return float(times_s[after[0]] - t_s) if after.size else None


def silence_probes(onsets_s: np.ndarray, start_s: float, end_s: float, step_s: float = 0.25) -> np.ndarray:
    """Times in silence: no kick in the QUIET_BEFORE_S before, none in the LOOK_S + QUIET_AFTER_S after."""
    probes = np.arange(start_s, end_s - LOOK_S, step_s)
    keep = [t for t in probes
            if not np.any((onsets_s > t - QUIET_BEFORE_S) & (onsets_s < t + LOOK_S + QUIET_AFTER_S))]
    return np.asarray(keep)


def score(frames: FrameLog, onsets_s: np.ndarray, start_s: float, end_s: float) -> dict:
    """Onset-to-photon figures from a frame log and the kicks' times on the same clock."""
    times = np.asarray(frames.times_s, np.float64)
    changes = np.asarray(frames.changes, np.float64)
    scored = onsets_s[(onsets_s >= start_s) & (onsets_s <= end_s - LOOK_S)]
    lags = [first_change(times, changes, t) for t in scored]
    hits = np.asarray([lag for lag in lags if lag is not None]) * 1e3
    probes = silence_probes(onsets_s, start_s, end_s)
    false = [first_change(times, changes, t) is not None for t in probes]
    period = np.diff(times[(times >= start_s) & (times <= end_s)])
    after_kick = np.zeros(times.size, bool)
    for t_s in scored:
        after_kick |= (times >= t_s) & (times < t_s + LOOK_S)
    in_silence = np.zeros(times.size, bool)
    for t_s in probes:
        in_silence |= (times >= t_s) & (times < t_s + LOOK_S)
    sound_change = float(changes[after_kick].mean()) if after_kick.any() else 0.0
    silence_change = float(changes[in_silence].mean()) if in_silence.any() else 0.0
    return {
        "onsets": int(scored.size), "hits": int(hits.size),
        "hit_rate": round(hits.size / max(1, scored.size), 3),
        "p50_ms": round(float(np.percentile(hits, 50)), 1) if hits.size else None,
        "p95_ms": round(float(np.percentile(hits, 95)), 1) if hits.size else None,
        "max_ms": round(float(hits.max()), 1) if hits.size else None,
        "silence_probes": len(probes), "false_hit_rate": round(sum(false) / max(1, len(probes)), 3),
        "change_after_kicks": round(sound_change, 2), "change_in_silence": round(silence_change, 2),
        "silence_to_kick_change_ratio": round(silence_change / sound_change, 3) if sound_change > 0 else None,
        "frame_interval_ms_p50": round(float(np.median(period)) * 1e3, 1) if period.size else None,
        "frame_interval_ms_p95": round(float(np.percentile(period, 95)) * 1e3, 1) if period.size else None,
        "margin": f"change > {1 + MARGIN_RATIO:g} x the largest change in the {PRE_S * 1e3:.0f} ms before "
                  f"+ {MARGIN_GREY:g} grey levels, within {LOOK_S * 1e3:.0f} ms",
    }
