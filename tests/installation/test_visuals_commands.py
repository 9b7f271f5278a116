"""`run.py analyze IMAGE`, `run.py bench render`, `run.py train image-va` and `check` on weights."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import skimage.data

from installation.cli import main
from installation.config import load_config
from installation.commands.visuals import bench_render
from tests.tiny_pipeline import write_tiny_pipeline


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # torch on one thread: see conftest


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ("coffee", "hubble_deep_field"):
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), getattr(skimage.data, name)()[..., ::-1])
        paths[name] = path
    return paths


def test_analyze_prints_colour_va_for_each_image(photos, capsys):
    code = main(["analyze", "--json", str(photos["coffee"]), str(photos["hubble_deep_field"])])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {item["file"].rsplit("/", 1)[-1]: item for item in report["images"]}
    coffee, hubble = by_name["coffee.png"]["colour"], by_name["hubble_deep_field.png"]["colour"]
    assert coffee["valence"] > hubble["valence"] + 0.5 and coffee["arousal"] > hubble["arousal"]
    assert "clip" not in by_name["coffee.png"]
    assert any("clip" in note for note in report["notes"])

    assert main(["analyze", str(photos["coffee"])]) == 0
    table = capsys.readouterr().out
    assert "coffee.png" in table and f"{coffee['valence']:.2f}" in table


def test_analyze_rejects_a_file_that_is_not_an_image(tmp_path, capsys):
    fake = tmp_path / "broken.png"
    fake.write_bytes(b"\x89PNG but not really")
    assert main(["analyze", str(fake)]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and err.count("\n") == 1


@pytest.mark.slow
def test_bench_render_reports_every_figure_with_configured_weights(tmp_path):
    model = write_tiny_pipeline(tmp_path / "tiny")
    cfg = load_config(None, [f'render.model="{model}"', "render.steps=2"])
    figures = bench_render(cfg, seconds=0.3, diffusion_frames=2)
    for key in ("procedural_fps_720p", "procedural_fps_1080p", "display_ms_1080p"):
        assert figures[key] > 0
    diffusion = figures["diffusion"]
    assert diffusion["weights"] == "configured weights"
    assert diffusion["unet_calls_per_step"] == 1.0
    assert diffusion["text_encoder_calls_per_frame_unchanged_prompt"] == 0.0
    assert diffusion["vae_calls_per_frame"] == 2.0
    assert diffusion["gflops_per_frame"] > 0 and diffusion["fps"] > 0 and diffusion["device"] == "cpu"


def damage(model, how: str) -> str:
    """Make the weights absent, partial or corrupt; return a word the message must contain."""
    if how == "absent":
        shutil.rmtree(model)
        return "does not exist"
    if how == "partial":
        (model / "unet" / "diffusion_pytorch_model.safetensors").unlink()
        return "diffusion_pytorch_model.safetensors"
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return "truncated or corrupt"


@pytest.mark.parametrize("how", ["absent", "partial", "corrupt"])
def test_check_exits_2_and_names_the_weight_problem(tmp_path, capsys, how):
    model = write_tiny_pipeline(tmp_path / "tiny")
    word = damage(model, how)
    code = main(["check", "--set", f'render.model="{model}"', "--set", 'render.backend="diffusion"',
                 "--set", 'display.mode="headless"'])
    captured = capsys.readouterr()
    assert code == 2
    weight_lines = [line for line in captured.err.splitlines() if "render.model" in line]
    assert len(weight_lines) == 1 and word in weight_lines[0]


@pytest.mark.parametrize("how", ["absent", "partial", "corrupt"])
def test_auto_backend_falls_back_to_procedural_visuals(tmp_path, how):
    from installation.sources import choose_sources

    model = write_tiny_pipeline(tmp_path / "tiny")
    word = damage(model, how)
    cfg = load_config(None, [f'render.model="{model}"', 'render.backend="auto"'])
    sources = choose_sources(cfg, headless=True)
    assert sources.render == "procedural"
    assert any(word in note for note in sources.notes)
    intact = load_config(None, [f'render.model="{write_tiny_pipeline(tmp_path / "intact")}"'])
    assert choose_sources(intact, headless=True).render == "diffusion"


def test_train_image_va_writes_a_head_the_clip_head_loads(tmp_path, capsys):
    import open_clip
    import torch

    from models.seeing.va import ClipVA

    folder = tmp_path / "clip"
    folder.mkdir()
    name = "chromesthesia-test-train-clip"
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    checkpoint = folder / "clip.pt"
    torch.save(open_clip.create_model(name, pretrained=None).state_dict(), checkpoint)

    rng = np.random.default_rng(0)
    rows = ["image,valence,arousal"]
    for i in range(10):
        picture = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"p{i}.png"), picture)
        rows.append(f"p{i}.png,{rng.uniform(-0.8, 0.8):.2f},{rng.uniform(-0.8, 0.8):.2f}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    head_path = tmp_path / "head.npz"
    overrides = ["--set", f'watch.clip_checkpoint="{checkpoint}"', "--set", f'watch.clip_model="{name}"']
    assert main(["train", "image-va", str(labels), "--out", str(head_path), *overrides]) == 0
    assert "training MAE" in capsys.readouterr().out
    head = ClipVA(str(checkpoint), name, head=str(head_path))
    v, a, c = head.estimate(skimage.data.coffee())
    assert -1 <= v <= 1 and -1 <= a <= 1 and c > 0

    # analyze prints every available head: colour and now CLIP with the fitted head.
    picture = tmp_path / "p0.png"
    assert main(["analyze", "--json", str(picture), *overrides, "--set", f'watch.clip_head="{head_path}"']) == 0
    row = json.loads(capsys.readouterr().out)["images"][0]
    assert set(row) >= {"colour", "clip"} and -1 <= row["clip"]["valence"] <= 1

    shutil.copy(labels, tmp_path / "few.csv")
    (tmp_path / "few.csv").write_text("\n".join(rows[:3]) + "\n")
    assert main(["train", "image-va", str(tmp_path / "few.csv"), "--out", str(head_path), *overrides]) == 2
