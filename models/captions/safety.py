"""Content safety and the CLIP token budget for every prompt, whatever its source.

`ContentFilter` applies the operator's blocklist (plus a small built-in list for public venues) to
prompts from the agents, the LLM backend and operator overrides alike. `TokenCounter` counts CLIP
BPE tokens exactly like the CLIP text encoder does, without importing torch: it reads the BPE
merges that open_clip ships.
"""
from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import logging
import re
import threading
import unicodedata
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

CLIP_MAX_TOKENS = 77
"""The CLIP text encoder's context, start and end tokens included."""

BUILTIN_BLOCKLIST = (
    "nsfw", "nude", "nudity", "naked", "topless", "porn", "porno", "pornographic", "sex", "sexual",
    "sexy", "erotic", "explicit", "fetish", "gore", "gory", "blood", "bloody", "corpse", "dead body",
    "murder", "kill", "killing", "suicide", "self-harm", "torture", "decapitated", "weapon", "gun",
    "rifle", "nazi", "swastika", "terrorist", "drugs", "cocaine",
)
"""Always blocked at a public venue unless `captions.default_blocklist = false`."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


def clean_text(text: str, max_chars: int = 400) -> str:
    """NFKC-normalised, control characters removed, whitespace collapsed, at most `max_chars`."""
    text = unicodedata.normalize("NFKC", str(text))
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return text[:max_chars].strip()


class ContentFilter:
    """Blocks prompts that contain a listed word, from any source. Safe to call from any thread.

    Matching is case-insensitive on whole words (plural -s/-es included), so "gun" blocks "guns" but
    not "gunmetal". `blocked_count` counts the prompts refused since start.
    """

    def __init__(self, blocklist: Iterable[str] = (), negative_prompt: str = "", builtin: bool = True) -> None:
        words = [clean_text(w).casefold() for w in blocklist]
        if builtin:
            words += list(BUILTIN_BLOCKLIST)
        self.terms: tuple[str, ...] = tuple(sorted({w for w in words if w}))
        self.operator_terms: tuple[str, ...] = tuple(sorted({clean_text(w).casefold() for w in blocklist if clean_text(w)}))
        self.negative_prompt = clean_text(negative_prompt)
        self._pattern = (re.compile(r"(?<!\w)(" + "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in self.terms)
                                    + r")(?:s|es)?(?!\w)", re.IGNORECASE) if self.terms else None)
        self._lock = threading.Lock()
        self.blocked_count = 0

    def blocked_terms(self, text: str) -> tuple[str, ...]:
        """The listed terms found in `text` (empty when it is safe)."""
        if self._pattern is None:
            return ()
        normal = unicodedata.normalize("NFKC", text).casefold()
        return tuple(sorted({m.group(1).lower() for m in self._pattern.finditer(normal)}))

    def is_safe(self, text: str) -> bool:
        return not self.blocked_terms(text)

    def refuse(self, text: str, source: str) -> tuple[str, ...]:
        """Check `text`; when blocked, count and log it (never the full text at info level) and return the terms."""
        terms = self.blocked_terms(text)
        if terms:
            with self._lock:
                self.blocked_count += 1
            log.warning("blocked a %s prompt containing %s; it will not be rendered", source, ", ".join(terms))
            log.debug("blocked %s prompt: %r", source, text)
        return terms

    def strip(self, text: str) -> str:
        """`text` with every listed term removed: the last resort when nothing safe is left."""
        if self._pattern is None:
            return text
        return clean_text(self._pattern.sub(" ", text)).strip(" ,")


# --- CLIP token counting ---------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte gets a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _clip_vocab_path() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=2)
def _merge_ranks(path: Path) -> dict[tuple[str, str], int]:
    """CLIP's BPE merges by rank; read once per process (~0.1 s) and shared, never modified."""
    merges = gzip.open(path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    return {tuple(m.split()): i for i, m in enumerate(merges)}  # type: ignore[misc]


class TokenCounter:
    """Counts CLIP BPE tokens (same algorithm and merges as CLIP/open_clip) and trims text to fit.

    Without open_clip installed it falls back to a conservative estimate (1.6 tokens a word), which
    over-counts so that prompts still fit. `exact` says which one is in use.
    """

    def __init__(self, vocab_path: Path | None = None) -> None:
        path = vocab_path or _clip_vocab_path()
        self.exact = path is not None
        self._ranks = _merge_ranks(path) if path is not None else {}
        self._byte_encoder = bytes_to_unicode()
        try:
            import regex
            self._pattern = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                          regex.IGNORECASE)
        except ImportError:  # `re` lacks \p{L}; [^\W\d_] is the same set of letters
            self._pattern = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+""",
                                       re.IGNORECASE)
        self._bpe = functools.lru_cache(maxsize=8192)(self._bpe_uncached)
        self.count = functools.lru_cache(maxsize=4096)(self._count)  # type: ignore[method-assign]

    def _bpe_uncached(self, token: str) -> int:
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: self._ranks.get(p, 1 << 30))
            if bigram not in self._ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return len(word)

    def count(self, text: str) -> int:
        """Tokens of `text`, start and end tokens included (CLIP allows 77). Cached per text."""
        return self._count(text)

    def _count(self, text: str) -> int:
        """Tokens of `text`, start and end tokens included (CLIP allows 77)."""
        text = _SPACES.sub(" ", html.unescape(html.unescape(text))).strip().lower()
        if not self.exact:
            words = re.findall(r"\w+|[^\w\s]", text)
            return 2 + int(len(words) * 1.6 + 0.999)
        n = 2
        for piece in self._pattern.findall(text):
            n += self._bpe("".join(self._byte_encoder[b] for b in piece.encode("utf-8")))
        return n

    def fits(self, text: str, max_tokens: int = CLIP_MAX_TOKENS) -> bool:
        return self.count(text) <= max_tokens

    def trim(self, text: str, max_tokens: int = CLIP_MAX_TOKENS) -> str:
        """`text` cut at a word boundary so that it fits in `max_tokens`."""
        if self.count(text) <= max_tokens:
            return text
        words = text.split(" ")
        low, high = 0, len(words)
        while low < high:  # the longest prefix that fits
            mid = (low + high + 1) // 2
            if self.count(" ".join(words[:mid])) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        return " ".join(words[:low]).rstrip(" ,;:")
