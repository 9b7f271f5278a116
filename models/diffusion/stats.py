"""The diffusion pass's counters: what the status line, /status and the benchmark read."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiffusionStats:
    """Counters the status line and the benchmark read; written by the renderer thread only."""

    frames: int = 0
    skipped: int = 0
    filling: int = 0
    unet_calls: int = 0
    controlnet_calls: int = 0
    text_encoder_calls: int = 0
    vae_encode_calls: int = 0
    vae_decode_calls: int = 0
    bad_frames: int = 0
    errors: int = 0
    step_downs: int = 0
    lora_changes: int = 0
    frames_of_lag: int = 0
    last_render_ms: float = 0.0
    last_strength: float = 0.0

    def count_run(self, unet_calls: int, controlnet: bool) -> None:
        """One pass of the engine: its UNet (and ControlNet) calls, one VAE encode and one decode."""
        self.unet_calls += unet_calls
        self.controlnet_calls += unet_calls if controlnet else 0
        self.vae_encode_calls += 1
        self.vae_decode_calls += 1
