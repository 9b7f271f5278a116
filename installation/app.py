"""Composition root: the only place that picks concrete hardware and model classes.

`Installation` wires mailboxes, workers, the schedulers and the projector loop on the main thread,
on the sources `installation.sources.choose_sources` picked (the embedded default where devices or
weights are missing).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from installation.clock import MonotonicClock
from installation.config import Config
from installation.errors import UserError
from installation.mailbox import DropOldest, Latest
from installation.records import Caption, Command, Frame, ImageState, MusicState, clamp_va
from installation.sources import choose_sources
from installation.workers import Supervisor, Worker

log = logging.getLogger("chromesthesia")

ANALYSIS_RATE_HZ = 22050
STOP_BUDGET_S = 1.0
"""Workers get at most this long to end after the schedulers' panic."""
STALL_WARN_S = 30.0
STALL_RESTART_S = 300.0
"""Longer than any honest step: a first diffusion frame with torch.compile, CPU diffusion frames."""
SHUTDOWN_BUDGET_S = 1.7
"""The whole stop, notes off first: SIGTERM to exit stays under 2 s."""


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


class Installation:
    """Everything that runs, wired. Build with `Installation(cfg, options)`, then `run()`."""

    def __init__(self, cfg: Config, options: RunOptions) -> None:
        from scenes.scene import SceneError, available_scenes, load_scene

        self.cfg = cfg
        self.options = options
        self.clock = MonotonicClock()
        self.sources = choose_sources(cfg, options.headless)
        if self.sources.problems:
            raise UserError(self.sources.problems[0].rstrip(".") + ".")
        try:
            self.scene = load_scene(cfg.installation.scene)
        except SceneError as exc:
            raise UserError(str(exc)) from None
        self.scene_names = available_scenes
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self.dormant = threading.Event()
        """Set outside opening hours when schedule.closed_action = "stop"."""

        # Hand-offs between threads.
        self.music: Latest[MusicState] = Latest()
        self.captions: Latest[Caption] = Latest()
        self.frames: Latest[Frame] = Latest()
        self.camera_frames: Latest[np.ndarray] = Latest()
        self.images: Latest[ImageState] = Latest()
        self.projected_va: Latest[tuple[float, float]] = Latest()
        self.projected_frames: Latest[np.ndarray] = Latest()
        self.scene_box: Latest = Latest()
        self.prompt_box: Latest[str] = Latest()
        self.commands: DropOldest[Command] = DropOldest(256)
        from installation.bus import LiveSnapshot
        self.live_box: Latest[LiveSnapshot] = Latest()
        """Frozen copies of the operators' state, published by Control; the stages read these."""
        self.scene_box.put(self.scene)

        self.supervisor = Supervisor()
        self.counters = {"frames_shown": 0, "frames_late": 0, "notes_planned": 0, "captions": 0, "main_faults": 0}
        self.exit_action = ""
        """"restart" or "stop" when a schedule, a reload or systemd asked for it."""
        self.validated_config_text: str | None = None
        """The config text a reload validated; the restarted process falls back to it if the file
        was saved again, badly, during the restart."""
        self._closers: list = []
        self._fps = 0.0
        self._notes_per_s = 0.0
        self._projected_va = (0.0, 0.0)
        self._black = np.zeros((cfg.render.height, cfg.render.width, 3), np.uint8)
        self._held = self._black
        self._fade: tuple[np.ndarray, float, float] | None = None
        self._display = None
        self._display_ok = True
        self._display_retry_s = 0.0
        self._display_backoff_s = 1.0
        self._recorder = None
        self._started: list = []
        """Schedulers that did start: only those are stopped (and panic) at shutdown."""
        self._display_size: tuple[int, int] | None = None
        """(width, height) of the projector window, set before the stages start; None headless."""
        from installation.control import LiveState
        self.live = LiveState(scene=self.scene.name)
        """Operators' state: written only by the main thread (Control); stages read `live_box`."""
        self.live_box.put(self.live.frozen())
        self._build()

    # --- wiring -------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, rec = self.cfg, self.options.record_dir
        from installation.showlog import ShowLog

        # A recording is one show in one file; the always-on log rotates daily and keeps keep_days.
        log_path = rec / "show.jsonl" if rec else (Path(cfg.showlog.path) if cfg.showlog.path else None)
        self.show_log = None
        if log_path is not None:
            self.show_log = ShowLog(log_path, self.clock, fsync_interval_s=cfg.showlog.fsync_interval_s,
                                    thumbnail_interval_s=cfg.showlog.thumbnail_interval_s,
                                    thumbnail_width=cfg.showlog.thumbnail_width,
                                    keep_days=None if rec else cfg.showlog.keep_days)
        self._build_outputs(rec)
        self._build_listener()
        self._build_captioner()
        self._build_renderer()
        self._build_camera()
        self._build_composer()
        self._build_control()

    def _fault(self, worker: str, text: str) -> None:
        if self.show_log is not None:
            self.show_log.write("fault", worker=worker, error=text.strip().splitlines()[-1], traceback=text)

    def _worker(self, name: str, step, open=None, close=None) -> Worker:
        return self.supervisor.add(Worker(name, step, open=open, close=close, on_fault=self._fault))

    def _build_outputs(self, rec: Path | None) -> None:
        """Built-in synth, recorder and OSC on a thread scheduler; MIDI ports on a real-time process.

        bench midi measured a sending thread at p99 137 ms late while torch keeps both cores busy,
        and a separate SCHED_FIFO process at p99 0.3 ms, so hardware ports get the process.
        """
        cfg = self.cfg
        from hardware.midi import MidiFileRecorder
        from hardware.synth import Synth
        from installation.scheduler import ProcessScheduler, Scheduler

        outputs = []
        self.synth = None
        if cfg.synth.enabled:
            rate_hz = cfg.synth.sample_rate_hz
            if self.sources.speakers:
                from hardware.synth import output_rate_hz
                rate_hz = output_rate_hz(fallback_hz=rate_hz)
            self.synth = Synth(rate_hz, cfg.synth.gain)
            outputs.append(self.synth)
        self.midi_recorder = None
        if rec is not None:
            self.midi_recorder = MidiFileRecorder(keep_previous(rec / "midi.mid"), self.clock)
            outputs.append(self.midi_recorder)
        if cfg.osc.targets:
            from hardware.midi import OscEventOut
            from hardware.osc import parse_target
            for target in cfg.osc.targets:
                outputs.append(OscEventOut(parse_target(target)))
        self.midi_outputs = outputs
        self.schedulers = [Scheduler(self.clock, outputs, clock_out=False)]
        port_specs = [("mido", name, cfg.midi.backend) for name in cfg.midi.outputs]
        if cfg.midi.virtual_port:
            port_specs.append(("virtual", cfg.midi.virtual_port, cfg.midi.backend))
        if port_specs:
            self.schedulers.append(ProcessScheduler(port_specs, clock_out=cfg.midi.clock_out))
        self.scheduler = self.schedulers[0]

    def _build_listener(self) -> None:
        cfg = self.cfg
        from models.music_va import build_listener

        source = self.sources.audio
        rate_hz = cfg.audio.sample_rate_hz or ANALYSIS_RATE_HZ
        if source == "synth":
            from hardware.synth import SynthLoopInput, SynthSpeakers
            if self.synth is None:
                raise UserError("audio.source is 'synth' but synth.enabled is false; enable the synth or choose another source.")
            rate_hz = self.synth.sample_rate_hz
            tap = SynthSpeakers(self.synth, self.clock, None, cfg.audio.block_frames) if self.sources.speakers else None
            # The speaker stream opens and closes with the listener worker, which reopens it if
            # the output device goes away.
            audio = SynthLoopInput(self.synth, self.clock, cfg.audio.block_frames, tap=tap)
        elif source == "file":
            from hardware.audio_in import FileInput
            audio = FileInput(cfg.audio.file, rate_hz, self.clock)
        else:
            from hardware.audio_in import PyAudioInput, SoundDeviceInput
            cls = PyAudioInput if cfg.audio.backend == "pyaudio" else SoundDeviceInput
            audio = cls(cfg.audio.device, rate_hz, cfg.audio.channels, cfg.audio.block_frames, self.clock)
        self.audio = audio
        self.listener = build_listener(cfg.listen, rate_hz)
        self._closers.append(self.listener.close)
        hop_s = cfg.listen.hop_s
        next_hop = [0.0]

        def step() -> None:
            block = audio.read(timeout_s=hop_s)
            if block is not None:
                self.listener.feed(block.samples)
            now_s = self.clock.now_s()
            if now_s >= next_hop[0]:
                self.music.put(self.listener.state(now_s))
                next_hop[0] = max(next_hop[0] + hop_s, now_s)

        self._worker("listener", step, open=audio.open, close=audio.close)

    def _build_captioner(self) -> None:
        from models.captions import Director

        self.director = Director(self.cfg.captions, self.scene, seed=self.cfg.compose.seed)
        self._closers.append(self.director.close)
        seen = {"scene": self.scene_box.version, "prompt": self.prompt_box.version}

        def step() -> None:
            state = self.music.take(timeout_s=0.2)
            now_s = self.clock.now_s()
            if self.scene_box.version != seen["scene"]:
                seen["scene"] = self.scene_box.version
                self.director.set_scene(self.scene_box.peek())
            caption = None
            if self.prompt_box.version != seen["prompt"]:
                seen["prompt"] = self.prompt_box.version
                text = self.prompt_box.peek()
                if text:
                    caption = self.director.override_prompt(text, now_s)
            projected = self.projected_va.take(timeout_s=0)
            if projected is not None:
                self.director.critique(projected, now_s)
            if caption is None and state is not None:
                caption = self.director.update(self.live_box.peek().biased(state), now_s)
            if caption is not None:
                self.captions.put(caption)
                self.counters["captions"] += 1
                if self.show_log is not None:
                    self.show_log.write("caption", prompt=caption.prompt, facets=dict(caption.facets),
                                        reasons=dict(caption.reasons), source=caption.source,
                                        music_va=[caption.valence, caption.arousal])

        self._worker("captioner", step)

    def _build_renderer(self) -> None:
        cfg = self.cfg
        from hardware.display import fit
        from models.render_procedural import ProceduralRenderer

        self.procedural = ProceduralRenderer(cfg.render.width, cfg.render.height, seed=cfg.render.seed)
        self.diffusion = None
        # A bad [render] table in the scene is a start-up error, not a renderer crash loop.
        self.procedural.prepare(self.scene)
        if self.sources.render == "diffusion":
            from models.render_diffusion import load_diffusion_renderer
            try:
                self.diffusion = load_diffusion_renderer(cfg.render, cfg.render.width, cfg.render.height)
            except UserError as exc:
                if cfg.render.backend == "diffusion":
                    raise
                self.sources.render = "procedural"
                self.sources.notes.append(f"visuals: {str(exc).rstrip('.')}; projecting the procedural renderer instead")
        period_s = 1.0 / cfg.display.fps
        state = {"scene": -1, "index": 0, "next_s": 0.0, "last_s": None, "visual_s": 0.0}

        def step() -> None:
            if self.dormant.is_set():
                self.clock.sleep_until(self.clock.now_s() + 0.25, self.supervisor_stop_event("renderer"))
                return
            now_s = self.clock.now_s()
            if self.scene_box.version != state["scene"]:
                state["scene"] = self.scene_box.version
                scene = self.scene_box.peek()
                self.procedural.prepare(scene)
                if self.diffusion is not None:
                    self.diffusion.prepare(scene)
            caption = self.captions.take(timeout_s=0)
            if caption is not None:
                self.procedural.update_prompt(caption)
                if self.diffusion is not None:
                    self.diffusion.update_prompt(caption)
            music = self.music.peek() or MusicState(t_s=now_s)
            # Visual time runs at the operators' speed (/param/speed); the beat stays in music time.
            speed = self.live_box.peek().speed
            if state["last_s"] is not None:
                state["visual_s"] += (now_s - state["last_s"]) * speed
            state["last_s"] = now_s
            started = time.perf_counter()
            rgb = self.procedural.render(music, state["visual_s"])
            source = "procedural"
            if self.diffusion is not None:
                rgb = self.diffusion.render(rgb, music, state["visual_s"])
                source = "diffusion"
            state["index"] += 1
            size = self._display_size
            display_rgb = fit(rgb, *size) if size is not None and (rgb.shape[1], rgb.shape[0]) != size else None
            self.frames.put(Frame(now_s, rgb, state["index"], source, (time.perf_counter() - started) * 1e3,
                                  display_rgb))
            state["next_s"] = max(state["next_s"] + period_s, now_s)
            self.clock.sleep_until(state["next_s"], self.supervisor_stop_event("renderer"))

        self._worker("renderer", step)

    def supervisor_stop_event(self, name: str) -> threading.Event | None:
        for worker in self.supervisor.workers:
            if worker.name == name:
                return worker.stopping
        return None

    def _build_camera(self) -> None:
        cfg = self.cfg
        from hardware import camera as cam
        from models.image_features import ImageAnalyser
        from models.image_va import build_image_va

        if self.sources.camera == "opencv":
            camera = cam.OpenCvCamera(cfg.camera.device, cfg.camera.width, cfg.camera.height, cfg.camera.fps, self.clock)
        elif self.sources.camera == "file":
            camera = cam.VideoFileCamera(cfg.camera.file, self.clock)
        else:
            camera = cam.PhotoSlideshow(cfg.camera.photos_dir, cfg.camera.width, cfg.camera.height,
                                        cfg.camera.slide_s, self.clock)
        self.camera = camera
        capture_period_s = 1.0 / cfg.camera.fps
        capture = {"next_s": 0.0}

        def capture_step() -> None:
            rgb = self.camera.read()
            if rgb is not None:
                self.camera_frames.put(rgb)
            capture["next_s"] = max(capture["next_s"] + capture_period_s, self.clock.now_s())
            self.clock.sleep_until(capture["next_s"], self.supervisor_stop_event("camera"))

        # Through self.camera, so the device can be swapped (or a test's camera put in) before run().
        self._worker("camera", capture_step, open=lambda: self.camera.open(), close=lambda: self.camera.close())

        self.image_va = build_image_va(cfg.watch)
        self.analyser = ImageAnalyser(self.image_va)
        watch_period_s = 1.0 / cfg.watch.rate_hz
        watch = {"next_s": 0.0}

        def watch_step() -> None:
            rgb = self.camera_frames.take(timeout_s=watch_period_s)
            if rgb is not None:
                self.images.put(self.analyser.analyse(rgb, self.clock.now_s()))
            projected = self.projected_frames.take(timeout_s=0)
            if projected is not None:  # the critic's eye on what the projector shows
                v, a, _ = self.image_va.estimate(projected)
                self.projected_va.put((v, a))
                self._projected_va = (round(v, 3), round(a, 3))
            watch["next_s"] = max(watch["next_s"] + watch_period_s, self.clock.now_s())
            self.clock.sleep_until(watch["next_s"], self.supervisor_stop_event("watcher"))

        self._worker("watcher", watch_step)

    def _build_composer(self) -> None:
        if not self.cfg.compose.enabled:
            self.composer = None
            return
        from models.composer import Composer

        self.composer = Composer(self.cfg.compose, self.scene, seed=self.cfg.compose.seed)
        plan_state = {"next_start_s": 0.0, "scene": self.scene_box.version}
        self.last_plan = None

        def step() -> None:
            now_s = self.clock.now_s()
            if self.dormant.is_set():
                plan_state["next_start_s"] = 0.0  # on waking, start a phrase at once
                self.clock.sleep_until(now_s + 0.25, self.supervisor_stop_event("composer"))
                return
            if self.scene_box.version != plan_state["scene"]:
                plan_state["scene"] = self.scene_box.version
                self.composer.set_scene(self.scene_box.peek())
            lead_s = 1.0
            if plan_state["next_start_s"] - now_s > lead_s:
                self.clock.sleep_until(plan_state["next_start_s"] - lead_s, self.supervisor_stop_event("composer"))
                return
            image = self.images.peek() or ImageState(t_s=now_s)
            start_s = max(plan_state["next_start_s"], now_s + 0.1)
            live = self.live_box.peek()
            plan = self.composer.plan(image, start_s, tempo_bpm=live.tempo_bpm)
            if plan.program_changes and plan.program_changes != plan_state.get("programs"):
                plan_state["programs"] = plan.program_changes
                self._send_programs(plan.program_changes, at_s=plan.start_s)
            plan = live.with_volume(plan)  # the one place volume applies: note velocities
            if self.dormant.is_set():  # closed while this plan was composed: it must not play
                return
            for scheduler in self.schedulers:
                scheduler.submit_plan(plan, image.valence, image.arousal)
            self.last_plan = plan
            self.counters["notes_planned"] += len(plan.events)
            plan_state["next_start_s"] = plan.end_s
            if self.show_log is not None:
                self.show_log.write("plan", start_s=plan.start_s, end_s=plan.end_s, tempo_bpm=plan.tempo_bpm,
                                    key=plan.key, mode=plan.mode, abc=plan.abc, reasons=list(plan.reasons),
                                    image_va=[image.valence, image.arousal])

        self._worker("composer", step)

    def _send_programs(self, programs, at_s: float | None = None) -> None:
        """Program changes now, or at `at_s` so the notes still sounding keep their instrument."""
        import mido
        messages = [mido.Message("program_change", channel=channel, program=program) for channel, program in programs]
        for scheduler in self.schedulers:
            if at_s is None:
                for message in messages:
                    scheduler.send_now(message)
            else:
                scheduler.submit_messages([(at_s, message) for message in messages])

    def _program_changes(self) -> None:
        self._send_programs([(self.scene.channels.get(voice, 0), program)
                             for voice, program in self.scene.programs.items()])

    def _build_control(self) -> None:
        from installation.control import Control, param_specs_for

        try:
            params = param_specs_for(self.scene)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        from installation import routes
        self.control = Control(self.live, self.scene_names, self.show_log, params=params,
                               blocklist=self.cfg.captions.blocklist, clock=self.clock, snapshots=self.live_box,
                               effects={"scene": self._change_scene, "prompt": self._send_prompt,
                                        "blackout": self._wake, "stop": self._stop_requested})
        self.control.publish()  # the scene's own parameters at their defaults
        self.osc_server = None
        if self.cfg.osc.enabled:
            from hardware.osc import OscControlServer
            self.osc_server = OscControlServer(self.cfg.osc, self.commands, self.clock, self.status_snapshot,
                                               validate=self.control.check,
                                               realtime_priority=self.cfg.osc.realtime_priority,
                                               accepts=routes.is_command)
        self.midi_control = None
        if self.cfg.midi.inputs:
            from hardware.midi_in import MidoMidiIn
            from installation.control import MidiControlThread, MidiMapper
            inputs = [MidoMidiIn(name, self.clock, self.cfg.midi.backend) for name in self.cfg.midi.inputs]
            self.midi_control = MidiControlThread(inputs, MidiMapper(self.cfg.control), self.commands,
                                                  check=self.control.check)
        from installation.schedule import Schedule, SystemdNotifier
        self.schedule = Schedule(self.cfg.schedule)
        self.notifier = SystemdNotifier()
        self.watcher = None
        if self.cfg.control.reload and self.options.config_path is not None:
            from scenes.scene import FileWatcher
            self.watcher = FileWatcher([self.options.config_path])

    # --- status ---------------------------------------------------------------------------------
    def status_snapshot(self) -> dict:
        """A thread-safe copy of what operators see; called from the OSC thread too."""
        music = self.music.peek()
        image = self.images.peek()
        caption = self.captions.peek()
        frame = self.frames.peek()
        totals = self.counts()
        live = self.live_box.peek()
        return {
            "installation": self.cfg.installation.name,
            "scene": live.scene,
            "music_va": [round(music.valence, 3), round(music.arousal, 3)] if music else None,
            "tempo_bpm": round(music.tempo_bpm, 1) if music else None,
            "key": f"{music.key} {music.mode}" if music else None,
            "image_va": [round(image.valence, 3), round(image.arousal, 3)] if image else None,
            "caption": caption.prompt if caption else None,
            "reasons": dict(caption.reasons) if caption else {},
            "render": frame.source if frame else None,
            "fps": round(self._fps, 1),
            "notes_per_s": round(self._notes_per_s, 2),
            # Only hand-offs whose reader takes every item; camera frames and image states are
            # sampled by design, so their overwrites are not losses.
            "drops": {"music": self.music.dropped, "captions": self.captions.dropped,
                      "frames": self.frames.dropped, "commands": self.commands.dropped},
            "failures": totals["failures"],
            "restarts": totals["restarts"],
            "restarts_in_place": totals["restarts_in_place"],
            "projected_va": list(self._projected_va),
            "blackout": live.blackout,
            "freeze": live.freeze,
            "tempo_override_bpm": live.tempo_bpm,
        }

    def counts(self) -> dict[str, int]:
        """Stage failures and restarts of the whole show, the parts before in-place restarts included."""
        carried = self.options.carried
        totals = self.supervisor.totals()
        return {"failures": carried.get("failures", 0) + totals["failures"],
                "restarts": carried.get("restarts", 0) + totals["restarts"],
                "restarts_in_place": carried.get("restarts_in_place", 0)}

    # --- run --------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def run(self) -> int:
        """The main thread: the projector at the display rate, operator commands, supervision."""
        from installation.status import StatusLine

        for note in self.sources.notes:
            log.warning("embedded default: %s", note)
        status = StatusLine(quiet=self.options.quiet)
        try:
            self._start(status)
            self._loop(status)
        finally:
            if self.exit_action == "restart":
                self.notifier.restarting()
            else:
                self.notifier.stopping()
            self._shutdown(status)
        log.info("stopped: %s", self.stop_reason or "done")
        return 0

    def _start(self, status) -> None:
        """Open the projector and recorder, start every thread; inside run()'s try, so a failure
        half-way still stops what did start (notes off first)."""
        cfg = self.cfg
        if self.osc_server is not None:  # first: a taken port must fail before files are created
            try:
                self.osc_server.start()
            except OSError as exc:
                raise UserError(f"the OSC control server cannot listen on {cfg.osc.host}:{cfg.osc.port} ({exc.strerror or exc}); "
                                "choose another osc.host/osc.port or stop the program using it.") from None
        self._display = self._open_display()
        size = (cfg.render.width, cfg.render.height)
        if self.sources.display != "headless":
            size = (self._display.width, self._display.height)
            self._display_size = size
            self._black = self._held = np.zeros((size[1], size[0], 3), np.uint8)
        if self.options.record_dir is not None:
            from hardware.display import VideoRecorder
            recorder = VideoRecorder(keep_previous(self.options.record_dir / "visuals.mp4"), cfg.display.fps, *size)
            try:
                recorder.open()
            except OSError as exc:
                raise UserError(f"cannot write {recorder.path} ({exc}); choose another --record DIR.") from None
            self._recorder = recorder
        for scheduler in self.schedulers:
            scheduler.start()
            self._started.append(scheduler)
        self._program_changes()
        # Closed hours decide before the first frame or note: a restart at night stays dark.
        self._run_schedule(self.clock.now_s())
        self.supervisor.start()
        if self.midi_control is not None:
            self.midi_control.start()
        if self.show_log is not None:
            self.show_log.write("start", scene=self.scene.name, sources=vars(self.sources))
        status.start()
        if cfg.osc.realtime_priority > 0:
            # Commands are applied on this thread between frames: with SCHED_FIFO a busy renderer
            # cannot delay them (bench control: p99 1.0 ms instead of 4.6 ms). Raised after every
            # other thread has started, so none of them inherits it.
            from hardware.osc import set_realtime_priority
            set_realtime_priority(cfg.osc.realtime_priority, "main loop")
        self.notifier.ready()
        self.notifier.restore_watchdog()  # after an in-place restart widened it

    def _loop(self, status) -> None:
        cfg = self.cfg
        started_s = self.clock.now_s()
        period_s = 1.0 / cfg.display.fps
        next_s = started_s
        written = 0
        status_period_s = 1.0 / cfg.installation.status_hz
        next_status_s = started_s + status_period_s
        next_log_s = started_s
        next_critic_s = started_s + 0.5
        next_reload_s = started_s + cfg.control.reload_check_s
        fps_window: list[float] = []
        note_counts: list[tuple[float, int]] = []
        while not self.stop_event.is_set():
            now_s = self.clock.now_s()
            if self.options.duration_s is not None and now_s - started_s >= self.options.duration_s:
                self.request_stop("duration reached")
                break
            shown = self._guarded("picture", self._next_picture, now_s)
            if shown is None:
                shown = self._held
            self._show(shown, now_s)
            if self._recorder is not None:
                # A missed tick leaves the same picture on the projector: record it for that slot too.
                due = int((now_s - started_s) * cfg.display.fps) + 1
                for _ in range(min(max(1, due - written), 5)):
                    self._guarded("recorder", self._recorder.show, shown)
                    written += 1
            self.counters["frames_shown"] += 1
            fps_window.append(now_s)
            while now_s - fps_window[0] > 2.0:
                fps_window.pop(0)
            self._fps = (len(fps_window) - 1) / max(now_s - fps_window[0], 1e-6) if len(fps_window) > 1 else 0.0
            if now_s >= next_critic_s and self._held is not self._black:
                # The watcher thread rates it: the image VA head (CLIP included) never runs here.
                next_critic_s = now_s + 0.5
                self.projected_frames.put(np.ascontiguousarray(shown[::8, ::8]))
            if now_s >= next_status_s:
                # Notes the synth started (or, without it, notes planned) over the last 5 s: plans
                # arrive in bursts a phrase ahead, so a shorter window would swing between 0 and 60.
                notes = self.synth.stats["notes"] if self.synth is not None else self.counters["notes_planned"]
                note_counts.append((now_s, notes))
                while now_s - note_counts[0][0] > 5.0:
                    note_counts.pop(0)
                span_s = now_s - note_counts[0][0]
                self._notes_per_s = (notes - note_counts[0][1]) / span_s if span_s > 0 else 0.0
                next_status_s = now_s + status_period_s
                snapshot = self.status_snapshot()
                self._guarded("status", status.update, snapshot)
                if self.show_log is not None and now_s >= next_log_s:
                    # A recording documents one show in detail; the always-on log keeps months.
                    next_log_s = now_s + (status_period_s if self.options.record_dir is not None
                                          else cfg.showlog.status_interval_s)
                    self.show_log.write("status", **snapshot)
                    self._guarded("thumbnail", self.show_log.thumbnail, shown)
                self._watchdog(now_s)
                self._guarded("schedule", self._run_schedule, now_s)
            if self.watcher is not None and now_s >= next_reload_s:
                next_reload_s = now_s + cfg.control.reload_check_s
                self._guarded("reload", self._reload_changed_files)
            if self._display is not None and self._display_ok and self._display.poll_quit():
                self.request_stop("window closed")
            self.notifier.watchdog()
            next_s += period_s
            if next_s < self.clock.now_s() - period_s:
                self.counters["frames_late"] += 1
                next_s = self.clock.now_s()
            # Wait for the next frame by applying operator commands the moment they arrive.
            self._guarded("control", self.control.apply_until, self.commands, next_s, self.clock)
            if self.clock.now_s() < next_s:  # apply_until failed early: still keep the frame rate
                self.clock.sleep_until(next_s, self.stop_event)

    def _guarded(self, what: str, fn, *args):
        """Main-thread side work that must never end the show: log, count, report, go on."""
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - the projector loop outlives any one failure
            self._main_fault(what)
            return None

    def _main_fault(self, what: str) -> None:
        """Called inside an except block on the main thread. The first 20 and every 1000th go to
        the log and the show log; all are counted (a fault on every frame would flood both)."""
        import traceback
        self.counters["main_faults"] += 1
        n = self.counters["main_faults"]
        if n <= 20 or n % 1000 == 0:
            log.exception("%s failed on the main thread (%d so far); the show goes on", what, n)
            self._fault(f"main:{what}", traceback.format_exc())

    def _show(self, rgb: np.ndarray, now_s: float) -> None:
        """Put the picture on the projector; a failing window is reopened with backoff."""
        display = self._display
        if display is None:
            return
        if not self._display_ok:
            if now_s < self._display_retry_s:
                return
            try:
                display.close()
                display.open()
                self._display_ok = True
                log.info("projector window reopened")
            except Exception as exc:  # noqa: BLE001 - X server or projector still gone
                self._display_backoff_s = min(30.0, self._display_backoff_s * 2)
                self._display_retry_s = now_s + self._display_backoff_s
                log.warning("projector window cannot be reopened (%s); trying again in %.0f s", exc,
                            self._display_backoff_s)
                return
        try:
            display.show(rgb)
            self._display_backoff_s = 1.0
        except Exception:  # noqa: BLE001 - pygame.error after an X or projector hot-plug
            self._display_ok = False
            self._display_retry_s = now_s + self._display_backoff_s
            self._main_fault("display")

    def _next_picture(self, now_s: float) -> np.ndarray:
        """The latest rendered frame (or the held one), with freeze, cross-fade, brightness, blackout."""
        live = self.live_box.peek()
        frame = self.frames.take(timeout_s=0)
        if frame is not None and not live.freeze:
            self._held = frame.display_rgb if frame.display_rgb is not None else frame.rgb
        if live.blackout:
            return self._black
        shown = self._crossfaded(self._held, now_s)
        brightness = live.brightness
        if brightness < 1.0:
            import cv2
            shown = cv2.convertScaleAbs(shown, alpha=brightness)
        return shown

    def _crossfaded(self, rgb: np.ndarray, now_s: float) -> np.ndarray:
        if self._fade is None:
            return rgb
        start_rgb, start_s, fade_s = self._fade
        alpha = (now_s - start_s) / fade_s
        if alpha >= 1.0 or start_rgb.shape != rgb.shape:
            self._fade = None
            return rgb
        import cv2
        return cv2.addWeighted(start_rgb, 1.0 - alpha, rgb, alpha, 0.0)

    def _change_scene(self, command: Command, value) -> None:
        """Effect of /scene (main thread): load it, cross-fade the visuals from what is on the
        projector now; the composer moves the music (programs included) at its next phrase."""
        from installation.control import param_specs_for
        from scenes.scene import SceneError, load_scene

        live = self.live
        if live.scene == self.scene.name:
            return
        try:
            scene = load_scene(live.scene)
            self.control.set_params(param_specs_for(scene))
        except (SceneError, ValueError) as exc:
            log.error("scene change refused: %s", exc)
            live.scene = self.scene.name
            self.control.publish()
            return
        fade_s = live.scene_crossfade_s if live.scene_crossfade_s is not None else live.crossfade_s
        self._fade = (self._held, self.clock.now_s(), max(fade_s, 1e-3))
        self.scene = scene
        self.scene_box.put(scene)

    def _send_prompt(self, command: Command, value) -> None:
        if value:
            self.prompt_box.put(value)

    def _wake(self, command: Command, value) -> None:
        if self.dormant.is_set() and not value:
            self._set_dormant(False, self.clock.now_s())  # an operator lights it up during closed hours

    def _stop_requested(self, command: Command, value) -> None:
        if not self.stop_event.is_set():
            self.exit_action = value
            self.request_stop(f"{value} requested by {command.sender}")

    def _run_schedule(self, now_s: float) -> None:
        import datetime as dt
        music = self.music.peek()
        image = self.images.peek()
        silent = music.silent if music is not None else True
        present = image.presence if image is not None else False
        for command in self.schedule.tick(dt.datetime.now(), now_s, silent, present, self.live.scene):
            if command.address == "/stop":
                # Closed hours with closed_action = "stop": rest in place rather than exit, which a
                # supervisor (systemd Restart=always) would answer by starting it again all night.
                self._set_dormant(True, now_s)
                continue
            if command.address == "/blackout" and command.args == (0,) and self.dormant.is_set():
                self._set_dormant(False, now_s)
            self.control.apply(command)

    def _set_dormant(self, dormant: bool, now_s: float) -> None:
        """Closed: projector black, music silent, renderer and composer idle; open: all resume."""
        if dormant == self.dormant.is_set():
            return
        if dormant:
            self.dormant.set()
            self.live.blackout = True
            self.control.publish()
            for scheduler in self._started:
                scheduler.panic()
        else:
            self.dormant.clear()
            self.live.blackout = False
            self.control.publish()
        log.info("schedule: %s", "closed, resting until opening time" if dormant else "open again")
        if self.show_log is not None:
            self.show_log.write("schedule", state="dormant" if dormant else "open")

    def _reload_changed_files(self) -> None:
        """Live reload: a valid edit of config.toml restarts cleanly; a valid preset edit applies now."""
        from installation.config import load_config
        from scenes.scene import reload_scene

        for path in self.watcher.changed():
            if self.options.config_path is not None and path == self.options.config_path:
                try:
                    text = path.read_text(encoding="utf-8")
                    new_cfg = load_config(path, self.options.overrides)
                    if path.read_text(encoding="utf-8") != text:
                        continue  # saved again while being read: the next check sees the final text
                except (UserError, OSError, UnicodeDecodeError) as exc:
                    log.error("config edit ignored, the running version stays: %s", exc)
                    if self.show_log is not None:
                        self.show_log.write("reload", path=str(path), ok=False, error=str(exc))
                    continue
                if new_cfg != self.cfg:
                    if self.show_log is not None:
                        self.show_log.write("reload", path=str(path), ok=True, action="restart")
                    self.validated_config_text = text
                    self.exit_action = "restart"
                    self.request_stop(f"{path.name} changed")
            elif path.stem == self.scene.name:
                scene, error = reload_scene(self.scene.name, self.scene)
                if error is None:
                    try:
                        from installation.control import param_specs_for
                        self.control.set_params(param_specs_for(scene))
                    except ValueError as exc:
                        error = str(exc)
                if error is not None:
                    log.error("scene edit ignored, the running version stays: %s", error)
                else:
                    self.scene = scene
                    self.scene_box.put(scene)
                    log.info("scene %s reloaded", scene.name)
                if self.show_log is not None:
                    self.show_log.write("reload", path=str(path), ok=error is None, error=error)

    def _open_display(self):
        from hardware.display import HeadlessDisplay, PygameDisplay

        cfg = self.cfg
        if self.sources.display == "headless":
            display = HeadlessDisplay(cfg.display.width, cfg.display.height)
        else:
            display = PygameDisplay(self.sources.display, cfg.display.width, cfg.display.height,
                                    cfg.display.screen, cfg.installation.name)
        try:
            display.open()
        except Exception as exc:  # noqa: BLE001 - pygame.error: no X, bad screen index, no GL
            raise UserError(f"the projector window cannot open on screen {cfg.display.screen} ({exc}); "
                            "check DISPLAY and display.screen, or run with --headless.") from None
        return display

    def _watchdog(self, now_s: float) -> None:
        """A stage stuck inside one step (a driver call that never returns) cannot be stopped from
        Python; after STALL_RESTART_S the whole process restarts in place."""
        for worker in self.supervisor.stalled(now_s, max_silence_s=STALL_WARN_S):
            if not worker.alive():
                log.error("worker %s's thread has ended; starting it again", worker.name)
                self._fault(worker.name, "thread ended; started again")
                worker.start()
                continue
            silent_s = now_s - worker.stats.phase_since_s
            if silent_s > STALL_RESTART_S and not self.stop_event.is_set():
                log.error("worker %s stuck in %s for %.0f s; restarting the installation",
                          worker.name, worker.stats.phase, silent_s)
                self._fault(worker.name, f"stuck in {worker.stats.phase} for {silent_s:.0f} s; restarting in place")
                self.exit_action = "restart"
                self.request_stop(f"worker {worker.name} stuck")
            elif int(silent_s) % 30 == 0:
                log.warning("worker %s has been in %s for %.0f s", worker.name, worker.stats.phase, silent_s)

    def _shutdown(self, status) -> None:
        """Notes off first, then every thread, then files: one deadline, under 2 s in all.

        Tolerates a start that failed half-way: only what started is stopped.
        """
        deadline_s = time.monotonic() + SHUTDOWN_BUDGET_S

        def left(cap_s: float) -> float:
            return max(0.05, min(cap_s, deadline_s - time.monotonic()))

        for scheduler in self._started:
            try:
                scheduler.stop(timeout_s=left(0.5))
            except Exception:  # noqa: BLE001 - the other schedulers must still send their notes off
                log.exception("stopping a scheduler failed")
        for stoppable in (self.osc_server, self.midi_control):
            if stoppable is not None:
                try:
                    stoppable.stop(timeout_s=left(0.3))
                except Exception:  # noqa: BLE001
                    log.exception("stopping %s failed", type(stoppable).__name__)
        self.supervisor.stop(budget_s=left(STOP_BUDGET_S))
        for close in [*self._closers, *(o.close for o in self.midi_outputs), *(
                thing.close for thing in (self._recorder, self._display) if thing is not None)]:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing one thing must not keep the rest open
                log.exception("closing failed")
        status.stop()
        if self.show_log is not None:
            self.show_log.write("stop", reason=self.stop_reason, counters=dict(self.counters),
                                **self.counts())
            self.show_log.close()


def keep_previous(path: Path) -> Path:
    """`path`, after moving an earlier recording there aside as `<stem>-N<suffix>`.

    A restart in place (config edit, daily restart) records into the same folder: the part of
    the show before it must not be overwritten. The show log appends instead.
    """
    if path.exists() and path.stat().st_size > 0:
        n = 1
        while (older := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
            n += 1
        path.rename(older)
    return path
