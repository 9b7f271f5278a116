"""Streaming img2img over the procedural layer: prepare / update_prompt / render, host side.

One instance belongs to the renderer thread, which owns the GPU. Each frame takes the procedural
layer's picture as init image, so the pictures pulse with the music:

- the text encoder(s) run only in `update_prompt`; embeddings slerp from the old caption to the new
  over the caption's transition time, so a prompt change blends instead of jumping;
- the noise is drawn once per seed and reused every frame, and each frame's init latents lean on
  the previous result (`feedback`): no per-frame fresh noise, no flicker;
- img2img strength follows arousal and the beat, quantised onto the schedule's own grid so the
  timestep constants come from a cache (no scheduler code per frame);
- guidance <= 1, or an LCM UNet with guidance embedding, is one UNet call per step; otherwise the
  unconditional half is batched into that one call;
- stream batch: one UNet call per frame over the steps of frames in flight (`engine.py`);
- a similarity skip (after StreamDiffusion's filter) returns the last frame when the init picture
  barely changed;
- a frame with NaN, or a black frame, is never returned: the last good frame is. The check rides
  on the frame's one device-to-host copy (see engine.py).
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from installation.errors import UserError
from installation.records import Caption, MusicState, clamp_va

from .engine import STATUS_BYTES, StreamEngine
from .families import FAMILIES, Family, frames_of_lag
from .schedule import Schedule

log = logging.getLogger(__name__)
SIMILARITY_SIDE_PX = 32
CONTROL_SOURCES = ("edges", "luminance", "camera")


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


class DiffusionRenderer:
    """Streaming img2img for every family. Called from the renderer thread only."""

    name = "diffusion"
    MIN_LATENT_SIDE = 32
    """256 px with the usual VAE: below that the pictures stop reading as pictures."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, width: int, height: int, steps: int = 2,
                 guidance: float = 1.0, device: str = "cpu", dtype=None, similarity_skip: float = 0.98,
                 seed: int = 0, feedback: float = 0.25, strength_range: tuple[float, float] = (0.35, 0.7),
                 max_skip_frames: int = 10, family: Family | None = None, stream_batch: bool = False,
                 text_encoder_2=None, tokenizer_2=None, controlnet=None, controlnet_source: str = "edges",
                 controlnet_strength: float = 1.0, cuda_graphs: bool = False, compile_unet: bool = False,
                 compile_mode: str = "reduce-overhead", tensorrt: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.dtype = dtype or torch.float32
        self.family = family or FAMILIES["sd15-lcm" if getattr(unet.config, "time_cond_proj_dim", None) else "sd15"]
        self.unet = _to(unet, device, self.dtype)
        self.vae = _to(vae, device, self.dtype)
        self.text_encoder = _to(text_encoder, device, self.dtype)
        self.text_encoder_2 = _to(text_encoder_2, device, self.dtype) if text_encoder_2 is not None else None
        self.tokenizer, self.tokenizer_2 = tokenizer, tokenizer_2
        self.controlnet = _to(controlnet, device, self.dtype) if controlnet is not None else None
        if controlnet_source not in CONTROL_SOURCES:
            raise UserError(f"render.controlnet_source = {controlnet_source!r}; use one of {', '.join(CONTROL_SOURCES)}.")
        self.controlnet_source = controlnet_source
        self.controlnet_strength = float(controlnet_strength)
        self._camera_rgb: np.ndarray | None = None
        config = dict(getattr(scheduler, "config", scheduler) or {})
        self.schedule = Schedule(config, self.family.schedule)
        if device == "cuda":
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self._unet_cfg = self.unet.config
        self._lora_weights: dict[str, float] = {}
        if tensorrt:
            self.unet = _tensorrt(self.unet, self.dtype)
        elif compile_unet:
            # reduce-overhead captures CUDA graphs: the first frames are slow, the rest fast.
            self.unet = torch.compile(self.unet, mode=compile_mode, fullgraph=False)
        self.width, self.height = int(width), int(height)
        block_out = getattr(vae.config, "block_out_channels", None) or \
            getattr(vae.config, "decoder_block_out_channels", None) or (0, 0, 0, 0)
        self.vae_scale = 2 ** (len(block_out) - 1)
        self.latent_w = max(1, round(self.width / self.vae_scale))
        self.latent_h = max(1, round(self.height / self.vae_scale))
        self.guidance = float(guidance)
        self.similarity_skip = float(similarity_skip)
        self.seed = int(seed)
        self.feedback = float(feedback)
        self.strength_range = strength_range
        self.max_skip_frames = int(max_skip_frames)
        self.stats = DiffusionStats()
        self._style = ""
        self._negative = ""
        self._embeds = None              # what the UNet sees now (1, tokens, dim)
        self._pooled = None              # SDXL pooled text embedding (1, dim)
        self._from = self._to = None
        self._pooled_from = self._pooled_to = None
        self._negative_embeds = self._negative_pooled = None
        self._blend_start_s: float | None = None
        self._blend_s = 0.0
        self._pending_blend_s: float | None = None
        self._last_small: np.ndarray | None = None
        self._skips_in_row = 0
        self._last_good: np.ndarray | None = None
        self._logged_errors = 0
        self._plans: dict[int, tuple[Any, Any]] = {}
        self._keys: deque[int] = deque()
        self._in_flight = 0
        self._history = False
        with torch.inference_mode():
            self.engine = StreamEngine(self.unet, self.vae, device=device, dtype=self.dtype, steps=steps,
                                       stream_batch=stream_batch, cfg=self._needs_cfg(), guidance=self.guidance,
                                       prediction_type=self.schedule.prediction_type, seed=self.seed,
                                       controlnet=self.controlnet, cuda_graphs=cuda_graphs)
            self._allocate()

    # --- properties the stage, the status line and the benchmark read ---------------------------
    @property
    def steps(self) -> int:
        return self.engine.steps

    @steps.setter
    def steps(self, value: int) -> None:
        if int(value) != self.engine.steps:
            self.engine.steps = int(value)
            with self._torch.inference_mode():
                self._allocate()

    @property
    def stream_batch(self) -> bool:
        return self.engine.stream_batch

    @stream_batch.setter
    def stream_batch(self, value: bool) -> None:
        if bool(value) != self.engine.stream_batch:
            self.engine.stream_batch = bool(value)
            with self._torch.inference_mode():
                self._allocate()

    @property
    def frames_of_lag(self) -> int:
        return frames_of_lag(self.steps, self.stream_batch)

    @property
    def lora_weights(self) -> dict[str, float]:
        return dict(self._lora_weights)

    def _allocate(self) -> None:
        """Buffers for the current size and steps; keeps the prompt, drops the latent history."""
        enc = self.text_encoder.config
        dim = int(getattr(self._unet_cfg, "cross_attention_dim", enc.hidden_size))
        dim = dim[0] if isinstance(dim, (list, tuple)) else dim
        tokens = int(getattr(self.tokenizer, "model_max_length", 77))
        pooled = int(self.text_encoder_2.config.projection_dim) if self.text_encoder_2 is not None else 0
        cond = int(getattr(self._unet_cfg, "time_cond_proj_dim", 0) or 0)
        self.engine.allocate(self.latent_w * self.vae_scale, self.latent_h * self.vae_scale, self.latent_w,
                             self.latent_h, (tokens, dim), pooled_dim=pooled, cond_dim=cond)
        self._make_plans()
        self._keys.clear()
        self._in_flight = 0
        self._history = False
        self.stats.frames_of_lag = self.frames_of_lag
        if self._embeds is not None:
            self._push_embeds()

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: its style joins every prompt; its `[render]` table may set strength,
        feedback and the render size (`width`, `height`, multiples of 8). Drops latent history."""
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
        width = int(_number(table, "width", self.width, 64, 4096, where))
        height = int(_number(table, "height", self.height, 64, 4096, where))
        if ("width" in table or "height" in table) and (width % 8 or height % 8):
            raise UserError(f"{where}: width and height must be multiples of 8 (got {width}x{height}).")
        if (width, height) != (self.width, self.height):
            self.resize(width, height)
        self._last_small = None
        self.engine.reset_history()
        self._keys.clear()
        self._in_flight = 0
        self._history = False

    def resize(self, width: int, height: int) -> None:
        """Render at another size (a multiple of 8 renders exactly; others are scaled back)."""
        self.width, self.height = int(width), int(height)
        self.latent_w = max(1, round(self.width / self.vae_scale))
        self.latent_h = max(1, round(self.height / self.vae_scale))
        self._last_good = None
        with self._torch.inference_mode():
            self._allocate()

    def update_prompt(self, caption: Caption) -> None:
        """Encode the caption's prompt (the only text-encoder calls) and start the slerp toward it."""
        prompt = caption.prompt.strip()
        if self._style and self._style.lower() not in prompt.lower():
            prompt = f"{prompt}, {self._style}" if prompt else self._style
        target, pooled = self._encode(prompt)
        if self._needs_cfg():
            negative = ", ".join(p for p in (caption.negative_prompt, self._negative) if p)
            self._negative_embeds, self._negative_pooled = self._encode(negative)
        if self._embeds is None:
            self._embeds = self._from = self._to = target
            self._pooled = self._pooled_from = self._pooled_to = pooled
            self._pending_blend_s = None
            self._push_embeds()
            return
        self._from, self._to = self._embeds, target
        self._pooled_from, self._pooled_to = self._pooled, pooled
        transition = float(caption.transition_s) if math.isfinite(caption.transition_s) else 0.0
        self._pending_blend_s = max(0.0, transition)
        self._blend_start_s = None

    def set_camera_frame(self, rgb: np.ndarray | None) -> None:
        """The newest camera picture, the ControlNet's structure when controlnet_source = "camera"."""
        self._camera_rgb = rgb

    def set_lora_weight(self, name: str, weight: float) -> None:
        """Change one runtime LoRA's weight; no reload: peft adapter scales change in place."""
        if name not in self._lora_weights:
            raise KeyError(name)
        weight = float(weight)
        if self._lora_weights[name] == weight:
            return
        self._lora_weights[name] = weight
        _base(self.unet).set_adapters(list(self._lora_weights), weights=list(self._lora_weights.values()))
        self.engine.invalidate_graph()
        self.stats.lora_changes += 1

    def apply_params(self, params: Mapping[str, float]) -> None:
        """Operators' live values (`/param/lora/<name>`, `/param/controlnet/strength`); cheap when unchanged."""
        for name in self._lora_weights:
            value = params.get(f"lora.{name}")
            if value is not None:
                self.set_lora_weight(name, value)
        strength = params.get("controlnet.strength")
        if strength is not None:
            self.controlnet_strength = float(strength)

    def status(self) -> dict:
        """Figures for /status and the status line; read from other threads (plain values only)."""
        stats = self.stats
        return {"family": self.family.name, "steps": self.steps, "stream_batch": self.stream_batch,
                "frames_of_lag": self.frames_of_lag, "frames": stats.frames, "skipped": stats.skipped,
                "bad_frames": stats.bad_frames, "errors": stats.errors, "render_ms": round(stats.last_render_ms, 1),
                "strength": round(stats.last_strength, 3), "loras": dict(self._lora_weights),
                "controlnet_strength": self.controlnet_strength if self.controlnet is not None else None}

    def close(self) -> None:
        self._last_good = None

    def render(self, music: MusicState, t_s: float, init_rgb: np.ndarray | None = None) -> np.ndarray:
        """One frame (height, width, 3) uint8 from `init_rgb`; never raises, never returns NaN or black."""
        started = time.perf_counter()
        if init_rgb is None:
            init_rgb = self._last_good if self._last_good is not None else \
                np.full((self.height, self.width, 3), 96, np.uint8)
        try:
            with self._torch.inference_mode():
                frame = self._render(init_rgb, music, t_s)
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

    def _step_down(self) -> None:
        """Out of GPU memory: one step fewer, then half the resolution, until it fits."""
        if self.steps > 1:
            self.steps = self.steps - 1
            what = f"{self.steps} step(s) per frame"
        elif min(self.latent_w, self.latent_h) >= 2 * self.MIN_LATENT_SIDE:
            self.latent_w //= 2
            self.latent_h //= 2
            with self._torch.inference_mode():
                self._allocate()
            what = f"{self.latent_w * self.vae_scale}x{self.latent_h * self.vae_scale} px"
        else:
            log.error("diffusion is out of GPU memory at the smallest setting; showing the last good frame")
            return
        self.stats.step_downs += 1
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
        log.warning("diffusion ran out of GPU memory; stepping down to %s", what)

    # --- internals ----------------------------------------------------------------------------
    def _render(self, init_rgb: np.ndarray, music: MusicState, t_s: float) -> np.ndarray:
        import cv2

        if self._pending_blend_s is not None:
            self._blend_start_s, self._blend_s, self._pending_blend_s = t_s, self._pending_blend_s, None
        blending = self._update_embeds(t_s)
        if self._embeds is None:
            self.update_prompt(Caption(t_s=t_s, prompt=self._style or "abstract painting", transition_s=0.0))

        init = _as_uint8(init_rgb)
        if self.similarity_skip > 0:
            small = cv2.resize(init, (SIMILARITY_SIDE_PX, SIMILARITY_SIDE_PX), interpolation=cv2.INTER_AREA)
            small = small.astype(np.float32).ravel()
            if self._should_skip(small, blending):
                self.stats.skipped += 1
                return self._last_good  # type: ignore[return-value]
            self._last_small = small
            init_mean = float(small.mean())
        else:
            init_mean = float(init[::8, ::8].mean())

        engine = self.engine
        size = (engine.width, engine.height)
        if (init.shape[1], init.shape[0]) != size:
            init = cv2.resize(init, size, interpolation=cv2.INTER_AREA)
        strength = self._strength(music)
        self.stats.last_strength = strength
        self._keys.appendleft(self.schedule.key(self.steps, strength))
        while len(self._keys) > engine.rows:
            self._keys.pop()
        keys = tuple(self._keys) + (self._keys[-1],) * (engine.rows - len(self._keys))
        self._plan(keys)
        engine.set_feedback(self.feedback if self._history else 0.0)
        if self.controlnet is not None:
            engine.set_control(self._control_image(init, size), self.controlnet_strength)
        engine.set_image(init)
        host = engine.run()
        calls = 1 if engine.stream_batch else self.steps
        self.stats.unet_calls += calls
        self.stats.controlnet_calls += calls if self.controlnet is not None else 0
        self.stats.vae_encode_calls += 1
        self.stats.vae_decode_calls += 1
        if self._in_flight < engine.rows - 1:
            # Stream batch filling: the output row holds no finished frame yet.
            self._in_flight += 1
            self.stats.filling += 1
            return self._fallback(init_rgb)
        if host[-1]:
            return self._bad_frame(init_rgb, "latents or decoded image are not finite")
        if host[-2] < 8 and init_mean > 16:
            return self._bad_frame(init_rgb, "frame is black")
        out = host[:-STATUS_BYTES].reshape(engine.height, engine.width, 3)
        if (engine.width, engine.height) != (self.width, self.height):
            out = cv2.resize(out, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        else:
            out = out.copy()
        self._history = True
        self._last_good = out
        self._skips_in_row = 0
        self.stats.frames += 1
        return out

    def _plan(self, keys: tuple[int, ...]) -> None:
        """Put the frame's timesteps and constants on the device from tables made at allocation:
        device-to-device copies only, so a strength change never copies from the host mid-show."""
        engine = self.engine
        if not engine.stream_batch:
            engine.set_plan(*self._plans[keys[0]])
            return
        for row, key in enumerate(keys):
            ts, table = self._plans[key]
            engine.set_plan_row(row, ts, table)

    def _make_plans(self) -> None:
        torch = self._torch
        self._plans = {}
        for key in self.schedule.all_keys(self.steps):
            ts, table = self.schedule.table(self.steps, key)
            self._plans[key] = (torch.from_numpy(ts).to(self.device),
                                torch.from_numpy(table).to(device=self.device, dtype=self.dtype))

    def _control_image(self, init: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import cv2

        source = init
        if self.controlnet_source == "camera" and self._camera_rgb is not None:
            source = _as_uint8(self._camera_rgb)
            if (source.shape[1], source.shape[0]) != size:
                source = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
        if self.controlnet_source == "luminance":
            structure = grey
        else:
            structure = cv2.Canny(grey, 80, 160)
        return np.repeat(structure[..., None], 3, axis=2)

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
        floor = (self.steps + 1) / float(self.schedule.original_steps)
        return float(min(0.95, max(floor, strength)))

    def _update_embeds(self, t_s: float) -> bool:
        """Move the prompt embeddings along the slerp; True while a blend is running."""
        if self._from is None or self._to is None or self._blend_start_s is None:
            return False
        alpha = 1.0 if self._blend_s <= 0 else _smoothstep((t_s - self._blend_start_s) / self._blend_s)
        self._embeds = slerp(self._from, self._to, alpha)
        if self._pooled_to is not None:
            self._pooled = self._pooled_to if alpha >= 1.0 else self._torch.lerp(self._pooled_from, self._pooled_to, alpha)
        self._push_embeds()
        if alpha >= 1.0:
            self._from, self._pooled_from = self._to, self._pooled_to
            self._blend_start_s = None
            return False
        return True

    def _push_embeds(self) -> None:
        self.engine.set_embeds(self._embeds, self._pooled, self._negative_embeds, self._negative_pooled)

    def _needs_cfg(self) -> bool:
        return self.guidance > 1.0 and not getattr(self._unet_cfg, "time_cond_proj_dim", None)

    def _encode(self, prompt: str):
        """(embeddings (1, tokens, dim), pooled (1, dim) or None). SDXL: penultimate hidden states of
        both encoders side by side, and the second encoder's projected pooled output."""
        torch = self._torch
        with torch.inference_mode():
            ids = self._tokens(self.tokenizer, prompt)
            if self.text_encoder_2 is None:
                embeds = self.text_encoder(ids, return_dict=False)[0]
                self.stats.text_encoder_calls += 1
                return embeds.to(self.dtype), None
            first = self.text_encoder(ids, output_hidden_states=True)
            second = self.text_encoder_2(self._tokens(self.tokenizer_2, prompt), output_hidden_states=True)
            self.stats.text_encoder_calls += 1
            embeds = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
            return embeds.to(self.dtype), second.text_embeds.to(self.dtype)

    def _tokens(self, tokenizer, prompt: str):
        tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        return tokens.input_ids.to(self.device)

    def _bad_frame(self, init_rgb: np.ndarray, why: str) -> np.ndarray:
        self.stats.bad_frames += 1
        if self.stats.bad_frames <= 5 or self.stats.bad_frames % 100 == 0:
            log.warning("diffusion %s (%d bad frames so far); showing the last good frame", why, self.stats.bad_frames)
        # A NaN frame can poison the latent feedback and the frames in flight: start again.
        self.engine.reset_history()
        self._history = False
        self._in_flight = 0
        return self._fallback(init_rgb)

    def _fallback(self, init_rgb: np.ndarray) -> np.ndarray:
        if self._last_good is not None:
            return self._last_good
        import cv2

        init = _as_uint8(init_rgb)
        if (init.shape[1], init.shape[0]) != (self.width, self.height):
            init = cv2.resize(init, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return init


# --- functions ------------------------------------------------------------------------------------
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


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    init = np.ascontiguousarray(rgb[..., :3])
    if init.dtype != np.uint8:
        init = (np.clip(np.nan_to_num(init), 0.0, 1.0) * 255).astype(np.uint8)
    return init


def _to(module, device: str, dtype):
    """Move a module only when needed: diffusers warns about casts on every `.to(dtype)`."""
    first = next(module.parameters(), None)
    if first is not None and (first.device.type != device or first.dtype != dtype):
        module = module.to(device=device, dtype=dtype)
    return module.eval()


def _base(module):
    """The module under a torch.compile wrapper."""
    return getattr(module, "_orig_mod", module)


def _tensorrt(unet, dtype):
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        raise UserError("render.tensorrt needs torch-tensorrt: install the optional extra with "
                        "`pip install .[tensorrt]`, or set render.tensorrt = false.") from None
    import torch

    return torch.compile(unet, backend="torch_tensorrt", dynamic=False,
                         options={"enabled_precisions": {dtype}, "use_python_runtime": False,
                                  "min_block_size": 1})


def _number(table: dict[str, Any], key: str, default: float, low: float, high: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} = {value!r}; use a number from {low:g} to {high:g}.")
    return float(value)
