"""The show's life on the main thread: stop and restart requests, opening hours and dormancy,
scene changes, live reload of the config and the scene, the stage watchdog, and shutdown.

Nothing here opens a device or loads a model: the composition root (installation.app) hands in
what it built. A restart in place itself (exec) happens in installation.startup after `run`.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from installation.clock import Clock
from installation.errors import UserError
from installation.show.frame_wait import FrameWait
from installation.show.heap import HeapTrimmer
from installation.records import Command

log = logging.getLogger("chromesthesia")

STOP_BUDGET_S = 1.0
"""Workers get at most this long to end after the schedulers' panic."""
STALL_WARN_S = 30.0
STALL_RESTART_S = 300.0
"""Longer than any honest step: a first diffusion frame with torch.compile, CPU diffusion frames."""
SHUTDOWN_BUDGET_S = 1.7
"""The whole stop, notes off first: SIGTERM to exit stays under 2 s."""


class ScheduleRecords:
    """`schedule` records in the show log, one per change: the schedule's own state (open, closed,
    idle) and "dormant" (closed with closed_action = "stop"). The report shades closed hours from
    them; a blackout in opening hours is another thing."""

    def __init__(self, show_log) -> None:
        self.show_log = show_log
        self._written: str | None = None
        self._ticked: str | None = None

    def ticked(self, state: str | None) -> None:
        """The schedule's state after a tick: written when the schedule itself changed."""
        if state is not None and state != self._ticked:
            self._ticked = state
            self.write(state)

    def write(self, state: str) -> None:
        if self.show_log is not None and state != self._written:
            self._written = state
            self.show_log.write("schedule", state=state)


