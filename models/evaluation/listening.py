"""The listening evals' and bench's library: labelled recordings, ranking metrics, test signals and
the listener's paced latency and reaction time (`run.py eval music-va`, `bench listen`)."""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

from installation.errors import UserError


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus")


@dataclass(frozen=True)
class Label:
    id: str
    path: Path
    valence: float | None
    arousal: float | None
    pair: str = ""


def _column(names: list[str], *wanted: str) -> int | None:
    lowered = [n.strip().lower() for n in names]
    for w in wanted:
        for i, n in enumerate(lowered):
            if n == w:
                return i
    for w in wanted:
        for i, n in enumerate(lowered):
            if w in n:
                return i
    return None


def read_labels(labels_path: Path, audio_dir: Path) -> list[Label]:
    """Rows of a DEAM-style CSV with their audio files; values on another scale are mapped to [-1, 1]."""
    if not labels_path.is_file():
        raise UserError(f"labels file {labels_path} does not exist; give a CSV with id, valence, arousal columns.")
    if not audio_dir.is_dir():
        raise UserError(f"audio folder {audio_dir} does not exist; give the folder that holds the labelled files.")
    with labels_path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, skipinitialspace=True) if r and not r[0].startswith("#")]
    if len(rows) < 2:
        raise UserError(f"labels file {labels_path} has no rows; add a header and one row per file.")
    header, body = rows[0], rows[1:]
    id_col = _column(header, "song_id", "id", "file", "path")
    v_col = _column(header, "valence_mean", "valence")
    a_col = _column(header, "arousal_mean", "arousal")
    pair_col = _column(header, "pair")
    if id_col is None or (v_col is None and a_col is None):
        raise UserError(f"labels file {labels_path} needs an id column and a valence or arousal column "
                        f"(header found: {', '.join(header)}).")

    def num(row: list[str], col: int | None) -> float | None:
        if col is None or col >= len(row) or row[col].strip() == "":
            return None
        try:
            value = float(row[col])
        except ValueError:
            raise UserError(f"labels file {labels_path}: {row[col]!r} in row {row} is not a number.") from None
        return value if math.isfinite(value) else None

    values = [x for r in body for x in (num(r, v_col), num(r, a_col)) if x is not None]
    lo, hi = (1.0, 9.0) if values and (max(values) > 1.0 or min(values) < -1.0) else (-1.0, 1.0)
    files = {p.stem: p for p in sorted(audio_dir.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES}
    out = []
    for r in body:
        ident = r[id_col].strip()
        path = audio_dir / ident if (audio_dir / ident).is_file() else files.get(Path(ident).stem)
        if path is None:
            raise UserError(f"no audio file for id {ident!r} from {labels_path} in {audio_dir}; "
                            f"name it {ident}.wav/.ogg/.flac/.mp3 or fix the id.")
        scale = (lambda x: None if x is None else max(-1.0, min(1.0, 2 * (x - lo) / (hi - lo) - 1)))
        out.append(Label(ident, path, scale(num(r, v_col)), scale(num(r, a_col)),
                         r[pair_col].strip() if pair_col is not None and pair_col < len(r) else ""))
    return out


def pair_accuracy(pred: list[float], label: list[float], pairs: list[str]) -> tuple[float, int]:
    """Share of within-group pairs (different labels) whose predicted order matches the labels."""
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(pairs):
        if g:
            groups.setdefault(g, []).append(i)
    right = total = 0
    for idx in groups.values():
        for i in idx:
            for j in idx:
                if label[i] > label[j]:
                    total += 1
                    right += pred[i] > pred[j]
    return (right / total if total else float("nan")), total


def synthetic_music(seconds: float, rate_hz: int, energetic: bool, seed: int = 0):
    """A test signal: soft slow minor chords, or loud bright 150 BPM drums over major chords."""
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    if not energetic:
        tones: tuple[float, ...] = (220.0, 261.63, 329.63)  # A minor
        x = sum(np.sin(2 * np.pi * f * t) for f in tones) * 0.03 * (1 + 0.3 * np.sin(2 * np.pi * 0.2 * t))
        return x.astype(np.float32)
    tones = (261.63, 329.63, 392.0, 523.25)  # C major
    x = np.asarray(sum(np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sign(np.sin(2 * np.pi * 2.5 * t))) for f in tones) * 0.08)
    beat = 60.0 / 150
    for b in np.arange(0, seconds, beat / 2):
        i = int(b * rate_hz)
        n = min(int(0.05 * rate_hz), x.size - i)
        x[i:i + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * rate_hz)) * 0.6
    return np.clip(x, -1, 1).astype(np.float32)


def paced_latencies_ms(listener, signal, rate_hz: int, hop: int, seconds: float) -> list[float]:
    """Feed one hop per hop_s of wall time; per hop, ms from the block's arrival to its MusicState."""
    import numpy as np
    listener.feed(np.zeros(hop, np.float32))
    listener.state(0.0)
    n = int(seconds * rate_hz) // hop
    start = time.perf_counter()
    latencies = []
    try:
        for k in range(n):
            due = start + (k + 1) * hop / rate_hz
            time.sleep(max(0.0, due - time.perf_counter()))
            i = (k * hop) % max(hop, signal.size - hop)
            w0 = time.perf_counter()
            listener.feed(signal[i:i + hop])
            listener.state((k + 1) * hop / rate_hz)
            latencies.append((time.perf_counter() - w0) * 1000)
    finally:
        listener.close()
    return latencies


def reaction_time(listener, calm, energetic, rate_hz: int, hop_s: float) -> float | None:
    """Seconds after a calm -> energetic switch until arousal is half-way from the calm to the energetic level."""
    import numpy as np
    hop = int(hop_s * rate_hz)
    t = 0.0
    arousal = []
    for sig in (calm, energetic):
        for i in range(0, sig.size - hop + 1, hop):
            listener.feed(sig[i:i + hop])
            t += hop / rate_hz
            arousal.append((t, listener.state(t).arousal))
    switch_s = calm.size // hop * hop / rate_hz
    before = [a for s, a in arousal if switch_s - 3.0 <= s <= switch_s]
    after = [a for s, a in arousal if s >= arousal[-1][0] - 3.0]
    lo, hi = float(np.mean(before)), float(np.mean(after))
    if hi - lo < 0.05:
        return None  # the head does not tell these two apart
    half = lo + 0.5 * (hi - lo)
    for s, a in arousal:
        if s > switch_s and a >= half:
            return round(s - switch_s, 2)
    return None
