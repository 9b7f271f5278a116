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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import cv2

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


KEYS: tuple[tuple[str, str, str], ...] = (
    # (action, keys as pygame names, what it does) -- the help overlay and README list these
    ("help", "h f1", "show or hide this help"),
    ("test_card", "t", "test card: grid, colour bars, resolution and frame rate"),
    ("blackout", "b", "blackout on or off"),
    ("freeze", "space", "freeze the picture or follow the music again"),
    ("next_scene", "n right", "next scene"),
    ("previous_scene", "p left", "previous scene"),
    ("fullscreen", "f f11", "fullscreen or window"),
    ("quit", "escape q", "quit"),
)
"""The technician's keys in the projector window."""
OPERATOR_ACTIONS = ("blackout", "freeze", "next_scene", "previous_scene")
"""Key actions that change the show (installation.operators.control.key_commands turns them into
operator commands); the others
(help, test card, fullscreen, quit) belong to the window."""


def test_card(width: int, height: int, fps: float = 0.0, title: str = "Chromesthesia") -> np.ndarray:
    """A projector test card at (width, height): a grid of squares, a centre circle, colour bars, a
    grey ramp, corner marks, and the resolution and frame rate as text. RGB uint8."""
    import cv2

    card = np.full((height, width, 3), 24, np.uint8)
    step = max(8, min(width, height) // 9)
    for x in range(width // 2 % step, width, step):
        cv2.line(card, (x, 0), (x, height - 1), (150, 150, 150), 1, cv2.LINE_AA)
    for y in range(height // 2 % step, height, step):
        cv2.line(card, (0, y), (width - 1, y), (150, 150, 150), 1, cv2.LINE_AA)
    bars = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    x0, x1, y0, y1 = width // 8, width - width // 8, height // 4, height // 2
    bw = (x1 - x0) / len(bars)
    for i, colour in enumerate(bars):
        cv2.rectangle(card, (int(x0 + i * bw), y0), (int(x0 + (i + 1) * bw) - 1, y1), colour, -1)
    ramp = np.linspace(0, 255, x1 - x0).astype(np.uint8)
    card[y1:y1 + height // 12, x0:x1] = ramp[None, :, None]
    r = min(width, height) * 0.42
    cv2.circle(card, (width * 8, height * 8), int(r * 16), (255, 255, 255), 2, cv2.LINE_AA, 4)
    cv2.line(card, (width // 2, 0), (width // 2, height - 1), (255, 255, 255), 1, cv2.LINE_AA)
    cv2.line(card, (0, height // 2), (width - 1, height // 2), (255, 255, 255), 1, cv2.LINE_AA)
    m = max(8, step // 2)
    for cx, cy, dx, dy in ((0, 0, 1, 1), (width - 1, 0, -1, 1), (0, height - 1, 1, -1), (width - 1, height - 1, -1, -1)):
        cv2.line(card, (cx, cy), (cx + dx * m, cy), (255, 64, 64), 3)
        cv2.line(card, (cx, cy), (cx, cy + dy * m), (255, 64, 64), 3)
    scale = max(0.5, height / 720.0)
    text = f"{title}  {width}x{height}  {fps:.1f} fps"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    org = ((width - tw) // 2, int(height * 0.7) + th)
    cv2.rectangle(card, (org[0] - 10, org[1] - th - 10), (org[0] + tw + 10, org[1] + 10), (0, 0, 0), -1)
    cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return card


def help_overlay(rgb: np.ndarray) -> np.ndarray:
    """The frame with the key list drawn over a dark panel (a copy; the frame is not changed)."""
    import cv2

    out = rgb.copy()
    h, w = out.shape[:2]
    scale = max(0.45, h / 1080.0)
    line_h = int(34 * scale / 0.6)
    lines = [f"{keys.replace(' ', ' / '):>14s}   {what}" for _, keys, what in KEYS]
    panel_h = line_h * (len(lines) + 2)
    x0, y0 = w // 12, max(0, (h - panel_h) // 2)
    region = out[y0:y0 + panel_h, x0:w - x0]
    region[:] = (region.astype(np.uint16) * 3 // 10).astype(np.uint8)
    cv2.putText(out, "keys", (x0 + line_h // 2, y0 + line_h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 220, 120), 2,
                cv2.LINE_AA)
    for i, text in enumerate(lines):
        cv2.putText(out, text, (x0 + line_h // 2, y0 + line_h * (i + 2)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    return out


class PygameDisplay:
    """A pygame window on the projector. mode: "window" or "fullscreen".

    Keys (KEYS): the window's own (help overlay, test card, fullscreen, quit) act here; the operator
    ones (blackout, freeze, next/previous scene) wait in `take_actions()` for the projector."""

    def __init__(self, mode: str = "window", width: int = 1280, height: int = 720, screen: int = 0,
                 caption: str = "Chromesthesia") -> None:
        self.mode = mode
        self.width = width
        self.height = height
        self.window_size = (width, height)
        self.screen_index = screen
        self.caption = caption
        self.name = f"pygame {mode}"
        self.stats = {"frames": 0}
        self.showing_help = False
        self.showing_test_card = False
        self.fps = 0.0
        self._last_show_s: float | None = None
        self._actions: list[str] = []
        self._surface: Any = None  # pygame is untyped
        self._pygame: Any = None
        self._keymap: dict[int, str] = {}

    def open(self) -> None:
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # the display must not grab the sound card
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from hardware.video.load_order import load_before_gl
        load_before_gl()  # before SDL loads Mesa's LLVM: see hardware/video/load_order.py
        import pygame
        self._pygame = pygame
        pygame.display.init()
        self._keymap = {pygame.key.key_code(k): action for action, keys, _ in KEYS for k in keys.split()}
        self._set_mode()
        pygame.display.set_caption(self.caption)

    def _set_mode(self) -> None:
        pygame = self._pygame
        flags = 0
        size = self.window_size
        if self.mode == "fullscreen":
            flags = pygame.FULLSCREEN
            sizes = pygame.display.get_desktop_sizes()
            if self.screen_index < len(sizes):
                size = sizes[self.screen_index]
        self._surface = pygame.display.set_mode(size, flags, display=self.screen_index)
        self.width, self.height = self._surface.get_size()
        self.name = f"pygame {self.mode}"
        pygame.mouse.set_visible(self.mode != "fullscreen")

    def show(self, rgb: np.ndarray) -> None:
        import time
        pygame = self._pygame
        now = time.perf_counter()
        if self._last_show_s is not None:
            dt = now - self._last_show_s
            self.fps = 1.0 / dt if self.fps == 0.0 else 0.9 * self.fps + 0.1 / max(dt, 1e-6)
        self._last_show_s = now
        if self.showing_test_card:
            frame = test_card(self.width, self.height, self.fps, self.caption)
        else:
            frame = fit(rgb, self.width, self.height)
        if self.showing_help:
            frame = help_overlay(frame)
        image = pygame.image.frombuffer(frame, (self.width, self.height), "RGB")  # no copy
        self._surface.blit(image, (0, 0))
        pygame.display.flip()
        self.stats["frames"] += 1

    def poll_quit(self) -> bool:
        """Handle window events; True when the window was closed or quit was pressed."""
        pygame = self._pygame
        quit_requested = False
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                quit_requested = True
            elif event.type == pygame.KEYDOWN:
                action = self._keymap.get(event.key)
                if action == "quit":
                    quit_requested = True
                elif action == "help":
                    self.showing_help = not self.showing_help
                elif action == "test_card":
                    self.showing_test_card = not self.showing_test_card
                elif action == "fullscreen":
                    self.mode = "window" if self.mode == "fullscreen" else "fullscreen"
                    self._set_mode()
                elif action in OPERATOR_ACTIONS:
                    self._actions.append(action)
        return quit_requested

    def take_actions(self) -> list[str]:
        """Operator key actions since the last call (blackout, freeze, next_scene, previous_scene)."""
        actions, self._actions = self._actions, []
        return actions

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
    """Writes what was projected to a fragmented MP4 (MPEG-4 part 2) at the projector frame rate.

    Fragmented: the file is a header followed by self-contained fragments of about `fragment_s`,
    so a crash, a kill -9 or a full disk leaves a file that plays up to its last whole fragment
    (a classic MP4 keeps its index for the end and is unplayable without it). A write that fails
    (no space, a file-size limit) ends the recording, and `failure` says why and when, for the
    exit summary.

    `show` only queues the frame (the same object the projector shows, no copy); a writer thread
    encodes, so a slow encoder never holds up the projector. When the writer falls behind by more
    than `max_queue_mb` of frames the oldest waiting frame is dropped and counted in stats["dropped"].
    """

    def __init__(self, path: Path, fps: float, width: int, height: int, max_queue_mb: float = 128.0,
                 fragment_s: float = 1.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self.width = width - width % 2
        self.height = height - height % 2
        self.name = f"video {self.path.name}"
        self.stats = {"frames": 0, "dropped": 0}
        self.max_queue = max(8, int(max_queue_mb * 1e6 / (3 * max(1, self.width * self.height))))
        self.fragment_s = fragment_s
        self.failure: str | None = None
        """None while every frame reached the file; else one sentence for the exit summary."""
        self._container: Any = None
        self._stream: Any = None
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def open(self) -> None:
        import av
        from fractions import Fraction

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), "w", format="mp4",
                                      options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
            stream = self._container.add_stream("mpeg4", rate=Fraction(self.fps).limit_denominator(1001))
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise OSError(f"cannot write video to {self.path} ({exc})") from None
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.gop_size = max(1, round(self.fps * self.fragment_s))  # a keyframe starts each fragment
        stream.bit_rate = int(max(1_000_000, 0.15 * self.width * self.height * self.fps))
        self._stream = stream
        self.failure = None
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
        import av

        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                rgb = self._queue.popleft()
            if self.failure is not None:
                self.stats["dropped"] += 1
                continue
            try:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(fit(rgb, self.width, self.height)),
                                                   format="rgb24")
            except Exception:  # a bad frame is skipped, the recording goes on
                log.exception("video recorder could not convert a frame")
                continue
            frame.pts = self.stats["frames"]
            try:
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.stats["frames"] += 1
            except (OSError, av.FFmpegError) as exc:  # a full disk: the file so far stays playable
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            at_s = self.stats["frames"] / self.fps if self.fps else 0.0
            self.failure = (f"cut short at {at_s:.1f} s ({getattr(exc, 'strerror', None) or exc}); "
                            f"it plays up to there")
            log.error("video recorder: %s: %s", self.path, self.failure)

    def poll_quit(self) -> bool:
        return False

    def close(self) -> None:
        """Write what is queued, then finish and close the file (failures end up in `failure`)."""
        import av

        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join(timeout=30.0)
            if self._thread.is_alive() and self.failure is None:
                self.failure = "not finished: the writer was still encoding 30 s after the show stopped"
            self._thread = None
        container, self._container = self._container, None
        if container is None:
            return
        try:
            if self.failure is None:
                for packet in self._stream.encode(None):
                    container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
        try:
            container.close()
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
