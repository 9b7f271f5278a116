"""Every family's architecture at random weights, tiny or full size, built offline.

The cost of a frame does not depend on the weights, so the benchmark and tools/gpu-check.sh measure
the real architectures without downloading anything. Tiny builds have the same structural switches
as the real models (guidance embedding, SD2.x linear projections, SDXL added time ids and pooled
text embedding) at a few hundred thousand parameters; the test fixtures save them to disk.

Full-size layouts: SD1.5 (UNet 860M, CLIP ViT-L/14 text encoder), SD2.1 / SD-Turbo (UNet 866M with
linear projections, OpenCLIP ViT-H/14 text encoder), SDXL / SDXL-Turbo (UNet 2.6B, CLIP ViT-L +
OpenCLIP ViT-bigG), all with the TAESD-layout tiny VAE the installation recommends. SDXS-512's
published UNet drops blocks of SD2.1's; here it is approximated by SD2.1's UNet without its deepest
stage (about a third of the cost) — load the real folder to measure the real one.
"""
from __future__ import annotations

from .families import FAMILIES, Components

TINY_TOKENS = 16
FULL_TOKENS = 77
LCM_SCHEDULER = {"_class_name": "LCMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                 "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "original_inference_steps": 50,
                 "prediction_type": "epsilon", "timestep_scaling": 10.0}


def unet(family: str, full: bool, seed: int = 0):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    fam = FAMILIES[family]
    time_cond = family in ("sd15-lcm", "sdxl-lcm")
    if not full:
        extra: dict = dict(cross_attention_dim=32, use_linear_projection=fam.base == "sd21")
        if fam.sdxl:
            extra = dict(addition_embed_type="text_time", addition_time_embed_dim=8,
                         projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
                         attention_head_dim=(2, 4), use_linear_projection=True)
        return UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
            time_cond_proj_dim=32 if time_cond else None, **extra)
    cond = 256 if time_cond else None
    if fam.sdxl:
        return UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
            use_linear_projection=True, time_cond_proj_dim=cond)
    if family == "sdxs-512":
        return UNet2DConditionModel(
            sample_size=64, block_out_channels=(320, 640, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
            attention_head_dim=(5, 10, 20), cross_attention_dim=1024, use_linear_projection=True)
    if fam.base == "sd21":
        return UNet2DConditionModel(sample_size=64, attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                                    use_linear_projection=True, time_cond_proj_dim=cond)
    return UNet2DConditionModel(sample_size=64, cross_attention_dim=768, time_cond_proj_dim=cond)


def vae(full: bool, seed: int = 1):
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    if full:
        return AutoencoderTiny()
    return mid_grey(AutoencoderTiny(encoder_block_out_channels=(16, 16, 16, 16),
                                    decoder_block_out_channels=(16, 16, 16, 16), num_encoder_blocks=(1, 1, 1, 1),
                                    num_decoder_blocks=(1, 1, 1, 1), latent_channels=4))


def mid_grey(tiny_vae):
    """A random decoder's output sits near 0 in [0, 1], i.e. black: centre it so frames are pictures.
    A random encoder's latents barely depend on the picture: double its weights so they do."""
    import torch

    with torch.no_grad():
        tiny_vae.decoder.layers[-1].bias.fill_(0.5)
        for module in tiny_vae.encoder.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(2.0)
    return tiny_vae


def text_encoder(kind: str, full: bool, projection: bool = False, seed: int = 3):
    """kind: "clip-l" (SD1.5, SDXL's first), "openclip-h" (SD2.1), "openclip-bigg" (SDXL's second)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    if not full:
        config = CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=32,
                                intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
                                vocab_size=514, max_position_embeddings=TINY_TOKENS, projection_dim=32)
    else:
        size = {"clip-l": (768, 3072, 12, 12, "quick_gelu"), "openclip-h": (1024, 4096, 23, 16, "gelu"),
                "openclip-bigg": (1280, 5120, 32, 20, "gelu")}[kind]
        hidden, inner, layers, heads, act = size
        config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=inner, num_hidden_layers=layers,
                                num_attention_heads=heads, max_position_embeddings=FULL_TOKENS, hidden_act=act,
                                projection_dim=1280 if kind == "openclip-bigg" else hidden)
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


class HashTokenizer:
    """A tokenizer stand-in for random-weight text encoders: stable ids from the words, padded to the
    model's length (the text encoder's cost depends on the length only)."""

    def __init__(self, max_length: int, vocab_size: int) -> None:
        self.model_max_length = max_length
        self.vocab_size = vocab_size

    def __call__(self, text: str, **_kwargs):
        import zlib

        import torch

        ids = [zlib.crc32(w.encode()) % (self.vocab_size - 2) for w in text.split()][: self.model_max_length - 2]
        ids = [self.vocab_size - 2] + ids + [self.vocab_size - 1] * (self.model_max_length - 1 - len(ids))

        class Tokens:
            input_ids = torch.tensor([ids], dtype=torch.long)

        return Tokens()


def random_components(family: str, full: bool) -> Components:
    """A family's components at random weights (no files), for benchmarks."""
    fam = FAMILIES[family]
    tokens, vocab = (FULL_TOKENS, 49408) if full else (TINY_TOKENS, 514)
    first = text_encoder("openclip-h" if fam.base == "sd21" else "clip-l", full)
    second = text_encoder("openclip-bigg", full, projection=True, seed=4) if fam.sdxl else None
    return Components(fam, unet(family, full), vae(full), first, HashTokenizer(tokens, vocab), dict(LCM_SCHEDULER),
                      second, HashTokenizer(tokens, vocab) if fam.sdxl else None)
