"""Real melodic and harmonic material from music21's bundled corpus, scanned once and cached.

`build_table()` parses Essen folksongs, O'Neill's Irish tunes and Bach chorales (minutes) and
learns what the composer needs:
  - melodic phrases of four bars as diatonic scale degrees and sixteenth-note rhythms, by mode
    class (major-like / minor-like) and metre, so a phrase can be realised in any mode and key;
  - Markov tables over diatonic steps (melody) and rhythms (folk tunes) and over bass scale
    degrees beat by beat (chorales);
  - muspy-style metrics of every work, summarised as quartiles, to compare generated music with.
The table is a small JSON file, models/data/corpus_table.json, committed to the repository and
rebuilt with `python run.py train corpus`. `load_table()` reads it in milliseconds.
"""
from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from installation.errors import UserError

log = logging.getLogger(__name__)

TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "corpus_table.json"
TABLE_VERSION = 1
METRES = {"4/4": 16, "3/4": 12, "6/8": 12}  # sixteenths per bar
PHRASE_BARS = 4
MAJOR_MODES = {"major", "ionian", "lydian", "mixolydian"}
MINOR_MODES = {"minor", "aeolian", "dorian", "phrygian", "locrian"}
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)


# --- metrics (muspy definitions, on plain note lists) ----------------------------------------------
@dataclass(frozen=True)
class Note:
    """A note for metrics: onset and duration in beats (quarter notes), MIDI pitch."""

    onset_beats: float
    duration_beats: float
    pitch: int


