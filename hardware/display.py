"""The projector: a pygame window (windowed or fullscreen), a headless sink, and a video recorder.

All of these are driven by the main thread at the display rate. `show` scales the frame to the
output size once and never waits on any stage.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("chromesthesia.display")


def display_available() -> bool:
    """Whether a window can be opened: an X11/Wayland display on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fill (height, width) without distortion, cropping the overflow at the centre.

    A projection has no letterbox: a square render on a 16:9 screen loses its top and bottom.
    A no-op when the size already matches.
    """
    h, w = rgb.shape[:2]
    if h == height and w == width:
        return np.ascontiguousarray(rgb)
    import cv2
    scale = max(width / w, height / h)
    scaled_w, scaled_h = max(width, round(w * scale)), max(height, round(h * scale))
    scaled = cv2.resize(rgb, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)
    x0, y0 = (scaled_w - width) // 2, (scaled_h - height) // 2
    return np.ascontiguousarray(scaled[y0:y0 + height, x0:x0 + width])


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
    """Writes what was projected to an MP4 (mp4v) at the projector frame rate."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        self.path = Path(path)
        self.fps = fps
        self.width = width - width % 2
        self.height = height - height % 2
        self.name = f"video {self.path.name}"
        self.stats = {"frames": 0}
        self._writer = None

    def open(self) -> None:
        import cv2
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                       (self.width, self.height))
        if not self._writer.isOpened():
            raise OSError(f"cannot write video to {self.path}")

    def show(self, rgb: np.ndarray) -> None:
        import cv2
        frame = fit(rgb, self.width, self.height)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.stats["frames"] += 1

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
