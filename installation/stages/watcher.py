"""The watcher stage: camera frames in, image states out; and the critic's eye on the projector."""
from __future__ import annotations

import numpy as np

from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import ImageState
from installation.stages.base import Stage
from models.seeing import ImageAnalyser, ImageVaHead


class WatcherStage(Stage):
    """Analyses the newest camera frame a few times a second (`analyser.analyse(rgb, t_s)`), and
    rates what the projector shows (`image_va.estimate(rgb) -> (v, a, confidence)`) for the
    captioner's critic. The image VA model (CLIP included) runs here, never on the main thread."""

    name = "watcher"

    def __init__(self, analyser: ImageAnalyser, image_va: ImageVaHead, camera_frames: Latest[np.ndarray],
                 projected_frames: Latest[np.ndarray], images: Latest[ImageState],
                 projected_va: Latest[tuple[float, float]], clock: Clock, rate_hz: float,
                 critic_va: ImageVaHead | None = None) -> None:
        super().__init__(clock)
        self.analyser = analyser
        self.image_va = image_va
        self.critic_va = critic_va if critic_va is not None else image_va
        """Rates the projection for the critic: the CLIP head when its weights are there (caption_critic)."""
        self.camera_frames = camera_frames
        self.projected_frames = projected_frames
        self.images = images
        self.projected_va = projected_va
        self.period_s = 1.0 / rate_hz
        self.next_s = 0.0
        self.last_projected_va = (0.0, 0.0)
        """Rounded, for the status."""

    def step(self) -> None:
        rgb = self.camera_frames.take(timeout_s=self.period_s)
        if rgb is not None:
            self.images.put(self.analyser.analyse(rgb, self.clock.now_s()))
        projected = self.projected_frames.take(timeout_s=0)
        if projected is not None:
            v, a, _ = self.critic_va.estimate(projected)
            self.projected_va.put((v, a))
            self.last_projected_va = (round(v, 3), round(a, 3))
        self.next_s = max(self.next_s + self.period_s, self.clock.now_s())
        self.wait_until(self.next_s)