class Lifecycle:
    """Main thread. `control` is installation.operators.control.Control (it owns the live state), `bus`
    installation.bus.Bus, `scene` the running scene, `schedule` installation.show.schedule.Schedule,
    `supervisor` the stages' installation.workers.Supervisor, `notifier` the systemd notifier.
    `load_config(path)` validates an edited config; `on_fade(fade_s)` cross-fades the projector."""

    def __init__(self, clock: Clock, control, bus, scene, schedule, supervisor, notifier, *, cfg=None,
                 show_log=None, watcher=None, config_path: Path | None = None,
                 load_config: Callable[[Path], object] | None = None,
                 on_fade: Callable[[float], None] | None = None,
                 on_fault: Callable[[str, str], None] | None = None,
                 take_config: Callable[[object, object], bool] | None = None,
                 check_scene: Callable[[object], None] | None = None) -> None:
        self.clock = clock
        self.check_scene = check_scene
        """Raises UserError for a scene whose tables a stage would refuse (render, captions, compose)."""
        self.control = control
        self.bus = bus
        self.scene = scene
        self.schedule = schedule
        self.supervisor = supervisor
        self.notifier = notifier
        self.cfg = cfg
        self.show_log = show_log
        self.schedule_records = ScheduleRecords(show_log)
        self.watcher = watcher
        self.config_path = config_path
        self.load_config = load_config
        self.on_fade = on_fade or (lambda fade_s: None)
        self.on_fault = on_fault or (lambda worker, text: None)
        self.take_config = take_config
        """(old, new) -> True when the running installation took the edit over (MIDI mappings)."""
        self.started: list = []
        """Schedulers that did start: only those are stopped (and panic)."""
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self.exit_action = ""
        """"restart" or "stop" when a schedule, a reload or systemd asked for it."""
        self.validated_config_text: str | None = None
        """The config text a reload validated; the restarted process falls back to it if the file
        was saved again, badly, during the restart."""
        self.dormant = threading.Event()
        """Set outside opening hours when schedule.closed_action = "stop"."""
        self.frames_late = 0
        self.notes_per_s = 0.0
        self._note_counts: list[tuple[float, int]] = []
        self.heap = HeapTrimmer()

    # --- the main loop ---------------------------------------------------------------------------
    def loop(self, projector, commands, status, snapshot: Callable[[], dict], notes: Callable[[], int],
             duration_s: float | None = None, detailed_log: bool = False) -> None:
        """The main thread until a stop: a projector frame at the display rate, and one at once for a
        new hit (display.wake_on_onset, installation.show.frame_wait); between frames, operator
        commands the moment they arrive; at the status rate the status line, the show log, the
        watchdog and the opening hours; now and then the live-reload check."""
        cfg, guard = self.cfg, projector.guard
        started_s = next_s = next_log_s = self.clock.now_s()
        period_s = 1.0 / cfg.display.fps
        wait = FrameWait(self.control, commands, self.clock, self.stop_event, guard, period_s, cfg.display.wake_on_onset)
        status_period_s = 1.0 / cfg.installation.status_hz
        next_status_s = started_s + status_period_s
        next_reload_s = started_s + cfg.control.reload_check_s
        while not self.stop_event.is_set():
            now_s = self.clock.now_s()
            if duration_s is not None and now_s - started_s >= duration_s:
                self.request_stop("duration reached")
                break
            shown = projector.tick(now_s)
            if now_s >= next_status_s:
                next_status_s = now_s + status_period_s
                self._count_notes(now_s, notes())
                values = snapshot()
                guard("status", status.update, values)
                if self.show_log is not None and now_s >= next_log_s:
                    # A recording documents one show in detail; the always-on log keeps months.
                    next_log_s = now_s + (status_period_s if detailed_log else cfg.showlog.status_interval_s)
                    # The caption's reasons are in its own "caption" record; repeating them in
                    # every status record made them most of a day's log.
                    self.show_log.write("status", **{k: v for k, v in values.items() if k != "reasons"})
                    guard("thumbnail", self.show_log.thumbnail, shown)
                self.watchdog(now_s)
                guard("schedule", self.run_schedule, now_s)
                guard("heap", self.heap.maybe_trim, now_s)
            if self.watcher is not None and now_s >= next_reload_s:
                next_reload_s = now_s + cfg.control.reload_check_s
                guard("reload", self.reload_changed_files)
            if projector.window_closed():
                self.request_stop("window closed")
            self.notifier.watchdog()
            next_s += period_s
            if next_s < self.clock.now_s() - period_s:
                self.frames_late += 1
                next_s = self.clock.now_s()
            next_s = wait.until(next_s, now_s)

    def _count_notes(self, now_s: float, notes: int) -> None:
        """Notes over the last 5 s: plans arrive in bursts a phrase ahead, so a shorter window
        would swing between 0 and 60."""
        counts = self._note_counts
        counts.append((now_s, notes))
        while now_s - counts[0][0] > 5.0:
            counts.pop(0)
        span_s = now_s - counts[0][0]
        self.notes_per_s = (notes - counts[0][1]) / span_s if span_s > 0 else 0.0

    # --- stop ------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def restart(self, reason: str) -> None:
        self.exit_action = "restart"
        self.request_stop(reason)

    # --- route effects (main thread, after Control changed the live state) -------------------------
    def effects(self) -> dict[str, Callable[[Command, object], None]]:
        return {"scene": self.change_scene, "prompt": self.send_prompt, "blackout": self.wake,
                "stop": self.stop_requested}

    def change_scene(self, command: Command, value) -> None:
        """Load the scene; the visuals cross-fade from what is on the projector now, the composer
        moves the music (programs included) at its next phrase boundary."""
        from installation.operators.routes import param_specs_for
        from scenes.scene import SceneError, load_scene

        live = self.control.live
        if live.scene == self.scene.name:
            return
        try:
            scene = load_scene(live.scene)
            if self.check_scene is not None:
                self.check_scene(scene)
            self.control.set_params(param_specs_for(scene))
        except (SceneError, ValueError, UserError) as exc:
            log.error("scene change refused: %s", exc)
            live.scene = self.scene.name
            self.control.publish()
            return
        self.on_fade(live.scene_crossfade_s if live.scene_crossfade_s is not None else live.crossfade_s)
        self.scene = scene
        self.bus.scene.put(scene)

    def send_prompt(self, command: Command, value) -> None:
        if value:
            self.bus.prompt.put(value)

    def wake(self, command: Command, value) -> None:
        if self.dormant.is_set() and not value:
            self.set_dormant(False, self.clock.now_s())  # an operator lights it up during closed hours

    def stop_requested(self, command: Command, value) -> None:
        if not self.stop_event.is_set():
            self.exit_action = value
            self.request_stop(f"{value} requested by {command.sender}")

    # --- opening hours -----------------------------------------------------------------------------
    def run_schedule(self, now_s: float) -> None:
        music, image = self.bus.music.peek(), self.bus.images.peek()
        silent = music.silent if music is not None else True
        present = image.presence if image is not None else False
        commands = self.schedule.tick(dt.datetime.now(), now_s, silent, present, self.control.live.scene)
        self.schedule_records.ticked(getattr(self.schedule, "state", None))
        for command in commands:
            if command.address == "/stop":
                # Closed hours with closed_action = "stop": rest in place rather than exit, which a
                # supervisor (systemd Restart=always) would answer by starting it again all night.
                self.set_dormant(True, now_s)
                continue
            if command.address == "/blackout" and command.args == (0,) and self.dormant.is_set():
                self.set_dormant(False, now_s)
            self.control.apply(command)

    def set_dormant(self, dormant: bool, now_s: float) -> None:
        """Closed: projector black, music silent, renderer and composer idle; open: all resume."""
        if dormant == self.dormant.is_set():
            return
        if dormant:
            self.dormant.set()
            for scheduler in self.started:
                scheduler.panic()
        else:
            self.dormant.clear()
        self.control.live.blackout = dormant
        self.control.live.blackout_sender = "schedule"
        self.control.publish()
        log.info("schedule: %s", "closed, resting until opening time" if dormant else "open again")
        self.schedule_records.write("dormant" if dormant else "open")

    # --- live reload -----------------------------------------------------------------------------
    def reload_changed_files(self) -> None:
        """A valid edit of config.toml restarts cleanly; a valid preset edit applies now."""
        if self.watcher is None:
            return
        for path in self.watcher.changed():
            if self.config_path is not None and path == self.config_path:
                self._reload_config(path)
            elif path.stem == self.scene.name:
                self._reload_scene(path)

    def _reload_config(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            if self.load_config is None:
                return
            new_cfg = self.load_config(path)
            if path.read_text(encoding="utf-8") != text:
                return  # saved again while being read: the next check sees the final text
        except (UserError, OSError, UnicodeDecodeError) as exc:
            log.error("config edit ignored, the running version stays: %s", exc)
            self._log_reload(path, ok=False, error=str(exc))
            return
        if new_cfg != self.cfg and self.take_config is not None and self.take_config(self.cfg, new_cfg):
            self._log_reload(path, ok=True, action="applied")
            self.cfg = new_cfg
            return
        if new_cfg != self.cfg:
            self._log_reload(path, ok=True, action="restart")
            self.validated_config_text = text
            self.restart(f"{path.name} changed")

    def _reload_scene(self, path: Path) -> None:
        from installation.operators.routes import param_specs_for
        from scenes.scene import reload_scene

        scene, error = reload_scene(self.scene.name, self.scene)
        if error is None:
            try:
                if self.check_scene is not None:
                    self.check_scene(scene)
                self.control.set_params(param_specs_for(scene))
            except (ValueError, UserError) as exc:
                error = str(exc)
        if error is not None:
            log.error("scene edit ignored, the running version stays: %s", error)
        else:
            self.scene = scene
            self.bus.scene.put(scene)
            log.info("scene %s reloaded", scene.name)
        self._log_reload(path, ok=error is None, error=error)

    def _log_reload(self, path: Path, **fields) -> None:
        if self.show_log is not None:
            self.show_log.write("reload", path=str(path), **fields)

    # --- watchdog --------------------------------------------------------------------------------
    def watchdog(self, now_s: float) -> None:
        """A stage stuck inside one step (a driver call that never returns) cannot be stopped from
        Python; after STALL_RESTART_S the whole process restarts in place. A stage whose thread
        ended is started again. `now_s` is on time.monotonic's clock (the workers' heartbeats)."""
        for worker in self.supervisor.stalled(now_s, max_silence_s=STALL_WARN_S):
            if not worker.alive():
                log.error("worker %s's thread has ended; starting it again", worker.name)
                self.on_fault(worker.name, "thread ended; started again")
                worker.start()
                continue
            silent_s = now_s - worker.stats.phase_since_s
            if silent_s > STALL_RESTART_S and not self.stop_event.is_set():
                log.error("worker %s stuck in %s for %.0f s; restarting the installation",
                          worker.name, worker.stats.phase, silent_s)
                self.on_fault(worker.name, f"stuck in {worker.stats.phase} for {silent_s:.0f} s; restarting in place")
                self.restart(f"worker {worker.name} stuck")
            elif int(silent_s) % 30 == 0:
                log.warning("worker %s has been in %s for %.0f s", worker.name, worker.stats.phase, silent_s)

    # --- shutdown --------------------------------------------------------------------------------
    def shutdown(self, stoppables: Sequence = (), closers: Sequence[Callable[[], None]] = ()) -> None:
        """Notes off first, then every thread, then devices and files: one deadline, under 2 s in
        all. Tolerates a start that failed half-way: only what started is stopped."""
        deadline_s = time.monotonic() + SHUTDOWN_BUDGET_S

        def left(cap_s: float) -> float:
            return max(0.05, min(cap_s, deadline_s - time.monotonic()))

        for scheduler in self.started:
            try:
                scheduler.stop(timeout_s=left(0.5))
            except Exception:  # noqa: BLE001 - the other schedulers must still send their notes off
                log.exception("stopping a scheduler failed")
        for stoppable in stoppables:
            if stoppable is not None:
                try:
                    stoppable.stop(timeout_s=left(0.3))
                except Exception:  # noqa: BLE001
                    log.exception("stopping %s failed", type(stoppable).__name__)
        self.supervisor.stop(budget_s=left(STOP_BUDGET_S))
        for close in closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing one thing must not keep the rest open
                log.exception("closing failed")
