"""Sub-commands of the visuals room: `bench render`, `train image-va`; images for `analyze`.

Handlers import heavy libraries inside the function, so `run.py --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from installation.commands.shared import print_figures
from installation.errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options

    common = config_options()
    bench = groups["bench"].add_parser(
        "render", parents=[common], help="procedural fps, display upload cost and diffusion cost per frame")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--seconds", type=float, default=3.0, metavar="S",
                       help="seconds per procedural measurement (default 3)")
    bench.add_argument("--diffusion-frames", type=int, default=2, metavar="N",
                       help="timed diffusion frames after one warm-up frame (default 2)")
    bench.add_argument("--no-diffusion", action="store_true", help="skip the diffusion measurement")
    bench.add_argument("--torch-threads", type=int, default=0, metavar="N",
                       help="torch CPU threads for diffusion (default: torch's own choice)")
    bench.add_argument("--families", default="", metavar="LIST",
                       help="diffusion families to measure at random weights, comma-separated, 'all' or 'none' "
                            "(default: all, tiny, on a CPU; sd-turbo,sd15-lcm at full size on CUDA)")
    bench.add_argument("--modes", default="eager,graphs", metavar="LIST",
                       help="on CUDA: eager, graphs (CUDA graphs), compile (torch.compile), comma-separated")
    bench.add_argument("--sizes", default="", metavar="LIST",
                       help="on CUDA: WxH sizes, comma-separated (default 512x512,1024x576)")
    bench.add_argument("--family-frames", type=int, default=30, metavar="N",
                       help="timed frames per family configuration (default 30)")
    bench.add_argument("--only-families", action="store_true",
                       help="measure the families alone (skip procedural, display and configured-weights figures)")
    bench.set_defaults(handler=_bench_render)

    train = groups["train"].add_parser(
        "image-va", parents=[common],
        help="fit a linear image VA head on CLIP embeddings from a CSV of image,valence,arousal")
    train.add_argument("labels", type=Path, metavar="CSV",
                       help="CSV with columns image,valence,arousal (VA in -1..1; image paths relative to the CSV)")
    train.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the head (.npz)")
    train.add_argument("--ridge", type=float, default=1.0, help="ridge penalty (default 1.0)")
    train.set_defaults(handler=_train_image_va)


# --- analyze -------------------------------------------------------------------------------------
def analyze_images(paths: list[Path], as_json: bool, cfg) -> int:
    """Print image VA from each head that can run here (colour always; CLIP when its checkpoint exists)."""
    from models.seeing.va import ClipVA, ColourVA, describe

    heads: list = [ColourVA()]
    notes: list[str] = []
    if cfg.watch.clip_checkpoint:
        heads.append(ClipVA(cfg.watch.clip_checkpoint, cfg.watch.clip_model, head=cfg.watch.clip_head))
    else:
        notes.append("clip head skipped: watch.clip_checkpoint is empty (see docs/weights.md)")
    results = []
    for path in paths:
        rgb = read_image(path)
        row: dict[str, Any] = {"file": str(path), "width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
        for head in heads:
            row[head.name] = describe(head.estimate(rgb))
        features = heads[0].features(rgb)
        row["colour_features"] = {k: round(getattr(features, k), 3) for k in
                                  ("brightness", "saturation", "colourfulness", "contrast")}
        results.append(row)
    if as_json:
        print(json.dumps({"images": results, "notes": notes}, indent=2))
        return 0
    names = [h.name for h in heads]
    header = f"{'file':40s} " + " ".join(f"{n + ' V':>9s} {n + ' A':>9s} {'conf':>5s}" for n in names)
    print(header)
    for row in results:
        cells = " ".join(f"{row[n]['valence']:9.2f} {row[n]['arousal']:9.2f} {row[n]['confidence']:5.2f}" for n in names)
        print(f"{_fit(row['file'], 40):40s} {cells}")
    for note in notes:
        print(f"note: {note}")
    return 0


def read_image(path: Path):
    """RGB uint8 (H, W, 3) from an image file; UserError when it is not a readable picture."""
    import cv2
    import numpy as np

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise UserError(f"{path} is not a readable image (png, jpg, bmp, tiff, webp); check the file.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


# --- bench render --------------------------------------------------------------------------------
def _bench_render(args: argparse.Namespace) -> int:
    from installation.startup import load

    cfg = load(args)
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    if args.only_families:
        figures = {"diffusion_families": _family_figures(cfg, args)}
    else:
        figures = bench_render(cfg, seconds=args.seconds, diffusion_frames=args.diffusion_frames,
                               diffusion=not args.no_diffusion)
        if not args.no_diffusion and args.families != "none":
            figures["diffusion_families"] = _family_figures(cfg, args)
    print_figures(figures, args.json)
    return 0


def bench_render(cfg, seconds: float = 3.0, diffusion_frames: int = 2, diffusion: bool = True) -> dict:
    """Figures for the projected visuals; single-threaded numpy/opencv/torch for the procedural layer."""
    figures: dict = {}
    with _single_thread():
        for key, (w, h) in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            fps, p50, p99, cpu_fps = _procedural_fps(w, h, seconds)
            figures[f"procedural_fps_{key}"] = round(fps, 1)
            # Frames per second of the renderer thread's own CPU time: what one idle core gives,
            # however loaded the machine is while measuring.
            figures[f"procedural_fps_{key}_cpu"] = round(cpu_fps, 1)
            figures[f"procedural_ms_p50_{key}"] = round(p50, 3)
            figures[f"procedural_ms_p99_{key}"] = round(p99, 3)
            figures[f"procedural_cpu_ms_{key}"] = round(1000.0 / cpu_fps, 3)
        figures["composition"] = _composition_figures()
        # The projector path for a frame already at 1920x1080 (upload, blit, flip), and for a 512x512
        # frame that the display scales first.
        p50, p99 = _display_ms(1920, 1080, frame_size=(1920, 1080))
        figures["display_ms_1080p"] = round(p50, 3)
        figures["display_ms_p99_1080p"] = round(p99, 3)
        p50, _ = _display_ms(1920, 1080, frame_size=(512, 512))
        figures["display_ms_1080p_from_512"] = round(p50, 3)
    if diffusion:
        figures["diffusion"] = _diffusion_figures(cfg, diffusion_frames)
    return figures


def _family_figures(cfg, args: argparse.Namespace) -> dict:
    """Every family at random weights: host syncs, allocations, lag; fps on CUDA (models.diffusion.bench)."""
    import torch

    from models.diffusion.bench import ALL_FAMILIES, family_figures
    from models.diffusion.load import pick_device, pick_dtype

    device = pick_device(cfg.render.device)
    if device == "cpu" and args.torch_threads <= 0:
        torch.set_num_threads(1)   # tiny models: the figures are counts and host overhead, not throughput
    text = args.families.strip()
    if text in ("", "default"):
        families = ALL_FAMILIES if device != "cuda" else ("sd-turbo", "sd15-lcm")
    elif text == "all":
        families = ALL_FAMILIES
    else:
        families = tuple(f.strip() for f in text.split(",") if f.strip())
        unknown = [f for f in families if f not in ALL_FAMILIES]
        if unknown:
            raise UserError(f"--families: {', '.join(unknown)} unknown; use {', '.join(ALL_FAMILIES)} or all.")
    sizes = None
    if args.sizes:
        try:
            sizes = tuple(tuple(int(v) for v in item.lower().split("x")) for item in args.sizes.split(","))
        except ValueError:
            raise UserError(f"--sizes {args.sizes!r}: use WxH pairs like 512x512,1024x576.") from None
        if any(len(s) != 2 or s[0] % 8 or s[1] % 8 for s in sizes):
            raise UserError(f"--sizes {args.sizes!r}: each size is WxH, both multiples of 8.")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if set(modes) - {"eager", "graphs", "compile"}:
        raise UserError(f"--modes {args.modes!r}: use eager, graphs and/or compile.")
    rows = family_figures(device, families=families, sizes=sizes, modes=modes, frames=args.family_frames,
                          dtype=pick_dtype(cfg.render.dtype, device))
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {"device": device, "gpu": gpu, "torch": torch.__version__, "families": rows,
            "note": "fps are measured only on CUDA; on a CPU the families are tiny and the figures are counts"
                    " (host syncs, UNet calls, lag) and host overhead"}


class _single_thread:
    def __enter__(self):
        import cv2
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(1)
        self._cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        return self

    def __exit__(self, *exc):
        import cv2

        cv2.setNumThreads(self._cv_threads)
        self._limits.restore_original_limits()
        return False


def _procedural_fps(width: int, height: int, seconds: float) -> tuple[float, float, float, float]:
    import time

    import numpy as np

    from installation.records import Caption, MusicState
    from models.procedural.renderer import ProceduralRenderer

    renderer = ProceduralRenderer(width, height)
    renderer.update_prompt(Caption(t_s=0.0, prompt="bench", valence=0.3, arousal=0.5, transition_s=1.0,
                                   facets={"scene": "city lights in the rain under the stars", "motion": "drifting"},
                                   hints={"palette": ("#1b2a49", "#465881", "#c9a66b", "#f2d0a4"),
                                          "shapes": "orbs", "layout": "centre"}))
    times: list[float] = []
    cpu: list[float] = []
    t_s = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 30:
        state = MusicState(t_s=t_s, valence=0.3, arousal=0.5, tempo_bpm=120.0, beat_phase=(t_s * 2.0) % 1.0,
                           beat_confidence=0.8, onset_strength=0.3 + 0.3 * (int(t_s * 8) % 2), silent=False)
        started = time.perf_counter()
        cpu_started = time.thread_time()
        renderer.render(state, t_s)
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
        t_s += 1 / 60
    ms = np.asarray(times[5:]) * 1000.0
    cpu_ms = float(np.mean(cpu[5:])) * 1000.0
    return 1000.0 / float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), 1000.0 / cpu_ms


def _composition_figures(frames: int = 600) -> dict:
    """Motif families at full strength per frame over 10 s (simulated clock, 60 frames a second) in
    every scene, a dense caption naming seven motif families changing every 2.5 s."""
    from installation.records import Caption, MusicState
    from models.procedural.composition import MAX_FULL
    from models.procedural.renderer import ProceduralRenderer
    from scenes.scene import available_scenes, load_scene

    words = ["city lights in the rain under the stars with birds over mountains", "rings of light over a grid",
             "lightning over waves and boats under the moon", "forest and grass with petals in the wind"]
    counts: list[int] = []
    for name in available_scenes():
        renderer = ProceduralRenderer(320, 180, seed=0)
        renderer.prepare(load_scene(name))
        for i in range(frames):
            t_s = i / 60.0
            if i % 150 == 0:
                k = i // 150
                renderer.update_prompt(Caption(t_s=t_s, prompt="dense", transition_s=1.0,
                                               facets={"scene": words[k % 4], "composition": words[(k + 1) % 4]},
                                               hints={"shapes": "orbs", "layout": ("diagonal", "centre", "horizon")[k % 3]}))
            renderer.render(MusicState(t_s=t_s, valence=0.2, arousal=0.5, tempo_bpm=120.0, beat_phase=(t_s * 2.0) % 1.0,
                                       beat_confidence=0.8, onset_strength=0.4, silent=False), t_s)
            counts.append(int(renderer.composition["full_strength"]))
    return {"clock": "simulated (60 frames a second of render time, not wall clock)", "frames": len(counts),
            "full_strength_max": max(counts), "full_strength_mean": round(sum(counts) / len(counts), 3),
            f"frames_with_at_most_{MAX_FULL}_share": round(sum(c <= MAX_FULL for c in counts) / len(counts), 4)}


def _display_ms(width: int, height: int, frame_size: tuple[int, int]) -> tuple[float, float]:
    """(p50, p99) ms of the projector path for one render-size frame at `width`x`height`: the
    display's own `show` (scale, upload, blit, flip) under SDL's dummy driver, so no screen is needed."""
    import os
    import time

    import numpy as np

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from hardware.video.display import PygameDisplay

    display = PygameDisplay("window", width, height)
    display.open()
    try:
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (frame_size[1], frame_size[0], 3), dtype=np.uint8) for _ in range(4)]
        times = []
        for i in range(120):
            started = time.perf_counter()
            display.show(frames[i % 4])
            times.append(time.perf_counter() - started)
        ms = np.asarray(times[10:]) * 1000.0
        return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    finally:
        display.close()


def _diffusion_figures(cfg, frames: int) -> dict:
    """Per-frame cost of diffusion with the configured weights, or with the full-size SD1.5
    architecture at random weights when none are configured (the cost is the real one)."""
    import time

    import numpy as np
    import torch

    from installation.records import Caption, MusicState
    from models.diffusion.load import load_diffusion_renderer
    from models.diffusion.stats import DiffusionStats
    from models.diffusion.weights import check_weights
    from models.procedural.renderer import ProceduralRenderer

    width, height = 512, 512
    source = "configured weights"
    settings = replace(cfg.render.settings(), width=width, height=height, similarity_skip=0.0)
    if settings.model and not check_weights(settings):
        renderer = load_diffusion_renderer(settings)
    else:
        source = "random-weight SD1.5 UNet + TAESD layout (no weights configured)"
        renderer = _random_sd15_renderer(settings)
    unet_params = sum(p.numel() for p in renderer.unet.parameters())
    procedural = ProceduralRenderer(width, height)
    caption = Caption(t_s=0.0, prompt="a lighthouse on a cliff at dusk, oil painting", transition_s=0.0)
    renderer.update_prompt(caption)
    flops = _count_gflops(renderer, procedural)
    results: dict = {"device": renderer.device, "dtype": str(renderer.dtype).replace("torch.", ""),
                     "weights": source, "unet_params_m": round(unet_params / 1e6, 1),
                     "torch_threads": torch.get_num_threads(),
                     "width": width, "height": height, "gflops_per_frame": flops}
    step_list = (1, 2, 4) if renderer.device == "cuda" else (cfg.render.steps,)
    runs = []
    for steps in step_list:
        renderer.steps = steps
        renderer.stats = DiffusionStats()
        base_text = renderer.stats.text_encoder_calls
        times = []
        for i in range(frames + 1):
            state = MusicState(t_s=i / 30, arousal=0.3, beat_phase=(i * 0.25) % 1.0, beat_confidence=0.5)
            init = procedural.render(state, i / 30)
            if renderer.device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            renderer.render(state, i / 30, init)
            if renderer.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        timed = times[1:] if len(times) > 1 else times
        stats = renderer.stats
        done = max(1, stats.frames)
        runs.append({"steps": steps, "fps": round(1.0 / float(np.mean(timed)), 3),
                     "ms_per_frame": round(float(np.mean(timed)) * 1000.0, 1),
                     "unet_calls_per_step": round(stats.unet_calls / (done * steps), 3),
                     "text_encoder_calls_per_frame_unchanged_prompt": round((stats.text_encoder_calls - base_text) / done, 3),
                     "vae_calls_per_frame": round((stats.vae_encode_calls + stats.vae_decode_calls) / done, 3),
                     "bad_frames": stats.bad_frames, "errors": stats.errors})
    first = next((r for r in runs if r["steps"] == cfg.render.steps), runs[0])
    results.update({k: first[k] for k in ("steps", "fps", "ms_per_frame", "unet_calls_per_step",
                                          "text_encoder_calls_per_frame_unchanged_prompt", "vae_calls_per_frame")})
    results["runs"] = runs
    return results


def _random_sd15_renderer(settings):
    """The real SD1.5 architecture (859M UNet, CLIP ViT-L text encoder, TAESD-layout VAE) with
    random weights, built offline; of the settings only size, steps, guidance, seed and device count."""
    import torch
    from diffusers import AutoencoderTiny, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from models.diffusion.load import pick_device
    from models.diffusion.renderer import DiffusionRenderer

    device = pick_device(settings.device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, time_cond_proj_dim=256)
    vae = AutoencoderTiny()
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=12, num_attention_heads=12,
                                                max_position_embeddings=77))
    tokenizer = _offline_clip_tokenizer()
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                             set_alpha_to_one=False, clip_sample=False)
    # Random weights may overflow fp16 into NaN on CUDA: the renderer then counts bad frames (reported)
    # and shows the last good one, and every UNet/VAE call still runs, so the timing stays real.
    plain = replace(settings, stream_batch=False, cuda_graphs=False, compile=False, tensorrt=False,
                    controlnet_source="edges", controlnet_strength=1.0)
    return DiffusionRenderer(unet, vae, text_encoder, tokenizer, scheduler, plain, device=device, dtype=dtype)


def _offline_clip_tokenizer():
    """open_clip ships CLIP's BPE vocabulary; wrap its tokenizer in the call shape the renderer uses."""
    import open_clip
    import torch

    class _Tokens:
        def __init__(self, ids):
            self.input_ids = ids

    class OpenClipTokenizer:
        model_max_length = 77

        def __init__(self):
            self._tok = open_clip.get_tokenizer("ViT-L-14")

        def __call__(self, text, **_kwargs):
            return _Tokens(self._tok([text]).to(torch.long))

    return OpenClipTokenizer()


