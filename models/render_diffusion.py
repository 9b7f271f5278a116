"""Streaming latent-consistency img2img on diffusers: prepare / update_prompt / render.

One instance belongs to the renderer thread, which owns the GPU. Each frame takes the procedural
layer's picture as init image, so the pictures pulse with the music, and runs `steps` LCM steps:

- the text encoder runs only in `update_prompt`; embeddings slerp from the old caption to the new
  over the caption's transition time, so a prompt change blends instead of jumping;
- the noise is drawn once per seed and reused every frame, and each frame's init latents lean on
  the previous frame's result (`feedback`): no per-frame fresh noise, no flicker;
- img2img strength follows arousal and the beat; guidance <= 1 means one UNet call per step (LCM
  models embed guidance in the timestep instead, still one call), guidance > 1 on a model without
  guidance embedding batches unconditional and conditional into that one call;
- a similarity skip (after StreamDiffusion's similarity filter) returns the last frame when the
  init picture barely changed;
- a frame with NaN or a black frame is never returned: the last good frame is.

Loading (`load_diffusion_renderer`) reads a local diffusers folder or a single-file checkpoint, an
optional tiny VAE and an optional LCM-LoRA; `check_weights` says which file is missing and how to
get it. Nothing is downloaded.
"""
from __future__ import annotations

import json
import logging
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from installation.errors import UserError
from installation.records import Caption, MusicState, clamp_va

log = logging.getLogger(__name__)

WEIGHTS_DOC = "docs/weights.md"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
SIMILARITY_SIDE_PX = 32


@dataclass
class DiffusionStats:
    """Counters the status line and the benchmark read; written by the renderer thread only."""

    frames: int = 0
    skipped: int = 0
    unet_calls: int = 0
    text_encoder_calls: int = 0
    vae_encode_calls: int = 0
    vae_decode_calls: int = 0
    bad_frames: int = 0
    errors: int = 0
    step_downs: int = 0
    last_render_ms: float = 0.0
    last_strength: float = 0.0


# --- checking weights on disk ---------------------------------------------------------------------
def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is unusable (truncated, not safetensors), or None when its header and
    size agree. Reads only the header, so a 3 GB file is checked in microseconds."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path} is empty or truncated ({size} bytes)"
            (header_len,) = struct.unpack("<Q", head)
            if header_len <= 0 or header_len > 100_000_000:
                return f"{path} is not a safetensors file (bad header length)"
            if header_len > size - 8:
                return f"{path} is truncated or corrupt (its header alone needs {8 + header_len} bytes, the file has {size})"
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read as safetensors ({type(exc).__name__})"
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        return f"{path} is truncated or corrupt (its header promises {8 + header_len + end} bytes, the file has {size})"
    return None


def _weight_file(folder: Path, component: str) -> tuple[Path | None, str | None]:
    """(weight file, variant) found in a component folder; sharded indexes count as present."""
    for variant in (None, "fp16"):
        for name in WEIGHT_NAMES[component]:
            if variant:
                stem, dot, ext = name.partition(".")
                name = f"{stem}.{variant}.{ext}"
            for candidate in (folder / name, folder / f"{name}.index.json"):
                if candidate.is_file():
                    return candidate, variant
    return None, None


def _file_problem(path: Path) -> str | None:
    if path.name.endswith(".index.json"):
        try:
            shards = set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError) as exc:
            return f"{path} is not a readable shard index ({type(exc).__name__})"
        for shard in sorted(shards):
            shard_path = path.parent / shard
            if not shard_path.is_file():
                return f"{shard_path} is missing (listed in {path.name})"
            problem = _file_problem(shard_path)
            if problem:
                return problem
        return None
    if path.stat().st_size == 0:
        return f"{path} is empty"
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".bin", ".ckpt", ".pt"):
        import zipfile

        if not zipfile.is_zipfile(path):
            return f"{path} is truncated or not a PyTorch checkpoint"
    return None


