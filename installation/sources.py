"""What runs instead of what: the embedded default's substitutions, decided once at start.

Devices are probed without opening streams; `problems` are explicit requests that cannot be met
(start-up errors), `notes` are substitutions said clearly at start.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hardware.base import AudioInput, Camera, Display, MidiOut
from hardware.base import Scheduler as SchedulerPort
from models.renderer import Renderer
from installation.config import Config
from installation.errors import UserError

if TYPE_CHECKING:
    from hardware.sound.synth import Synth

log = logging.getLogger("chromesthesia")

ANALYSIS_RATE_HZ = 22050


@dataclass
class Sources:
    """What will actually run, and what stands in for what is missing."""

    audio: str
    camera: str
    render: str
    display: str
    speakers: bool
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Reasons the configured installation cannot start (explicitly requested things that are absent)."""


def choose_sources(cfg: Config, headless: bool = False) -> Sources:
    """Decide the embedded-default substitutions, probing devices without opening streams."""
    notes: list[str] = []
    problems: list[str] = []
    audio = _choose_audio(cfg, notes, problems)
    camera = _choose_camera(cfg, notes, problems)
    render = _choose_render(cfg, notes, problems)
    display = _choose_display(cfg, headless, notes, problems)
    speakers = _speakers_present(cfg, problems)
    _check_midi_backend(cfg, problems)
    # The built-in synth reaches the speakers in the closed loop only: with a real input the room's
    # own instruments are heard, and composed notes go to the configured MIDI and OSC outputs.
    return Sources(audio, camera, render, display, speakers and audio == "synth", notes, problems)


def _choose_audio(cfg: Config, notes: list[str], problems: list[str]) -> str:
    """The audio source: "auto" resolves to the input device or the built-in synth; others are checked."""
    from hardware.sound.audio_in import has_input_device

    audio = cfg.audio.source
    if audio == "auto":
        if has_input_device(cfg.audio.device):
            audio = "device"
            log.info("audio: listening to %s (audio.source = \"auto\"); set audio.device to choose another",
                     describe_input(cfg.audio.device))
        else:
            audio = "synth"
            notes.append("audio: no input device found; listening to the built-in synth playing the composed music instead")
    elif audio == "device" and not has_input_device(cfg.audio.device):
        problems.append(f"audio.source is 'device' but no input device matches '{cfg.audio.device or 'default'}'; "
                        "run `python run.py devices`, or set audio.source = \"auto\"")
    elif audio == "file":
        problems.extend(_media_file_problems("audio.file", cfg.audio.file, _audio_decodes, "a wav/flac/ogg/mp3 file",
                                             "audio; convert it to WAV, FLAC or Ogg"))
    return audio


def _choose_camera(cfg: Config, notes: list[str], problems: list[str]) -> str:
    """The camera source: "auto" resolves to the camera or the photo slideshow; others are checked."""
    from hardware.video.camera import camera_available

    camera = cfg.camera.source
    if camera == "auto":
        if camera_available(cfg.camera.device):
            camera = "opencv"
        else:
            camera = "photos"
            notes.append(f"camera: no camera at '{cfg.camera.device}'; watching a slideshow of photographs instead")
    elif camera == "opencv" and not camera_available(cfg.camera.device):
        problems.append(f"camera.source is 'opencv' but camera '{cfg.camera.device}' does not open; "
                        "check the cable and `python run.py devices`, or set camera.source = \"auto\"")
    elif camera == "file":
        problems.extend(_media_file_problems("camera.file", cfg.camera.file, _video_decodes, "a video file",
                                             "video; convert it to MP4 (H.264 or MPEG-4) or MJPEG"))
    if camera == "photos" and cfg.camera.photos_dir and not Path(cfg.camera.photos_dir).expanduser().is_dir():
        problems.append(f"camera.photos_dir '{cfg.camera.photos_dir}' is not a folder; give a folder of photographs or \"\"")
    return camera


