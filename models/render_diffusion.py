"""Streaming diffusion: the implementation lives in models/diffusion/; these names stay importable here."""
from models.diffusion import (FAMILIES, WEIGHTS_DOC, DiffusionRenderer, DiffusionStats, add_lora,  # noqa: F401
                              check_weights, describe_model, detect_family, frames_of_lag, live_param_specs,
                              load_diffusion_renderer, pick_device, pick_dtype, safetensors_problem, slerp)