def _entropy(counts: Iterable[int]) -> float:
    c = np.array([x for x in counts if x > 0], dtype=float)
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def music_metrics(notes: Sequence[Note], beats_per_bar: float = 4.0, steps_per_beat: int = 4) -> dict[str, float]:
    """pitch_entropy, pitch_class_entropy, polyphony, polyphony_rate, scale_consistency,
    groove_consistency, empty_beat_rate, as muspy defines them (resolution: sixteenths)."""
    if not notes:
        return {k: 0.0 for k in ("pitch_entropy", "pitch_class_entropy", "polyphony", "polyphony_rate",
                                 "scale_consistency", "groove_consistency", "empty_beat_rate")}
    pitches = [n.pitch for n in notes]
    pcs = Counter(p % 12 for p in pitches)
    end_steps = max(1, int(math.ceil(max(n.onset_beats + n.duration_beats for n in notes) * steps_per_beat)))
    roll = np.zeros(end_steps, dtype=np.int32)
    onsets_per_step = np.zeros(end_steps, dtype=bool)
    for n in notes:
        a = int(round(n.onset_beats * steps_per_beat))
        b = max(a + 1, int(round((n.onset_beats + n.duration_beats) * steps_per_beat)))
        roll[a:b] += 1
        onsets_per_step[min(a, end_steps - 1)] = True
    on = roll[roll > 0]
    scale_best = 0.0
    for tonic in range(12):
        for scale in (MAJOR_SCALE, MINOR_SCALE):
            members = {(tonic + s) % 12 for s in scale}
            scale_best = max(scale_best, sum(c for pc, c in pcs.items() if pc in members) / len(pitches))
    bar_steps = int(round(beats_per_bar * steps_per_beat))
    n_bars = max(1, end_steps // bar_steps)
    bars = [onsets_per_step[i * bar_steps:(i + 1) * bar_steps] for i in range(n_bars)]
    bars = [b for b in bars if b.size == bar_steps]
    if len(bars) > 1:
        hamming = [float(np.mean(bars[i] != bars[i + 1])) for i in range(len(bars) - 1)]
        groove = 1.0 - float(np.mean(hamming))
    else:
        groove = 1.0
    n_beats = int(math.ceil(end_steps / steps_per_beat))
    beat_has_onset = np.zeros(n_beats, dtype=bool)
    for n in notes:
        beat_has_onset[min(n_beats - 1, int(n.onset_beats))] = True
    return {
        "pitch_entropy": _entropy(Counter(pitches).values()),
        "pitch_class_entropy": _entropy(pcs.values()),
        "polyphony": float(on.mean()) if on.size else 0.0,
        "polyphony_rate": float((on > 1).mean()) if on.size else 0.0,
        "scale_consistency": float(scale_best),
        "groove_consistency": groove,
        "empty_beat_rate": float(1.0 - beat_has_onset.mean()),
    }


def quartiles(values: Sequence[float]) -> list[float]:
    a = np.asarray(values, dtype=float)
    return [float(np.percentile(a, q)) for q in (25, 50, 75)] if a.size else [0.0, 0.0, 0.0]


# --- the cached table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Phrase:
    """Four bars of melody: (degree or None for a rest, duration in sixteenths) per event.

    Degrees are diatonic steps from the tonic (0 = tonic, 7 = the tonic an octave up, -1 = the
    seventh below), so the phrase can be sung in any mode and key."""

    source: str
    mode_class: str
    metre: str
    events: tuple[tuple[int | None, int], ...]


class CorpusTable:
    """The learned material, loaded from JSON. Sampling takes a `random.Random` so callers own seeds."""

    def __init__(self, data: dict[str, Any]) -> None:
        if data.get("version") != TABLE_VERSION:
            raise UserError(f"corpus table version {data.get('version')} is not {TABLE_VERSION}; rebuild it with `python run.py train corpus`.")
        self.data = data
        self.phrases: dict[tuple[str, str], list[Phrase]] = defaultdict(list)
        for p in data["phrases"]:
            phrase = Phrase(p["source"], p["mode_class"], p["metre"],
                            tuple((None if d is None else int(d), int(r)) for d, r in p["events"]))
            self.phrases[(phrase.mode_class, phrase.metre)].append(phrase)
        self.step_markov = {k: {int(a): {int(b): c for b, c in row.items()} for a, row in table.items()}
                            for k, table in data["step_markov"].items()}
        self.rhythm_markov = {k: {int(a): {int(b): c for b, c in row.items()} for a, row in table.items()}
                              for k, table in data["rhythm_markov"].items()}
        self.bass_markov = {k: {int(a): {int(b): c for b, c in row.items()} for a, row in table.items()}
                            for k, table in data["bass_markov"].items()}
        self.metrics: dict[str, dict[str, list[float]]] = data.get("metrics", {})
        self.sources: dict[str, int] = data.get("sources", {})
        self.tunes: list[dict[str, Any]] = data.get("tunes", [])
        self.by_source: dict[str, list[Phrase]] = defaultdict(list)
        for phrases in self.phrases.values():
            for phrase in phrases:
                self.by_source[phrase.source].append(phrase)

    def choose_phrase(self, mode_class: str, metre: str, rng: random.Random) -> Phrase:
        candidates = self.phrases.get((mode_class, metre)) or self.phrases.get(("major", metre)) \
            or self.phrases.get((mode_class, "4/4")) or next(iter(self.phrases.values()))
        return candidates[rng.randrange(len(candidates))]

    @staticmethod
    def _sample(row: dict[int, int] | None, rng: random.Random, fallback: int) -> int:
        if not row:
            return fallback
        keys = list(row)
        return rng.choices(keys, weights=[row[k] for k in keys])[0]

    def next_step(self, mode_class: str, previous_step: int, rng: random.Random) -> int:
        """A diatonic melodic step after `previous_step`, learned from the folk corpus."""
        table = self.step_markov.get(mode_class) or self.step_markov["major"]
        return self._sample(table.get(max(-7, min(7, previous_step))), rng, 0)

    def bass_weights(self, mode_class: str, previous_degree: int) -> dict[int, float]:
        """P(next bass degree | previous), from the chorales' bass lines beat by beat."""
        table = self.bass_markov.get(mode_class) or self.bass_markov["major"]
        row = table.get(previous_degree % 7) or {d: 1 for d in range(7)}
        total = float(sum(row.values()))
        return {d: row.get(d, 0) / total for d in range(7)}


_cached: dict[Path, CorpusTable] = {}


def load_table(path: Path = TABLE_PATH) -> CorpusTable:
    """The cached corpus table (read once per process)."""
    path = Path(path)
    if path not in _cached:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"corpus table {path} is missing; build it with `python run.py train corpus` (a few minutes).") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"corpus table {path} cannot be read ({exc}); rebuild it with `python run.py train corpus`.") from None
        _cached[path] = CorpusTable(data)
    return _cached[path]


