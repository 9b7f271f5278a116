"""Model families and the one load path: a local diffusers folder becomes `Components`.

A family decides what the engine does differently: the text encoders (one, or two for SDXL with
pooled embeddings and added time ids), the timestep schedule (LCM's boundary conditions, or the
plain x0 prediction of adversarially distilled "turbo" models) and whether guidance is embedded in
the timestep (LCM-distilled UNets) or needs a batched unconditional half.

| family          | base   | recognised by                                                   |
|-----------------|--------|-----------------------------------------------------------------|
| sd15-lcm        | SD1.5  | UNet cross-attention 768 and a guidance embedding (time_cond)   |
| sd15-lcm-lora   | SD1.5  | UNet cross-attention 768, no guidance embedding, render.lora    |
| sd-turbo        | SD2.1  | UNet cross-attention 1024 or linear projections (SD2.x layout)  |
| sdxs-512        | SD2.1/1.5 | a tiny VAE shipped as the model's vae (or vae_large/ beside it) |
| sdxl-turbo      | SDXL   | a second text encoder, UNet addition_embed_type "text_time"     |
| sdxl-lcm-lora   | SDXL   | as sdxl-turbo, with render.lora                                 |
| sdxl-lcm        | SDXL   | as sdxl-turbo, with a guidance embedding                        |

`render.family` overrides the guess. Nothing is downloaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installation.errors import UserError

from .settings import RenderSettings
from .weights import WEIGHTS_DOC, _weight_file


@dataclass(frozen=True)
class Family:
    name: str
    base: str            # "sd15" | "sd21" | "sdxl"
    schedule: str        # "lcm" | "turbo"
    description: str

    @property
    def sdxl(self) -> bool:
        return self.base == "sdxl"


FAMILIES = {f.name: f for f in (
    Family("sd15-lcm", "sd15", "lcm", "SD1.5 LCM-distilled"),
    Family("sd15-lcm-lora", "sd15", "lcm", "SD1.5 + LCM-LoRA"),
    Family("sd15", "sd15", "lcm", "SD1.5 without LCM distillation (set render.lora to the LCM-LoRA)"),
    Family("sd-turbo", "sd21", "turbo", "SD-Turbo (SD2.1 base)"),
    Family("sdxs-512", "sd21", "turbo", "SDXS-512 (one-step, SD2.1 base, tiny VAE)"),
    Family("sdxl-turbo", "sdxl", "turbo", "SDXL-Turbo (two text encoders, added time ids)"),
    Family("sdxl-lcm-lora", "sdxl", "lcm", "SDXL + LCM-LoRA (two text encoders, added time ids)"),
    Family("sdxl-lcm", "sdxl", "lcm", "SDXL LCM-distilled (two text encoders, added time ids)"),
)}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def detect_family(folder: Path, lora: str = "", override: str = "auto") -> Family:
    """The family of a diffusers folder, from its configs alone (no weights are read)."""
    if override and override != "auto":
        if override not in FAMILIES:
            raise UserError(f"render.family = {override!r} is not a known family; use auto or one of "
                            f"{', '.join(FAMILIES)}.")
        return FAMILIES[override]
    unet = _json(folder / "unet" / "config.json")
    index = _json(folder / "model_index.json")
    cross = unet.get("cross_attention_dim", 768)
    cross = cross[0] if isinstance(cross, list) else cross
    lcm_embedded = bool(unet.get("time_cond_proj_dim"))
    has_lora = bool(lora.strip())
    sdxl = unet.get("addition_embed_type") == "text_time" or bool((index.get("text_encoder_2") or [None])[0]) \
        or (folder / "text_encoder_2").is_dir()
    if sdxl:
        if lcm_embedded:
            return FAMILIES["sdxl-lcm"]
        return FAMILIES["sdxl-lcm-lora" if has_lora else "sdxl-turbo"]
    # SDXS ships its distilled tiny VAE as the model's own vae (and the full one as vae_large).
    vae_class = (index.get("vae") or [None, None])[1] or _json(folder / "vae" / "config.json").get("_class_name")
    if not lcm_embedded and (vae_class == "AutoencoderTiny" or (folder / "vae_large").is_dir()
                             or "sdxs" in folder.name.lower()):
        return FAMILIES["sdxs-512"]
    if cross >= 1024 or unet.get("use_linear_projection"):       # SD2.x: OpenCLIP-H, linear projections
        return FAMILIES["sd-turbo"]
    if lcm_embedded:
        return FAMILIES["sd15-lcm"]
    return FAMILIES["sd15-lcm-lora" if has_lora else "sd15"]


@dataclass
class Components:
    family: Family
    unet: Any  # diffusers and transformers modules: untyped libraries
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    controlnet: Any = None


def load_vae(folder: Path, dtype, variant: str | None = None, subfolder: str | None = None):
    from diffusers import AutoencoderKL, AutoencoderTiny

    config_path = folder / subfolder / "config.json" if subfolder else folder / "config.json"
    class_name = _json(config_path).get("_class_name", "AutoencoderKL")
    cls = AutoencoderTiny if class_name == "AutoencoderTiny" else AutoencoderKL
    return cls.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True, variant=variant)


def load_components(path: Path, family: Family, dtype, vae_folder: str = "", controlnet: str = "") -> Components:
    """The one load path for every family: UNet, VAE (or the given tiny VAE), text encoder(s),
    tokenizer(s), scheduler config and an optional ControlNet, all from local files."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    _, unet_variant = _weight_file(path / "unet", "unet")
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, local_files_only=True,
                                                variant=unet_variant)
    _, text_variant = _weight_file(path / "text_encoder", "text_encoder")
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=dtype, local_files_only=True,
                                                 variant=text_variant)
    tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
    text_encoder_2 = tokenizer_2 = None
    if family.sdxl:
        _, variant_2 = _weight_file(path / "text_encoder_2", "text_encoder_2")
        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(path / "text_encoder_2", dtype=dtype,
                                                                     local_files_only=True, variant=variant_2)
        tokenizer_2 = CLIPTokenizer.from_pretrained(path / "tokenizer_2", local_files_only=True)
    if vae_folder:
        folder = Path(vae_folder).expanduser()
        vae = load_vae(folder, dtype, variant=_weight_file(folder, "vae")[1])
    else:
        _, vae_variant = _weight_file(path / "vae", "vae")
        vae = load_vae(path, dtype, variant=vae_variant, subfolder="vae")
    scheduler_config = _json(path / "scheduler" / "scheduler_config.json")
    net = None
    if controlnet:
        from diffusers import ControlNetModel

        folder = Path(controlnet).expanduser()
        net = ControlNetModel.from_pretrained(folder, torch_dtype=dtype, local_files_only=True,
                                              variant=_weight_file(folder, "controlnet")[1])
    return Components(family, unet, vae, text_encoder, tokenizer, scheduler_config, text_encoder_2, tokenizer_2, net)