def _choose_render(cfg: Config, notes: list[str], problems: list[str]) -> str:
    """The renderer: "auto" picks diffusion when its weights check out, else procedural."""
    from models.diffusion.weights import check_weights

    render = cfg.render.backend
    weight_problems = check_weights(cfg.render.settings())
    if render == "auto":
        if cfg.render.model and not weight_problems:
            render = "diffusion"
        else:
            render = "procedural"
            why = weight_problems[0].rstrip(".") if weight_problems else "no diffusion model configured (render.model)"
            notes.append(f"visuals: {why}; projecting the procedural renderer instead")
    elif render == "diffusion":
        if not cfg.render.model:
            problems.append("render.backend is 'diffusion' but render.model is empty; see docs/weights.md")
        problems.extend(weight_problems)
    return render


def _choose_display(cfg: Config, headless: bool, notes: list[str], problems: list[str]) -> str:
    """The display mode: headless when asked or when "auto" finds no display."""
    from hardware.video.display import display_available

    if headless or cfg.display.mode == "headless":
        return "headless"
    if display_available():
        return "fullscreen" if cfg.display.mode == "fullscreen" else "window"
    if cfg.display.mode == "auto":
        notes.append("display: no display found; running headless (use --record DIR to see the output)")
    else:
        problems.append(f"display.mode is '{cfg.display.mode}' but no display is available (DISPLAY is unset); "
                        "set display.mode = \"auto\" or run with --headless")
    return "headless"


def _check_midi_backend(cfg: Config, problems: list[str]) -> None:
    """A midi.backend that cannot load is a typo in the config, whether or not a port is named yet:
    MIDI learn, a controller plugged in later and `check` all need it."""
    if cfg.midi.backend:
        from hardware.midi.output import load_backend
        try:
            load_backend(cfg.midi.backend)
        except UserError as exc:
            problems.append(str(exc).rstrip("."))


def _speakers_present(cfg: Config, problems: list[str]) -> bool:
    """Whether the built-in synth may play to an audio output device."""
    if not (cfg.synth.enabled and cfg.synth.speakers != "off"):
        return False
    from hardware.sound.audio_in import list_audio_devices
    has_output = any(d.get("max_output_channels", 0) > 0 for d in safe_devices(list_audio_devices))
    if cfg.synth.speakers == "on" and not has_output:
        problems.append("synth.speakers is 'on' but there is no audio output device; set it to \"auto\"")
    return has_output


def describe_input(device: str) -> str:
    """Which input device `device` resolves to, in words: "input 3 'USB Audio' (ALSA)"."""
    from hardware.sound.audio_in import find_input_device
    try:
        d = find_input_device(device)
    except UserError as exc:
        return str(exc)
    return f"input {d['index']} '{d['name']}' ({d['hostapi']})"


def _media_file_problems(key: str, path: str, decodes, kind: str, as_what: str) -> list[str]:
    """At most one sentence: the file is missing, or it does not decode."""
    if not Path(path).is_file():
        return [f"{key} '{path}' does not exist; give the path of {kind}"]
    if not decodes(path):
        return [f"{key} '{path}' cannot be decoded as {as_what}"]
    return []


def _audio_decodes(path: str) -> bool:
    import soundfile as sf
    try:
        return sf.info(path).frames > 0
    except Exception:
        return False


def _video_decodes(path: str) -> bool:
    import cv2
    capture = cv2.VideoCapture(path)
    try:
        return bool(capture.isOpened() and capture.read()[0])
    finally:
        capture.release()


def safe_devices(lister) -> list[dict]:
    try:
        return lister()
    except Exception as exc:  # noqa: BLE001 - PortAudio absent or broken counts as no devices
        log.debug("audio device listing failed: %s", exc)
        return []


SYNTH_BLOCK_FRAMES = 1024
"""The synth loop's and speakers' block: their queue of blocks must outlast a stall of the feeding thread,
so they keep a long block; `audio.block_frames` sizes the capture, where a short block brings onsets sooner."""