# --- building (music21; minutes, run once) --------------------------------------------------------
def _mode_class(mode: str) -> str:
    return "minor" if (mode or "major").lower() in MINOR_MODES else "major"


def _score_key(score) -> Any:
    from music21 import key as m21key
    found = list(score.flatten().getElementsByClass(m21key.Key))
    if found:
        return found[0]
    sigs = list(score.flatten().getElementsByClass(m21key.KeySignature))
    try:
        analysed = score.analyze("key")
    except Exception:
        analysed = None
    if analysed is not None:
        return analysed
    return sigs[0].asKey("major") if sigs else m21key.Key("C")


def _metre_of(score) -> str | None:
    from music21 import meter
    sigs = list(score.flatten().getElementsByClass(meter.TimeSignature))
    return sigs[0].ratioString if sigs else None


def _melody_events(part, tonic_dnn: int) -> list[tuple[int | None, int, int]] | None:
    """(degree|None, onset16, dur16) for a monophonic part, ties merged; None if off the 1/16 grid."""
    events: list[list] = []
    for n in part.flatten().notesAndRests:
        onset = float(n.offset) * 4.0
        dur = float(n.quarterLength) * 4.0
        if dur == 0:
            continue  # grace notes
        if abs(onset - round(onset)) > 1e-6 or abs(dur - round(dur)) > 1e-6:
            return None
        if n.isRest:
            degree = None
        else:
            pitch = n.pitches[-1]  # a chord in a melody line: its top note
            degree = pitch.diatonicNoteNum - tonic_dnn
        tie = getattr(n, "tie", None)
        if tie is not None and tie.type in ("continue", "stop") and events and events[-1][0] == degree:
            events[-1][2] += int(round(dur))
            continue
        events.append([degree, int(round(onset)), int(round(dur))])
    return [tuple(e) for e in events]


def _phrases_from_tune(score, source: str) -> tuple[list[dict], str, str] | None:
    metre = _metre_of(score)
    if metre not in ("4/4", "2/4", "3/4", "6/8", "2/2", "C"):
        return None
    k = _score_key(score)
    mode_class = _mode_class(k.mode)
    from music21 import pitch as m21pitch
    tonic_dnn = m21pitch.Pitch(k.tonic.name + "4").diatonicNoteNum
    parts = list(score.parts) or [score]
    events = _melody_events(parts[0], tonic_dnn)
    if not events:
        return None
    bar16 = {"4/4": 16, "C": 16, "2/2": 16, "2/4": 16, "3/4": 12, "6/8": 12}[metre]
    name = {"C": "4/4", "2/2": "4/4", "2/4": "4/4"}.get(metre, metre)
    # Skip a pickup: start at the first measure that is a full bar of the notated metre.
    first_bar = None
    for m in parts[0].getElementsByClass("Measure"):
        if m.paddingLeft == 0 and abs(float(m.duration.quarterLength) - float(m.barDuration.quarterLength)) < 1e-6:
            first_bar = int(round(float(m.offset) * 4.0))
            break
    if first_bar is None:
        return None
    phrase16 = bar16 * PHRASE_BARS
    phrases: list[dict] = []
    start = first_bar
    end = max(e[1] + e[2] for e in events)
    while start + phrase16 <= end and len(phrases) < 4:
        chunk = [(d, o - start, r) for d, o, r in events if start <= o < start + phrase16]
        if not chunk or chunk[0][1] != 0:
            break
        out = []
        for d, o, r in chunk:
            r = min(r, phrase16 - o)  # a note held across the phrase end is cut there
            out.append((d, r))
        degrees = [d for d, _ in out if d is not None]
        if len(degrees) >= 4:
            shift = 7 * int(np.floor(np.median(degrees) / 7.0))  # register-neutral: median in [0, 7)
            out = [(None if d is None else d - shift, r) for d, r in out]
            phrases.append({"source": source, "mode_class": mode_class, "metre": name, "events": out})
        start += phrase16
    return phrases, mode_class, name