def _folder_problems(folder: Path, components: tuple[str, ...], key: str) -> list[str]:
    problems: list[str] = []
    for component in components:
        sub = folder / component
        if component == "tokenizer":
            if not ((sub / "tokenizer.json").is_file() or ((sub / "vocab.json").is_file() and (sub / "merges.txt").is_file())):
                problems.append(f"{key}: {sub} has no tokenizer (vocab.json + merges.txt or tokenizer.json); "
                                f"download the model's tokenizer/ folder as {WEIGHTS_DOC} describes.")
            continue
        config_name = "scheduler_config.json" if component == "scheduler" else "config.json"
        if not (sub / config_name).is_file():
            problems.append(f"{key}: {sub / config_name} is missing; download the model's {component}/ folder "
                            f"as {WEIGHTS_DOC} describes.")
            continue
        if component == "scheduler":
            continue
        weights, _ = _weight_file(sub, component)
        if weights is None:
            problems.append(f"{key}: {sub} has no weights ({' or '.join(WEIGHT_NAMES[component])}); download them "
                            f"as {WEIGHTS_DOC} describes.")
            continue
        problem = _file_problem(weights)
        if problem:
            problems.append(f"{key}: {problem}; download it again as {WEIGHTS_DOC} describes.")
    return problems


def check_weights(render_cfg) -> list[str]:
    """One sentence per problem with the configured weights; [] when no model is configured or all
    files are there and intact (headers and sizes; loading can still fail on a wrong architecture)."""
    model = (getattr(render_cfg, "model", "") or "").strip()
    if not model:
        return []
    problems: list[str] = []
    path = Path(model).expanduser()
    if not path.exists():
        problems.append(f"render.model: {path} does not exist; fetch an LCM model as {WEIGHTS_DOC} describes, "
                        f"or set render.model = \"\" to run on procedural visuals.")
    elif path.is_file():
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            problems.append(f"render.model: {path} is neither a diffusers folder nor a .safetensors/.ckpt checkpoint; "
                            f"point it at one as {WEIGHTS_DOC} describes.")
        else:
            problem = _file_problem(path)
            if problem:
                problems.append(f"render.model: {problem}; download it again as {WEIGHTS_DOC} describes.")
    else:
        if not (path / "model_index.json").is_file():
            problems.append(f"render.model: {path / 'model_index.json'} is missing, so {path} is not a diffusers "
                            f"folder; download the whole model folder as {WEIGHTS_DOC} describes.")
        own_vae = not (getattr(render_cfg, "vae", "") or "").strip()
        components = COMPONENTS if own_vae else tuple(c for c in COMPONENTS if c != "vae")
        problems.extend(_folder_problems(path, components, "render.model"))
    vae = (getattr(render_cfg, "vae", "") or "").strip()
    if vae:
        vae_path = Path(vae).expanduser()
        if not vae_path.is_dir():
            problems.append(f"render.vae: {vae_path} is not a folder; download a tiny VAE (madebyollin/taesd) as "
                            f"{WEIGHTS_DOC} describes, or set render.vae = \"\".")
        else:
            problems.extend(p.replace(f"{vae_path / 'vae'}", str(vae_path))
                            for p in _vae_folder_problems(vae_path))
    lora = (getattr(render_cfg, "lora", "") or "").strip()
    if lora:
        lora_path = Path(lora).expanduser()
        if not lora_path.is_file():
            problems.append(f"render.lora: {lora_path} does not exist; download the LCM-LoRA file as {WEIGHTS_DOC} "
                            f"describes, or set render.lora = \"\".")
        else:
            problem = _file_problem(lora_path)
            if problem:
                problems.append(f"render.lora: {problem}; download it again as {WEIGHTS_DOC} describes.")
    return problems


def _vae_folder_problems(folder: Path) -> list[str]:
    if not (folder / "config.json").is_file():
        return [f"render.vae: {folder / 'config.json'} is missing; download the tiny VAE folder as {WEIGHTS_DOC} describes."]
    weights, _ = _weight_file(folder, "vae")
    if weights is None:
        return [f"render.vae: {folder} has no diffusion_pytorch_model.safetensors; download it as {WEIGHTS_DOC} describes."]
    problem = _file_problem(weights)
    return [f"render.vae: {problem}; download it again as {WEIGHTS_DOC} describes."] if problem else []


