"""Freed memory goes back to the system, so months of running do not grow the process.

Worker threads allocate and free numpy arrays and torch tensors all day; glibc keeps freed pages
in per-thread arenas unless told to trim them, so the resident size creeps up although nothing
leaks. `HeapTrimmer.maybe_trim` calls glibc's malloc_trim(0) at most once a period; on other C
libraries it does nothing. `limit_arenas` caps how many arenas glibc makes: by default a thread
that finds the arenas busy gets a new one (up to 8 per core, each growing in 64 MB heaps), so the
resident size steps up whenever the machine is loaded and never comes back down.
`fix_mmap_threshold` gives every large block (a frame, a photograph, an audio window) a mapping
of its own, handed back whole when it is freed. By default glibc raises that threshold to the size
of each larger block freed, and from then on such blocks come from the heaps, where the show's
changing mix of them leaves freed holes that stay resident: the heap stepped up a few MB minutes
into a show, when the mix first peaked, and stayed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


M_ARENA_MAX = -8
"""glibc mallopt(3) parameter: the most arenas malloc may create."""
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc mallopt(3) parameters: free memory at the heap's top kept before it is returned, and the
size from which a block gets a mapping of its own (setting either fixes both)."""
MMAP_THRESHOLD_BYTES = 256 << 10
"""Twice glibc's starting value: a 1280x720 frame (2.7 MB) and every other large array gets its
own mapping; the heaps hold only small objects."""


def _mallopt(param: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, int(value)))


def limit_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas at `count`, before the worker threads start (threads already
    attached to an arena keep it). True when glibc took the setting."""
    return _mallopt(M_ARENA_MAX, count)


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold_bytes` and its trim threshold at twice that (the
    ratio glibc's own moving thresholds keep), at start-up. True when glibc took both."""
    return _mallopt(M_MMAP_THRESHOLD, threshold_bytes) and _mallopt(M_TRIM_THRESHOLD, 2 * threshold_bytes)


class HeapTrimmer:
    """Called from the main thread's status tick; the trim itself takes a few milliseconds."""

    def __init__(self, period_s: float = 60.0) -> None:
        self.period_s = period_s
        self.trims = 0
        self._next_s: float | None = None
        self._malloc_trim = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._malloc_trim = libc.malloc_trim
            self._malloc_trim.argtypes = [ctypes.c_size_t]
            self._malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):  # not glibc: nothing to trim this way
            log.debug("malloc_trim is not available; the heap is not trimmed")

    @property
    def available(self) -> bool:
        return self._malloc_trim is not None

    def maybe_trim(self, now_s: float) -> bool:
        """Trim when a period has passed since the last trim (the first call only starts the period)."""
        if self._malloc_trim is None:
            return False
        if self._next_s is None:
            self._next_s = now_s + self.period_s
            return False
        if now_s < self._next_s:
            return False
        self._next_s = now_s + self.period_s
        self._malloc_trim(0)
        self.trims += 1
        return True
