"""Video out beside the projector window: an NDI source and a virtual camera.

The projector (main thread) only hands each sink its newest frame (`show`, a slot overwrite that
never waits). Each sink sends from its own thread: a slow sink skips to the newest frame and
counts what it dropped; a failing one is closed and reopened with a growing back-off. Neither
ever holds up the projector.

  NDI             cyndilib (the wheels bundle the NDI runtime): a named source that Resolume,
                  TouchDesigner, OBS or NDI Studio Monitor pick from their source lists.
  virtual camera  pyvirtualcam: v4l2loopback on Linux (`modprobe v4l2loopback exclusive_caps=1`),
                  the OBS virtual camera on Windows and macOS; any video app sees a webcam.

Spout (Windows) and Syphon (macOS) are GPU texture sharing inside one machine; see the README for
the routes to them (NDI or the virtual camera into Spout/Syphon bridges).
"""
from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from hardware.video.settings import VideoOutSettings
from installation.errors import UserError
from installation.mailbox import Latest

log = logging.getLogger(__name__)

EXTRA = "pip install 'chromesthesia[video-out]'"


class VideoSink(Protocol):
    """Something that sends RGB frames somewhere; called only from its sender thread
    (`VideoOut` is the hardware.base.FrameSink the projector sees)."""

    name: str

    def open(self, width: int, height: int, fps: float) -> None: ...

    def send(self, rgb: np.ndarray) -> None: ...

    def close(self) -> None: ...


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

    def __init__(self, source_name: str = "Chromesthesia", clock=None) -> None:
        self.name = f"NDI {source_name!r}"
        self.source_name = source_name
        self._clock = clock
        self._sender: Any = None
        self._rgba: Any = None
        self._receivers = 0
        self._next_check_s = float("-inf")
        self.skipped = 0
        """Frames not encoded because no receiver was connected (NDI encodes every frame it is given)."""

    @staticmethod
    def check_available() -> None:
        try:
            import cyndilib.sender  # noqa: F401
        except ImportError:
            raise UserError(f"video_out.ndi needs the cyndilib package, which is not installed; run `{EXTRA}` "
                            f"or set video_out.ndi = false.") from None

    def open(self, width: int, height: int, fps: float) -> None:
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC

        frame = VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(Fraction(round(fps * 1000), 1000))
        frame.set_fourcc(FourCC.RGBA)
        sender = Sender(self.source_name, clock_video=False)
        sender.set_video_frame(frame)
        sender.open()
        self._rgba = np.full((height, width, 4), 255, np.uint8)
        self._sender = sender

    def send(self, rgb: np.ndarray) -> None:
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

    def __init__(self, device: str = "") -> None:
        self.name = f"virtual camera {device}" if device else "virtual camera"
        self.device = device
        self._camera: Any = None

    @staticmethod
    def check_available() -> None:
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError:
            raise UserError(f"video_out.virtual_camera needs the pyvirtualcam package, which is not installed; "
                            f"run `{EXTRA}` or set video_out.virtual_camera = false.") from None

    def open(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        try:
            self._camera = pyvirtualcam.Camera(width=width, height=height, fps=fps, device=self.device or None)
        except Exception as exc:  # pyvirtualcam raises RuntimeError with the backend's own reason
            raise OSError(virtual_camera_advice(str(exc).rstrip("."))) from None

    def send(self, rgb: np.ndarray) -> None:
        self._camera.send(rgb)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


def virtual_camera_advice(reason: str) -> str:
    return (f"the virtual camera cannot open ({reason}); on Linux load the loopback device with "
            f"`sudo modprobe v4l2loopback devices=1 exclusive_caps=1`, on Windows/macOS install OBS Studio "
            f"(its virtual camera), or set video_out.virtual_camera = false.")


# --- one thread per sink --------------------------------------------------------------------------
class SinkThread:
    """Sends the newest frame to one sink from its own thread; reopens it with back-off on failure."""

    def __init__(self, sink: VideoSink, fps: float = 30.0, max_fps: float = 0.0,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, nice: int = 10) -> None:
        self.sink = sink
        self._nice = nice
        self.name = sink.name
        self._fps = fps
        self._min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self._latest: Latest[np.ndarray] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._size: tuple[int, int] | None = None
        self.opened = False
        self.sent = 0
        self.errors = 0
        self.reopened = 0
        self.last_error = ""

    @property
    def dropped(self) -> int:
        return self._latest.dropped

    def offer(self, rgb: np.ndarray) -> None:
        """Any thread: hand over the newest frame (not copied: the caller never writes into it again)."""
        self._latest.put(rgb)

    def check_opens(self, width: int, height: int) -> None:
        """Open and close once on the calling thread (start-up, when the sink is required); raises
        what the sink raises. The sender thread opens it for the show, so the sink's own threads
        are born with its lower priority."""
        self.sink.open(width, height, self._fps)
        self.sink.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"video-out {self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._nice:
            try:  # Linux: a thread's nice value is its own, and threads it starts inherit it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except (OSError, AttributeError):
                pass
        delay_s = self._backoff_s
        while not self._stop.is_set():
            rgb = self._latest.take(timeout_s=0.5)
            if rgb is None or self._stop.is_set():
                continue
            height, width = rgb.shape[:2]
            try:
                if self.opened and self._size != (width, height):
                    self._close_sink()
                if not self.opened:
                    self.sink.open(width, height, self._fps)
                    self._size = (width, height)
                    if self.errors:
                        self.reopened += 1
                        log.info("video out: %s open again", self.name)
                    self.opened = True
                self.sink.send(rgb)
                self.sent += 1
                delay_s = self._backoff_s
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.errors in (1, 10) or self.errors % 1000 == 0:
                    log.warning("video out: %s failed (%s); retrying in %.1f s", self.name, self.last_error, delay_s)
                self._close_sink()
                if self._stop.wait(delay_s):
                    break
                delay_s = min(self._max_backoff_s, delay_s * 2)
                continue
            if self._min_interval_s and self._stop.wait(self._min_interval_s):
                break

    def _close_sink(self) -> None:
        self.opened = False
        try:
            self.sink.close()
        except Exception as exc:
            log.debug("video out: closing %s: %s", self.name, exc)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._latest.put(np.zeros((1, 1, 3), np.uint8))  # wake the thread
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._close_sink()

    def stats(self) -> dict:
        return {"sink": self.name, "open": self.opened, "sent": self.sent, "dropped": self.dropped,
                "errors": self.errors, "reopened": self.reopened, "last_error": self.last_error}


class VideoOut:
    """All configured sinks as one projector output: `show` is what the projector calls each frame."""

    name = "video out"

    def __init__(self, threads: list[SinkThread]) -> None:
        self.threads = threads

    def open(self) -> None:
        for thread in self.threads:
            thread.start()

    def show(self, rgb: np.ndarray) -> None:
        """Main thread: never waits (each sink's slot is overwritten)."""
        for thread in self.threads:
            thread.offer(rgb)

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        for thread in self.threads:
            thread.stop()

    def stats(self) -> list[dict]:
        return [thread.stats() for thread in self.threads]


def build_video_out(cfg: VideoOutSettings, width: int, height: int, fps: float, clock=None) -> VideoOut | None:
    """The sinks [video_out] asks for, or None when it asks for none.

    With `required = true` each sink is opened here and a failure is one UserError sentence (exit 2);
    otherwise a missing package or device is a warning and the show goes on without (or retrying) it.
    With a `clock`, NDI encodes frames only while a receiver is connected (checked every 0.25 s).
    """
    wanted: list[VideoSink] = []
    for enabled, cls, make in ((cfg.ndi, NdiSink, lambda: NdiSink(cfg.ndi_name, clock)),
                               (cfg.virtual_camera, VirtualCameraSink, lambda: VirtualCameraSink(cfg.virtual_camera_device))):
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
    if not wanted:
        return None
    threads = [SinkThread(sink, fps, cfg.fps) for sink in wanted]
    if cfg.required:
        for thread in threads:
            try:
                thread.check_opens(width, height)
            except Exception as exc:
                reason = str(exc).rstrip(".") or type(exc).__name__
                if isinstance(thread.sink, VirtualCameraSink):
                    raise UserError(f"video_out.virtual_camera: {reason}.") from None
                raise UserError(f"video_out: {thread.name} cannot open ({reason}); fix it or set "
                                f"video_out.required = false to run without it.") from None
    return VideoOut(threads)
