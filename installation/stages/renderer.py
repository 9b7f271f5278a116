"""The renderer stage: latest caption and music state in, frames out at the display rate."""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Sequence

from installation.bus import LiveSnapshot
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import Caption, Frame, MusicState
from installation.stages.base import Stage, VersionWatch
from models.renderer import Renderer


NEW_FPS_WINDOW_S = 2.0
"""Seconds over which new diffusion frames a second are counted."""


class NewFrameRate:
    """New frames a second over the last `window_s`, from a counter that grows only on new frames
    (a held or skipped frame does not count). Fed and read on one thread; `fps` is a plain float."""

    def __init__(self, window_s: float = NEW_FPS_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self.fps = 0.0

    def add(self, t_s: float, count: int) -> float:
        samples = self._samples
        samples.append((t_s, count))
        while len(samples) > 2 and t_s - samples[0][0] > self.window_s + 1e-6:
            samples.popleft()
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        self.fps = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
        return self.fps


class RendererStage(Stage):
    """Renders a frame every `1/fps` seconds through a chain of renderers (models.renderer.Renderer):
    the first is the source (procedural), each next one transforms the picture (diffusion).

    Visual time runs at the operators' speed, applied here and only here (LiveSnapshot.speed);
    the beat stays in music time. `display_size()` gives the projector window's (width, height),
    or None headless: frames are scaled for it on this thread, never on the projector's.
    While `dormant` is set (closed hours) nothing is rendered.
    """

    name = "renderer"

    def __init__(self, renderers: Sequence[Renderer], music: Latest[MusicState], captions: Latest[Caption],
                 scene: Latest, live: Latest[LiveSnapshot], frames: Latest[Frame], clock: Clock, fps: float,
                 dormant: threading.Event | None = None,
                 display_size: Callable[[], tuple[int, int] | None] = lambda: None,
                 fit: Callable | None = None, camera: Latest | None = None, nice: int = 0) -> None:
        super().__init__(clock)
        self.nice = nice
        self.renderers = list(renderers)
        self.camera = camera
        """The newest camera picture, for a pass that takes structure from it (ControlNet)."""
        self.music = music
        self.captions = captions
        self.scene = VersionWatch(scene, seen=-1)
        self.live = live
        self.frames = frames
        self.period_s = 1.0 / fps
        self.dormant = dormant or threading.Event()
        self.display_size = display_size
        self.fit = fit
        self.index = 0
        self.next_s = 0.0
        self.last_s: float | None = None
        self.visual_s = 0.0
        self.new_frames = NewFrameRate()
        """New diffusion frames a second: the projector's fps counts held frames too."""

    def _diffusion(self):
        return next((r for r in self.renderers[1:] if hasattr(r, "status") and hasattr(r, "stats")), None)

    def status(self) -> dict:
        """For /status, any thread: the procedural layer's composition of its last frame, the
        diffusion pass's own figures (family, lag, frames) and `diffusion_new_fps`, the new
        diffusion frames a second apart from the projector's refresh."""
        out: dict = {}
        composition = getattr(self.renderers[0], "composition", None)
        if composition is not None:   # the procedural layer's last frame: families at full strength, parts
            out["composition"] = dict(composition)
        for renderer in self.renderers[1:]:
            if hasattr(renderer, "status"):
                out.update(diffusion=renderer.status(), diffusion_new_fps=round(self.new_frames.fps, 2))
                break
        return out

    @property
    def source(self) -> str:
        return getattr(self.renderers[-1], "name", "procedural")

    def step(self) -> None:
        if self.dormant.is_set():
            self.wait_until(self.clock.now_s() + 0.25)
            return
        now_s = self.clock.now_s()
        if self.scene.changed():
            scene = self.scene.box.peek()
            for renderer in self.renderers:
                renderer.prepare(scene)
        caption = self.captions.take(timeout_s=0)
        if caption is not None:
            for renderer in self.renderers:
                renderer.update_prompt(caption)
        music = self.music.peek() or MusicState(t_s=now_s)
        live = self.live.peek()
        speed = live.speed if live is not None else 1.0
        for renderer in self.renderers[1:]:
            if live is not None and hasattr(renderer, "apply_params"):
                renderer.apply_params(live.params)   # LoRA weights, ControlNet strength
            if self.camera is not None and hasattr(renderer, "set_camera_frame"):
                renderer.set_camera_frame(self.camera.peek())
        if self.last_s is not None:
            self.visual_s += (now_s - self.last_s) * speed
        self.last_s = now_s
        started = time.perf_counter()
        rgb = self.renderers[0].render(music, self.visual_s)
        for renderer in self.renderers[1:]:
            rgb = renderer.render(music, self.visual_s, rgb)
        self.index += 1
        diffusion = self._diffusion()
        if diffusion is not None:
            self.new_frames.add(now_s, diffusion.stats.frames)
        size = self.display_size()
        display_rgb = None
        if size is not None and self.fit is not None and (rgb.shape[1], rgb.shape[0]) != size:
            display_rgb = self.fit(rgb, *size)
        self.frames.put(Frame(now_s, rgb, self.index, self.source, (time.perf_counter() - started) * 1e3,
                              display_rgb))
        self.next_s = max(self.next_s + self.period_s, now_s)
        self.wait_until(self.next_s)
