"""What the video-out wing is told at its door, built by installation.config
(`VideoOutConfig.settings()`) from the validated [video_out] section, whose defaults these are
(a test compares them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoOutSettings:
    """Which frame streams leave the machine besides the projector, and at what rate."""

    ndi: bool = False
    ndi_name: str = "Chromesthesia"
    virtual_camera: bool = False
    virtual_camera_device: str = ""
    required: bool = False
    """True: a sink that cannot open stops the start with one sentence; False: a warning."""
    fps: float = 0.0
    """0 sends every projected frame."""
