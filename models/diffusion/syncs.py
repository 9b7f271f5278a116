"""Counting host-device synchronisations: every op that makes the host wait for the device.

`SyncCounter` is a TorchDispatchMode that counts `aten._local_scalar_dense` (`.item()`, `bool(t)`,
`int(t)`), `aten.is_nonzero` and copies from a device to the host (`.cpu()`, `.to("cpu")`,
`host.copy_(device)`). On a CPU-only run there is no device, so copies do not count there and the
figure is the scalar reads alone; on CUDA the frame's one output copy counts.
"""
from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode


class SyncCounter(TorchDispatchMode):
    SCALAR_OPS = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.item")
    COPY_OPS = ("aten._to_copy", "aten.copy_", "aten.to")

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
        name = name if name.startswith("aten.") else f"aten.{name}"
        if name in self.SCALAR_OPS or (name in self.COPY_OPS and _device_to_host(name, args, kwargs)):
            self.count += 1
            self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **kwargs)


def _device_to_host(name: str, args, kwargs) -> bool:
    import torch

    if name == "aten.copy_":
        dst, src = args[0], args[1]
        return isinstance(src, torch.Tensor) and src.device.type != "cpu" and dst.device.type == "cpu"
    src = args[0] if args else None
    device = kwargs.get("device")
    if device is None and len(args) > 1 and isinstance(args[1], (str, torch.device)):
        device = args[1]
    return isinstance(src, torch.Tensor) and src.device.type != "cpu" and device is not None \
        and torch.device(device).type == "cpu"