def describe_model(settings: RenderSettings) -> str:
    """What `check` prints about the configured diffusion model: family, lag, options."""
    if not settings.model:
        return "none configured (render.model); procedural visuals"
    path = Path(settings.model).expanduser()
    if not path.is_dir():
        return f"single-file checkpoint {path.name} (loaded as SD1.5)"
    try:
        family = detect_family(path, settings.lora, settings.family)
    except UserError as exc:
        return str(exc).rstrip(".")
    lag = frames_of_lag(settings.steps, settings.stream_batch)
    parts = [f"family {family.name} ({family.description})", f"{settings.steps} step(s)",
             f"stream batch {'on' if settings.stream_batch else 'off'}: {lag} frame(s) of lag"]
    if settings.controlnet:
        parts.append(f"ControlNet from {settings.controlnet_source}")
    if settings.loras:
        parts.append(f"{len(settings.loras)} runtime LoRA(s)")
    return "; ".join(parts)


def frames_of_lag(steps: int, stream_batch: bool) -> int:
    """With stream batch a frame leaves the UNet batch `steps - 1` frames after its picture went in."""
    return max(0, int(steps) - 1) if stream_batch else 0


def not_loadable(path: Path, family: Family, exc: Exception) -> UserError:
    return UserError(f"render.model {path} does not load as {family.description} ({type(exc).__name__}: "
                     f"{short_error(exc)}); check render.family and download it again as {WEIGHTS_DOC} describes.")


def short_error(exc: Exception) -> str:
    """A library's error on one line, at most 160 characters."""
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")
