"""Streaming diffusion on tiny random-weight pipelines of every family, saved to disk and loaded the way users do."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from installation.config import RenderConfig
from installation.errors import UserError
from installation.records import Caption, MusicState
from models.diffusion.load import load_diffusion_renderer
from models.diffusion.prompts import slerp
from models.diffusion.renderer import DiffusionRenderer
from models.diffusion.weights import check_weights
from models.procedural.renderer import ProceduralRenderer
from tests.tiny_pipeline import build_tiny_components, mid_grey, write_tiny_family, write_tiny_vae

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # torch on one thread: see conftest


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_family(tmp_path_factory.mktemp("weights") / "tiny-lcm", "sd15-lcm")[0]


@pytest.fixture()
def model_copy(tiny_model, tmp_path) -> Path:
    """A private copy to damage."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


class CallCounter:
    """Counts forward calls of modules with forward hooks; can poison an output with NaN."""

    def __init__(self, **modules):
        self.counts = {name: 0 for name in modules}
        self.poison: set[str] = set()
        for name, module in modules.items():
            module.register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(_module, _inputs, output):
            self.counts[name] += 1
            if name in self.poison:
                first = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
                first.fill_(float("nan"))
            return output
        return hook


def load(model: Path, **overrides) -> DiffusionRenderer:
    cfg = RenderConfig(model=str(model), width=SIZE, height=SIZE, **overrides)
    return load_diffusion_renderer(cfg.settings())


def counted(renderer: DiffusionRenderer) -> CallCounter:
    return CallCounter(unet=renderer.unet, text_encoder=renderer.text_encoder, vae_encoder=renderer.vae.encoder,
                       vae_decoder=renderer.vae.decoder)


def init_picture(seed: int = 0, size: int = SIZE) -> np.ndarray:
    renderer = ProceduralRenderer(size, size, seed=seed)
    return renderer.render(MusicState(t_s=0.0, valence=0.3, arousal=0.2), 0.0)


def state(t_s: float = 0.0, arousal: float = 0.0) -> MusicState:
    return MusicState(t_s=t_s, arousal=arousal)


def test_text_encoder_runs_only_when_the_prompt_changes(tiny_model):
    renderer = load(tiny_model, similarity_skip=0.0)
    calls = counted(renderer)
    renderer.update_prompt(Caption(t_s=0.0, prompt="a lighthouse at dusk"))
    assert calls.counts["text_encoder"] == 1
    init = init_picture()
    for i in range(4):
        renderer.render(state(i / 10), i / 10, init)
    assert calls.counts["text_encoder"] == 1
    renderer.update_prompt(Caption(t_s=1.0, prompt="a forest in the rain", transition_s=1.0))
    for i in range(4):
        renderer.render(state(1 + i / 10), 1 + i / 10, init)
    assert calls.counts["text_encoder"] == 2


@pytest.mark.parametrize("steps,guidance", [(1, 1.0), (2, 1.0), (3, 8.0)])
def test_exactly_one_unet_call_per_step(tiny_model, steps, guidance):
    renderer = load(tiny_model, steps=steps, guidance=guidance, similarity_skip=0.0)
    calls = counted(renderer)
    renderer.update_prompt(Caption(t_s=0.0, prompt="orbs of light"))
    for i in range(3):
        renderer.render(state(i / 10), i / 10, init_picture(i))
    assert calls.counts["unet"] == 3 * steps
    assert calls.counts["vae_encoder"] == 3 and calls.counts["vae_decoder"] == 3
    assert renderer.stats.unet_calls == 3 * steps