# --- loading --------------------------------------------------------------------------------------
def pick_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("render.device = \"cuda\" but torch sees no CUDA GPU; set render.device = \"auto\" or \"cpu\".")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _load_vae(folder: Path, dtype, variant: str | None = None, subfolder: str | None = None):
    from diffusers import AutoencoderKL, AutoencoderTiny

    config_path = folder / subfolder / "config.json" if subfolder else folder / "config.json"
    class_name = json.loads(config_path.read_text(encoding="utf-8")).get("_class_name", "AutoencoderKL")
    cls = AutoencoderTiny if class_name == "AutoencoderTiny" else AutoencoderKL
    return cls.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True, variant=variant)


def load_diffusion_renderer(render_cfg, width: int, height: int) -> "DiffusionRenderer":
    """Load the configured weights into a DiffusionRenderer; UserError with one sentence when they are
    absent, partial or corrupt (the caller then falls back to procedural visuals)."""
    model = (getattr(render_cfg, "model", "") or "").strip()
    if not model:
        raise UserError(f"render.model is empty, so there is no diffusion model; fetch one as {WEIGHTS_DOC} "
                        f"describes, or set render.backend = \"procedural\".")
    problems = check_weights(render_cfg)
    if problems:
        raise UserError(problems[0])
    import torch

    device = pick_device(getattr(render_cfg, "device", "auto"))
    dtype = torch.float16 if device == "cuda" else torch.float32
    path = Path(model).expanduser()
    try:
        if path.is_file():
            unet, vae, text_encoder, tokenizer, scheduler_config = _load_single_file(path, dtype)
        else:
            unet, vae, text_encoder, tokenizer, scheduler_config = _load_folder(path, dtype, bool(render_cfg.vae))
        vae_path = (getattr(render_cfg, "vae", "") or "").strip()
        if vae_path:
            vae = _load_vae(Path(vae_path).expanduser(), dtype)
    except UserError:
        raise
    except Exception as exc:  # diffusers/transformers/torch raise many kinds for one bad file
        raise UserError(f"render.model {path} does not load ({type(exc).__name__}: {_short(exc)}); check it is an "
                        f"SD1.5-family LCM model and download it again as {WEIGHTS_DOC} describes.") from None
    from diffusers import LCMScheduler

    scheduler = LCMScheduler.from_config(scheduler_config)
    lora = (getattr(render_cfg, "lora", "") or "").strip()
    if lora:
        unet, text_encoder = _fuse_lora(Path(lora).expanduser(), unet, vae, text_encoder, tokenizer, scheduler)
    return DiffusionRenderer(unet, vae, text_encoder, tokenizer, scheduler, width=width, height=height,
                             steps=render_cfg.steps, guidance=render_cfg.guidance, device=device, dtype=dtype,
                             similarity_skip=render_cfg.similarity_skip, seed=render_cfg.seed,
                             compile_unet=bool(getattr(render_cfg, "compile", False)),
                             compile_mode=getattr(render_cfg, "compile_mode", "reduce-overhead"))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")


def _load_folder(path: Path, dtype, vae_elsewhere: bool):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    _, unet_variant = _weight_file(path / "unet", "unet")
    _, text_variant = _weight_file(path / "text_encoder", "text_encoder")
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, local_files_only=True,
                                                variant=unet_variant)
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=dtype, local_files_only=True,
                                                 variant=text_variant)
    tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
    vae = None
    if not vae_elsewhere:
        _, vae_variant = _weight_file(path / "vae", "vae")
        vae = _load_vae(path, dtype, variant=vae_variant, subfolder="vae")
    scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    return unet, vae, text_encoder, tokenizer, scheduler_config


