"""Tiny random-weight LCM pipelines written to disk, for tests that load them like users do.

The layout matches a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
scheduler/), in the spirit of diffusers' own `get_dummy_components()`. Nothing is downloaded: the
CLIP tokenizer is written from a byte-level vocab.json with an empty merges.txt.
"""
from __future__ import annotations

import json
from pathlib import Path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte gets a printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def write_tokenizer(folder: Path, max_length: int = 16) -> None:
    """An offline CLIPTokenizer: single byte-level characters, with and without the word-end mark."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for ch in _bytes_to_unicode().values():
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
