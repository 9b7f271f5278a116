"""Putting the pipeline's modules on the device: placement, torch.compile, TensorRT."""
from __future__ import annotations

from installation.errors import UserError


def to_device(module, device: str, dtype):
    """Move a module only when needed: diffusers warns about casts on every `.to(dtype)`."""
    first = next(module.parameters(), None)
    if first is not None and (first.device.type != device or first.dtype != dtype):
        module = module.to(device=device, dtype=dtype)
    return module.eval()


def base_module(module):
    """The module under a torch.compile wrapper."""
    return getattr(module, "_orig_mod", module)


def vae_scale(vae) -> int:
    """Pixels per latent cell: 2 per down block after the first (8 for the usual VAEs)."""
    block_out = getattr(vae.config, "block_out_channels", None) or \
        getattr(vae.config, "decoder_block_out_channels", None) or (0, 0, 0, 0)
    return 2 ** (len(block_out) - 1)


def compiled_unet(unet, dtype, *, compile_unet: bool, compile_mode: str, tensorrt: bool):
    """The UNet as the frame calls it: TensorRT, torch.compile, or as it is."""
    import torch

    if tensorrt:
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError:
            raise UserError("render.tensorrt needs torch-tensorrt: install the optional extra with "
                            "`pip install .[tensorrt]`, or set render.tensorrt = false.") from None
        return torch.compile(unet, backend="torch_tensorrt", dynamic=False,
                             options={"enabled_precisions": {dtype}, "use_python_runtime": False,
                                      "min_block_size": 1})
    if compile_unet:
        # reduce-overhead captures CUDA graphs: the first frames are slow, the rest fast.
        return torch.compile(unet, mode=compile_mode, fullgraph=False)
    return unet
