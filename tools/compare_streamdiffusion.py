"""Per-frame cost side by side: Chromesthesia's diffusion renderer and StreamDiffusion's own class.

Both run the same tiny random-weight SD1.5 LCM pipeline (UNet + TAESD-layout VAE + CLIP text
encoder, written by tests/tiny_pipeline.py) on the CPU with one torch thread, img2img on the same
uint8 frames, similarity filters off. With tiny models the frame cost is almost all host overhead
(Python, scheduler maths, copies), the part of a frame that also bounds a GPU.

StreamDiffusion is not a project dependency. Install it into a scratch environment that sees the
project's packages, then run this script with that interpreter:

    python3 -m venv .sdvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > .sdvenv/lib/python3.11/site-packages/base.pth
    .sdvenv/bin/pip install --no-deps streamdiffusion==0.1.1
    nice -n 10 .sdvenv/bin/python tools/compare_streamdiffusion.py --json out.json

StreamDiffusion's `__call__` times itself with CUDA events and calls `torch.cuda.synchronize()`;
on a machine without a GPU both are replaced by no-ops (they cost nothing on a GPU either).
Rounds alternate between the two pipelines so a load change on a shared machine hits both alike.
The comparison uses CPU time of this process per frame (one torch thread: the work done, which
other processes on a shared machine do not inflate) and also reports the best wall-clock round.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T_INDEX = {1: [35], 2: [32, 45], 4: [20, 30, 40, 45]}
"""StreamDiffusion's t_index_list per step count (of its 50-step LCM schedule, as in its img2img examples)."""


def _no_cuda_timing(torch) -> None:
    if torch.cuda.is_available():
        return

    class Event:
        def __init__(self, *args, **kwargs):
            pass

        def record(self, *args, **kwargs):
            pass

        def elapsed_time(self, other):
            return 0.0

    torch.cuda.Event = Event
    torch.cuda.synchronize = lambda *args, **kwargs: None


def build_streamdiffusion(folder: Path, steps: int, size: int, batch: bool):
    import torch
    from diffusers import AutoencoderTiny, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from streamdiffusion import StreamDiffusion
    from transformers import CLIPTextModel, CLIPTokenizer

    pipe = StableDiffusionPipeline(
        vae=AutoencoderTiny.from_pretrained(folder / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(folder / "unet"),
        scheduler=LCMScheduler.from_pretrained(folder / "scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stream = StreamDiffusion(pipe, t_index_list=T_INDEX[steps], torch_dtype=torch.float32, width=size, height=size,
                             use_denoising_batch=batch, cfg_type="none")
    stream.prepare("a lighthouse on a cliff at dusk", num_inference_steps=50, guidance_scale=1.0)
    return stream


def build_ours(folder: Path, steps: int, size: int, batch: bool):
    from installation.config import RenderConfig
    from installation.records import Caption
    from models.diffusion.load import load_diffusion_renderer

    cfg = RenderConfig(model=str(folder), width=size, height=size, steps=steps, stream_batch=batch,
                       similarity_skip=0.0, device="cpu")
    renderer = load_diffusion_renderer(cfg.settings())
    renderer.update_prompt(Caption(t_s=0.0, prompt="a lighthouse on a cliff at dusk", transition_s=0.0))
    return renderer


def frames(size: int, count: int):
    import numpy as np

    from installation.records import MusicState
    from models.procedural.renderer import ProceduralRenderer

    procedural = ProceduralRenderer(size, size)
    return [procedural.render(MusicState(t_s=i / 30, arousal=0.3), i / 30) for i in range(count)], np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    parser.add_argument("--frames", type=int, default=40, help="timed frames per round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per configuration (default 3)")
    parser.add_argument("--steps", default="1,2,4", help="step counts to compare, comma-separated (default 1,2,4)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    import PIL.Image
    import streamdiffusion
    import torch

    from installation.records import MusicState
    from tests.tiny_pipeline import write_tiny_family

    torch.set_num_threads(1)
    _no_cuda_timing(torch)
    folder = write_tiny_family(Path(tempfile.mkdtemp()) / "tiny-sd15-lcm", "sd15-lcm")[0]
    pictures, np = frames(args.size, 8)
    pil = [PIL.Image.fromarray(p) for p in pictures]
    results = []
    for steps in (int(n) for n in args.steps.split(",")):
        for batch in ((False,) if steps == 1 else (False, True)):
            ours = build_ours(folder, steps, args.size, batch)
            theirs = build_streamdiffusion(folder, steps, args.size, batch or steps == 1)
            image_processor = theirs.image_processor
            wall: dict[str, list[float]] = {"ours": [], "streamdiffusion": [], "streamdiffusion_to_uint8": []}
            cpu: dict[str, list[float]] = {k: [] for k in wall}
            for _ in range(2):   # warm-up
                ours.render(MusicState(t_s=0.0, arousal=0.3), 0.0, pictures[0])
                theirs(pil[0])

            def run_ours():
                for i in range(args.frames):
                    ours.render(MusicState(t_s=i / 30, arousal=0.3), i / 30, pictures[i % len(pictures)])

            def run_theirs():
                for i in range(args.frames):
                    theirs(pil[i % len(pil)])

            def run_theirs_uint8():
                for i in range(args.frames):
                    image = image_processor.postprocess(theirs(pil[i % len(pil)]), output_type="np")
                    (image[0] * 255).round().astype(np.uint8)

            for _ in range(args.rounds):
                for name, run in (("ours", run_ours), ("streamdiffusion", run_theirs),
                                  ("streamdiffusion_to_uint8", run_theirs_uint8)):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    run()
                    wall[name].append((time.perf_counter() - started) / args.frames * 1000)
                    cpu[name].append((time.process_time() - started_cpu) / args.frames * 1000)
            row = {"steps": steps, "stream_batch": batch or steps == 1,
                   **{f"{k}_cpu_ms_per_frame": round(statistics.median(v), 2) for k, v in cpu.items()},
                   **{f"{k}_wall_ms_per_frame_best": round(min(v), 2) for k, v in wall.items()},
                   "ours_unet_calls_per_frame": round(ours.stats.unet_calls / max(1, ours.stats.frames + ours.stats.filling), 2)}
            row["ratio_ours_to_streamdiffusion_cpu"] = round(
                row["ours_cpu_ms_per_frame"] / row["streamdiffusion_cpu_ms_per_frame"], 3)
            results.append(row)
            print(json.dumps(row), flush=True)
    report = {"size_px": args.size, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "streamdiffusion": getattr(streamdiffusion, "__version__", "0.1.1"), "device": "cpu",
              "model": "tiny random-weight SD1.5 LCM (tests/tiny_pipeline.py)", "rows": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
