"""What runs instead of what: the embedded default's substitutions, decided once at start.

Devices are probed without opening streams; `problems` are explicit requests that cannot be met
(start-up errors), `notes` are substitutions said clearly at start.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from installation.config import Config
from installation.errors import UserError

log = logging.getLogger("chromesthesia")


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
    from hardware.audio_in import has_input_device
    from hardware.camera import camera_available
    from hardware.display import display_available
    from models.render_diffusion import check_weights

    notes: list[str] = []
    problems: list[str] = []

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
    elif audio == "file" and not Path(cfg.audio.file).is_file():
        problems.append(f"audio.file '{cfg.audio.file}' does not exist; give the path of a wav/flac/ogg/mp3 file")

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
    elif camera == "file" and not Path(cfg.camera.file).is_file():
        problems.append(f"camera.file '{cfg.camera.file}' does not exist; give the path of a video file")
    elif camera == "file" and not _video_decodes(cfg.camera.file):
        problems.append(f"camera.file '{cfg.camera.file}' cannot be decoded as video; "
                        "convert it to MP4 (H.264 or MPEG-4) or MJPEG")
    elif camera == "photos" and cfg.camera.photos_dir and not Path(cfg.camera.photos_dir).is_dir():
        problems.append(f"camera.photos_dir '{cfg.camera.photos_dir}' is not a folder; give a folder of photographs or \"\"")

    render = cfg.render.backend
    weight_problems = check_weights(cfg.render)
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

    if headless or cfg.display.mode == "headless":
        display = "headless"
    elif display_available():
        display = "fullscreen" if cfg.display.mode == "fullscreen" else "window"
    elif cfg.display.mode == "auto":
        display = "headless"
        notes.append("display: no display found; running headless (use --record DIR to see the output)")
    else:
        display = "headless"
        problems.append(f"display.mode is '{cfg.display.mode}' but no display is available (DISPLAY is unset); "
                        "set display.mode = \"auto\" or run with --headless")

    speakers = False
    if cfg.synth.enabled and cfg.synth.speakers != "off":
        from hardware.audio_in import list_audio_devices
        has_output = any(d.get("max_output_channels", 0) > 0 for d in safe_devices(list_audio_devices))
        speakers = has_output
        if cfg.synth.speakers == "on" and not has_output:
            problems.append("synth.speakers is 'on' but there is no audio output device; set it to \"auto\"")
    # The built-in synth reaches the speakers in the closed loop only: with a real input the room's
    # own instruments are heard, and composed notes go to the configured MIDI and OSC outputs.
    return Sources(audio, camera, render, display, speakers and audio == "synth", notes, problems)


def describe_input(device: str) -> str:
    """Which input device `device` resolves to, in words: "input 3 'USB Audio' (ALSA)"."""
    from hardware.audio_in import find_input_device
    try:
        d = find_input_device(device)
    except UserError as exc:
        return str(exc)
    return f"input {d['index']} '{d['name']}' ({d['hostapi']})"


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
