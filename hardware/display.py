"""The projector: a pygame window (windowed or fullscreen), a headless sink, and a video recorder.

All of these are driven by the main thread at the display rate. `show` scales the frame to the
output size once and never waits on any stage.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from pathlib import Path

import numpy as np

log = logging.getLogger("chromesthesia.display")


def display_available() -> bool:
    """Whether a window can be opened: an X11/Wayland display on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit inside (height, width) without distortion; the rest is black. Nothing is cropped:
    a picture of another shape is letterboxed (bars top and bottom) or pillarboxed (bars at the sides).
    A no-op when the size already matches.
    """
    h, w = rgb.shape[:2]
    if h == height and w == width:
        return np.ascontiguousarray(rgb)
    import cv2
    scale = min(width / w, height / h)
    scaled_w, scaled_h = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
    scaled = cv2.resize(rgb, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if (scaled_w, scaled_h) == (width, height):
        return scaled
    out = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0 = (width - scaled_w) // 2, (height - scaled_h) // 2
    out[y0:y0 + scaled_h, x0:x0 + scaled_w] = scaled
    return out


class PygameDisplay:
    """A pygame window on the projector. mode: "window" or "fullscreen"."""

    def __init__(self, mode: str = "window", width: int = 1280, height: int = 720, screen: int = 0,
                 caption: str = "Chromesthesia") -> None:
        self.mode = mode
        self.width = width
        self.height = height
        self.screen_index = screen
        self.caption = caption
        self.name = f"pygame {mode}"
        self.stats = {"frames": 0}
        self._surface = None
        self._pygame = None

    def open(self) -> None:
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # the display must not grab the sound card
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
        self._pygame = pygame
        pygame.display.init()
        flags = 0
        size = (self.width, self.height)
        if self.mode == "fullscreen":
            flags = pygame.FULLSCREEN
            sizes = pygame.display.get_desktop_sizes()
            if self.screen_index < len(sizes):
                size = sizes[self.screen_index]
        self._surface = pygame.display.set_mode(size, flags, display=self.screen_index)
        self.width, self.height = self._surface.get_size()
        pygame.display.set_caption(self.caption)
        pygame.mouse.set_visible(self.mode != "fullscreen")

    def show(self, rgb: np.ndarray) -> None:
        pygame = self._pygame
        frame = fit(rgb, self.width, self.height)
        image = pygame.image.frombuffer(frame, (self.width, self.height), "RGB")  # no copy
        self._surface.blit(image, (0, 0))
        pygame.display.flip()
        self.stats["frames"] += 1

    def poll_quit(self) -> bool:
        pygame = self._pygame
        quit_requested = False
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                quit_requested = True
        return quit_requested

    def close(self) -> None:
        if self._pygame is not None:
            self._pygame.display.quit()
            self._pygame = None


class HeadlessDisplay:
    """No window: frames are counted (and recorded, if a recorder is attached elsewhere)."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        self.width = width
        self.height = height
        self.name = "headless"
        self.stats = {"frames": 0}
        self.last: np.ndarray | None = None

    def open(self) -> None:
        pass

    def show(self, rgb: np.ndarray) -> None:
        self.last = rgb
        self.stats["frames"] += 1

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        pass


class VideoRecorder:
    """Writes what was projected to an MP4 (mp4v) at the projector frame rate.

    `show` only queues the frame (the same object the projector shows, no copy); a writer thread
    encodes, so a slow encoder never holds up the projector. When the writer falls behind by more
    than `max_queue_mb` of frames the oldest waiting frame is dropped and counted in stats["dropped"].
    """

    def __init__(self, path: Path, fps: float, width: int, height: int, max_queue_mb: float = 128.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self.width = width - width % 2
        self.height = height - height % 2
        self.name = f"video {self.path.name}"
        self.stats = {"frames": 0, "dropped": 0}
        self.max_queue = max(8, int(max_queue_mb * 1e6 / (3 * max(1, self.width * self.height))))
        self._writer = None
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def open(self) -> None:
        import cv2
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                       (self.width, self.height))
        if not self._writer.isOpened():
            raise OSError(f"cannot write video to {self.path}")
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="video-recorder", daemon=True)
        self._thread.start()

    def show(self, rgb: np.ndarray) -> None:
        """Main thread: queue the frame for the writer."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.stats["dropped"] += 1
            self._queue.append(rgb)
            self._cond.notify()

    def _run(self) -> None:
        import cv2
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                rgb = self._queue.popleft()
            try:
                frame = fit(rgb, self.width, self.height)
                self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                self.stats["frames"] += 1
            except Exception:  # a bad frame is skipped, the recording goes on
                log.exception("video recorder could not write a frame")

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        """Write what is queued, then close the file."""
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join(timeout=30.0)
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