# --- the concrete devices for the sources chosen above (called by the composition root) ------------
def build_audio(cfg: Config, sources: Sources, clock, synth: Synth | None = None) -> tuple[AudioInput, int]:
    """The AudioInput the listener reads, and its analysis rate."""
    from installation.errors import UserError
    rate_hz = cfg.audio.sample_rate_hz or ANALYSIS_RATE_HZ
    if sources.audio == "synth":
        from hardware.sound.synth import SynthLoopInput, SynthSpeakers
        if synth is None:
            raise UserError("audio.source is 'synth' but synth.enabled is false; enable the synth or choose another source.")
        tap = SynthSpeakers(synth, clock, None, SYNTH_BLOCK_FRAMES) if sources.speakers else None
        # The speaker stream opens and closes with the listener, which reopens it if the device goes.
        return SynthLoopInput(synth, clock, SYNTH_BLOCK_FRAMES, tap=tap), synth.sample_rate_hz
    if sources.audio == "file":
        from hardware.sound.audio_in import FileInput
        return FileInput(cfg.audio.file, rate_hz, clock), rate_hz
    from hardware.sound.audio_in import PyAudioInput, SoundDeviceInput
    cls = PyAudioInput if cfg.audio.backend == "pyaudio" else SoundDeviceInput
    return cls(cfg.audio.device, rate_hz, cfg.audio.channels, cfg.audio.block_frames, clock), rate_hz


def build_listening(cfg: Config, sources: Sources, audio: AudioInput | None, synth: Synth | None, bus, clock):
    """(listener, stages): the audio input (`audio`, or the configured one), the onset stage on it and
    the listener behind it, fed the same blocks (docs/listening.md)."""
    from installation.stages import ListenerStage, OnsetStage
    from installation.stages.onsets import AudioQueue
    from installation.operators.control import wake
    from models.listening.va import build_listener
    from models.listening.onsets import onset_detector
    audio, rate_hz = (audio, cfg.audio.sample_rate_hz) if audio is not None else build_audio(cfg, sources, clock, synth)
    listener = build_listener(cfg.listen.settings(), rate_hz or ANALYSIS_RATE_HZ)
    heard = AudioQueue(getattr(audio, "name", "audio"))
    on_hit = (lambda: wake(bus.commands)) if cfg.display.wake_on_onset else None  # bus.commands: read at the hit
    return listener, [OnsetStage(audio, onset_detector(cfg.listen.settings()), bus.onsets, heard, clock, on_hit),
                      ListenerStage(heard, listener, bus.music, clock, cfg.listen.hop_s)]


def build_camera(cfg: Config, sources: Sources, clock) -> Camera:
    from hardware.video import camera as cam
    if sources.camera == "opencv":
        return cam.OpenCvCamera(cfg.camera.device, cfg.camera.width, cfg.camera.height, cfg.camera.fps, clock)
    if sources.camera == "file":
        return cam.VideoFileCamera(cfg.camera.file, clock)
    return cam.PhotoSlideshow(cfg.camera.photos_dir, cfg.camera.width, cfg.camera.height, cfg.camera.slide_s, clock)


def build_display(cfg: Config, sources: Sources) -> Display:
    from hardware.video.display import HeadlessDisplay, PygameDisplay
    if sources.display == "headless":
        return HeadlessDisplay(cfg.display.width, cfg.display.height)
    return PygameDisplay(sources.display, cfg.display.width, cfg.display.height, cfg.display.screen,
                         cfg.installation.name)


def build_synth(cfg: Config, sources: Sources) -> Synth | None:
    if not cfg.synth.enabled:
        return None
    from hardware.sound.synth import Synth, output_rate_hz
    rate_hz = output_rate_hz(fallback_hz=cfg.synth.sample_rate_hz) if sources.speakers else cfg.synth.sample_rate_hz
    return Synth(rate_hz, cfg.synth.gain)


def build_midi_outputs(cfg: Config, record_dir: Path | None, clock) -> list[MidiOut]:
    """The outputs the thread scheduler sends to besides the synth: the MIDI recorder, OSC targets."""
    outputs: list[MidiOut] = []
    if record_dir is not None:
        from hardware.midi.output import MidiFileRecorder
        from installation.projection.projector import keep_previous
        outputs.append(MidiFileRecorder(keep_previous(record_dir / "midi.mid"), clock))
    if cfg.osc.targets:
        from hardware.midi.output import OscEventOut
        from hardware.osc.server import parse_target
        outputs.extend(OscEventOut(parse_target(target)) for target in cfg.osc.targets)
    return outputs


