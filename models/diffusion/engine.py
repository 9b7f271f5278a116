"""The device half of a frame: static buffers and one forward pass, eager or replayed as a CUDA graph.

`forward()` reads only preallocated buffers and writes only into them: the init picture (uint8),
the frame's timestep plan, the prompt embeddings, the control image and strength, the fixed noise
and the latent history. It encodes, runs the UNet steps, decodes and writes the uint8 frame with
two trailing status bytes (brightest value, non-finite flag) into one output buffer, so the frame
costs one device-to-host copy and one synchronisation, and the NaN/black check rides along.

Sequential mode runs `steps` UNet calls of batch 1. Stream batch (after StreamDiffusion's denoising
batch) keeps `steps - 1` frames in flight: one UNet call per frame with row i holding the frame that
entered i frames ago at its step i; the last row leaves as the output, `steps - 1` frames late.
Called from the renderer thread only.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .schedule import A, A_NEXT, B, B_NEXT, K_PRED, K_X

log = logging.getLogger(__name__)
STATUS_BYTES = 2


class StreamEngine:
    def __init__(self, unet, vae, *, device: str, dtype, steps: int, stream_batch: bool, cfg: bool,
                 guidance: float, prediction_type: str, seed: int, controlnet=None, cuda_graphs: bool = False) -> None:
        import torch

        self.torch = torch
        self.unet, self.vae, self.controlnet = unet, vae, controlnet
        self.device, self.dtype = device, dtype
        self.steps = int(steps)
        self.stream_batch = bool(stream_batch)
        self.cfg = bool(cfg)
        self.guidance = float(guidance)
        self.prediction_type = prediction_type
        self.seed = int(seed)
        self.cuda_graphs = bool(cuda_graphs) and device == "cuda"
        self._tiny_vae = type(vae).__name__ == "AutoencoderTiny"
        self.scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        self.channels = int(getattr(unet.config, "in_channels", 4))
        self.sdxl = getattr(unet.config, "addition_embed_type", None) == "text_time"
        # The models run channels-last on CUDA; on a CPU a permuted picture must not drag them there.
        self.layout = torch.channels_last if device == "cuda" else torch.contiguous_format
        self._graph: Any = None  # torch.cuda.CUDAGraph once captured; torch is untyped here
        self.graph_captures = 0
        self.height = self.width = 0

    # --- buffers ------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.steps if self.stream_batch else 1

    def allocate(self, width: int, height: int, latent_w: int, latent_h: int, embed_shape: tuple[int, int],
                 pooled_dim: int = 0, cond_dim: int = 0) -> None:
        """(Re)allocate every buffer for a size and step count; drops the latent history."""
        torch = self.torch
        dev, dt = self.device, self.dtype
        self.width, self.height, self.latent_w, self.latent_h = width, height, latent_w, latent_h
        rows = self.rows
        batch = rows * (2 if self.cfg else 1)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.noise = torch.randn((self.steps, self.channels, latent_h, latent_w), generator=generator).to(dev, dt)
        self.x = torch.zeros((rows, self.channels, latent_h, latent_w), device=dev, dtype=dt)
        self.prev = torch.zeros((1, self.channels, latent_h, latent_w), device=dev, dtype=dt)
        self.feedback = torch.zeros((), device=dev, dtype=dt)
        self.coef = torch.zeros((self.steps, 6), device=dev, dtype=dt)
        # Views of the constants in the shapes the maths needs, made once (they follow coef's contents).
        self.k_x, self.k_pred = (self.coef[:, c].view(-1, 1, 1, 1) for c in (K_X, K_PRED))
        self.a_next, self.b_next = (self.coef[:, c].view(-1, 1, 1, 1) for c in (A_NEXT, B_NEXT))
        self.a0, self.b0 = self.coef[0, A], self.coef[0, B]
        self.noise_rows = [self.noise[k:k + 1] for k in range(self.steps)]
        self.tsteps = torch.zeros((self.steps,), device=dev, dtype=torch.long)
        self.embeds = torch.zeros((batch, *embed_shape), device=dev, dtype=dt)
        self.pooled = torch.zeros((batch, pooled_dim), device=dev, dtype=dt) if pooled_dim else None
        self.time_ids = None
        if self.sdxl:
            ids = torch.tensor([height, width, 0, 0, height, width], dtype=dt)
            self.time_ids = ids.repeat(batch, 1).to(dev)
        self.time_cond = None
        if cond_dim:
            self.time_cond = _guidance_embedding(torch, self.guidance, cond_dim).to(dev, dt).repeat(batch, 1)
        self.image = torch.zeros((height, width, 3), device=dev, dtype=torch.uint8)
        self.control = torch.zeros((height, width, 3), device=dev, dtype=torch.uint8)
        self.control_scale = torch.zeros((), device=dev, dtype=dt)
        self.out = torch.zeros((height * width * 3 + STATUS_BYTES,), device=dev, dtype=torch.uint8)
        self.flat_frame = self.out[:-STATUS_BYTES]
        self.frame = self.flat_frame.view(height, width, 3)
        self.bad = self.out[-1:].view(torch.bool)
        if dev == "cuda":
            self.host_image = torch.empty((height, width, 3), dtype=torch.uint8).pin_memory()
            self.host_control = torch.empty((height, width, 3), dtype=torch.uint8).pin_memory()
            self.host_out = torch.empty_like(self.out, device="cpu").pin_memory()
            self.done = torch.cuda.Event()
        else:
            self.host_image, self.host_control, self.host_out = self.image, self.control, self.out
        self._graph = None

    def reset_history(self) -> None:
        with self.torch.inference_mode():
            self.x.zero_()
            self.prev.zero_()
            self.feedback.zero_()

    # --- per-frame inputs (host side, no synchronisation) -----------------------------------------
    def set_image(self, rgb: np.ndarray) -> None:
        self.host_image.numpy()[...] = rgb
        if self.host_image is not self.image:
            self.image.copy_(self.host_image, non_blocking=True)

    def set_control(self, rgb: np.ndarray, scale: float) -> None:
        self.host_control.numpy()[...] = rgb
        if self.host_control is not self.control:
            self.control.copy_(self.host_control, non_blocking=True)
        self.control_scale.fill_(scale)

    def set_plan(self, tsteps, coef) -> None:
        """Device tensors of the frame's timesteps and constants (cached by the caller)."""
        self.tsteps.copy_(tsteps)
        self.coef.copy_(coef)

    def set_plan_row(self, row: int, tsteps, coef) -> None:
        """Stream batch: row `row` takes step `row` of a frame's plan."""
        self.tsteps[row].copy_(tsteps[row])
        self.coef[row].copy_(coef[row])

    def set_embeds(self, embeds, pooled=None, negative=None, negative_pooled=None) -> None:
        with self.torch.inference_mode():
            self._set_embeds(embeds, pooled, negative, negative_pooled)

    def _set_embeds(self, embeds, pooled, negative, negative_pooled) -> None:
        rows = self.rows
        if self.cfg:
            self.embeds[:rows].copy_(negative.expand(rows, -1, -1))
            self.embeds[rows:].copy_(embeds.expand(rows, -1, -1))
            if self.pooled is not None:
                self.pooled[:rows].copy_(negative_pooled.expand(rows, -1))
                self.pooled[rows:].copy_(pooled.expand(rows, -1))
        else:
            self.embeds.copy_(embeds.expand(rows, -1, -1))
            if self.pooled is not None:
                self.pooled.copy_(pooled.expand(rows, -1))

    def set_feedback(self, value: float) -> None:
        self.feedback.fill_(value)

    # --- the frame ----------------------------------------------------------------------------
    def run(self) -> np.ndarray:
        """Run the frame; return the host output buffer (uint8, H*W*3 + status bytes). The caller
        copies what it keeps: the buffer is overwritten by the next frame."""
        if self.cuda_graphs:
            if self._graph is None:
                self._capture()
            self._graph.replay()
        else:
            self.forward()
        if self.host_out is not self.out:
            self.host_out.copy_(self.out, non_blocking=True)
            self.done.record()
            self.done.synchronize()
        return self.host_out.numpy()

    def invalidate_graph(self) -> None:
        """Weights changed in a way a captured graph bakes in (LoRA scales): capture again."""
        self._graph = None

    def _capture(self) -> None:
        torch = self.torch
        saved = [t.clone() for t in (self.x, self.prev, self.feedback)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.forward()
        for buffer, value in zip((self.x, self.prev, self.feedback), saved):
            buffer.copy_(value)
        self._graph = graph
        self.graph_captures += 1

    def forward(self) -> None:
        torch = self.torch
        image = self.image.permute(2, 0, 1)[None].to(self.dtype, memory_format=self.layout).mul_(1 / 127.5).sub_(1.0)
        latents = self._encode(image)
        if self.scaling != 1.0:
            latents = latents * self.scaling
        latents = torch.lerp(latents, self.prev, self.feedback)
        x = self.x
        noised = torch.addcmul(self.b0 * self.noise_rows[0], self.a0, latents)
        if self.stream_batch:
            x[0:1].copy_(noised)
            x0 = self._denoise(x, self.tsteps, self.k_x, self.k_pred)
            out = x0[-1:]
            if self.rows > 1:
                renoised = torch.addcmul(self.b_next[:-1] * self.noise[1:], self.a_next[:-1], x0[:-1])
                x[1:].copy_(renoised)
        else:
            sample = noised
            for k in range(self.steps):
                x0 = self._denoise(sample, self.tsteps[k:k + 1], self.k_x[k:k + 1], self.k_pred[k:k + 1])
                if k < self.steps - 1:
                    sample = torch.addcmul(self.b_next[k] * self.noise_rows[k + 1], self.a_next[k], x0)
            out = x0
        self.prev.copy_(out)
        decoded = self._decode(out if self.scaling == 1.0 else out / self.scaling)
        # To uint8 in the output buffer: scale, round, clamp in place, then one cast-and-permute copy.
        pixels = decoded[0].mul(127.5).add_(128.0).clamp_(0.0, 255.0)
        self.frame.copy_(pixels.permute(1, 2, 0))
        torch.amax(self.flat_frame, dim=0, keepdim=True, out=self.out[-2:-1])
        # NaN or inf anywhere (latents included: they carry into the decoder) makes the sum non-finite.
        torch.logical_not(torch.isfinite(decoded.sum(dtype=torch.float32)).view(1), out=self.bad)

    def _denoise(self, x, tsteps, k_x, k_pred):
        """One UNet call over the rows of `x` (each at its own timestep); returns x0 per row."""
        batch = torch_cat(self.torch, x, self.cfg)
        t = torch_cat(self.torch, tsteps, self.cfg)
        embeds = self.embeds      # rows of x == self.rows in both modes: one layout for the embeddings
        kwargs = {}
        if self.time_cond is not None:
            kwargs["timestep_cond"] = self.time_cond
        if self.sdxl:
            kwargs["added_cond_kwargs"] = {"text_embeds": self.pooled, "time_ids": self.time_ids}
        if self.controlnet is not None:
            control = self.control.permute(2, 0, 1)[None].to(self.dtype, memory_format=self.layout).mul_(1 / 255.0)
            control = control.expand(batch.shape[0], -1, -1, -1)
            cn_kwargs = dict(kwargs)
            if not getattr(self.controlnet.config, "time_cond_proj_dim", None):
                cn_kwargs.pop("timestep_cond", None)
            down, mid = self.controlnet(batch, t, encoder_hidden_states=embeds, controlnet_cond=control,
                                        conditioning_scale=1.0, return_dict=False, **cn_kwargs)
            kwargs["down_block_additional_residuals"] = [d * self.control_scale for d in down]
            kwargs["mid_block_additional_residual"] = mid * self.control_scale
        pred = self.unet(batch, t, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0]
        if self.cfg:
            uncond, text = pred.chunk(2)
            pred = torch_lerp_guidance(uncond, text, self.guidance)
        return torch_addcmul(self.torch, k_x * x, k_pred, pred, -1.0)

    def _encode(self, image):
        vae = self.vae
        if self._tiny_vae:
            return vae.encoder(image)
        moments = vae.encoder(image)
        if getattr(vae, "quant_conv", None) is not None:
            moments = vae.quant_conv(moments)
        return moments[:, : moments.shape[1] // 2]

    def _decode(self, latents):
        vae = self.vae
        if self._tiny_vae:
            return vae.decoder(latents)
        if getattr(vae, "post_quant_conv", None) is not None:
            latents = vae.post_quant_conv(latents)
        return vae.decoder(latents)


def torch_addcmul(torch, base, factor, tensor, value: float):
    return torch.addcmul(base, factor, tensor, value=value)


def torch_lerp_guidance(uncond, text, guidance: float):
    return uncond + guidance * (text - uncond)


def torch_cat(torch, x, twice: bool):
    return torch.cat([x, x]) if twice else x


def _guidance_embedding(torch, guidance: float, dim: int):
    """LCM-distilled UNets take guidance as a timestep condition (one UNet call) instead of CFG."""
    import math

    w = torch.tensor([max(0.0, guidance - 1.0) * 1000.0])
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    emb = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb
