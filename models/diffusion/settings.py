"""The diffusion wing's door: the `[render]` options it reads, typed and frozen.

Built once by installation.config (`RenderConfig.settings()`) from the validated section, so the
defaults live there alone; a caller that renders at another size or without the skip uses
`dataclasses.replace`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderSettings:
    """What the loader, the weight check and the renderer take. Paths are "" when unset."""

    width: int
    height: int
    seed: int
    model: str
    vae: str
    lora: str
    """The LCM-LoRA fused into the UNet's weights."""
    loras: tuple[str, ...]
    """Runtime LoRAs, "path" or "path:weight", whose weights operators change live."""
    family: str
    """"auto" or a name in models.diffusion.families.FAMILIES."""
    controlnet: str
    controlnet_source: str
    controlnet_strength: float
    steps: int
    guidance: float
    similarity_skip: float
    device: str
    """"auto", "cuda" or "cpu"; the loader resolves it."""
    dtype: str
    """"auto", "float16", "bfloat16" or "float32"; the loader resolves it."""
    stream_batch: bool
    cuda_graphs: bool
    compile: bool
    compile_mode: str
    tensorrt: bool
