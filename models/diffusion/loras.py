"""LoRAs: an LCM-LoRA fused into the UNet's weights (no cost per frame), and runtime LoRAs as peft
adapters whose weights operators change live (`/param/lora/<name>`)."""
from __future__ import annotations

import re
from pathlib import Path

from installation.errors import UserError

from .families import Family, short_error
from .modules import base_module
from .weights import WEIGHTS_DOC


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
        raise UserError(f"render.lora {path} does not apply to this model ({type(exc).__name__}: {short_error(exc)}); "
                        f"use the LCM-LoRA for {family.base.upper()} as {WEIGHTS_DOC} describes.") from None


class LiveLoras:
    """Runtime LoRAs on one UNet: adapter scales change in place, no reload. A change drops the
    engine's captured CUDA graph (`invalidate`), which holds the old scales."""

    def __init__(self, unet, family: Family, invalidate) -> None:
        self.unet = base_module(unet)
        self.family = family
        self._invalidate = invalidate
        self.weights: dict[str, float] = {}

    def add(self, path: Path, weight: float = 1.0) -> str:
        """Attach a LoRA as a peft adapter with a live weight; returns its name."""
        name = lora_name(path)
        if name in self.weights:
            raise UserError(f"render.loras: two LoRA files are both called {name!r}; rename one.")
        try:
            _read_lora(path, self.unet, self.family, name)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"render.loras: {path} does not apply to this model ({type(exc).__name__}: "
                            f"{short_error(exc)}); use a LoRA trained for {self.family.base.upper()}.") from None
        self.weights[name] = float(weight)
        self._apply()
        return name

    def set(self, name: str, weight: float) -> bool:
        """Change one LoRA's weight; False when it already has it. KeyError for an unknown name."""
        if name not in self.weights:
            raise KeyError(name)
        weight = float(weight)
        if self.weights[name] == weight:
            return False
        self.weights[name] = weight
        self._apply()
        return True

    def _apply(self) -> None:
        self.unet.set_adapters(list(self.weights), weights=list(self.weights.values()))
        self._invalidate()
