"""Tiny random-weight pipelines of every family written to disk, for tests that load them like users do.

The layout matches a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
scheduler/, and text_encoder_2/, tokenizer_2/ for SDXL), in the spirit of diffusers' own
`get_dummy_components()`: the same structural switches as the real models (guidance embedding,
SD2.x linear projections, SDXL added time ids and pooled text embedding), at a few hundred thousand
parameters. Nothing is downloaded: the CLIP tokenizer is written from a byte-level vocab.json with an
empty merges.txt.
"""
from __future__ import annotations

import json
from pathlib import Path

from models.captions.safety import bytes_to_unicode


def write_tokenizer(folder: Path, max_length: int = 16) -> None:
    """An offline CLIPTokenizer: single byte-level characters, with and without the word-end mark."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)
    tokenizer.save_pretrained(folder)


def build_tiny_components(seed: int = 0):
    """(unet, vae, text_encoder) with random weights; a few hundred thousand parameters in all."""
    import torch
    from diffusers import AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, time_cond_proj_dim=32)
    vae = AutoencoderTiny(encoder_block_out_channels=(16, 16, 16, 16), decoder_block_out_channels=(16, 16, 16, 16),
                          num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4)
    text_config = CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=32,
                                 intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
                                 num_hidden_layers=2, vocab_size=514, max_position_embeddings=16)
    text_encoder = CLIPTextModel(text_config)
    return unet, vae, text_encoder


def write_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save a complete tiny LCM pipeline as a diffusers folder and return its path."""
    from diffusers import LCMScheduler

    folder = Path(folder)
    unet, vae, text_encoder = build_tiny_components(seed)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    write_tokenizer(folder / "tokenizer")
    LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                 set_alpha_to_one=False, clip_sample=False).save_pretrained(folder / "scheduler")
    index = {"_class_name": "LatentConsistencyModelPipeline", "_diffusers_version": "0.42.1",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderTiny"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "LCMScheduler"], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder


def write_tiny_vae(folder: Path, seed: int = 1) -> Path:
    """A separate tiny AutoencoderTiny folder, as a TAESD download would look."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    vae = AutoencoderTiny(encoder_block_out_channels=(16, 16, 16, 16), decoder_block_out_channels=(16, 16, 16, 16),
                          num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4)
    vae.save_pretrained(folder)
    return Path(folder)


def write_tiny_lora(folder: Path, seed: int = 2) -> Path:
    """A random LoRA for the tiny UNet's attention, saved in diffusers' LoRA format (as the
    LCM-LoRA download is); returns the .safetensors path."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet, _, _ = build_tiny_components()
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              safe_serialization=True)
    return Path(folder) / "pytorch_lora_weights.safetensors"


# --- every family ----------------------------------------------------------------------------------
FAMILY_FIXTURES = ("sd15-lcm", "sd15-lcm-lora", "sd-turbo", "sdxs-512", "sdxl-turbo", "sdxl-lcm-lora")
"""Families with a tiny fixture; the *-lcm-lora ones are a base folder plus an LCM-LoRA file."""


def _tiny_unet(time_cond: bool = False, linear: bool = False, sdxl: bool = False, seed: int = 0):
    from models.diffusion import architectures

    family = "sdxl-turbo" if sdxl else "sd-turbo" if linear else "sd15-lcm" if time_cond else "sd15"
    return architectures.unet(family, full=False, seed=seed)


def _tiny_vae(seed: int = 1):
    from models.diffusion import architectures

    return architectures.vae(full=False, seed=seed)


def mid_grey(vae):
    from models.diffusion.architectures import mid_grey as centre

    return centre(vae)


def _tiny_text_encoder(projection: bool = False, seed: int = 3):
    from models.diffusion import architectures

    return architectures.text_encoder("clip-l", full=False, projection=projection, seed=seed)


def _write_scheduler(folder: Path, turbo: bool) -> None:
    from diffusers import EulerDiscreteScheduler, LCMScheduler

    if turbo:   # SD-Turbo and SDXL-Turbo ship an Euler config; only its betas matter here
        EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                               timestep_spacing="trailing", steps_offset=1).save_pretrained(folder)
    else:
        LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                     set_alpha_to_one=False, clip_sample=False).save_pretrained(folder)


def write_tiny_family(folder: Path, family: str, seed: int = 0) -> tuple[Path, Path | None]:
    """(model folder, LCM-LoRA file or None) for a family in FAMILY_FIXTURES."""
    folder = Path(folder)
    sdxl = family.startswith("sdxl")
    turbo = family in ("sd-turbo", "sdxs-512", "sdxl-turbo")
    unet = _tiny_unet(time_cond=family == "sd15-lcm", linear=family in ("sd-turbo", "sdxs-512"), sdxl=sdxl, seed=seed)
    unet.save_pretrained(folder / "unet")
    _tiny_vae().save_pretrained(folder / "vae")
    _tiny_text_encoder().save_pretrained(folder / "text_encoder")
    write_tokenizer(folder / "tokenizer")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderTiny" if family == "sdxs-512" else "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler" if turbo else "LCMScheduler"]}
    if sdxl:
        _tiny_text_encoder(projection=True, seed=4).save_pretrained(folder / "text_encoder_2")
        write_tokenizer(folder / "tokenizer_2")
        index.update(_class_name="StableDiffusionXLPipeline", text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                     tokenizer_2=["transformers", "CLIPTokenizer"])
    _write_scheduler(folder / "scheduler", turbo)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    lora = None
    if family.endswith("lcm-lora"):
        lora = write_tiny_lora_for(unet, folder.parent / f"{folder.name}-lcm-lora", sdxl=sdxl, seed=seed + 7)
    return folder, lora


def write_tiny_lora_for(unet, folder: Path, sdxl: bool = False, seed: int = 2, name: str = "") -> Path:
    """A random LoRA for a tiny UNet's attention in diffusers' LoRA format; returns the file."""
    import copy

    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = copy.deepcopy(unet)
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    weight_name = f"{name or 'pytorch_lora_weights'}.safetensors"
    pipeline = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
    pipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True,
                               weight_name=weight_name)
    return Path(folder) / weight_name


def write_tiny_controlnet(folder: Path, seed: int = 5) -> Path:
    """A ControlNet for the tiny SD1.5 UNet, with its zero convolutions randomised so it has an effect."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                          down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=32,
                          norm_num_groups=8, conditioning_embedding_out_channels=(16, 16, 16, 16))
    with torch.no_grad():
        for module in list(net.controlnet_down_blocks) + [net.controlnet_mid_block]:
            torch.nn.init.normal_(module.weight, std=0.05)
    net.save_pretrained(folder)
    return Path(folder)