def build_renderers(cfg: Config, sources: Sources, scene) -> list[Renderer]:
    """The renderer chain: the procedural source, then diffusion over it when weights are there."""
    from installation.errors import UserError
    from models.procedural.renderer import ProceduralRenderer
    procedural = ProceduralRenderer(cfg.render.width, cfg.render.height, seed=cfg.render.seed)
    procedural.prepare(scene)  # a bad [render] table in the scene is a start-up error, not a crash loop
    if sources.render != "diffusion":
        return [procedural]
    from models.diffusion.load import load_diffusion_renderer
    try:
        diffusion = load_diffusion_renderer(cfg.render.settings())
    except UserError as exc:
        if cfg.render.backend == "diffusion":
            raise
        sources.render = "procedural"
        sources.notes.append(f"visuals: {str(exc).rstrip('.')}; projecting the procedural renderer instead")
        return [procedural]
    return [procedural, diffusion]


def render_param_specs(cfg: Config) -> dict:
    """Live parameters of the diffusion renderer (/param/lora/<name>, /param/controlnet/strength)."""
    from installation.operators.routes import ParamSpec
    from models.diffusion.load import live_param_specs
    return {key: ParamSpec(*spec) for key, spec in live_param_specs(cfg.render.settings()).items()}


def build_schedulers(cfg: Config, clock, outputs: list[MidiOut]) -> list[SchedulerPort]:
    """Built-in synth, recorder and OSC on a thread scheduler; MIDI ports on a real-time process.

    bench midi measured a sending thread at p99 137 ms late while torch keeps both cores busy,
    and a separate SCHED_FIFO process at p99 0.3 ms, so hardware ports get the process.
    """
    from installation.scheduler import ProcessScheduler, Scheduler
    schedulers: list[SchedulerPort] = [Scheduler(clock, outputs, clock_out=False)]
    ports = [("mido", name, cfg.midi.backend) for name in cfg.midi.outputs]
    if cfg.midi.virtual_port:
        ports.append(("virtual", cfg.midi.virtual_port, cfg.midi.backend))
    if ports:
        schedulers.append(ProcessScheduler(ports, clock_out=cfg.midi.clock_out))
    return schedulers


def open_show_log(cfg: Config, record_dir: Path | None, clock):
    """A recording is one show in one file; the always-on log rotates daily and keeps keep_days."""
    from installation.showlog.writer import ShowLog
    from installation.showlog.fold import FoldSettings
    path = record_dir / "show.jsonl" if record_dir else (Path(cfg.showlog.path) if cfg.showlog.path else None)
    if path is None:
        return None
    return ShowLog(path, clock, fsync_interval_s=cfg.showlog.fsync_interval_s,
                   thumbnail_interval_s=cfg.showlog.thumbnail_interval_s, thumbnail_width=cfg.showlog.thumbnail_width,
                   keep_days=None if record_dir else cfg.showlog.keep_days, fold=FoldSettings.from_config(cfg.showlog),
                   max_file_mb=cfg.showlog.max_file_mb, max_total_mb=cfg.showlog.max_total_mb)


def frame_stamps(record_dir: Path | None, clock, audio):
    """With --record: DIR/frames.csv, each projected frame's time on the clock and on the audio's, and its change."""
    if record_dir is None:
        return None
    from installation.projection.frame_stamps import FrameStamps
    from installation.projection.projector import keep_previous
    return FrameStamps(keep_previous(record_dir / "frames.csv"), clock, lambda: getattr(audio, "started_s", None))


def recorder_factory(cfg: Config, record_dir: Path | None):
    """(width, height) -> the video recorder of the projected picture, or None without --record."""
    if record_dir is None:
        return None
    from hardware.video.display import VideoRecorder
    from installation.projection.projector import keep_previous
    path = record_dir / "visuals.mp4"
    return lambda width, height: VideoRecorder(keep_previous(path), cfg.display.fps, width, height)