def _load_single_file(path: Path, dtype):
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_single_file(str(path), torch_dtype=dtype, local_files_only=True,
                                                        safety_checker=None, requires_safety_checker=False)
    except Exception as exc:
        raise UserError(f"render.model {path} is a single-file checkpoint that does not load offline "
                        f"({type(exc).__name__}: {_short(exc)}); use a diffusers folder instead as {WEIGHTS_DOC} "
                        f"describes.") from None
    return pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(pipe.scheduler.config)


def _fuse_lora(path: Path, unet, vae, text_encoder, tokenizer, scheduler):
    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError("render.lora needs the 'peft' package; install it with `.venv/bin/pip install peft` "
                        "or set render.lora = \"\".") from None
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, local_files_only=True)
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    except Exception as exc:
        raise UserError(f"render.lora {path} does not apply to this model ({type(exc).__name__}: {_short(exc)}); "
                        f"use the LCM-LoRA for SD1.5 as {WEIGHTS_DOC} describes.") from None
    return pipe.unet, pipe.text_encoder


# --- prompt embeddings ----------------------------------------------------------------------------
def slerp(a, b, t: float):
    """Spherical interpolation per token vector, with linear interpolation of the norms; falls back to
    lerp where the two vectors are nearly parallel."""
    import torch

    if t <= 0:
        return a
    if t >= 1:
        return b
    a32, b32 = a.float(), b.float()
    na = a32.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    nb = b32.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    ua, ub = a32 / na, b32 / nb
    dot = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    near = sin_omega < 1e-4
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * omega) / sin_omega.clamp_min(1e-8))
    wb = torch.where(near, torch.full_like(omega, t), torch.sin(t * omega) / sin_omega.clamp_min(1e-8))
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    out = direction * (na * (1.0 - t) + nb * t)
    return out.to(a.dtype)


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