def test_classifier_free_guidance_is_one_batched_unet_call(tiny_model):
    """A model without guidance embedding (LCM-LoRA, SD-Turbo) with guidance > 1 still makes one call."""
    import torch
    from diffusers import LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTokenizer

    _, vae, text_encoder = build_tiny_components()
    vae = mid_grey(vae)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8)
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    scheduler = LCMScheduler.from_pretrained(tiny_model / "scheduler")
    settings = RenderConfig(width=SIZE, height=SIZE, steps=2, guidance=4.0, similarity_skip=0.0).settings()
    renderer = DiffusionRenderer(unet, vae, text_encoder, tokenizer, scheduler, settings)
    calls = counted(renderer)
    renderer.update_prompt(Caption(t_s=0.0, prompt="a city at night", negative_prompt="blurry"))
    assert calls.counts["text_encoder"] == 2      # prompt and negative prompt, once
    frame = renderer.render(state(), 0.0, init_picture())
    assert calls.counts["unet"] == 2
    assert frame.shape == (SIZE, SIZE, 3) and renderer.stats.bad_frames == 0


def test_consecutive_frames_from_an_unchanged_input_do_not_flicker(tiny_model):
    import torch

    renderer = load(tiny_model, similarity_skip=0.0)
    renderer.update_prompt(Caption(t_s=0.0, prompt="calm sea"))
    init = init_picture()
    latents = []
    for i in range(6):
        renderer.render(state(i / 30), i / 30, init)
        latents.append(renderer.engine.prev.clone())

    def change(a, b):
        return float((a - b).norm() / b.norm())

    steady = max(change(latents[i + 1], latents[i]) for i in range(3, 5))
    # What fresh noise every frame would do (the flicker StreamDiffusion users complain about):
    with torch.inference_mode():
        renderer.engine.noise.copy_(torch.randn(renderer.engine.noise.shape, generator=torch.Generator().manual_seed(99)))
    renderer.render(state(0.2), 0.2, init)
    fresh = change(renderer.engine.prev, latents[-1])
    assert steady < 0.02
    assert fresh > 10 * steady


def test_a_prompt_change_blends_over_frames(tiny_model):
    import torch

    renderer = load(tiny_model, similarity_skip=0.0)
    renderer.update_prompt(Caption(t_s=0.0, prompt="a red desert"))
    init = init_picture()
    renderer.render(state(0.0), 0.0, init)
    old = renderer.prompts.embeds.clone()
    renderer.update_prompt(Caption(t_s=1.0, prompt="a blue glacier under stars", transition_s=2.0))
    new = renderer.prompts.target.clone()
    distances = []
    for i in range(11):
        t_s = 1.0 + i * 0.25
        renderer.render(state(t_s), t_s, init)
        distances.append(float((renderer.prompts.embeds - new).norm() / (old - new).norm()))
    assert distances[0] > 0.95                      # starts at the old prompt
    assert 0.2 < distances[4] < 0.8                 # halfway through: in between
    assert distances[-1] < 1e-4                     # ends at the new prompt
    assert all(b <= a + 1e-6 for a, b in zip(distances, distances[1:]))
    assert max(a - b for a, b in zip(distances, distances[1:])) < 0.35   # no jump
    assert torch.isfinite(renderer.prompts.embeds).all()


def test_slerp_keeps_norms_between_the_ends():
    import torch

    a = torch.randn(1, 4, 8)
    b = torch.randn(1, 4, 8) * 3
    mid = slerp(a, b, 0.5)
    norms = mid.norm(dim=-1)
    assert torch.all(norms > torch.minimum(a.norm(dim=-1), b.norm(dim=-1)) - 1e-4)
    assert torch.all(norms < torch.maximum(a.norm(dim=-1), b.norm(dim=-1)) + 1e-4)
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)


def test_a_nan_frame_never_reaches_the_display(tiny_model):
    renderer = load(tiny_model, similarity_skip=0.0)
    calls = counted(renderer)
    renderer.update_prompt(Caption(t_s=0.0, prompt="embers"))
    init = init_picture()

    calls.poison.add("unet")                         # before any good frame: the init picture is shown
    first = renderer.render(state(0.0), 0.0, init)
    assert np.array_equal(first, init)
    calls.poison.clear()
    good = renderer.render(state(0.1), 0.1, init).copy()
    calls.poison.add("vae_decoder")
    shown = renderer.render(state(0.2), 0.2, init_picture(5))
    assert np.array_equal(shown, good)
    assert renderer.stats.bad_frames == 2
    calls.poison.clear()
    recovered = renderer.render(state(0.3), 0.3, init)
    assert recovered.shape == (SIZE, SIZE, 3) and renderer.stats.bad_frames == 2


