"""Checks that an LLM's answer is its own work: not the prompt's instructions echoed, not a copied tune.

Small models answer a format hint with the hint ("2 to 10 plain words") or hand back the example
tune they were shown. Both look valid to a format check, so they are caught by overlap: word
n-grams shared with the instructions, and runs of melody shared with the prompt's example or any
phrase of the corpus.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9]+")

ECHO_N = 3
"""Words in a row shared with the instructions that make an echo (two for a two-word answer)."""

COPY_N = 6
"""Notes in a row (scale degree and length) that count as a shared run of melody."""
COPY_SHARE = 0.5
"""A melody with at least this share of its runs inside one earlier phrase is a copy of it."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(seq: Sequence, n: int) -> set[tuple]:
    return {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}


class EchoCheck:
    """Finds an answer that repeats the instructions it was given."""

    def __init__(self, instructions: Iterable[str]) -> None:
        seqs = [words(t) for t in instructions]
        self._grams = {n: set().union(*(_grams(s, n) for s in seqs)) for n in (2, ECHO_N)}

    def echo(self, answer: str) -> str:
        """The words the answer shares with the instructions ("" when it shares none)."""
        seq = words(answer)
        n = ECHO_N if len(seq) > 2 else 2
        if len(seq) < n:
            return ""
        for gram in _grams(seq, n):
            if gram in self._grams[n]:
                return " ".join(gram)
        return ""


Melody = Sequence[tuple[int | None, int]]


def _notes(events: Melody) -> list[tuple[int, int]]:
    """Sounding notes only: a rest moved or a held note split does not hide a copy."""
    return [(d, r) for d, r in events if d is not None]


class TuneCopyCheck:
    """Finds a melody that copies one of the given phrases (the prompt's example, the corpus)."""

    def __init__(self, phrases: Iterable[tuple[str, Melody]]) -> None:
        self._where: dict[tuple, set[str]] = defaultdict(set)
        self._whole: dict[tuple, str] = {}
        for source, events in phrases:
            self.add(source, events)

    def add(self, source: str, events: Melody) -> None:
        notes = _notes(events)
        self._whole.setdefault(tuple(notes), source)  # short phrases have no runs: they are matched whole
        for gram in _grams(notes, COPY_N):
            self._where[gram].add(source)

    def copied(self, events: Melody) -> str:
        """The source the melody copies ("" when none): the same notes, or most of its runs of notes
        inside that one phrase."""
        notes = _notes(events)
        if tuple(notes) in self._whole:
            return self._whole[tuple(notes)]
        grams = _grams(notes, COPY_N)
        if not grams:
            return ""
        hits: dict[str, int] = defaultdict(int)
        for gram in grams:
            for source in self._where.get(gram, ()):
                hits[source] += 1
        if not hits:
            return ""
        source, count = max(hits.items(), key=lambda kv: (kv[1], kv[0]))
        return source if count >= COPY_SHARE * len(grams) else ""
