"""Supervised worker threads: one owner per stage, restarted with backoff, never dying silently.

A stage is a `step()` callable that does one unit of work and returns, blocking at most a fraction
of a second (wait on a mailbox with a timeout, not forever). The worker calls it in a loop, records
a heartbeat after each step, and on an exception logs the traceback, counts it, closes and reopens
the stage after an exponential backoff. `open`/`close` hooks own the stage's devices or models.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("chromesthesia.workers")


def lower_own_priority(steps: int, what: str) -> int | None:
    """Lower the calling thread's CPU priority by `steps` nice steps (on Linux nice is per thread);
    returns the thread's new nice value, None when nothing was changed."""
    if steps <= 0:
        return None
    try:
        tid = threading.get_native_id()
        value = min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps)
        os.setpriority(os.PRIO_PROCESS, tid, value)
        return value
    except (OSError, AttributeError) as exc:  # not Linux, or a sandbox that refuses it: run as is
        log.debug("%s: could not lower its priority: %s", what, exc)
        return None


@dataclass
class WorkerStats:
    steps: int = 0
    failures: int = 0
    restarts: int = 0
    last_error: str = ""
    last_beat_s: float = 0.0
    running: bool = False
    phase: str = "idle"
    """idle | open | step | close | backoff: where the thread is now."""
    phase_since_s: float = 0.0
    """When the current phase (or the current step) began: a stall is measured from here."""


@dataclass(eq=False)
class Worker:
    """Workers are compared by identity: two stages with equal settings are still two threads."""

    name: str
    step: Callable[[], None]
    open: Callable[[], None] | None = None
    close: Callable[[], None] | None = None
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    stable_s: float = 30.0
    """A run this long without failure resets the backoff."""
    on_fault: Callable[[str, str], None] | None = None
    """Called with (worker name, traceback text) after each failure, e.g. to write the show log."""
    nice: int = 0
    """Nice steps the thread runs below its parent's (lower_own_priority): a heavy stage gives way."""
    stats: WorkerStats = field(default_factory=WorkerStats)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        """True when the thread ended within the timeout."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _enter(self, phase: str) -> None:
        self.stats.phase = phase
        self.stats.phase_since_s = time.monotonic()

    def _run(self) -> None:
        lower_own_priority(self.nice, self.name)
        delay_s = self.backoff_s
        while not self._stop.is_set():
            started_s = time.monotonic()
            try:
                if self.open is not None:
                    self._enter("open")
                    self.open()
                self.stats.running = True
                while not self._stop.is_set():
                    self._enter("step")
                    self.step()
                    self.stats.steps += 1
                    self.stats.last_beat_s = time.monotonic()
                    if time.monotonic() - started_s > self.stable_s:
                        delay_s = self.backoff_s
            except BaseException as exc:  # noqa: BLE001 - even SystemExit from a library must not end the stage
                text = traceback.format_exc()
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error("worker %s failed (failure %d), restarting in %.1f s:\n%s",
                          self.name, self.stats.failures, delay_s, text)
                if self.on_fault is not None:
                    try:
                        self.on_fault(self.name, text)
                    except Exception:  # noqa: BLE001 - reporting must not kill the supervisor
                        log.exception("fault reporter failed")
            finally:
                self.stats.running = False
                self._enter("close")
                self._safe_close()
            if self._stop.is_set():
                break
            self._enter("backoff")
            if self._stop.wait(delay_s):
                break
            delay_s = min(self.max_backoff_s, delay_s * 2)
            self.stats.restarts += 1
        self._enter("idle")

    def _safe_close(self) -> None:
        if self.close is None:
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a broken device may fail again
            log.exception("worker %s: close failed", self.name)


class Supervisor:
    """Starts workers in order and stops them in reverse order, each within a timeout."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []

    def add(self, worker: Worker) -> Worker:
        self.workers.append(worker)
        return worker

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, budget_s: float = 1.0) -> list[str]:
        """Stop all workers, newest first, within `budget_s` in total; returns those still running."""
        for worker in reversed(self.workers):
            worker.request_stop()
        deadline_s = time.monotonic() + budget_s
        stuck = [w.name for w in reversed(self.workers)
                 if not w.join(max(0.0, deadline_s - time.monotonic()))]
        for name in stuck:
            log.warning("worker %s did not stop within %.1f s; abandoning it (daemon thread)", name, budget_s)
        return stuck

    def stalled(self, now_s: float, max_silence_s: float) -> list[Worker]:
        """Workers stuck for `max_silence_s` in one open, step or close (a driver call that never
        returns), and workers whose thread has died. `now_s` is on time.monotonic's clock."""
        stuck = []
        for w in self.workers:
            in_call = w.stats.phase in ("open", "step", "close")
            if (in_call and now_s - w.stats.phase_since_s > max_silence_s) or (w._thread is not None and not w.alive()
                                                                               and not w.stopping.is_set()):
                stuck.append(w)
        return stuck

    def totals(self) -> dict[str, int]:
        return {"failures": sum(w.stats.failures for w in self.workers),
                "restarts": sum(w.stats.restarts for w in self.workers)}