def test_a_failing_model_shows_the_last_good_frame(tiny_model):
    renderer = load(tiny_model, similarity_skip=0.0)
    renderer.update_prompt(Caption(t_s=0.0, prompt="waves"))
    good = renderer.render(state(), 0.0, init_picture()).copy()

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    renderer.unet.forward = broken
    for i in range(3):
        assert np.array_equal(renderer.render(state(0.1), 0.1, init_picture(i + 1)), good)
    assert renderer.stats.errors == 3


def test_similarity_skip_reuses_the_last_frame(tiny_model):
    renderer = load(tiny_model, similarity_skip=0.98)
    calls = counted(renderer)
    renderer.update_prompt(Caption(t_s=0.0, prompt="stars"))
    init = init_picture()
    first = renderer.render(state(0.0), 0.0, init)
    again = renderer.render(state(0.1), 0.1, init)
    assert again is first and calls.counts["unet"] == renderer.steps
    flipped = np.ascontiguousarray(init[::-1])
    different = renderer.render(state(0.2), 0.2, flipped)
    assert calls.counts["unet"] == 2 * renderer.steps and different is not first
    assert renderer.stats.skipped == 1
    renderer.skip.max_frames = 2
    for i in range(4):
        renderer.render(state(0.3 + i / 10), 0.3 + i / 10, flipped)
    # skip, skip, refresh (at most 2 skips in a row), skip
    assert renderer.stats.skipped == 4 and calls.counts["unet"] == 3 * renderer.steps


def test_frames_come_back_at_the_render_size(tiny_model):
    cfg = RenderConfig(model=str(tiny_model), width=100, height=76, similarity_skip=0.0)
    renderer = load_diffusion_renderer(cfg.settings())
    renderer.update_prompt(Caption(t_s=0.0, prompt="mountains"))
    frame = renderer.render(state(), 0.0, init_picture(size=128))
    assert frame.shape == (76, 100, 3) and frame.dtype == np.uint8


def test_strength_follows_arousal_and_beat(tiny_model):
    renderer = load(tiny_model)
    calm = renderer._strength(MusicState(t_s=0.0, arousal=-0.8))
    excited = renderer._strength(MusicState(t_s=0.0, arousal=0.8))
    on_beat = renderer._strength(MusicState(t_s=0.0, arousal=0.0, beat_phase=0.0, beat_confidence=1.0))
    off_beat = renderer._strength(MusicState(t_s=0.0, arousal=0.0, beat_phase=0.8, beat_confidence=1.0))
    assert excited > calm and on_beat > off_beat
    assert 0.0 < calm < excited <= 0.95


def test_a_separate_tiny_vae_is_used(tiny_model, tmp_path):
    vae_dir = write_tiny_vae(tmp_path / "taesd")
    renderer = load(tiny_model, vae=str(vae_dir), similarity_skip=0.0)
    renderer.update_prompt(Caption(t_s=0.0, prompt="clouds"))
    assert renderer.render(state(), 0.0, init_picture()).shape == (SIZE, SIZE, 3)


# --- weights on disk ---------------------------------------------------------------------------
def test_complete_weights_have_no_problems(tiny_model):
    assert check_weights(RenderConfig().settings()) == []
    assert check_weights(RenderConfig(model=str(tiny_model)).settings()) == []


def assert_one_sentence(message: str, *words: str):
    assert "\n" not in message and message.endswith(".")
    for word in words:
        assert word in message


def test_absent_weights(tmp_path):
    cfg = RenderConfig(model=str(tmp_path / "lcm-dreamshaper-v7"))
    problems = check_weights(cfg.settings())
    assert len(problems) == 1
    assert_one_sentence(problems[0], "lcm-dreamshaper-v7", "does not exist", "docs/weights.md")
    with pytest.raises(UserError) as info:
        load_diffusion_renderer(cfg.settings())
    assert str(info.value) == problems[0]
    with pytest.raises(UserError, match="render.model is empty"):
        load_diffusion_renderer(RenderConfig(width=SIZE, height=SIZE).settings())


