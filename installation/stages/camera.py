"""The camera (capture) stage: the camera device in, raw frames out at the camera's rate."""
from __future__ import annotations

import numpy as np

from hardware.base import Camera
from hardware.timeouts import call_abandoning
from installation.clock import Clock
from installation.mailbox import Latest
from installation.stages.base import Stage


class CameraStage(Stage):
    """Reads the camera (hardware.base.Camera) every `1/fps` seconds; a camera that lost its
    device holds its last frame or returns None, and the stage goes on."""

    name = "camera"

    def __init__(self, camera: Camera, camera_frames: Latest[np.ndarray], clock: Clock, fps: float) -> None:
        super().__init__(clock)
        self.camera = camera
        self.camera_frames = camera_frames
        self.period_s = 1.0 / fps
        self.next_s = 0.0

    @property
    def health(self):
        """The camera's hardware.recovery.DeviceHealth, None for a camera without one (photos, a file)."""
        return getattr(self.camera, "health", None)

    def open(self) -> None:
        self.camera.open()

    def close(self) -> None:
        call_abandoning(self.camera.close, 1.0, "closing the camera")  # a driver may hang on a gone device

    def step(self) -> None:
        rgb = self.camera.read()
        if rgb is not None:
            self.camera_frames.put(rgb)
        self.next_s = max(self.next_s + self.period_s, self.clock.now_s())
        self.wait_until(self.next_s)
