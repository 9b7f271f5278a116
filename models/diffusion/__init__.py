"""Streaming diffusion over the procedural layer: families, stream batch, ControlNet, runtime LoRAs.

weights.py   which file is missing or damaged (one sentence each)
families.py  which family a folder is, and the one load path for all of them
schedule.py  timestep plans and their constants, worked out once on the host
engine.py    device buffers and the frame's forward pass (eager or a CUDA graph)
renderer.py  the Renderer: prompts and their blends, strength, skip, last good frame
load.py      configured weights -> a renderer; LCM-LoRA fusion; runtime LoRAs
syncs.py     counting host-device synchronisations per frame
"""
from .families import FAMILIES, describe_model, detect_family, frames_of_lag
from .load import add_lora, live_param_specs, load_diffusion_renderer, pick_device, pick_dtype
from .renderer import DiffusionRenderer, DiffusionStats, slerp
from .weights import WEIGHTS_DOC, check_weights, safetensors_problem

__all__ = ["FAMILIES", "DiffusionRenderer", "DiffusionStats", "WEIGHTS_DOC", "add_lora", "check_weights",
           "describe_model", "detect_family", "frames_of_lag", "live_param_specs", "load_diffusion_renderer",
           "pick_device", "pick_dtype", "safetensors_problem", "slerp"]