def test_partial_weights_name_the_missing_file(model_copy):
    (model_copy / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(model_copy / "tokenizer")
    problems = check_weights(RenderConfig(model=str(model_copy)).settings())
    assert len(problems) == 2
    assert_one_sentence(problems[0], "unet", "diffusion_pytorch_model.safetensors")
    assert_one_sentence(problems[1], "tokenizer")
    with pytest.raises(UserError, match="unet"):
        load_diffusion_renderer(RenderConfig(model=str(model_copy), width=SIZE, height=SIZE).settings())


def test_truncated_weights_are_called_corrupt(model_copy):
    weights = model_copy / "text_encoder" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    problems = check_weights(RenderConfig(model=str(model_copy)).settings())
    assert len(problems) == 1
    assert_one_sentence(problems[0], "text_encoder", "truncated or corrupt", "download it again")
    with pytest.raises(UserError, match="truncated"):
        load_diffusion_renderer(RenderConfig(model=str(model_copy), width=SIZE, height=SIZE).settings())


def test_weights_that_pass_the_header_check_but_do_not_load(model_copy):
    """A config from another architecture: a load error becomes one sentence, not a traceback."""
    import json

    config_path = model_copy / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["block_out_channels"] = [64, 128]
    config_path.write_text(json.dumps(config))
    assert check_weights(RenderConfig(model=str(model_copy)).settings()) == []
    with pytest.raises(UserError) as info:
        load_diffusion_renderer(RenderConfig(model=str(model_copy), width=SIZE, height=SIZE).settings())
    assert_one_sentence(str(info.value), "does not load")


def test_missing_vae_and_lora_files(tiny_model, tmp_path):
    problems = check_weights(RenderConfig(model=str(tiny_model), vae=str(tmp_path / "taesd"),
                                          lora=str(tmp_path / "lcm-lora.safetensors")).settings())
    assert len(problems) == 2
    assert_one_sentence(problems[0], "render.vae", "taesd")
    assert_one_sentence(problems[1], "render.lora", "lcm-lora.safetensors")
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    assert_one_sentence(check_weights(RenderConfig(model=str(not_a_model)).settings())[0], "neither a diffusers folder")


def test_scene_sets_strength_and_feedback(tiny_model):
    from scenes.scene import load_scene, parse_scene

    renderer = load(tiny_model)
    renderer.prepare(load_scene("nocturne"))
    assert renderer.strength_range == (0.3, 0.6) and renderer.feedback == 0.3
    with pytest.raises(UserError, match="strength_min"):
        renderer.prepare(parse_scene({"name": "bad", "render": {"strength_min": 0.9, "strength_max": 0.2}}))
    with pytest.raises(UserError, match="feedback"):
        renderer.prepare(parse_scene({"name": "bad", "render": {"feedback": 2}}))


def test_an_lcm_lora_is_fused_into_the_unet(tiny_model, tmp_path):
    import torch

    from tests.tiny_pipeline import write_tiny_lora

    lora = write_tiny_lora(tmp_path / "lora")
    base = load(tiny_model)
    fused = load(tiny_model, lora=str(lora), similarity_skip=0.0)
    before, after = dict(base.unet.named_parameters()), dict(fused.unet.named_parameters())
    assert before.keys() == after.keys()                     # fused and unloaded: no adapter layers left
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("attn" in k for k in changed)
    calls = counted(fused)
    fused.update_prompt(Caption(t_s=0.0, prompt="glass"))
    fused.render(state(), 0.0, init_picture())
    assert calls.counts["unet"] == fused.steps

    # A LoRA for another architecture is one sentence, not a traceback.
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file
    save_file({"unet.mid_block.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 999)}, str(wrong))
    with pytest.raises(UserError) as info:
        load(tiny_model, lora=str(wrong))
    assert_one_sentence(str(info.value), "render.lora")


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which only a CUDA build on a full GPU raises."""


def test_out_of_gpu_memory_steps_down_steps_then_resolution(tiny_model):
    size = 512
    cfg = RenderConfig(model=str(tiny_model), width=size, height=size, steps=2, similarity_skip=0.0)
    renderer = load_diffusion_renderer(cfg.settings())
    renderer.update_prompt(Caption(t_s=0.0, prompt="waves"))
    good = renderer.render(state(), 0.0, init_picture(size=size)).copy()
    real_forward = renderer.unet.forward
    budget = {"latent_px": 32 * 32}  # a GPU that fits 256x256 px latents at one step, no more

    def limited(sample, *args, **kwargs):
        if renderer.steps > 1 or sample.shape[-1] * sample.shape[-2] > budget["latent_px"]:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(sample, *args, **kwargs)

    renderer.unet.forward = limited
    shown = [renderer.render(state(0.1 * i), 0.1 * i, init_picture(i, size)) for i in range(1, 5)]
    assert renderer.steps == 1 and (renderer.latent_w, renderer.latent_h) == (32, 32)
    assert renderer.stats.step_downs == 2
    assert all(np.array_equal(frame, good) for frame in shown[:2])  # the last good frame while stepping down
    assert shown[-1].shape == (size, size, 3) and not np.array_equal(shown[-1], good)  # rendering again


# --- families, stream batch, GPU discipline, ControlNet, runtime LoRAs ------------------------------
@pytest.fixture(scope="module")
def family_models(tmp_path_factory) -> dict[str, tuple[Path, Path | None]]:
    from tests.tiny_pipeline import FAMILY_FIXTURES

    root = tmp_path_factory.mktemp("families")
    return {family: write_tiny_family(root / family, family) for family in FAMILY_FIXTURES}


def load_family(family_models, family: str, size: tuple[int, int] = (SIZE, SIZE), **overrides) -> DiffusionRenderer:
    folder, lora = family_models[family]
    cfg = RenderConfig(model=str(folder), lora=str(lora or ""), width=size[0], height=size[1],
                       similarity_skip=0.0, **overrides)
    return load_diffusion_renderer(cfg.settings())


@pytest.mark.parametrize("family", ["sd15-lcm", "sd15-lcm-lora", "sd-turbo", "sdxs-512", "sdxl-turbo",
                                    "sdxl-lcm-lora"])
def test_every_family_is_recognised_and_renders_with_one_sync_at_most(family_models, family):
    from models.diffusion.families import describe_model
    from models.diffusion.syncs import SyncCounter

    folder, lora = family_models[family]
    assert describe_model(RenderConfig(model=str(folder), lora=str(lora or "")).settings()).startswith(f"family {family} ")
    for stream in (False, True):
        renderer = load_family(family_models, family, steps=2, stream_batch=stream)
        assert renderer.family.name == family
        calls = CallCounter(unet=renderer.unet, text_encoder=renderer.text_encoder)
        renderer.update_prompt(Caption(t_s=0.0, prompt="a harbour in fog"))
        frames = []
        for i in range(3):
            with SyncCounter() as syncs:
                frames.append(renderer.render(state(i / 10), i / 10, init_picture(i)))
            assert syncs.count <= 1, syncs.ops          # on this CPU: 0 (no device copy to count)
        assert calls.counts["text_encoder"] == 1        # no text-encoder call while the prompt is unchanged
        assert calls.counts["unet"] == (3 if stream else 6)   # one call per frame (stream) or per step
        assert renderer.frames_of_lag == (1 if stream else 0)
        assert renderer.stats.bad_frames == 0 and renderer.stats.errors == 0
        assert renderer.stats.frames == (2 if stream else 3)  # stream batch: the first frame fills the batch
        assert all(f.shape == (SIZE, SIZE, 3) and f.dtype == np.uint8 for f in frames)


@pytest.mark.parametrize("family", ["sd15-lcm", "sd-turbo"])
def test_stream_batch_equals_sequential_once_the_batch_is_full(family_models, family):
    """Same noise schedule, same init: frame f of the stream equals sequential frame f - (steps - 1)."""
    import torch

    steps, frames = 3, 6
    rng = np.random.default_rng(0)
    inits = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(frames)]
    outputs = {}
    for stream in (False, True):
        renderer = load_family(family_models, family, steps=steps, stream_batch=stream)
        renderer.feedback = 0.0
        renderer.update_prompt(Caption(t_s=0.0, prompt="tidal pools"))
        latents = []
        for i in range(frames):
            renderer.render(state(0.0, arousal=0.2), i / 10, inits[i])
            latents.append(renderer.engine.prev.clone())
        outputs[stream] = latents
    lag = steps - 1
    for i in range(frames - lag):
        assert torch.allclose(outputs[True][i + lag], outputs[False][i], atol=1e-4, rtol=1e-4), i
    assert not torch.allclose(outputs[False][0], outputs[False][1], atol=0.05)   # the frames do differ


def test_16_by_9_and_other_multiples_of_8_render_exactly(family_models):
    renderer = load_family(family_models, "sd15-lcm", size=(128, 72))
    assert (renderer.engine.width, renderer.engine.height) == (128, 72)
    frame = renderer.render(state(), 0.0, init_picture(size=128))
    assert frame.shape == (72, 128, 3) and renderer.stats.bad_frames == 0
    from scenes.scene import parse_scene

    renderer.prepare(parse_scene({"name": "wide", "render": {"width": 112, "height": 64}}))
    assert renderer.render(state(), 0.1, init_picture(size=96)).shape == (64, 112, 3)
    with pytest.raises(UserError, match="multiples of 8"):
        renderer.prepare(parse_scene({"name": "odd", "render": {"width": 100, "height": 64}}))


@pytest.mark.parametrize("stream", [False, True])
def test_controlnet_is_called_once_per_unet_call_and_its_strength_is_live(family_models, tmp_path, stream):
    from tests.tiny_pipeline import write_tiny_controlnet

    net = write_tiny_controlnet(tmp_path / "controlnet")
    renderer = load_family(family_models, "sd15-lcm", steps=2, stream_batch=stream, controlnet=str(net),
                           controlnet_source="edges")
    renderer.feedback = 0.0
    calls = CallCounter(unet=renderer.unet, controlnet=renderer.controlnet)
    renderer.update_prompt(Caption(t_s=0.0, prompt="wires"))
    init = init_picture()
    outs = [renderer.render(state(), i / 10, init).copy() for i in range(3)]
    assert calls.counts["controlnet"] == calls.counts["unet"] == (3 if stream else 6)
    renderer.apply_params({"controlnet.strength": 0.0})
    weaker = renderer.render(state(), 0.4, init)
    renderer.apply_params({"controlnet.strength": 1.0})
    for i in range(renderer.frames_of_lag + 1):     # the frames in flight saw strength 0 at earlier steps
        again = renderer.render(state(), 0.5 + i / 10, init)
    assert not np.array_equal(weaker, outs[-1]) and np.array_equal(again, outs[-1])


def test_a_lora_weight_change_alters_the_output_without_a_reload(family_models, tmp_path):
    from models.diffusion.load import live_param_specs
    from tests.tiny_pipeline import _tiny_unet, write_tiny_lora_for

    ink = write_tiny_lora_for(_tiny_unet(time_cond=True), tmp_path / "loras", seed=11, name="Ink Wash")
    folder, _ = family_models["sd15-lcm"]
    cfg = RenderConfig(model=str(folder), width=SIZE, height=SIZE, similarity_skip=0.0, loras=(f"{ink}:0.0",))
    assert live_param_specs(cfg.settings()) == {"lora.ink_wash": (0.0, 2.0, 0.0, "weight of the LoRA Ink Wash.safetensors")}
    renderer = load_diffusion_renderer(cfg.settings())
    renderer.feedback = 0.0
    unet, text_calls = renderer.unet, CallCounter(text_encoder=renderer.text_encoder)
    renderer.update_prompt(Caption(t_s=0.0, prompt="mist"))
    init = init_picture()
    off = renderer.render(state(), 0.0, init).copy()
    off_latents = renderer.engine.prev.clone()
    renderer.apply_params({"lora.ink_wash": 1.5})
    on = renderer.render(state(), 0.1, init).copy()
    change = float((renderer.engine.prev - off_latents).norm() / off_latents.norm())
    renderer.apply_params({"lora.ink_wash": 0.0})
    off_again = renderer.render(state(), 0.2, init)
    assert not np.array_equal(on, off) and change > 0.01
    assert np.array_equal(off_again, off)
    assert renderer.unet is unet and text_calls.counts["text_encoder"] == 1 and renderer.stats.lora_changes == 2
    assert renderer.lora_weights == {"ink_wash": 0.0}


def test_the_installation_projects_diffusion_frames_from_a_model_folder(family_models, tmp_path):
    from installation.app import Installation, RunOptions
    from installation.config import load_config
    from installation.showlog.writer import read_show_log

    folder, _ = family_models["sd-turbo"]
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "config.toml", [
        "osc.enabled=false", 'display.mode="headless"', 'audio.source="synth"', 'camera.source="photos"',
        'synth.speakers="off"', 'render.backend="diffusion"', f'render.model="{folder}"', "render.width=64",
        "render.height=64", "render.steps=2", "render.stream_batch=true", "display.fps=10"])
    installation = Installation(cfg, RunOptions(duration_s=6.0, record_dir=tmp_path, headless=True, quiet=True))
    assert installation.run() == 0
    show = read_show_log(tmp_path / "show.jsonl")
    assert not [r for r in show if r["kind"] == "fault"]
    statuses = [r for r in show if r["kind"] == "status" and r.get("render") == "diffusion"]
    assert statuses and statuses[-1]["diffusion"]["family"] == "sd-turbo"
    assert statuses[-1]["diffusion"]["frames_of_lag"] == 1
    # a loaded machine may only fill the stream batch by the first status; the run's last one has frames
    assert max(r["diffusion"]["frames"] for r in statuses) > 0, statuses[-1]


def test_lora_weights_and_controlnet_strength_are_live_parameters(family_models, tmp_path):
    """/param/lora/<name> and /param/controlnet/strength are in the command table from the config,
    kept across scene changes, and reach the renderer through the renderer stage."""
    from installation.bus import LiveState
    from installation.config import load_config
    from installation.operators.control import Control
    from installation.records import Command
    from installation.operators.routes import param_specs_for
    from installation.sources import render_param_specs
    from tests.tiny_pipeline import _tiny_unet, write_tiny_controlnet, write_tiny_lora_for

    ink = write_tiny_lora_for(_tiny_unet(time_cond=True), tmp_path / "loras", seed=11, name="ink")
    net = write_tiny_controlnet(tmp_path / "controlnet")
    folder, _ = family_models["sd15-lcm"]
    cfg = load_config(None, [f'render.model="{folder}"', f'render.loras=["{ink}:0.5"]', f'render.controlnet="{net}"'])
    control = Control(LiveState(scene="default"), lambda: ["default"], None, params=param_specs_for(None),
                      fixed_params=render_param_specs(cfg))
    assert control.apply(Command(0.0, "/param/lora/ink", (1.25,), "test"))["ok"]
    assert not control.apply(Command(0.0, "/param/lora/ink", (7.0,), "test"))["ok"]     # out of range
    control.set_params(param_specs_for(None))                                          # a scene change
    assert control.apply(Command(0.0, "/param/controlnet/strength", (0.3,), "test"))["ok"]
    renderer = load_diffusion_renderer(replace(cfg.render.settings(), width=SIZE, height=SIZE))
    renderer.apply_params(control.live.params)
    assert renderer.lora_weights == {"ink": 1.25} and renderer.controlnet_strength == 0.3


def test_bench_render_reports_syncs_lag_and_unet_calls_per_family(tmp_path, capsys):
    import json

    from installation.cli import main

    out = tmp_path / "bench.json"
    code = main(["bench", "render", "--only-families", "--families", "sd-turbo,sdxl-turbo", "--family-frames", "2",
                 "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())["diffusion_families"]
    assert report["device"] == "cpu" and [r["family"] for r in report["families"]] == ["sd-turbo", "sdxl-turbo"]
    for row in report["families"]:
        assert row["host_syncs_per_frame"] <= 1
        by_stream = {run["stream_batch"]: run for run in row["runs"]}
        assert by_stream[False]["unet_calls_per_frame"] == 2 and by_stream[False]["frames_of_lag"] == 0
        assert by_stream[True]["unet_calls_per_frame"] == 1 and by_stream[True]["frames_of_lag"] == 1
        assert all(run["bad_frames"] == 0 and run["ms_per_frame"] > 0 for run in row["runs"])


def test_the_camera_gives_the_controlnet_its_structure_through_the_renderer_stage(family_models, tmp_path):
    import types

    from installation.bus import Bus, LiveSnapshot
    from installation.clock import ManualClock
    from installation.stages.renderer import RendererStage
    from tests.tiny_pipeline import write_tiny_controlnet

    net = write_tiny_controlnet(tmp_path / "controlnet")
    renderer = load_family(family_models, "sd15-lcm", steps=1, controlnet=str(net), controlnet_source="camera")
    renderer.feedback = 0.0
    procedural = ProceduralRenderer(SIZE, SIZE, seed=0)
    from scenes.scene import load_scene

    clock, bus = ManualClock(), Bus("nocturne")
    bus.scene.put(load_scene("nocturne"))
    bus.live.put(LiveSnapshot("nocturne", params=types.MappingProxyType({"controlnet.strength": 2.0})))
    stage = RendererStage([procedural, renderer], bus.music, bus.captions, bus.scene, bus.live, bus.frames, clock,
                          fps=10, camera=bus.camera_frames)
    rng = np.random.default_rng(3)
    shown = []
    for _ in range(2):   # two different camera pictures, same procedural time
        bus.camera_frames.put(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
        stage.step()
        shown.append(renderer.engine.control.clone())
    assert renderer.controlnet_strength == 2.0
    assert not bool((shown[0] == shown[1]).all())     # the ControlNet saw each camera picture's edges
    assert bus.frames.peek().source == "diffusion"


@pytest.mark.parametrize("similarity_skip, new_fps", [(0.98, 2.0), (0.0, 10.0)])
def test_status_counts_new_diffusion_frames_apart_from_the_refresh(tiny_model, similarity_skip, new_fps):
    """A still source: with the similarity skip the pass makes a new frame every fifth refresh
    (skip.max_frames = 4) and holds the last one between; only the new ones count."""
    from installation.bus import Bus
    from installation.clock import ManualClock
    from installation.stages.renderer import RendererStage
    class StillSource:
        name = "procedural"
        picture = init_picture()

        def prepare(self, scene) -> None: ...

        def update_prompt(self, caption) -> None: ...

        def render(self, music, t_s, init_rgb=None):
            return self.picture

        def close(self) -> None: ...

    renderer = load(tiny_model, similarity_skip=similarity_skip, steps=1)
    renderer.skip.max_frames = 4
    from scenes.scene import load_scene

    clock, bus = ManualClock(), Bus("nocturne")
    bus.scene.put(load_scene("nocturne"))
    stage = RendererStage([StillSource(), renderer], bus.music, bus.captions, bus.scene, bus.live,
                          bus.frames, clock, fps=10)
    for _ in range(40):   # 4 s at 10 frames a second
        stage.step()
    status = stage.status()
    assert stage.index == 40 and bus.frames.peek().source == "diffusion"
    assert status["diffusion_new_fps"] == pytest.approx(new_fps, abs=0.3)
    assert status["diffusion"]["frames"] + status["diffusion"]["skipped"] == 40
