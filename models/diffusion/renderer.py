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
from typing import Any, Mapping

import numpy as np

from installation.records import Caption, MusicState

from .control import as_uint8, checked_source, control_image
from .engine import STATUS_BYTES, StreamEngine
from .families import FAMILIES, Family, frames_of_lag
from .loras import LiveLoras
from .modules import compiled_unet, to_device, vae_scale
from .prompts import PromptBlend
from .scene import read_scene
from .schedule import Schedule
from .settings import RenderSettings
from .skip import SimilaritySkip
from .stats import DiffusionStats
from .stream import FramesInFlight

log = logging.getLogger(__name__)
FEEDBACK = 0.25
"""Latent carry-over between frames until a scene's `[render]` table sets `feedback`."""
STRENGTH_RANGE = (0.35, 0.7)
"""img2img strength for calm and aroused music until a scene sets `strength_min` / `strength_max`."""


class DiffusionRenderer:
    """Streaming img2img for every family. Called from the renderer thread only.

    The modules come loaded (models.diffusion.load); `device` and `dtype` are resolved ones;
    without `family` it is read from the UNet (a guidance embedding: LCM-distilled SD1.5)."""

    name = "diffusion"
    MIN_LATENT_SIDE = 32
    """256 px with the usual VAE: below that the pictures stop reading as pictures."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, settings: RenderSettings, *,
                 device: str = "cpu", dtype=None, family: Family | None = None, text_encoder_2=None,
                 tokenizer_2=None, controlnet=None) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.dtype = dtype or torch.float32
        self.family = family or FAMILIES["sd15-lcm" if getattr(unet.config, "time_cond_proj_dim", None) else "sd15"]
        self.unet = to_device(unet, device, self.dtype)
        self.vae = to_device(vae, device, self.dtype)
        self.text_encoder = to_device(text_encoder, device, self.dtype)
        text_encoder_2 = to_device(text_encoder_2, device, self.dtype) if text_encoder_2 is not None else None
        self.prompts = PromptBlend(self.text_encoder, tokenizer, text_encoder_2, tokenizer_2, device, self.dtype)
        self.controlnet = to_device(controlnet, device, self.dtype) if controlnet is not None else None
        self.controlnet_source = checked_source(settings.controlnet_source)
        self.controlnet_strength = float(settings.controlnet_strength)
        self._camera_rgb: np.ndarray | None = None
        config = dict(getattr(scheduler, "config", scheduler) or {})
        self.schedule = Schedule(config, self.family.schedule)
        if device == "cuda":
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self._unet_cfg = self.unet.config
        self.unet = compiled_unet(self.unet, self.dtype, compile_unet=settings.compile,
                                  compile_mode=settings.compile_mode, tensorrt=settings.tensorrt)
        self.width, self.height = int(settings.width), int(settings.height)
        self.vae_scale = vae_scale(vae)
        self.latent_w = max(1, round(self.width / self.vae_scale))
        self.latent_h = max(1, round(self.height / self.vae_scale))
        self.guidance = float(settings.guidance)
        self.skip = SimilaritySkip(settings.similarity_skip)
        self.seed = int(settings.seed)
        self.feedback = FEEDBACK
        self.strength_range = STRENGTH_RANGE
        self.stats = DiffusionStats()
        self._style = ""
        self._negative = ""
        self._last_good: np.ndarray | None = None
        self._logged_errors = 0
        with torch.inference_mode():
            self.engine = StreamEngine(self.unet, self.vae, device=device, dtype=self.dtype, steps=settings.steps,
                                       stream_batch=settings.stream_batch, cfg=self._needs_cfg(),
                                       guidance=self.guidance, prediction_type=self.schedule.prediction_type,
                                       seed=self.seed, controlnet=self.controlnet, cuda_graphs=settings.cuda_graphs)
            self.flight = FramesInFlight(self.engine, self.schedule, device, self.dtype)
            self._allocate()
        self.loras = LiveLoras(self.unet, self.family, self.engine.invalidate_graph)

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
        return dict(self.loras.weights)

    def _allocate(self) -> None:
        """Buffers for the current size and steps; keeps the prompt, drops the latent history."""
        enc = self.text_encoder.config
        dim = int(getattr(self._unet_cfg, "cross_attention_dim", enc.hidden_size))
        dim = dim[0] if isinstance(dim, (list, tuple)) else dim
        tokens = int(getattr(self.prompts.tokenizer, "model_max_length", 77))
        second = self.prompts.text_encoder_2
        pooled = int(second.config.projection_dim) if second is not None else 0
        cond = int(getattr(self._unet_cfg, "time_cond_proj_dim", 0) or 0)
        self.engine.allocate(self.latent_w * self.vae_scale, self.latent_h * self.vae_scale, self.latent_w,
                             self.latent_h, (tokens, dim), pooled_dim=pooled, cond_dim=cond)
        self.flight.make_plans(self.steps)
        self.stats.frames_of_lag = self.frames_of_lag
        if self.prompts.embeds is not None:
            self._push_embeds()

    # --- lifecycle ---------------------------------------------------------------------------
    def prepare(self, scene) -> None:
        """Apply a scene: its style joins every prompt; its `[render]` table may set strength,
        feedback and the render size (`width`, `height`, multiples of 8). Drops latent history."""
        look = read_scene(scene, self.strength_range, self.feedback, self.width, self.height)
        self._style, self._negative = look.style, look.negative
        self.strength_range, self.feedback = look.strength_range, look.feedback
        if (look.width, look.height) != (self.width, self.height):
            self.resize(look.width, look.height)
        self.skip.last_small = None
        self.engine.reset_history()
        self.flight.clear()

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
        target = self._encode(prompt)
        if self._needs_cfg():
            negative = ", ".join(p for p in (caption.negative_prompt, self._negative) if p)
            self.prompts.negative_embeds, self.prompts.negative_pooled = self._encode(negative)
        if self.prompts.aim(target, caption.transition_s):
            self._push_embeds()

    def set_camera_frame(self, rgb: np.ndarray | None) -> None:
        """The newest camera picture, the ControlNet's structure when controlnet_source = "camera"."""
        self._camera_rgb = rgb

    def set_lora_weight(self, name: str, weight: float) -> None:
        """Change one runtime LoRA's weight; no reload: peft adapter scales change in place."""
        if self.loras.set(name, weight):
            self.stats.lora_changes += 1

    def apply_params(self, params: Mapping[str, float]) -> None:
        """Operators' live values (`/param/lora/<name>`, `/param/controlnet/strength`); cheap when unchanged."""
        for name in self.loras.weights:
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
                "strength": round(stats.last_strength, 3), "loras": dict(self.loras.weights),
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

        moved, blending = self.prompts.advance(t_s)
        if moved:
            self._push_embeds()
        if self.prompts.embeds is None:
            self.update_prompt(Caption(t_s=t_s, prompt=self._style or "abstract painting", transition_s=0.0))
        init = as_uint8(init_rgb)
        skip, init_mean = self.skip.check(init, blending, self._last_good is not None)
        if skip:
            self.stats.skipped += 1
            return self._last_good  # type: ignore[return-value]
        engine = self.engine
        size = (engine.width, engine.height)
        if (init.shape[1], init.shape[0]) != size:
            init = cv2.resize(init, size, interpolation=cv2.INTER_AREA)
        strength = self._strength(music)
        self.stats.last_strength = strength
        self.flight.plan(self.schedule.key(self.steps, strength))
        engine.set_feedback(self.feedback if self.flight.history else 0.0)
        if self.controlnet is not None:
            engine.set_control(control_image(init, size, self.controlnet_source, self._camera_rgb),
                               self.controlnet_strength)
        engine.set_image(init)
        host = engine.run()
        self.stats.count_run(1 if engine.stream_batch else self.steps, self.controlnet is not None)
        if self.flight.filling():
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
        self.flight.history = True
        self._last_good = out
        self.skip.in_row = 0
        self.stats.frames += 1
        return out

    def _strength(self, state: MusicState) -> float:
        lo, hi = self.strength_range
        phase = state.beat_phase % 1.0 if math.isfinite(state.beat_phase) else 0.0
        confidence = min(1.0, max(0.0, state.beat_confidence)) if math.isfinite(state.beat_confidence) else 0.0
        beat = confidence * (1.0 - phase) ** 2
        strength = lo + (hi - lo) * (state.arousal + 1.0) / 2.0 + 0.1 * beat
        # LCM needs at least `steps` of its original 50-step schedule under the strength.
        floor = (self.steps + 1) / float(self.schedule.original_steps)
        return float(min(0.95, max(floor, strength)))

    def _push_embeds(self) -> None:
        p = self.prompts
        self.engine.set_embeds(p.embeds, p.pooled, p.negative_embeds, p.negative_pooled)

    def _needs_cfg(self) -> bool:
        return self.guidance > 1.0 and not getattr(self._unet_cfg, "time_cond_proj_dim", None)

    def _encode(self, prompt: str) -> tuple[Any, Any]:
        self.stats.text_encoder_calls += 1
        return self.prompts.encode(prompt)

    def _bad_frame(self, init_rgb: np.ndarray, why: str) -> np.ndarray:
        self.stats.bad_frames += 1
        if self.stats.bad_frames <= 5 or self.stats.bad_frames % 100 == 0:
            log.warning("diffusion %s (%d bad frames so far); showing the last good frame", why, self.stats.bad_frames)
        self.flight.restart()
        return self._fallback(init_rgb)

    def _fallback(self, init_rgb: np.ndarray) -> np.ndarray:
        if self._last_good is not None:
            return self._last_good
        import cv2

        init = as_uint8(init_rgb)
        if (init.shape[1], init.shape[0]) != (self.width, self.height):
            init = cv2.resize(init, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return init

