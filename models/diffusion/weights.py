"""Weights on disk: which file is missing, truncated or not what it claims, in one sentence each.

Reads headers only (a 3 GB file is checked in microseconds); nothing is loaded or downloaded.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from .settings import RenderSettings

WEIGHTS_DOC = "docs/weights.md"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
SDXL_COMPONENTS = ("text_encoder_2", "tokenizer_2")
WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "controlnet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
    "text_encoder_2": ("model.safetensors", "pytorch_model.bin"),
}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


# --- checking weights on disk ---------------------------------------------------------------------
def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is unusable (truncated, not safetensors), or None when its header and
    size agree. Reads only the header, so a 3 GB file is checked in microseconds."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path} is empty or truncated ({size} bytes)"
            (header_len,) = struct.unpack("<Q", head)
            if header_len <= 0 or header_len > 100_000_000:
                return f"{path} is not a safetensors file (bad header length)"
            if header_len > size - 8:
                return f"{path} is truncated or corrupt (its header alone needs {8 + header_len} bytes, the file has {size})"
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read as safetensors ({type(exc).__name__})"
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        return f"{path} is truncated or corrupt (its header promises {8 + header_len + end} bytes, the file has {size})"
    return None


def _weight_file(folder: Path, component: str) -> tuple[Path | None, str | None]:
    """(weight file, variant) found in a component folder; sharded indexes count as present."""
    for variant in (None, "fp16"):
        for name in WEIGHT_NAMES[component]:
            if variant:
                stem, dot, ext = name.partition(".")
                name = f"{stem}.{variant}.{ext}"
            for candidate in (folder / name, folder / f"{name}.index.json"):
                if candidate.is_file():
                    return candidate, variant
    return None, None


def _file_problem(path: Path) -> str | None:
    if path.name.endswith(".index.json"):
        try:
            shards = set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError) as exc:
            return f"{path} is not a readable shard index ({type(exc).__name__})"
        for shard in sorted(shards):
            shard_path = path.parent / shard
            if not shard_path.is_file():
                return f"{shard_path} is missing (listed in {path.name})"
            problem = _file_problem(shard_path)
            if problem:
                return problem
        return None
    if path.stat().st_size == 0:
        return f"{path} is empty"
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".bin", ".ckpt", ".pt"):
        import zipfile

        if not zipfile.is_zipfile(path):
            return f"{path} is truncated or not a PyTorch checkpoint"
    return None


def _folder_problems(folder: Path, components: tuple[str, ...], key: str) -> list[str]:
    problems: list[str] = []
    for component in components:
        sub = folder / component
        if component.startswith("tokenizer"):
            if not ((sub / "tokenizer.json").is_file() or ((sub / "vocab.json").is_file() and (sub / "merges.txt").is_file())):
                problems.append(f"{key}: {sub} has no tokenizer (vocab.json + merges.txt or tokenizer.json); "
                                f"download the model's tokenizer/ folder as {WEIGHTS_DOC} describes.")
            continue
        config_name = "scheduler_config.json" if component == "scheduler" else "config.json"
        if not (sub / config_name).is_file():
            problems.append(f"{key}: {sub / config_name} is missing; download the model's {component}/ folder "
                            f"as {WEIGHTS_DOC} describes.")
            continue
        if component == "scheduler":
            continue
        weights, _ = _weight_file(sub, component)
        if weights is None:
            problems.append(f"{key}: {sub} has no weights ({' or '.join(WEIGHT_NAMES[component])}); download them "
                            f"as {WEIGHTS_DOC} describes.")
            continue
        problem = _file_problem(weights)
        if problem:
            problems.append(f"{key}: {problem}; download it again as {WEIGHTS_DOC} describes.")
    return problems


def check_weights(settings: RenderSettings) -> list[str]:
    """One sentence per problem with the configured weights; [] when no model is configured or all
    files are there and intact (headers and sizes; loading can still fail on a wrong architecture)."""
    model = settings.model
    if not model:
        return []
    problems: list[str] = []
    path = Path(model).expanduser()
    if not path.exists():
        problems.append(f"render.model: {path} does not exist; fetch an LCM model as {WEIGHTS_DOC} describes, "
                        f"or set render.model = \"\" to run on procedural visuals.")
    elif path.is_file():
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            problems.append(f"render.model: {path} is neither a diffusers folder nor a .safetensors/.ckpt checkpoint; "
                            f"point it at one as {WEIGHTS_DOC} describes.")
        else:
            problem = _file_problem(path)
            if problem:
                problems.append(f"render.model: {problem}; download it again as {WEIGHTS_DOC} describes.")
    else:
        if not (path / "model_index.json").is_file():
            problems.append(f"render.model: {path / 'model_index.json'} is missing, so {path} is not a diffusers "
                            f"folder; download the whole model folder as {WEIGHTS_DOC} describes.")
        own_vae = not settings.vae
        components = COMPONENTS if own_vae else tuple(c for c in COMPONENTS if c != "vae")
        if _lists_second_text_encoder(path):
            components += SDXL_COMPONENTS
        problems.extend(_folder_problems(path, components, "render.model"))
    vae = settings.vae
    if vae:
        vae_path = Path(vae).expanduser()
        if not vae_path.is_dir():
            problems.append(f"render.vae: {vae_path} is not a folder; download a tiny VAE (madebyollin/taesd) as "
                            f"{WEIGHTS_DOC} describes, or set render.vae = \"\".")
        else:
            problems.extend(p.replace(f"{vae_path / 'vae'}", str(vae_path))
                            for p in _vae_folder_problems(vae_path))
    lora = settings.lora
    if lora:
        lora_path = Path(lora).expanduser()
        if not lora_path.is_file():
            problems.append(f"render.lora: {lora_path} does not exist; download the LCM-LoRA file as {WEIGHTS_DOC} "
                            f"describes, or set render.lora = \"\".")
        else:
            problem = _file_problem(lora_path)
            if problem:
                problems.append(f"render.lora: {problem}; download it again as {WEIGHTS_DOC} describes.")
    controlnet = settings.controlnet
    if controlnet:
        cn_path = Path(controlnet).expanduser()
        weights, _ = _weight_file(cn_path, "controlnet") if cn_path.is_dir() else (None, None)
        if not (cn_path / "config.json").is_file() or weights is None:
            problems.append(f"render.controlnet: {cn_path} is not a ControlNet folder (config.json + "
                            f"diffusion_pytorch_model.safetensors); download one as {WEIGHTS_DOC} describes, "
                            f"or set render.controlnet = \"\".")
        else:
            problem = _file_problem(weights)
            if problem:
                problems.append(f"render.controlnet: {problem}; download it again as {WEIGHTS_DOC} describes.")
    for entry in settings.loras:
        lora_path, _ = split_lora_entry(entry)
        if not lora_path.is_file():
            problems.append(f"render.loras: {lora_path} does not exist; copy the LoRA file there or remove it "
                            f"from render.loras.")
            continue
        problem = _file_problem(lora_path)
        if problem:
            problems.append(f"render.loras: {problem}; copy it again.")
    return problems


def split_lora_entry(entry: str) -> tuple[Path, float]:
    """"weights/ink.safetensors:0.7" -> (path, 0.7); the weight defaults to 1.0."""
    text = entry.strip()
    path, sep, weight = text.rpartition(":")
    if sep and path and not weight.startswith(("/", "\\")):
        try:
            return Path(path).expanduser(), float(weight)
        except ValueError:
            pass
    return Path(text).expanduser(), 1.0


def _lists_second_text_encoder(folder: Path) -> bool:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (folder / "text_encoder_2").is_dir()
    return bool(index.get("text_encoder_2") and index["text_encoder_2"][0]) or (folder / "text_encoder_2").is_dir()


def _vae_folder_problems(folder: Path) -> list[str]:
    if not (folder / "config.json").is_file():
        return [f"render.vae: {folder / 'config.json'} is missing; download the tiny VAE folder as {WEIGHTS_DOC} describes."]
    weights, _ = _weight_file(folder, "vae")
    if weights is None:
        return [f"render.vae: {folder} has no diffusion_pytorch_model.safetensors; download it as {WEIGHTS_DOC} describes."]
    problem = _file_problem(weights)
    return [f"render.vae: {problem}; download it again as {WEIGHTS_DOC} describes."] if problem else []