def _score_notes(score) -> tuple[list[Note], float]:
    notes = []
    for n in score.flatten().notes:
        for p in n.pitches:
            notes.append(Note(float(n.offset), float(n.quarterLength), int(p.midi)))
    from music21 import meter
    sigs = list(score.flatten().getElementsByClass(meter.TimeSignature))
    beats_per_bar = float(sigs[0].barDuration.quarterLength) if sigs else 4.0
    return notes, beats_per_bar


def _bass_degrees(score, k) -> list[int]:
    """The bass line's scale degree (0-6) on every beat."""
    part = score.parts[-1]
    tonic_pc = k.tonic.pitchClass
    scale = MINOR_SCALE if _mode_class(k.mode) == "minor" else MAJOR_SCALE
    flat = part.flatten().notes
    degrees = []
    end = float(part.highestTime)
    beat = 0.0
    items = [(float(n.offset), float(n.offset + n.quarterLength), n.pitches[0].pitchClass) for n in flat]
    i = 0
    while beat < end:
        while i < len(items) and items[i][1] <= beat:
            i += 1
        if i < len(items) and items[i][0] <= beat:
            interval = (items[i][2] - tonic_pc) % 12
            degree = min(range(7), key=lambda d: min((interval - scale[d]) % 12, (scale[d] - interval) % 12))
            degrees.append(degree)
        beat += 1.0
    return degrees


@dataclass
class _Counts:
    """What the corpus scan gathers for the table."""

    phrases: list[dict] = field(default_factory=list)
    steps: dict[str, Counter] = field(default_factory=lambda: {"major": Counter(), "minor": Counter()})
    rhythms: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    bass: dict[str, Counter] = field(default_factory=lambda: {"major": Counter(), "minor": Counter()})
    metrics: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"folk": [], "chorales": []})
    sources: Counter = field(default_factory=Counter)
    tunes: list[dict[str, Any]] = field(default_factory=list)