# --- the renderer --------------------------------------------------------------------------------
class DiffusionRenderer:
    """Streaming LCM img2img. Called from the renderer thread only."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, width: int, height: int, steps: int = 2,
                 guidance: float = 1.0, device: str = "cpu", dtype=None, similarity_skip: float = 0.98,
                 seed: int = 0, feedback: float = 0.25, strength_range: tuple[float, float] = (0.35, 0.7),
                 max_skip_frames: int = 10, compile_unet: bool = False,
                 compile_mode: str = "reduce-overhead") -> None:
        import torch

        self._torch = torch
        self.device = device
        self.dtype = dtype or torch.float32
        self.unet = _to(unet, device, self.dtype)
        self.vae = _to(vae, device, self.dtype)
        self.text_encoder = _to(text_encoder, device, self.dtype)
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        if device == "cuda":
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        if compile_unet:
            # reduce-overhead captures CUDA graphs: the first frames are slow, the rest fast.
            self.unet = torch.compile(self.unet, mode=compile_mode, fullgraph=False)
        self.width, self.height = int(width), int(height)
        block_out = getattr(getattr(vae, "config", None), "block_out_channels", None) or \
            getattr(vae.config, "decoder_block_out_channels", (0, 0, 0, 0))
        self.vae_scale = 2 ** (len(block_out) - 1)
        # Latents need sizes divisible by the VAE's scale; the frame is resized back afterwards.
        self.latent_w = max(1, round(self.width / self.vae_scale))
        self.latent_h = max(1, round(self.height / self.vae_scale))
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.similarity_skip = float(similarity_skip)
        self.seed = int(seed)
        self.feedback = float(feedback)
        self.strength_range = strength_range
        self.max_skip_frames = int(max_skip_frames)
        self.stats = DiffusionStats()
        self._unet_cfg = getattr(self.unet, "config", unet.config)
        self._scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self._tiny_vae = type(vae).__name__ == "AutoencoderTiny"
        self._style = ""
        self._negative = ""
        self._embeds = None              # what the UNet sees now
        self._from = None
        self._to = None
        self._negative_embeds = None
        self._blend_start_s: float | None = None
        self._blend_s = 0.0
        self._pending_blend_s: float | None = None
        self._prev_latents = None
        self._last_small: np.ndarray | None = None
        self._skips_in_row = 0
        self._last_good: np.ndarray | None = None
        self._logged_errors = 0
        self._noise = self._make_noise()
        self._guidance_embedding = self._make_guidance_embedding()

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: its style joins every prompt; its `[render]` table may set strength and
        feedback. Drops latent history so the new scene starts clean."""
        table = dict(scene.table("render")) if scene is not None else {}
        self._style = getattr(scene, "style", "") or ""
        self._negative = getattr(scene, "negative_prompt", "") or ""
        where = f"{getattr(scene, 'path', None) or getattr(scene, 'name', 'scene')} [render]"
        lo = _number(table, "strength_min", self.strength_range[0], 0.05, 1.0, where)
        hi = _number(table, "strength_max", self.strength_range[1], 0.05, 1.0, where)
        if lo > hi:
            raise UserError(f"{where}: strength_min = {lo} is above strength_max = {hi}; swap them.")
        self.strength_range = (lo, hi)
        self.feedback = _number(table, "feedback", self.feedback, 0.0, 0.95, where)
        self._prev_latents = None
        self._last_small = None

    def update_prompt(self, caption: Caption) -> None:
        """Encode the caption's prompt (the only text-encoder call) and start the slerp toward it."""
        prompt = caption.prompt.strip()
        if self._style and self._style.lower() not in prompt.lower():
            prompt = f"{prompt}, {self._style}" if prompt else self._style
        target = self._encode(prompt)
        if self._needs_cfg():
            negative = ", ".join(p for p in (caption.negative_prompt, self._negative) if p)
            self._negative_embeds = self._encode(negative)
        if self._embeds is None:
            self._embeds = self._from = self._to = target
            self._pending_blend_s = None
            return
        self._from = self._embeds
        self._to = target
        transition = float(caption.transition_s) if math.isfinite(caption.transition_s) else 0.0
        self._pending_blend_s = max(0.0, transition)
        self._blend_start_s = None

    def render(self, init_rgb: np.ndarray, state: MusicState, t_s: float) -> np.ndarray:
        """One frame (height, width, 3) uint8 from `init_rgb`; never raises, never returns NaN or black."""
        started = time.perf_counter()
        try:
            frame = self._render(init_rgb, state, t_s)
        except Exception as exc:
            self.stats.errors += 1
            if "OutOfMemory" in type(exc).__name__:
                self._step_down()
            if self._logged_errors < 5 or self.stats.errors % 100 == 0:
                log.exception("diffusion frame failed (%d so far); showing the last good frame", self.stats.errors)
                self._logged_errors += 1
            frame = self._fallback(init_rgb)
        self.stats.last_render_ms = (time.perf_counter() - started) * 1000.0
        return frame

    MIN_LATENT_SIDE = 32
    """256 px with the usual VAE: below that the pictures stop reading as pictures."""

    def _step_down(self) -> None:
        """Out of GPU memory: one step fewer, then half the resolution, until it fits."""
        if self.steps > 1:
            self.steps -= 1
            what = f"{self.steps} step(s) per frame"
        elif min(self.latent_w, self.latent_h) >= 2 * self.MIN_LATENT_SIDE:
            self.latent_w //= 2
            self.latent_h //= 2
            self._noise = self._make_noise()
            self._prev_latents = None
            what = f"{self.latent_w * self.vae_scale}x{self.latent_h * self.vae_scale} px"
        else:
            log.error("diffusion is out of GPU memory at the smallest setting; showing the last good frame")
            return
        self.stats.step_downs += 1
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
        log.warning("diffusion ran out of GPU memory; stepping down to %s", what)

    # --- internals ----------------------------------------------------------------------------
    def _render(self, init_rgb: np.ndarray, state: MusicState, t_s: float) -> np.ndarray:
        import cv2

        torch = self._torch
        if self._pending_blend_s is not None:
            self._blend_start_s, self._blend_s, self._pending_blend_s = t_s, self._pending_blend_s, None
        blending = self._update_embeds(t_s)
        if self._embeds is None:
            self.update_prompt(Caption(t_s=t_s, prompt=self._style or "abstract painting", transition_s=0.0))

        init = np.ascontiguousarray(init_rgb[..., :3])
        if init.dtype != np.uint8:
            init = (np.clip(np.nan_to_num(init), 0.0, 1.0) * 255).astype(np.uint8)
        small = cv2.resize(init, (SIMILARITY_SIDE_PX, SIMILARITY_SIDE_PX), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32).ravel()
        if self._should_skip(small, blending):
            self.stats.skipped += 1
            return self._last_good  # type: ignore[return-value]
        self._last_small = small

        size = (self.latent_w * self.vae_scale, self.latent_h * self.vae_scale)
        if (init.shape[1], init.shape[0]) != size:
            init = cv2.resize(init, size, interpolation=cv2.INTER_AREA)
        with torch.inference_mode():
            image = torch.from_numpy(init).to(self.device).permute(2, 0, 1)[None].to(self.dtype) / 127.5 - 1.0
            latents = self._vae_encode(image)
            if self._prev_latents is not None and self.feedback > 0:
                latents = torch.lerp(latents, self._prev_latents, self.feedback)
            strength = self._strength(state)
            self.stats.last_strength = strength
            self.scheduler.set_timesteps(self.steps, device=self.device, strength=strength)
            timesteps = self.scheduler.timesteps
            sample = self.scheduler.add_noise(latents, self._noise, timesteps[:1])
            generator = torch.Generator(device="cpu").manual_seed(self.seed + 1)
            denoised = sample
            cfg = self._needs_cfg()
            embeds = torch.cat([self._negative_embeds, self._embeds]) if cfg else self._embeds
            for t in timesteps:
                model_input = torch.cat([sample, sample]) if cfg else sample
                cond = self._guidance_embedding
                if cond is not None and cfg:
                    cond = torch.cat([cond, cond])
                pred = self.unet(model_input, t, encoder_hidden_states=embeds, timestep_cond=cond,
                                 return_dict=False)[0]
                self.stats.unet_calls += 1
                if cfg:
                    uncond, text = pred.chunk(2)
                    pred = uncond + self.guidance * (text - uncond)
                sample, denoised = self.scheduler.step(pred, t, sample, generator=generator, return_dict=False)
            if not bool(torch.isfinite(denoised).all()):
                return self._bad_frame(init_rgb, "latents are not finite")
            decoded = self._vae_decode(denoised)
            if not bool(torch.isfinite(decoded).all()):
                return self._bad_frame(init_rgb, "decoded image is not finite")
            self._prev_latents = denoised
            out = ((decoded[0].float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        if out.max() < 8 and init.mean() > 16:
            return self._bad_frame(init_rgb, "frame is black")
        if (out.shape[1], out.shape[0]) != (self.width, self.height):
            out = cv2.resize(out, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        out = np.ascontiguousarray(out)
        self._last_good = out
        self._skips_in_row = 0
        self.stats.frames += 1
        return out

    def _should_skip(self, small: np.ndarray, blending: bool) -> bool:
        if self._last_good is None or self._last_small is None or blending or self.similarity_skip <= 0:
            return False
        if self._skips_in_row >= self.max_skip_frames:
            self._skips_in_row = 0
            return False
        a, b = small - small.mean(), self._last_small - self._last_small.mean()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        similarity = float(a @ b) / denom if denom > 1e-6 else (1.0 if np.abs(small - self._last_small).max() < 1 else 0.0)
        if similarity >= self.similarity_skip:
            self._skips_in_row += 1
            return True
        return False

    def _strength(self, state: MusicState) -> float:
        lo, hi = self.strength_range
        _, arousal = clamp_va(state.valence, state.arousal)
        phase = state.beat_phase % 1.0 if math.isfinite(state.beat_phase) else 0.0
        confidence = min(1.0, max(0.0, state.beat_confidence)) if math.isfinite(state.beat_confidence) else 0.0
        beat = confidence * (1.0 - phase) ** 2
        strength = lo + (hi - lo) * (arousal + 1.0) / 2.0 + 0.1 * beat
        # LCM needs at least `steps` of its original 50-step schedule under the strength.
        floor = (self.steps + 1) / float(self.scheduler.config.original_inference_steps)
        return float(min(0.95, max(floor, strength)))

    def _update_embeds(self, t_s: float) -> bool:
        """Move the prompt embeddings along the slerp; True while a blend is running."""
        if self._from is None or self._to is None or self._blend_start_s is None:
            return False
        if self._blend_s <= 0:
            alpha = 1.0
        else:
            alpha = _smoothstep((t_s - self._blend_start_s) / self._blend_s)
        self._embeds = slerp(self._from, self._to, alpha)
        if alpha >= 1.0:
            self._from = self._to
            self._blend_start_s = None
            return False
        return True

    def _needs_cfg(self) -> bool:
        return self.guidance > 1.0 and not getattr(self._unet_cfg, "time_cond_proj_dim", None)

    def _encode(self, prompt: str):
        torch = self._torch
        tokens = self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        with torch.inference_mode():
            embeds = self.text_encoder(tokens.input_ids.to(self.device), return_dict=False)[0]
        self.stats.text_encoder_calls += 1
        return embeds.to(self.dtype)

    def _vae_encode(self, image):
        self.stats.vae_encode_calls += 1
        if self._tiny_vae:
            return self.vae.encode(image).latents * self._scaling
        return self.vae.encode(image).latent_dist.mean * self._scaling

    def _vae_decode(self, latents):
        self.stats.vae_decode_calls += 1
        return self.vae.decode(latents / self._scaling, return_dict=False)[0]

    def _make_noise(self):
        torch = self._torch
        channels = int(getattr(self._unet_cfg, "in_channels", 4))
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((1, channels, self.latent_h, self.latent_w), generator=generator)
        return noise.to(device=self.device, dtype=self.dtype)

    def _make_guidance_embedding(self):
        """LCM models take guidance as a timestep condition (one UNet call) instead of CFG."""
        torch = self._torch
        dim = getattr(self._unet_cfg, "time_cond_proj_dim", None)
        if not dim:
            return None
        w = torch.tensor([max(0.0, self.guidance - 1.0) * 1000.0])
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        emb = w[:, None] * freqs[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
        if dim % 2 == 1:
            emb = torch.nn.functional.pad(emb, (0, 1))
        return emb.to(device=self.device, dtype=self.dtype)

    def _bad_frame(self, init_rgb: np.ndarray, why: str) -> np.ndarray:
        self.stats.bad_frames += 1
        if self.stats.bad_frames <= 5 or self.stats.bad_frames % 100 == 0:
            log.warning("diffusion %s (%d bad frames so far); showing the last good frame", why, self.stats.bad_frames)
        # A NaN frame can poison the latent feedback; start the chain again from the init picture.
        self._prev_latents = None
        return self._fallback(init_rgb)

    def _fallback(self, init_rgb: np.ndarray) -> np.ndarray:
        if self._last_good is not None:
            return self._last_good
        import cv2

        init = np.ascontiguousarray(init_rgb[..., :3])
        if init.dtype != np.uint8:
            init = (np.clip(np.nan_to_num(init), 0.0, 1.0) * 255).astype(np.uint8)
        if (init.shape[1], init.shape[0]) != (self.width, self.height):
            init = cv2.resize(init, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return init


def _to(module, device: str, dtype):
    """Move a module only when needed: diffusers warns about casts on every `.to(dtype)`."""
    first = next(module.parameters(), None)
    if first is not None and (first.device.type != device or first.dtype != dtype):
        module = module.to(device=device, dtype=dtype)
    return module.eval()


def _number(table: dict[str, Any], key: str, default: float, low: float, high: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} = {value!r}; use a number from {low:g} to {high:g}.")
    return float(value)