def _count_gflops(renderer, procedural) -> float:
    """FLOPs of one frame (VAE encode, `steps` UNet calls, VAE decode), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from installation.records import MusicState

    state = MusicState(t_s=0.0, arousal=0.3)
    init = procedural.render(state, 0.0)
    try:
        with FlopCounterMode(display=False) as counter:
            renderer.render(state, 0.0, init)
        return round(counter.get_total_flops() / 1e9, 1)
    except Exception as exc:  # the counter does not know every op on every backend
        log.warning("FLOP count failed: %s", exc)
        return float("nan")


# --- train image-va --------------------------------------------------------------------------------
def _train_image_va(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from installation.startup import load
    from models.seeing.va import ClipVA, fit_linear_head

    cfg = load(args)
    if not cfg.watch.clip_checkpoint:
        raise UserError("watch.clip_checkpoint is empty; the image VA head is fitted on CLIP embeddings, so fetch "
                        "CLIP weights as docs/weights.md describes and set it.")
    if not args.labels.is_file():
        raise UserError(f"{args.labels} does not exist; give a CSV with columns image,valence,arousal.")
    rows = []
    with args.labels.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "valence", "arousal"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{args.labels} lacks column(s) {', '.join(sorted(missing))}; the header must be "
                            f"image,valence,arousal.")
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((args.labels.parent / row["image"], float(row["valence"]), float(row["arousal"])))
            except (TypeError, ValueError):
                raise UserError(f"{args.labels} line {line}: valence and arousal must be numbers in -1..1.") from None
    if len(rows) < 8:
        raise UserError(f"{args.labels} has {len(rows)} labelled images; give at least 8 (50+ for a useful head).")
    head = ClipVA(cfg.watch.clip_checkpoint, cfg.watch.clip_model)
    embeddings = np.stack([head.embed(read_image(path)) for path, _, _ in rows])
    va = np.asarray([(v, a) for _, v, a in rows], dtype=np.float32)
    weight, bias = fit_linear_head(embeddings, va, ridge=args.ridge)
    pred = np.tanh(embeddings @ weight + bias)
    mae = np.abs(pred - va).mean(axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, weight=weight, bias=bias, model=cfg.watch.clip_model)
    print(f"wrote {args.out}: {len(rows)} images, training MAE valence {mae[0]:.3f}, arousal {mae[1]:.3f}; "
          f"set watch.clip_head = \"{args.out}\"", file=sys.stdout)
    return 0