def build_table(max_folk_tunes: int = 900, max_chorales: int = 150, progress: Callable[[str], None] | None = None,
                path: Path = TABLE_PATH) -> dict[str, Any]:
    """Parse the corpus and write the table. `progress` receives one line per source file."""
    say = progress or (lambda text: log.info(text))
    counts = _Counts()
    _scan_folk(counts, max_folk_tunes, say)
    _scan_chorales(counts, max_chorales, say)
    data = {
        "version": TABLE_VERSION,
        "built_by": "python run.py train corpus",
        "sources": dict(counts.sources),
        "phrases": counts.phrases,
        "tunes": counts.tunes,
        "step_markov": {k: _nested(v) for k, v in counts.steps.items()},
        "rhythm_markov": {k: _nested(v) for k, v in counts.rhythms.items()},
        "bass_markov": {k: _nested(v) for k, v in counts.bass.items()},
        "metrics": {group: {name: quartiles([m[name] for m in rows]) for name in (rows[0] if rows else {})}
                    for group, rows in counts.metrics.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    _cached.pop(Path(path), None)
    return data


def _nested(counter: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (a, b), c in counter.items():
        out[str(a)][str(b)] = int(c)
    return dict(out)


def _scan_folk(counts: _Counts, max_folk_tunes: int, say: Callable[[str], None]) -> None:
    from music21 import corpus
    folk_files = []
    essen = sorted(corpus.getComposer("essenFolksong"))
    oneills = sorted(corpus.getComposer("oneills1850"))
    # A spread over regions and collections, not the first files only.
    for group in (essen[::4], oneills[::6]):
        folk_files.extend(group)
    tunes_seen = 0
    for file_path in folk_files:
        if tunes_seen >= max_folk_tunes:
            break
        try:
            opus = corpus.parse(file_path)
        except Exception as exc:
            say(f"skip {Path(file_path).name}: {exc}")
            continue
        scores = list(opus.scores) if hasattr(opus, "scores") else [opus]
        collection = "oneills" if "oneills" in str(file_path) else "essen"
        taken = 0
        for i, score in enumerate(scores[:max(1, max_folk_tunes // len(folk_files) * 2)]):
            if tunes_seen >= max_folk_tunes:
                break
            try:
                result = _phrases_from_tune(score, f"{collection}/{Path(file_path).stem}#{i + 1}")
            except Exception as exc:  # one odd tune must not stop the scan
                log.debug("tune %s#%d skipped: %s", file_path, i, exc)
                continue
            if not result or not result[0]:
                continue
            _add_tune(counts, score, *result)
            counts.sources[collection] += 1
            tunes_seen += 1
            taken += 1
        say(f"{Path(file_path).name}: {taken} tunes, {len(counts.phrases)} phrases so far")


def _add_tune(counts: _Counts, score, tune_phrases: list[dict], mode_class: str, metre: str) -> None:
    counts.phrases.extend(tune_phrases)
    for ph in tune_phrases:
        degrees = [d for d, _ in ph["events"] if d is not None]
        steps = [max(-7, min(7, b - a)) for a, b in zip(degrees, degrees[1:])]
        counts.steps[mode_class].update(zip(steps, steps[1:]))
        rhythms = [r for _, r in ph["events"]]
        counts.rhythms[metre].update(zip(rhythms, rhythms[1:]))
    notes, beats_per_bar = _score_notes(score)
    counts.metrics["folk"].append(music_metrics(notes, beats_per_bar))
    pitches = [n.pitch for n in notes]
    length_beats = max((n.onset_beats + n.duration_beats for n in notes), default=0.0)
    title = (getattr(score.metadata, "title", "") or "") if score.metadata is not None else ""
    counts.tunes.append({"source": tune_phrases[0]["source"], "title": str(title)[:80], "mode_class": mode_class,
                         "metre": metre, "mean_pitch": float(np.mean(pitches)) if pitches else 60.0,
                         "pitch_range": int(max(pitches) - min(pitches)) if pitches else 0,
                         "notes_per_bar": len(notes) / max(1.0, length_beats / beats_per_bar)})


def _scan_chorales(counts: _Counts, max_chorales: int, say: Callable[[str], None]) -> None:
    from music21 import corpus
    chorale_paths = [p for p in sorted(corpus.getComposer("bach")) if "bwv" in Path(p).name.lower()]
    for file_path in chorale_paths[:max_chorales]:
        try:
            score = corpus.parse(file_path)
            if len(score.parts) != 4:
                continue
            k = _score_key(score)
            degrees = _bass_degrees(score, k)
            counts.bass[_mode_class(k.mode)].update(zip(degrees, degrees[1:]))
            notes, beats_per_bar = _score_notes(score)
            counts.metrics["chorales"].append(music_metrics(notes, beats_per_bar))
            counts.sources["bach_chorales"] += 1
        except Exception as exc:
            log.debug("chorale %s skipped: %s", file_path, exc)
    say(f"chorales: {counts.sources['bach_chorales']}")
