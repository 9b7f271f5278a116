"""`load_diffusion_renderer(render_cfg, width, height)`: configured weights -> a DiffusionRenderer.

One path for every family: check the files (one sentence per problem), name the family, load the
components, fuse an LCM-LoRA (`render.lora`), attach runtime LoRAs (`render.loras`) as peft adapters
whose weights operators change live, and build the renderer with the configured options.
"""
from __future__ import annotations

import re
from pathlib import Path

from installation.errors import UserError

from .families import FAMILIES, Family, detect_family, load_components, not_loadable
from .renderer import DiffusionRenderer, _base
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


def check_size(width: int, height: int) -> None:
    if width % 8 or height % 8:
        raise UserError(f"render.width and render.height must be multiples of 8 for diffusion (got "
                        f"{width}x{height}); 512x512, 1024x576 and 1280x720 work.")


def load_diffusion_renderer(render_cfg, width: int, height: int) -> DiffusionRenderer:
    """Load the configured weights; UserError with one sentence when they are absent, partial,
    corrupt or of another architecture (the caller then falls back to procedural visuals)."""
    model = (getattr(render_cfg, "model", "") or "").strip()
    if not model:
        raise UserError(f"render.model is empty, so there is no diffusion model; fetch one as {WEIGHTS_DOC} "
                        f"describes, or set render.backend = \"procedural\".")
    problems = check_weights(render_cfg)
    if problems:
        raise UserError(problems[0])
    import torch  # noqa: F401

    device = pick_device(getattr(render_cfg, "device", "auto"))
    dtype = pick_dtype(getattr(render_cfg, "dtype", "auto"), device)
    path = Path(model).expanduser()
    lora = (getattr(render_cfg, "lora", "") or "").strip()
    vae = (getattr(render_cfg, "vae", "") or "").strip()
    controlnet = (getattr(render_cfg, "controlnet", "") or "").strip()
    if path.is_file():
        family = FAMILIES["sd15-lcm-lora" if lora else "sd15"]
        components = _load_single_file(path, family, dtype, vae)
    else:
        family = detect_family(path, lora, getattr(render_cfg, "family", "auto"))
        try:
            components = load_components(path, family, dtype, vae, controlnet)
        except UserError:
            raise
        except Exception as exc:  # diffusers/transformers/torch raise many kinds for one bad file
            raise not_loadable(path, family, exc) from None
    if lora:
        fuse_lora(Path(lora).expanduser(), components.unet, family)
    renderer = DiffusionRenderer(
        components.unet, components.vae, components.text_encoder, components.tokenizer,
        components.scheduler_config, width=width, height=height, steps=render_cfg.steps,
        guidance=render_cfg.guidance, device=device, dtype=dtype, similarity_skip=render_cfg.similarity_skip,
        seed=render_cfg.seed, family=family, stream_batch=bool(getattr(render_cfg, "stream_batch", False)),
        text_encoder_2=components.text_encoder_2, tokenizer_2=components.tokenizer_2,
        controlnet=components.controlnet, controlnet_source=getattr(render_cfg, "controlnet_source", "edges"),
        controlnet_strength=float(getattr(render_cfg, "controlnet_strength", 1.0)),
        cuda_graphs=bool(getattr(render_cfg, "cuda_graphs", False)),
        compile_unet=bool(getattr(render_cfg, "compile", False)),
        compile_mode=getattr(render_cfg, "compile_mode", "reduce-overhead"),
        tensorrt=bool(getattr(render_cfg, "tensorrt", False)))
    for entry in getattr(render_cfg, "loras", ()) or ():
        lora_path, weight = split_lora_entry(entry)
        add_lora(renderer, lora_path, weight)
    return renderer


def lora_name(path: Path) -> str:
    """The OSC name of a LoRA file: its stem in lower case, other characters as underscores."""
    return re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "lora"


def _mixin(family: Family):
    from diffusers.loaders import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin

    return StableDiffusionXLLoraLoaderMixin if family.sdxl else StableDiffusionLoraLoaderMixin


def _read_lora(path: Path, unet, family: Family, adapter: str) -> None:
    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError("LoRAs need the 'peft' package; install it with `.venv/bin/pip install peft`.") from None
    mixin = _mixin(family)
    state, alphas = mixin.lora_state_dict(str(path), unet_config=unet.config)
    state = {k: v for k, v in state.items() if not k.startswith(("text_encoder", "lora_te"))}
    if not state:
        raise ValueError("no UNet weights in the file")
    mixin.load_lora_into_unet(state, alphas, unet=unet, adapter_name=adapter)


def fuse_lora(path: Path, unet, family: Family) -> None:
    """Fuse an LCM-LoRA into the UNet's weights and drop the adapter layers: no cost per frame."""
    try:
        _read_lora(path, unet, family, "lcm")
        unet.fuse_lora(lora_scale=1.0, adapter_names=["lcm"])
        unet.unload_lora()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"render.lora {path} does not apply to this model ({type(exc).__name__}: {_short(exc)}); "
                        f"use the LCM-LoRA for {family.base.upper()} as {WEIGHTS_DOC} describes.") from None


def add_lora(renderer: DiffusionRenderer, path: Path, weight: float = 1.0) -> str:
    """Attach a LoRA as a peft adapter with a live weight (`/param/lora/<name>`); returns its name."""
    name = lora_name(path)
    if name in renderer._lora_weights:
        raise UserError(f"render.loras: two LoRA files are both called {name!r}; rename one.")
    unet = _base(renderer.unet)
    try:
        _read_lora(path, unet, renderer.family, name)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"render.loras: {path} does not apply to this model ({type(exc).__name__}: "
                        f"{_short(exc)}); use a LoRA trained for {renderer.family.base.upper()}.") from None
    renderer._lora_weights[name] = float(weight)
    unet.set_adapters(list(renderer._lora_weights), weights=list(renderer._lora_weights.values()))
    renderer.engine.invalidate_graph()
    return name


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
                        f"({type(exc).__name__}: {_short(exc)}); use a diffusers folder instead as {WEIGHTS_DOC} "
                        f"describes.") from None
    own_vae = load_vae(Path(vae).expanduser(), dtype) if vae else pipe.vae
    return Components(family, pipe.unet, own_vae, pipe.text_encoder, pipe.tokenizer, dict(pipe.scheduler.config))


def live_param_specs(render_cfg) -> dict[str, tuple[float, float, float, str]]:
    """Live parameters the diffusion renderer reads: key -> (low, high, default, doc). Operators set
    them as /param/lora/<name> and /param/controlnet/strength."""
    specs: dict[str, tuple[float, float, float, str]] = {}
    for entry in getattr(render_cfg, "loras", ()) or ():
        path, weight = split_lora_entry(entry)
        specs[f"lora.{lora_name(path)}"] = (0.0, 2.0, weight, f"weight of the LoRA {path.name}")
    if (getattr(render_cfg, "controlnet", "") or "").strip():
        specs["controlnet.strength"] = (0.0, 2.0, float(getattr(render_cfg, "controlnet_strength", 1.0)),
                                        "ControlNet conditioning strength")
    return specs


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")
