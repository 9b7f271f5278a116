"""Video out beside the projector window: an NDI source and a virtual camera.

Each sink is a hardware.base.FrameSink that opens its device at the size of the first frame it is
shown; `build_video_out` puts each behind a hardware.video.sink_thread.SinkThread, so a slow sink
skips to the newest frame and a failing one is reopened with a growing back-off, and neither ever
holds up the projector.

  NDI             cyndilib (the wheels bundle the NDI runtime): a named source that Resolume,
                  TouchDesigner, OBS or NDI Studio Monitor pick from their source lists.
  virtual camera  pyvirtualcam: v4l2loopback on Linux (`modprobe v4l2loopback exclusive_caps=1`),
                  the OBS virtual camera on Windows and macOS; any video app sees a webcam.

Spout (Windows) and Syphon (macOS) are GPU texture sharing inside one machine; see the README for
the routes to them (NDI or the virtual camera into Spout/Syphon bridges).
"""
from __future__ import annotations

import importlib
import logging
from fractions import Fraction
from typing import Any

import numpy as np

from hardware.video.settings import VideoOutSettings
from hardware.video.sink_thread import SinkThread
from installation.errors import UserError

log = logging.getLogger(__name__)

EXTRA = "pip install 'chromesthesia[video-out]'"


def _require(module: str, package: str, option: str) -> None:
    """UserError (one sentence) when the package a sink needs is not installed."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise UserError(f"video_out.{option} needs the {package} package, which is not installed; run `{EXTRA}` "
                        f"or set video_out.{option} = false.") from None


def _to_rgba(rgb: np.ndarray, rgba: np.ndarray) -> None:
    """RGB into a preallocated RGBA frame (alpha stays 255). OpenCV does it in ~1.6 ms at 1280x720
    without the GIL; numpy's strided copy takes ~24 ms holding it, which the projector would feel."""
    try:
        import cv2
    except ImportError:
        rgba[..., :3] = rgb
        return
    cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA, dst=rgba)


# --- sinks --------------------------------------------------------------------------------------
class NdiSink:
    """An NDI source named `source_name` (others see it as `HOST (source_name)`)."""

    CONNECTIONS_CHECK_S = 0.25

    def __init__(self, source_name: str = "Chromesthesia", fps: float = 30.0, clock=None) -> None:
        self.name = f"NDI {source_name!r}"
        self.source_name = source_name
        self._fps = fps
        self._clock = clock
        self._sender: Any = None
        self._rgba: Any = None
        self._receivers = 0
        self._next_check_s = float("-inf")
        self.skipped = 0
        """Frames not encoded because no receiver was connected (NDI encodes every frame it is given)."""

    @staticmethod
    def check_available() -> None:
        _require("cyndilib.sender", "cyndilib", "ndi")

    def open(self) -> None:
        """The sender is made at the size of the first frame shown."""

    def _open_sender(self, width: int, height: int) -> None:
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC

        frame = VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(Fraction(round(self._fps * 1000), 1000))
        frame.set_fourcc(FourCC.RGBA)
        sender = Sender(self.source_name, clock_video=False)
        sender.set_video_frame(frame)
        sender.open()
        self._rgba = np.full((height, width, 4), 255, np.uint8)
        self._sender = sender

    def show(self, rgb: np.ndarray) -> None:
        if self._sender is None:
            self._open_sender(rgb.shape[1], rgb.shape[0])
        if self._clock is not None:
            now_s = self._clock.now_s()
            if now_s >= self._next_check_s:
                self._next_check_s = now_s + self.CONNECTIONS_CHECK_S
                self._receivers = self.connections()
            if self._receivers == 0:
                self.skipped += 1
                return
        rgba = self._rgba
        _to_rgba(rgb, rgba)
        if not self._sender.write_video(rgba.ravel()):
            raise RuntimeError("NDI sender refused the frame")

    def connections(self) -> int:
        return int(self._sender.get_num_connections(0)) if self._sender is not None else 0

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()


class VirtualCameraSink:
    """A virtual webcam through pyvirtualcam (device "" = the first v4l2loopback device)."""

    def __init__(self, device: str = "", fps: float = 30.0) -> None:
        self.name = f"virtual camera {device}" if device else "virtual camera"
        self.device = device
        self._fps = fps
        self._camera: Any = None

    @staticmethod
    def check_available() -> None:
        _require("pyvirtualcam", "pyvirtualcam", "virtual_camera")

    def open(self) -> None:
        """The camera is made at the size of the first frame shown."""

    def show(self, rgb: np.ndarray) -> None:
        if self._camera is None:
            import pyvirtualcam

            try:
                self._camera = pyvirtualcam.Camera(width=rgb.shape[1], height=rgb.shape[0], fps=self._fps,
                                                   device=self.device or None)
            except Exception as exc:  # pyvirtualcam raises RuntimeError with the backend's own reason
                raise OSError(virtual_camera_advice(str(exc).rstrip("."))) from None
        self._camera.send(rgb)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


def virtual_camera_advice(reason: str) -> str:
    return (f"the virtual camera cannot open ({reason}); on Linux load the loopback device with "
            f"`sudo modprobe v4l2loopback devices=1 exclusive_caps=1`, on Windows/macOS install OBS Studio "
            f"(its virtual camera), or set video_out.virtual_camera = false.")


def build_video_out(cfg: VideoOutSettings, width: int, height: int, fps: float, clock=None) -> list[SinkThread]:
    """The sinks [video_out] asks for, each on its own thread (empty when it asks for none).

    With `required = true` each sink is opened here and a failure is one UserError sentence (exit 2);
    otherwise a missing package or device is a warning and the show goes on without (or retrying) it.
    With a `clock`, NDI encodes frames only while a receiver is connected (checked every 0.25 s).
    """
    wanted: list[NdiSink | VirtualCameraSink] = []
    for enabled, cls, make in ((cfg.ndi, NdiSink, lambda: NdiSink(cfg.ndi_name, fps, clock)),
                               (cfg.virtual_camera, VirtualCameraSink,
                                lambda: VirtualCameraSink(cfg.virtual_camera_device, fps))):
        if not enabled:
            continue
        try:
            cls.check_available()
        except UserError as exc:
            if cfg.required:
                raise
            log.warning("%s The show goes on without it.", exc)
            continue
        wanted.append(make())
    if cfg.required:
        for sink in wanted:
            try:
                _check_opens(sink, width, height)
            except Exception as exc:
                reason = str(exc).rstrip(".") or type(exc).__name__
                if isinstance(sink, VirtualCameraSink):
                    raise UserError(f"video_out.virtual_camera: {reason}.") from None
                raise UserError(f"video_out: {sink.name} cannot open ({reason}); fix it or set "
                                f"video_out.required = false to run without it.") from None
    return [SinkThread(sink, cfg.fps, nice=10) for sink in wanted]


def _check_opens(sink: NdiSink | VirtualCameraSink, width: int, height: int) -> None:
    """Open the device once on the calling thread (start-up, when the sink is required) and close it;
    raises what the sink raises. Its thread opens it again for the show, at its lower priority."""
    sink.open()
    try:
        sink.show(np.zeros((height, width, 3), np.uint8))
    finally:
        sink.close()
