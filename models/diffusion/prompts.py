"""Prompt embeddings: the text encoder(s), and the slerp from one caption's embeddings to the next.

The text encoders run only when a caption comes; between captions the embeddings the UNet sees
move along a slerp over the caption's transition time, so a prompt change blends instead of jumping.
"""
from __future__ import annotations

import math


class PromptBlend:
    """The embeddings the UNet sees now, the blend toward a new caption's, and the negative prompt's.
    Owned by the renderer thread."""

    def __init__(self, text_encoder, tokenizer, text_encoder_2, tokenizer_2, device: str, dtype) -> None:
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.device, self.dtype = device, dtype
        self.embeds = None               # what the UNet sees now (1, tokens, dim)
        self.pooled = None               # SDXL pooled text embedding (1, dim)
        self.start = self.target = None  # the blend's ends
        self.pooled_start = self.pooled_target = None
        self.negative_embeds = self.negative_pooled = None
        self._blend_start_s: float | None = None
        self._blend_s = 0.0
        self._pending_blend_s: float | None = None

    def encode(self, prompt: str):
        """(embeddings (1, tokens, dim), pooled (1, dim) or None). SDXL: penultimate hidden states of
        both encoders side by side, and the second encoder's projected pooled output."""
        import torch

        with torch.inference_mode():
            ids = self._tokens(self.tokenizer, prompt)
            if self.text_encoder_2 is None:
                embeds = self.text_encoder(ids, return_dict=False)[0]
                return embeds.to(self.dtype), None
            first = self.text_encoder(ids, output_hidden_states=True)
            second = self.text_encoder_2(self._tokens(self.tokenizer_2, prompt), output_hidden_states=True)
            embeds = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
            return embeds.to(self.dtype), second.text_embeds.to(self.dtype)

    def _tokens(self, tokenizer, prompt: str):
        tokens = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        return tokens.input_ids.to(self.device)

    def aim(self, encoded, transition_s: float) -> bool:
        """Blend toward `encoded` (from `encode`) over `transition_s`, from the next frame on. The
        first prompt is taken at once: True then, and the embeddings changed already."""
        target, pooled = encoded
        if self.embeds is None:
            self.embeds = self.start = self.target = target
            self.pooled = self.pooled_start = self.pooled_target = pooled
            self._pending_blend_s = None
            return True
        self.start, self.target = self.embeds, target
        self.pooled_start, self.pooled_target = self.pooled, pooled
        self._pending_blend_s = max(0.0, float(transition_s) if math.isfinite(transition_s) else 0.0)
        self._blend_start_s = None
        return False

    def advance(self, t_s: float) -> tuple[bool, bool]:
        """Move the embeddings along the slerp to render time `t_s`: (moved, still blending)."""
        if self._pending_blend_s is not None:
            self._blend_start_s, self._blend_s, self._pending_blend_s = t_s, self._pending_blend_s, None
        if self.start is None or self.target is None or self._blend_start_s is None:
            return False, False
        alpha = 1.0 if self._blend_s <= 0 else smoothstep((t_s - self._blend_start_s) / self._blend_s)
        self.embeds = slerp(self.start, self.target, alpha)
        if self.pooled_target is not None:
            if alpha >= 1.0:
                self.pooled = self.pooled_target
            else:
                import torch

                self.pooled = torch.lerp(self.pooled_start, self.pooled_target, alpha)
        if alpha >= 1.0:
            self.start, self.pooled_start = self.target, self.pooled_target
            self._blend_start_s = None
            return True, False
        return True, True


def smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


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
