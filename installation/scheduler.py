"""Deadline scheduler: sends planned notes and cues at absolute times from the one clock.

One thread owns every output port and does all sending, so ports need no coordination and a
panic can never interleave with a half-sent chord. Lateness (send time minus deadline) is
measured for every timed message; `stats` reports p50/p99/max.

No stuck notes: the scheduler tracks every sounding (channel, note) and `panic()` (also run by
`stop()` and at interpreter exit once started) sends note_off for each of them plus
all-notes-off/all-sound-off on all 16 channels to every output.
"""
from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import sys
import threading
from typing import Any, Iterable

import numpy as np

from installation.records import Cue, NoteEvent
from models.stats import RecentValues

log = logging.getLogger(__name__)


_ON, _OFF, _MSG, _CUE, _TICK, _NOW = range(6)


def _mido():
    import mido
    return mido


class _NoteLedger:
    """Which (channel, note) keys sound, and which note_offs belong to a note_on skipped as too
    late: the bookkeeping that leaves no note stuck and never cuts a retriggered pitch short.
    Used by the scheduler thread (and by panics under the scheduler's lock)."""

    def __init__(self) -> None:
        self.sounding: dict[tuple[int, int], int] = {}
        self.skipped_pairs: set[int] = set()

    def skip(self, pair: int) -> None:
        """A note_on was skipped: its note_off (same pair) is to be dropped too."""
        self.skipped_pairs.add(pair)

    def sounds(self, key: tuple[int, int]) -> bool:
        return self.sounding.get(key, 0) > 0

    def started(self, key: tuple[int, int]) -> None:
        self.sounding[key] = self.sounding.get(key, 0) + 1

    def ends(self, key: tuple[int, int], pair: int) -> bool:
        """Whether this note_off is to be sent: not for a skipped note, nor while a retrigger of the
        same pitch still sounds, nor after a panic silenced it."""
        if pair in self.skipped_pairs:
            self.skipped_pairs.discard(pair)
            return False
        count = self.sounding.get(key, 0) - 1
        if count > 0:  # the same pitch was retriggered; its own note_off ends it
            self.sounding[key] = count
            return False
        if count < 0:  # already silenced by a panic
            return False
        self.sounding.pop(key, None)
        return True

    def silence(self) -> list[tuple[int, int]]:
        """Forget every sounding key and return them (the panic sends their note_offs)."""
        sounding, self.sounding = list(self.sounding), {}
        return sounding

    def count(self) -> int:
        return sum(self.sounding.values())


def _lateness_figures(late: np.ndarray) -> dict[str, Any]:
    """p50/p99/max lateness (ms) and how many sends were measured."""
    return {"late_ms_p50": float(np.percentile(late, 50)) if late.size else 0.0,
            "late_ms_p99": float(np.percentile(late, 99)) if late.size else 0.0,
            "late_ms_max": float(late.max()) if late.size else 0.0,
            "measured": int(late.size)}


class ThreadScheduler:
    """A hardware.base.Scheduler that sends on its own thread, for in-process outputs (the
    built-in synth, the MIDI-file recorder, OSC). Every public method is safe from any thread."""

    def __init__(self, clock, outputs: list, *, switch_interval_s: float | None = 0.0005,
                 max_late_s: float = 0.25, clock_out: bool = False, tempo_bpm: float = 120.0,
                 history: int = 20000, realtime_priority: int | None = None) -> None:
        """`switch_interval_s`: Python's GIL switch interval while running (None leaves it alone);
        the default 5 ms makes a sender thread ~5 ms late whenever another thread holds the GIL.
        `max_late_s`: a note_on later than this is skipped (with its note_off) rather than
        played out of time. `clock_out`: send MIDI clock (24 PPQN) and start/stop.
        `realtime_priority`: SCHED_FIFO priority for the scheduler thread alone (Linux; needs root or
        CAP_SYS_NICE). Off by default: measured in-process under torch load it made p99 worse, as
        the real-time thread still waits for the GIL; ProcessScheduler is the jitter-free path."""
        self.clock = clock
        self.outputs = list(outputs)
        self.switch_interval_s = switch_interval_s
        self.max_late_s = max_late_s
        self.clock_out = clock_out
        self.tempo_bpm = float(tempo_bpm)
        self.realtime_priority = realtime_priority
        self.realtime = False
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._panic_requests: list[threading.Event] = []
        self._notes = _NoteLedger()
        self._horizon_s = 0.0
        self._late_ms = RecentValues(history)
        self._previous_switch_s: float | None = None
        self._counts = {"sent": 0, "lost": 0, "skipped_late": 0, "panics": 0, "submitted": 0}

    # --- public API (any thread) --------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> None:
        """Start the sending thread (at once: `timeout_s` is for the process scheduler)."""
        if self._thread is not None:
            return
        _mido()  # import before the first deadline, not during it
        if self.switch_interval_s is not None:
            self._previous_switch_s = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)
        if self.clock_out:
            self.send_now(_mido().Message("start"))
            with self._cond:
                self._push(self.clock.now_s(), _TICK, None)

    def submit(self, events: Iterable[NoteEvent | Cue]) -> None:
        """Queue notes (note_on at start_s, note_off at start_s + duration_s) and cues."""
        with self._cond:
            for event in events:
                if isinstance(event, Cue):
                    self._push(event.t_s, _CUE, event)
                    continue
                pair = next(self._seq)
                key = (int(event.channel) & 15, int(event.note) & 127)
                velocity = max(1, min(127, int(event.velocity)))
                self._push(event.start_s, _ON, (key, velocity, pair))
                self._push(event.start_s + max(0.0, event.duration_s), _OFF, (key, pair))
                self._counts["submitted"] += 1
            self._cond.notify()

    def submit_messages(self, items: Iterable[tuple[float, Any]]) -> None:
        """Queue raw mido messages at absolute times, e.g. controller sweeps."""
        with self._cond:
            for t_s, message in items:
                self._push(t_s, _MSG, message)
            self._cond.notify()

    def submit_plan(self, plan, valence: float | None = None, arousal: float | None = None) -> None:
        """A composer plan's notes plus its cues (/tempo, /plan, /va, /chord) for OSC outputs."""
        self.set_tempo(plan.tempo_bpm)
        cues = [Cue(plan.start_s, "/tempo", (float(plan.tempo_bpm),)),
                Cue(plan.start_s, "/plan", (plan.key, plan.mode, float(plan.tempo_bpm), plan.abc))]
        if valence is not None and arousal is not None:
            cues.append(Cue(plan.start_s, "/va", (float(valence), float(arousal))))
        for t_s, symbol, quality, notes in getattr(plan, "chords", ()):
            cues.append(Cue(t_s, "/chord", (symbol, quality, *[int(n) for n in notes])))
        self.submit([*plan.events, *cues])

    def set_tempo(self, tempo_bpm: float) -> None:
        """Tempo of the MIDI clock output (24 PPQN); takes effect at the next tick."""
        if tempo_bpm > 0:
            self.tempo_bpm = float(tempo_bpm)

    def send_now(self, message) -> None:
        """Send a message as soon as possible (before anything due later), e.g. program changes."""
        with self._cond:
            self._push(float("-inf"), _NOW, message)
            self._cond.notify()
        if self._thread is None:
            self.run_due()

    def horizon_s(self) -> float:
        """The deadline of the last queued event, or now when nothing is queued."""
        now_s = self.clock.now_s()
        with self._cond:
            return max(self._horizon_s, now_s) if self._heap else now_s

    def panic(self, clear_queue: bool = True, timeout_s: float = 1.0) -> None:
        """Silence everything now: note_off for each sounding note, CC 120/123 on all channels,
        on every output. With `clear_queue` the planned notes are dropped too. If the scheduler
        thread does not answer within `timeout_s`, the caller sends the panic itself."""
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            self._panic_now(clear_queue)
            return
        done = threading.Event()
        with self._cond:
            if clear_queue:
                self._clear_queue_locked()
            self._panic_requests.append(done)
            self._cond.notify()
        if not done.wait(timeout_s):
            log.warning("scheduler thread did not answer the panic; sending it from %s",
                        threading.current_thread().name)
            self._panic_now(clear_queue)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Panic first (no note left sounding), then stop the thread; about `timeout_s` in all."""
        self.panic(timeout_s=timeout_s / 2)
        if self.clock_out:
            self._dispatch(_mido().Message("stop"))
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        atexit.unregister(self._at_exit)
        if self._previous_switch_s is not None:
            sys.setswitchinterval(self._previous_switch_s)
            self._previous_switch_s = None

    @property
    def stats(self) -> dict:
        """sent, lost, skipped_late, sounding, queued, late_ms_p50/p99/max over recent sends."""
        with self._cond:
            late = self._late_ms.values()
            result: dict[str, Any] = dict(self._counts)
            result["sounding"] = self._notes.count()
            result["queued"] = len(self._heap)
        lost_in_outputs = sum(int(getattr(o, "stats", {}).get("lost", 0)) for o in self.outputs)
        result["lost"] += lost_in_outputs
        result.update(_lateness_figures(late))
        result["realtime"] = self.realtime
        # Ports probed now: a destination gone quiet is found even while no note is due.
        result["devices"] = {o.name: o.check() for o in self.outputs if hasattr(o, "check")}
        return result

    def late_ms(self) -> np.ndarray:
        """Every recent lateness sample in ms (for benchmarks)."""
        with self._cond:
            return self._late_ms.values()

    def run_due(self, now_s: float | None = None) -> int:
        """Send everything due at `now_s` (default: the clock's now) on the calling thread.

        The scheduler thread calls this; tests with a ManualClock call it directly instead of
        starting the thread. Returns the number of items handled.
        """
        with self._cond:
            due = self._pop_due_locked(self.clock.now_s() if now_s is None else now_s)
        for item in due:
            self._fire(item)
        return len(due)

    # --- scheduler thread ---------------------------------------------------------------------
    def _raise_priority(self) -> None:
        # On Linux the policy is per thread: only this sender thread becomes real-time, so it
        # preempts the renderer's torch threads at each deadline.
        if self.realtime_priority is None or not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(self.realtime_priority))
            self.realtime = True
        except (PermissionError, OSError) as exc:
            log.info("scheduler runs without real-time priority (%s); expect a few ms of jitter under load", exc)

    def _run(self) -> None:
        self._raise_priority()
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    if self._panic_requests:
                        requests, self._panic_requests = self._panic_requests, []
                        break
                    wait_s = self._heap[0][0] - self.clock.now_s() if self._heap else 0.5
                    if self._heap and wait_s <= 0:
                        requests = []
                        break
                    self._cond.wait(min(wait_s, 0.5))
                due = [] if requests else self._pop_due_locked(self.clock.now_s())
            if requests:
                self._panic_now(clear_queue=False)
                for done in requests:
                    done.set()
                continue
            for item in due:
                try:
                    self._fire(item)
                except Exception:  # never die: log, count, carry on
                    log.exception("scheduler failed to send %r", item)
                    self._counts["lost"] += 1

    def _push(self, deadline_s: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (deadline_s, next(self._seq), kind, payload))
        if deadline_s != float("-inf"):
            self._horizon_s = max(self._horizon_s, deadline_s) if len(self._heap) > 1 else deadline_s

    def _pop_due_locked(self, now_s: float) -> list:
        due = []
        while self._heap and self._heap[0][0] <= now_s:
            due.append(heapq.heappop(self._heap))
        return due

    def _clear_queue_locked(self) -> None:
        # Keep only the MIDI clock tick so clock out survives a panic.
        self._heap = [item for item in self._heap if item[2] == _TICK]
        heapq.heapify(self._heap)
        self._notes.skipped_pairs.clear()
        self._horizon_s = 0.0

    def _fire(self, item: tuple[float, int, int, Any]) -> None:
        deadline_s, _, kind, payload = item
        mido = _mido()
        now_s = self.clock.now_s()
        late_s = now_s - deadline_s
        if kind == _ON:
            (channel, note), velocity, pair = payload
            if late_s > self.max_late_s:
                self._notes.skip(pair)
                self._counts["skipped_late"] += 1
                return
            if self._notes.sounds((channel, note)):
                self._dispatch(mido.Message("note_off", channel=channel, note=note, velocity=0))
            self._dispatch(mido.Message("note_on", channel=channel, note=note, velocity=velocity))
            self._notes.started((channel, note))
        elif kind == _OFF:
            (channel, note), pair = payload
            if not self._notes.ends((channel, note), pair):
                return
            self._dispatch(mido.Message("note_off", channel=channel, note=note, velocity=0))
        elif kind == _CUE:
            self._dispatch(payload, cue=True)
        elif kind == _TICK:
            self._dispatch(mido.Message("clock"))
            with self._cond:
                if not self._stopping:
                    self._push(deadline_s + 60.0 / (self.tempo_bpm * 24.0), _TICK, None)
        else:  # _MSG, _NOW
            self._dispatch(payload)
        if kind != _NOW:
            self._late_ms.append(late_s * 1000.0)

    def _dispatch(self, message, cue: bool = False) -> None:
        for output in self.outputs:
            if cue and not getattr(output, "accepts_cues", False):
                continue
            try:
                output.send(message)
            except Exception as exc:  # outputs should not raise; if one does, the rest still play
                self._counts["lost"] += 1
                log.warning("output %s raised on send: %s", getattr(output, "name", output), exc)
        self._counts["sent"] += 1

    def _panic_now(self, clear_queue: bool) -> None:
        mido = _mido()
        with self._cond:
            if clear_queue:
                self._clear_queue_locked()
            sounding = self._notes.silence()
            self._counts["panics"] += 1
        for channel, note in sounding:
            self._dispatch(mido.Message("note_off", channel=channel, note=note, velocity=0))
        for output in self.outputs:
            try:
                output.panic()
            except Exception as exc:
                log.warning("output %s raised on panic: %s", getattr(output, "name", output), exc)

    def _at_exit(self) -> None:
        try:
            self.stop(0.5)
        except Exception:
            log.exception("panic at exit failed")


# --- a sender in its own real-time process ---------------------------------------------------------
def _child_main(conn, specs: list[tuple], priority: int | None, switch_interval_s: float | None,
                clock_out: bool = False) -> None:
    """The sender process: a ThreadScheduler over outputs built from specs, fed through a pipe."""
    realtime = False
    if priority is not None and hasattr(os, "sched_setscheduler"):
        try:  # before any thread starts, so the scheduler thread inherits the policy
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            realtime = True
        except (PermissionError, OSError):
            pass
    from hardware.midi.output import output_from_spec
    from installation.clock import MonotonicClock
    outputs = []
    for spec in specs:
        try:
            outputs.append(output_from_spec(spec, MonotonicClock()))
        except Exception as exc:
            conn.send(("error", f"{exc}"))
            return
    scheduler = ThreadScheduler(MonotonicClock(), outputs, switch_interval_s=switch_interval_s, clock_out=clock_out)
    scheduler.start()
    conn.send(("ready", realtime))
    try:
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):  # the parent died: never leave a note sounding
                break
            if kind == "submit":
                scheduler.submit(payload)
            elif kind == "messages":
                scheduler.submit_messages(payload)
            elif kind == "now":
                scheduler.send_now(payload)
            elif kind == "tempo":
                scheduler.set_tempo(payload)
            elif kind == "panic":
                scheduler.panic(payload)
                conn.send(("panicked", None))
            elif kind == "stats":
                stats = scheduler.stats
                stats["realtime"] = realtime
                conn.send(("stats", (stats, scheduler.late_ms().tolist() if payload else None)))
            elif kind == "stop":
                break
    finally:
        scheduler.stop()
        for output in outputs:
            try:
                output.close()
            except Exception:
                pass
        try:
            conn.send(("stopped", None))
        except (OSError, BrokenPipeError):
            pass


class ProcessScheduler:
    """A hardware.base.Scheduler with sending done in a separate process at real-time priority.

    The renderer's torch threads share the GIL and both cores with any thread here; a process
    of its own with SCHED_FIFO (Linux, root or CAP_SYS_NICE) keeps deadlines to a fraction of a
    millisecond under load. Outputs are given as specs (hardware.midi.output.output_from_spec) because
    ports are opened in the sender process; in-process outputs (built-in synth, OSC) stay on a
    thread Scheduler. If the parent dies, the sender panics and exits.
    """

    def __init__(self, output_specs: list[tuple], *, realtime_priority: int | None = 50,
                 switch_interval_s: float | None = 0.0005, clock=None, clock_out: bool = False) -> None:
        self.output_specs = list(output_specs)
        self.clock_out = clock_out
        self.realtime_priority = realtime_priority
        self.switch_interval_s = switch_interval_s
        self.clock = clock
        self._child: Any = None
        self._horizon_s = 0.0
        self.realtime = False

    def start(self, timeout_s: float = 20.0) -> None:
        from hardware.child_process import ChildFailed, ChildProcess
        from installation.errors import UserError
        self._child = ChildProcess("midi-sender", _child_main, (self.output_specs, self.realtime_priority,
                                                                self.switch_interval_s, self.clock_out))
        try:
            self.realtime = bool(self._child.start(timeout_s))
        except ChildFailed as exc:
            if exc.timed_out:
                raise UserError("the MIDI sender process did not start within "
                                f"{timeout_s:.0f} s; check the MIDI outputs in config.toml.") from None
            raise UserError(str(exc)) from None

    def _send(self, kind: str, payload: Any = None) -> None:
        if self._child is not None:
            self._child.send(kind, payload)

    def _ask(self, kind: str, payload: Any, answer: str, timeout_s: float = 2.0) -> Any:
        return None if self._child is None else self._child.ask(kind, payload, answer, timeout_s)

    def submit(self, events: Iterable[NoteEvent | Cue]) -> None:
        items = [e for e in events if not isinstance(e, Cue)]  # cues belong to in-process outputs
        for e in items:
            self._horizon_s = max(self._horizon_s, e.start_s + e.duration_s)
        self._send("submit", items)

    def submit_messages(self, items: Iterable[tuple[float, Any]]) -> None:
        self._send("messages", list(items))

    def submit_plan(self, plan, valence: float | None = None, arousal: float | None = None) -> None:
        self.set_tempo(plan.tempo_bpm)
        self.submit(plan.events)

    def set_tempo(self, tempo_bpm: float) -> None:
        self._send("tempo", float(tempo_bpm))

    def send_now(self, message) -> None:
        self._send("now", message)

    def horizon_s(self) -> float:
        import time
        now_s = self.clock.now_s() if self.clock is not None else time.monotonic()
        return max(now_s, self._horizon_s)

    def panic(self, clear_queue: bool = True, timeout_s: float = 1.0) -> None:
        self._ask("panic", clear_queue, "panicked", timeout_s)
        if clear_queue:
            self._horizon_s = 0.0

    @property
    def stats(self) -> dict:
        got = self._ask("stats", False, "stats")
        return got[0] if got else {"sent": 0, "lost": 0, "sounding": 0, "alive": False}

    def late_ms(self) -> np.ndarray:
        got = self._ask("stats", True, "stats")
        return np.asarray(got[1] if got else [], dtype=float)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Panic (in the sender), then end the process."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(timeout_s)


Scheduler = ThreadScheduler
"""The name the thread scheduler had before ProcessScheduler joined it; both are hardware.base.Scheduler."""
