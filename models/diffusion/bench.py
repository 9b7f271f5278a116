"""Per-family figures for `run.py bench render`: host syncs, allocations, lag, frames per second.

On a CPU the families are built tiny (the figures that matter there are the counts: host-device
synchronisations per frame, UNet calls, frames of lag; the milliseconds are host overhead). On CUDA
they are built at full size with random weights (a frame's cost does not depend on the weights) and
timed at 1, 2 and 4 steps, sequential and with stream batch, at each size, eager and with CUDA
graphs (and torch.compile when asked). Called from the benchmark's thread only.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from installation.records import Caption, MusicState

from .architectures import random_components
from .renderer import DiffusionRenderer
from .settings import RenderSettings
from .stats import DiffusionStats
from .syncs import SyncCounter

log = logging.getLogger(__name__)
ALL_FAMILIES = ("sd15-lcm", "sd15-lcm-lora", "sd-turbo", "sdxs-512", "sdxl-turbo", "sdxl-lcm-lora")
GPU_SIZES = ((512, 512), (1024, 576))


def family_figures(device: str, families=ALL_FAMILIES, sizes=None, modes=("eager", "graphs"),
                   step_list=(1, 2, 4), frames: int = 30, full: bool | None = None, dtype=None) -> list[dict]:
    import torch

    full = device == "cuda" if full is None else full
    if dtype is None:
        dtype = torch.float16 if device == "cuda" else torch.float32
    if sizes is None:
        sizes = GPU_SIZES if device == "cuda" else ((64, 64),)
    if device != "cuda":
        modes = tuple(m for m in modes if m == "eager") or ("eager",)
        step_list = (2,)
    out = []
    for family in families:
        started = time.perf_counter()
        components = random_components(family, full=full)
        built_s = time.perf_counter() - started
        row: dict = {"family": family, "description": components.family.description,
                     "architecture": "full size, random weights" if full else "tiny, random weights",
                     "unet_params_m": round(sum(p.numel() for p in components.unet.parameters()) / 1e6, 1),
                     "build_s": round(built_s, 1), "runs": []}
        for mode in modes:
            try:
                row["runs"].extend(_mode_runs(components, device, dtype, mode, sizes, step_list, frames))
            except Exception as exc:  # one mode failing (compile on an old GPU) must not lose the rest
                log.exception("bench %s %s failed", family, mode)
                row["runs"].append({"mode": mode, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        syncs = [r["host_syncs_per_frame"] for r in row["runs"] if "host_syncs_per_frame" in r]
        row["host_syncs_per_frame"] = max(syncs) if syncs else None
        out.append(row)
        del components
        if device == "cuda":
            torch.cuda.empty_cache()
    return out


def _mode_runs(components, device: str, dtype, mode: str, sizes, step_list, frames: int) -> list[dict]:
    """One mode's runs; the settings are the benchmark's own, not the configured ones."""
    import torch

    runs = []
    width, height = sizes[0]
    first_started = time.perf_counter()
    settings = RenderSettings(
        width=width, height=height, seed=0, model="", vae="", lora="", loras=(), family=components.family.name,
        controlnet="", controlnet_source="edges", controlnet_strength=1.0, steps=step_list[0], guidance=1.0,
        similarity_skip=0.0, device=device, dtype="auto", stream_batch=False, cuda_graphs=mode == "graphs",
        compile=mode == "compile", compile_mode="max-autotune-no-cudagraphs" if mode == "compile" else "reduce-overhead",
        tensorrt=False)
    renderer = DiffusionRenderer(
        components.unet, components.vae, components.text_encoder, components.tokenizer,
        components.scheduler_config, settings, device=device, dtype=dtype, family=components.family,
        text_encoder_2=components.text_encoder_2, tokenizer_2=components.tokenizer_2)
    renderer.update_prompt(Caption(t_s=0.0, prompt="a lighthouse on a cliff at dusk, oil painting", transition_s=0.0))
    rng = np.random.default_rng(0)
    first_frame_s = None
    for size in sizes:
        if size != (renderer.width, renderer.height):
            renderer.resize(*size)
        inits = [rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(4)]
        for steps in step_list:
            for stream in ((False,) if steps == 1 else (False, True)):
                renderer.steps = steps
                renderer.stream_batch = stream
                renderer.stats = DiffusionStats()
                state = MusicState(t_s=0.0, arousal=0.3)
                renderer.render(state, 0.0, inits[0])          # warm-up (graph capture, compile)
                if first_frame_s is None:
                    first_frame_s = time.perf_counter() - first_started
                for i in range(max(2, steps)):
                    renderer.render(state, i / 30, inits[i % 4])
                with SyncCounter() as counter:
                    for i in range(3):
                        renderer.render(state, i / 30, inits[i % 4])
                allocations = None
                if device == "cuda":
                    torch.cuda.synchronize()
                    before = torch.cuda.memory_stats().get("allocation.all.allocated", 0)
                    for i in range(3):
                        renderer.render(state, i / 30, inits[i % 4])
                    allocations = (torch.cuda.memory_stats().get("allocation.all.allocated", 0) - before) / 3
                    torch.cuda.synchronize()
                unet_before = renderer.stats.unet_calls
                started = time.perf_counter()
                for i in range(frames):
                    renderer.render(state, i / 30, inits[i % 4])
                if device == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - started
                runs.append({"mode": mode, "width": size[0], "height": size[1], "steps": steps, "stream_batch": stream,
                             "fps": round(frames / elapsed, 2), "ms_per_frame": round(elapsed / frames * 1000, 2),
                             "host_syncs_per_frame": round(counter.count / 3, 3),
                             "allocations_per_frame": None if allocations is None else round(allocations, 1),
                             "unet_calls_per_frame": round((renderer.stats.unet_calls - unet_before) / frames, 3),
                             "frames_of_lag": renderer.frames_of_lag, "bad_frames": renderer.stats.bad_frames,
                             "graph_captures": renderer.engine.graph_captures})
    if runs:
        runs[0]["first_frame_s"] = round(first_frame_s or 0.0, 2)
    return runs
