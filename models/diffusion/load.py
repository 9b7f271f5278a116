"""`load_diffusion_renderer(settings)`: configured weights -> a DiffusionRenderer.

One path for every family: check the files (one sentence per problem), name the family, load the
components, fuse an LCM-LoRA (`render.lora`), attach runtime LoRAs (`render.loras`) as peft adapters
whose weights operators change live, and build the renderer with the configured options.
"""
from __future__ import annotations

from pathlib import Path

from installation.errors import UserError

from .families import FAMILIES, Family, detect_family, load_components, not_loadable, short_error
from .loras import fuse_lora, lora_name
from .renderer import DiffusionRenderer
from .settings import RenderSettings
from .weights import SINGLE_FILE_SUFFIXES, WEIGHTS_DOC, check_weights, split_lora_entry

DTYPES = {"float16": "float16", "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16", "float32": "float32"}


def pick_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("render.device = \"cuda\" but torch sees no CUDA GPU; set render.device = \"auto\" or \"cpu\".")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def pick_dtype(name: str, device: str):
    import torch

    if name in ("", "auto"):
        return torch.float16 if device == "cuda" else torch.float32
    if name not in DTYPES:
        raise UserError(f"render.dtype = {name!r}; use auto, float16, bfloat16 or float32.")
    return getattr(torch, DTYPES[name])


def load_diffusion_renderer(settings: RenderSettings) -> DiffusionRenderer:
    """Load the configured weights; UserError with one sentence when they are absent, partial,
    corrupt or of another architecture (the caller then falls back to procedural visuals)."""
    if not settings.model:
        raise UserError(f"render.model is empty, so there is no diffusion model; fetch one as {WEIGHTS_DOC} "
                        f"describes, or set render.backend = \"procedural\".")
    problems = check_weights(settings)
    if problems:
        raise UserError(problems[0])
    import torch  # noqa: F401

    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    path = Path(settings.model).expanduser()
    if path.is_file():
        family = FAMILIES["sd15-lcm-lora" if settings.lora else "sd15"]
        components = _load_single_file(path, family, dtype, settings.vae)
    else:
        family = detect_family(path, settings.lora, settings.family)
        try:
            components = load_components(path, family, dtype, settings.vae, settings.controlnet)
        except UserError:
            raise
        except Exception as exc:  # diffusers/transformers/torch raise many kinds for one bad file
            raise not_loadable(path, family, exc) from None
    if settings.lora:
        fuse_lora(Path(settings.lora).expanduser(), components.unet, family)
    renderer = DiffusionRenderer(
        components.unet, components.vae, components.text_encoder, components.tokenizer,
        components.scheduler_config, settings, device=device, dtype=dtype, family=family,
        text_encoder_2=components.text_encoder_2, tokenizer_2=components.tokenizer_2,
        controlnet=components.controlnet)
    for entry in settings.loras:
        lora_path, weight = split_lora_entry(entry)
        renderer.loras.add(lora_path, weight)
    return renderer


def _load_single_file(path: Path, family: Family, dtype, vae: str):
    from diffusers import StableDiffusionPipeline

    from .families import Components, load_vae

    if path.suffix not in SINGLE_FILE_SUFFIXES:
        raise UserError(f"render.model: {path} is not a .safetensors/.ckpt checkpoint.")
    try:
        pipe = StableDiffusionPipeline.from_single_file(str(path), torch_dtype=dtype, local_files_only=True,
                                                        safety_checker=None, requires_safety_checker=False)
    except Exception as exc:
        raise UserError(f"render.model {path} is a single-file checkpoint that does not load offline "
                        f"({type(exc).__name__}: {short_error(exc)}); use a diffusers folder instead as {WEIGHTS_DOC} "
                        f"describes.") from None
    own_vae = load_vae(Path(vae).expanduser(), dtype) if vae else pipe.vae
    return Components(family, pipe.unet, own_vae, pipe.text_encoder, pipe.tokenizer, dict(pipe.scheduler.config))


def live_param_specs(settings: RenderSettings) -> dict[str, tuple[float, float, float, str]]:
    """Live parameters the diffusion renderer reads: key -> (low, high, default, doc). Operators set
    them as /param/lora/<name> and /param/controlnet/strength."""
    specs: dict[str, tuple[float, float, float, str]] = {}
    for entry in settings.loras:
        path, weight = split_lora_entry(entry)
        specs[f"lora.{lora_name(path)}"] = (0.0, 2.0, weight, f"weight of the LoRA {path.name}")
    if settings.controlnet:
        specs["controlnet.strength"] = (0.0, 2.0, float(settings.controlnet_strength),
                                        "ControlNet conditioning strength")
    return specs
