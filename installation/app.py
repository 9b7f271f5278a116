"""Composition root: config -> concrete classes -> bus -> start/stop. The only place that picks
concrete hardware and model classes (with the builders in installation.sources).

The stages (installation.stages) run on supervised worker threads and talk through the bus
(installation.bus); the main thread runs the projector (installation.projection.projector) and applies
operator commands (installation.operators.control over installation.operators.routes) between frames; the show's
life (opening hours, reload, watchdog, shutdown) is installation.show.lifecycle. Devices can be
injected (`Devices`), so tests pass fakes instead of patching attributes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.base import AudioInput, Camera, Display, FrameSink, MidiOut
from installation import stages
from installation.bus import Bus
from installation.clock import Clock, MonotonicClock
from installation.config import Config, load_config
from installation.devices import DeviceBoard
from installation.errors import UserError
from installation.showlog.redact import remembered
from installation.show.lifecycle import Lifecycle
from installation.projection.compositor import Compositor
from installation.projection.projector import MainFaults, Projector
from installation.sources import (build_camera, build_display, build_listening, build_renderers, choose_sources,
                                  frame_stamps, open_show_log, recorder_factory)
from installation.stages.composer import send_programs
from installation.workers import Supervisor, Worker
from models.renderer import Renderer

log = logging.getLogger("chromesthesia")


@dataclass
class RunOptions:
    duration_s: float | None = None
    record_dir: Path | None = None
    headless: bool = False
    quiet: bool = False
    config_path: Path | None = None
    """Watched for live reload; None when running on defaults."""
    overrides: list[str] = field(default_factory=list)
    """--set overrides, applied again when a reloaded config is validated."""
    carried: dict[str, int] = field(default_factory=dict)
    """Counts from before an in-place restart: restarts_in_place, failures, restarts."""


@dataclass
class Devices:
    """What the installation would otherwise build from the config; None builds it."""

    clock: Clock | None = None
    audio: AudioInput | None = None
    camera: Camera | None = None
    display: Display | None = None
    renderers: list[Renderer] | None = None
    """The renderer chain: a source, then passes over its picture."""
    midi_outputs: list[MidiOut] | None = None
    """Outputs of the thread scheduler besides the built-in synth (recorder, OSC targets)."""
    schedule: object | None = None
    """installation.show.schedule.Schedule, or one that decides opening hours otherwise."""
    sinks: list[FrameSink] = field(default_factory=list)
    """Extra frame sinks beside the window (NDI, virtual camera, preview)."""


class Installation:
    """Everything that runs, wired. Build with `Installation(cfg, options, devices)`, then `run()`."""

    projector: Projector
    osc_server: Any
    stages: list[stages.Stage]

    def __init__(self, cfg: Config, options: RunOptions, devices: Devices | None = None) -> None:
        from scenes.scene import SceneError, available_scenes, load_scene

        devices = devices or Devices()
        self.cfg, self.options = cfg, options
        self.clock = devices.clock or MonotonicClock()
        self.sources = choose_sources(cfg, options.headless)
        if self.sources.problems:
            raise UserError(self.sources.problems[0].rstrip(".") + ".")
        try:
            scene = load_scene(cfg.installation.scene)
        except SceneError as exc:
            raise UserError(str(exc)) from None
        self.scene_names = available_scenes
        self.bus = Bus(scene)
        self.supervisor = Supervisor()
        self.show_log = open_show_log(cfg, options.record_dir, self.clock)
        self.faults = MainFaults(self._fault)
        self._closers: list = []
        self._build_outputs(devices)
        self._build_control(scene, devices)
        self._build_stages(scene, devices)
        self.control.bind_effects({**self.lifecycle.effects(), "panic": lambda *_: self._panic(),  # every effect, here
                                   "revoke_sessions": lambda *_: self.web.revoke_sessions(), "learn": self.rig.learn,
                                   "comment": lambda c, text: self.analyser.comment(text or "", self.clock.now_s())})

    # --- wiring -------------------------------------------------------------------------------
    def _fault(self, worker: str, text: str) -> None:
        if self.show_log is not None:
            self.show_log.write("fault", worker=worker, error=text.strip().splitlines()[-1], traceback=text)

    def _add(self, stage) -> Worker:
        worker = self.supervisor.add(Worker(stage.name, stage.step, open=stage.open, close=stage.close,
                                            on_fault=self._fault, nice=stage.nice))
        stage.cancel = worker.stopping
        return worker

    def _build_outputs(self, devices: Devices) -> None:
        from installation.sources import build_midi_outputs, build_schedulers, build_synth
        self.synth = build_synth(self.cfg, self.sources)
        outputs = devices.midi_outputs
        if outputs is None:
            outputs = build_midi_outputs(self.cfg, self.options.record_dir, self.clock)
        self.midi_outputs = ([self.synth] if self.synth is not None else []) + list(outputs)
        self.schedulers = build_schedulers(self.cfg, self.clock, self.midi_outputs)

    def _build_control(self, scene, devices: Devices) -> None:
        from installation.operators import routes
        from installation.bus import LiveState
        from installation.operators.control import Control
        from installation.operators.osc_wiring import build_osc, command_inbox, prompt_filter
        from installation.show.schedule import Schedule, SystemdNotifier
        cfg = self.cfg
        try:
            params = routes.param_specs_for(scene)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.bus.commands = command_inbox()  # refuses when full (the sender hears "busy"), never drops
        from installation.sources import render_param_specs
        self.control = Control(LiveState(scene=scene.name), self.scene_names, self.show_log, params=params,
                               fixed_params=render_param_specs(cfg),
                               blocklist=cfg.captions.blocklist, clock=self.clock, snapshots=self.bus.live,
                               prompt_filter=prompt_filter(cfg.captions))
        from installation.rig import build_rig  # tempo, MIDI in and learn, video out, ensemble
        from installation.check import running_scene_check
        self.rig = build_rig(cfg, self.clock, self.bus.commands, self.control, self.options.config_path, self.bus.music)
        watcher = None
        if cfg.control.reload and self.options.config_path is not None:
            from scenes.scene import FileWatcher
            watcher = FileWatcher([self.options.config_path])
        self.lifecycle = Lifecycle(
            self.clock, self.control, self.bus, scene, devices.schedule or Schedule(cfg.schedule), self.supervisor,
            SystemdNotifier(), cfg=cfg, show_log=self.show_log, watcher=watcher, config_path=self.options.config_path,
            load_config=self._load_config, on_fade=lambda fade_s: self.projector.start_fade(fade_s),
            on_fault=self._fault, take_config=self.rig.take_config, check_scene=running_scene_check(cfg))
        self.control.publish()  # the scene's own parameters at their defaults
        from installation.web import build_web
        self.web = build_web(cfg, self.status_snapshot, self.control.check, self.bus.commands, self.scene_names,
                             self.show_log, self.lifecycle.schedule, lambda: getattr(self.osc_server, "stats", {}),
                             sources=self.sources, param_specs=lambda: self.control.param_specs, live=self.bus.snapshot,
                             config_path=self.options.config_path)
        self.osc = build_osc(cfg, self.bus.commands, self.clock, self.status_snapshot, self.control, self.bus.live,
                             self.scene_names, validate=self.web.audit.checked("osc", self.control.check)) \
            if cfg.osc.enabled else None
        self.osc_server = self.osc.server if self.osc is not None else None

    def _load_config(self, path: Path) -> Config:
        return remembered(load_config(path, self.options.overrides))  # an edited token is masked in the log too

    def _build_stages(self, scene, devices: Devices) -> None:
        from hardware.video.display import fit
        from models.captions.director import Director
        from models.seeing.features import ImageAnalyser
        from models.captions.critic import critic_for
        from models.seeing.va import build_image_va
        cfg, bus, clock, dormant = self.cfg, self.bus, self.clock, self.lifecycle.dormant
        listener, listening = build_listening(cfg, self.sources, devices.audio, self.synth, bus, clock)
        director = Director(cfg.captions.settings(), scene, seed=cfg.compose.seed)
        self._closers += [listener.close, director.close]
        renderers = devices.renderers or build_renderers(cfg, self.sources, scene)
        self._closers += [r.close for r in renderers if hasattr(r, "close")]
        image_va = build_image_va(cfg.watch.settings())
        critic_va = critic_for(director, cfg.watch.settings(), image_va, self.show_log)
        self.analyser = analyser = ImageAnalyser(image_va)  # a visitor's /comment joins the picture's words
        windowed = self.sources.display != "headless"
        self.projector = Projector(
            bus.frames, bus.live, bus.projected_frames, clock, cfg.display.fps, (cfg.render.width, cfg.render.height),
            display=devices.display or build_display(cfg, self.sources), windowed=windowed,
            recorder_factory=recorder_factory(cfg, self.options.record_dir), guard=self.faults,
            sinks=[*devices.sinks, *self.rig.video_sinks(cfg.render.width, cfg.render.height, cfg.display.fps),
                   *self.web.sinks, *([self.osc.frame_sink(bus.music)] if self.osc is not None else [])],
            where=f"screen {cfg.display.screen}", commands=bus.commands, scenes=self.scene_names,
            compositor=Compositor(bus.onsets, bus.scene, 1.0 / cfg.display.fps), flash_guard=cfg.display.flash_guard,
            stamps=frame_stamps(self.options.record_dir, clock, listening[0].audio))
        self.stages: list[stages.Stage] = [] if self.rig.music_in is not None else listening  # a follower: the ensemble
        self.stages += [
            stages.CaptionerStage(director, bus.music, bus.scene, bus.prompt, bus.projected_va, bus.live,
                                  bus.captions, clock, show_log=self.show_log),
            stages.RendererStage(renderers, self.rig.music_view(bus.music), bus.captions, bus.scene, bus.live,
                                 bus.frames, clock, cfg.display.fps, dormant, lambda: self.projector.display_size, fit,
                                 camera=bus.camera_frames, nice=cfg.render.thread_nice),
            stages.CameraStage(devices.camera or build_camera(cfg, self.sources, clock), bus.camera_frames, clock,
                               cfg.camera.fps),
            stages.WatcherStage(analyser, image_va, bus.camera_frames, bus.projected_frames,
                                bus.images, bus.projected_va, clock, cfg.watch.rate_hz, critic_va=critic_va)]
        if cfg.compose.enabled:
            from installation.composer_build import build_composer
            self.stages.append(stages.ComposerStage(
                self.rig.composer(build_composer(cfg, scene, cfg.compose.seed, live=True)), bus.images, bus.scene,
                bus.live, self.schedulers, clock, dormant, show_log=self.show_log, camera=bus.camera_frames))
        for stage in self.stages:
            self._add(stage)
        self.devices = DeviceBoard([listening[0].audio, *self.rig.devices(), *self.stages], self.schedulers, self._fault)

    def _notes(self) -> int:
        """Notes the synth started (or, without it, notes planned)."""
        return self.synth.stats["notes"] if self.synth is not None else self.counters()["notes_planned"]

    def stage(self, name: str):
        return next(s for s in self.stages if s.name == name)

    # --- status -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Stage failures and restarts of the whole show, the parts before in-place restarts included."""
        carried, totals = self.options.carried, self.supervisor.totals()
        return {**{key: carried.get(key, 0) + totals[key] for key in ("failures", "restarts")},
                "restarts_in_place": carried.get("restarts_in_place", 0),
                "device_losses": self.devices.losses() if hasattr(self, "devices") else 0}

    def counters(self) -> dict[str, int]:
        composer = next((s for s in self.stages if isinstance(s, stages.ComposerStage)), None)
        return {"frames_shown": self.projector.shown, "frames_late": self.lifecycle.frames_late,
                "notes_planned": composer.notes_planned if composer else 0,
                "captions": self.stage("captioner").made, "main_faults": self.faults.count}

    def status_snapshot(self) -> dict:
        """A thread-safe copy of what operators see; called from the OSC thread too."""
        return {**self.bus.status(self.cfg.installation.name, self.projector.frame_rate, self.lifecycle.notes_per_s,
                                  self.counts(), self.stage("watcher").last_projected_va,
                                  self.rig.tempo if self.rig.follows else None), "rig": self.rig.status(),
                **({"osc": self.osc.status()} if self.osc is not None else {}), **self.stage("renderer").status(),
                "devices": self.devices.states(), "flash_limited": self.projector.flash_limited}

    def _panic(self) -> None:
        """/panic: all notes off on every output, now (the schedulers' own panic)."""
        for scheduler in self.schedulers:
            scheduler.panic()

    # --- run --------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        self.lifecycle.request_stop(reason)

    def run(self) -> int:
        """The main thread: the projector at the display rate, operator commands, supervision."""
        from installation.status import StatusLine, input_silence_watch, run_summary, unfinished_files
        for note in self.sources.notes:
            log.warning("embedded default: %s", note)
        status = StatusLine(self.options.quiet, silence=input_silence_watch(self.cfg, self.sources, self.bus.music))
        life = self.lifecycle
        try:
            self._start(status)
            status_tick = self.devices.refreshing(self.status_snapshot, self.faults)  # devices probed first
            life.loop(self.projector, self.bus.commands, status, status_tick, self._notes, self.options.duration_s,
                      detailed_log=self.options.record_dir is not None)
        finally:
            # Said before the summary, which is the last thing on the terminal.
            log.info("stopping: %s", life.stop_reason or "done")
            (life.notifier.restarting if life.exit_action == "restart" else life.notifier.stopping)()
            life.shutdown([self.osc, self.rig, self.web],
                          [*self._closers, *(o.close for o in self.midi_outputs), self.projector.close])
            status.stop(run_summary({**self.counts(), **self.counters()}, self._notes(), self.options.record_dir,
                                    self.show_log, status.started_epoch_s,
                                    unfinished_files(self.projector.recorder, self.show_log)))
            if self.show_log is not None:
                self.show_log.write("stop", reason=life.stop_reason, counters=self.counters(), **self.counts())
                self.show_log.close()
        return 0

    def _start(self, status) -> None:
        """Open the projector and recorder, start every thread; inside run()'s try, so a failure
        half-way still stops what did start (notes off first)."""
        cfg, life = self.cfg, self.lifecycle
        if self.osc is not None:  # first: a taken port fails the start (one sentence) before files are created
            self.osc.start()
        self.web.start()  # a taken port, too, fails before files are created
        self.projector.open()
        for scheduler in self.schedulers:
            scheduler.start()
            life.started.append(scheduler)
        scene = life.scene
        send_programs(self.schedulers, [(scene.channels.get(v, 0), p) for v, p in scene.programs.items()])
        life.run_schedule(self.clock.now_s())  # closed hours decide before the first frame or note
        self.rig.open()  # before the stages: the composer and renderer read an outside beat from the start
        self.supervisor.start()
        if self.show_log is not None:
            self.show_log.write("start", scene=scene.name, sources=vars(self.sources), **self.counts())
        status.start()
        if cfg.osc.realtime_priority > 0:
            # Commands are applied on this thread between frames: with SCHED_FIFO a busy renderer
            # cannot delay them (bench control: p99 1.0 ms instead of 4.6 ms). Raised after every
            # other thread has started, so none of them inherits it.
            from hardware.osc.server import set_realtime_priority
            set_realtime_priority(cfg.osc.realtime_priority, "main loop")
        life.notifier.ready()
        life.notifier.restore_watchdog()  # after an in-place restart widened it
