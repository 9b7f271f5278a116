"""`run.py check` and `run.py devices`: what exists, what will run, and whether it can start."""
from __future__ import annotations

import os
import sys

from installation.config import Config
from installation.errors import UserError
from installation.sources import choose_sources, safe_devices


def check(cfg: Config) -> int:
    """Say what exists and what will run; 0 when the configured installation can start."""
    from rich.console import Console

    from hardware.sound.audio_in import list_audio_devices
    from hardware.midi.output import list_midi_ports
    from scenes.scene import SceneError, load_scene

    console = Console(highlight=False, soft_wrap=True)
    console.print("config: valid")
    sources = choose_sources(cfg)
    try:
        scene = load_scene(cfg.installation.scene)
        _check_scene_tables(cfg, scene)
        console.print(f"scene: {cfg.installation.scene} found and valid")
    except (SceneError, UserError) as exc:
        sources.problems.append(str(exc).rstrip("."))
    devices = safe_devices(list_audio_devices)
    inputs = [d["name"] for d in devices if d.get("max_input_channels", 0) > 0]
    outputs = [d["name"] for d in devices if d.get("max_output_channels", 0) > 0]
    console.print(f"audio ({cfg.audio.backend}): inputs: {', '.join(inputs) or 'none'}; "
                  f"outputs: {', '.join(outputs) or 'none'}")
    with quiet_stderr():
        ports = list_midi_ports(cfg.midi.backend)
    console.print(f"MIDI: outputs: {', '.join(ports['outputs']) or 'none'}; inputs: {', '.join(ports['inputs']) or 'none'}"
                  + (f" ({ports['problems'][0]})" if ports.get("problems") else ""))
    for wanted in cfg.midi.outputs:
        if not any(wanted.lower() in name.lower() for name in ports["outputs"]):
            sources.notes.append(f"MIDI: no output matches '{wanted}' now; it is opened when it appears")
    from hardware.osc.server import parse_target
    for target in (*cfg.osc.targets, *cfg.osc.out_targets):  # the run refuses these at start
        try:
            parse_target(target).close()
        except UserError as exc:
            sources.problems.append(str(exc).rstrip("."))
    from installation.preflight import start_problems
    sources.problems.extend(p.rstrip(".") for p in start_problems(cfg))  # what the start refuses, in its words
    console.print(f"will run: audio in: {sources.audio}; camera: {sources.camera}; visuals: {sources.render}; "
                  f"display: {sources.display}; built-in synth to speakers: {'yes' if sources.speakers else 'no'}")
    console.print(f"GPU: {_gpu_description()}")
    from models.captions.critic import critic_kind
    console.print(f"caption critic: {critic_kind(cfg.watch.settings())[1]}")
    if cfg.captions.backend == "llm" or cfg.compose.backend == "llm":
        from models.language.probe import describe_llm_server
        if cfg.captions.backend == "llm" and cfg.captions.llm_url.strip():
            console.print(f"caption LLM: {describe_llm_server(cfg.captions.llm_url, cfg.captions.llm_model)}")
        if cfg.compose.backend == "llm":
            console.print(f"composer LLM: {describe_llm_server(cfg.compose.llm_url, cfg.compose.llm_model)}")
    if cfg.compose.head == "learned":
        from models.composing.learned import describe_weights
        try:
            console.print(f"learned composer: {describe_weights(cfg.compose.learned_weights)}")
        except UserError as exc:
            sources.problems.append(str(exc).rstrip("."))
    if cfg.render.model:
        from models.diffusion.families import describe_model
        from models.diffusion.weights import check_weights
        weight_problems = check_weights(cfg.render.settings())
        console.print("model weights: " + ("found" if not weight_problems else "; ".join(weight_problems)))
        if not weight_problems:
            console.print(f"diffusion: {describe_model(cfg.render.settings())}")
        # The run would fall back to procedural visuals, but weights the operator configured and
        # that cannot load are a fault to fix before the show.
        if cfg.render.backend == "auto":
            sources.problems.extend(weight_problems)
    else:
        console.print("model weights: none configured (render.model); procedural visuals")
    for note in sources.notes:
        console.print(f"instead: {note}")
    if sources.problems:
        for problem in sources.problems:
            print(f"error: {problem.rstrip('.')}.", file=sys.stderr)
        return 2
    console.print("ready: the installation can start")
    return 0


def running_scene_check(cfg: Config):
    """What a running installation asks of a scene before it takes it (an edit, /scene): the
    tables its renderer, captions and composer read; UserError naming the file and key. Cheap: it
    runs on the main loop."""
    def check_scene(scene) -> None:
        from models.captions.scenes import scene_settings
        from models.composing.composer import Composer
        from models.procedural.renderer import ProceduralRenderer

        ProceduralRenderer(64, 64).prepare(scene)
        scene_settings(scene)
        Composer(cfg.compose.settings(), scene)
        check_compositor(scene)
    return check_scene


def check_compositor(scene) -> None:
    """The scene's `[compositor]` table; UserError naming the file and key."""
    from installation.projection.compositor import accent_settings
    try:
        accent_settings(scene.table("compositor"), str(scene.path or scene.name))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_scene_tables(cfg: Config, scene) -> None:
    """Each room validates its own table of the scene; raises UserError naming the file and key."""
    from installation.operators.routes import param_specs_for
    from models.captions.director import Director
    from models.composing.composer import Composer
    from models.procedural.renderer import ProceduralRenderer

    ProceduralRenderer(64, 64).prepare(scene)
    Composer(cfg.compose.settings(), scene)
    Director(cfg.captions.settings(), scene).close()
    check_compositor(scene)
    try:
        param_specs_for(scene)
    except ValueError as exc:
        raise UserError(str(exc)) from None


class quiet_stderr:
    """Silence C libraries (ALSA, JACK) that print to file descriptor 2 while probing devices."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)


def _gpu_description() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return "none (diffusion would run on the CPU, far below projection rate)"


def list_devices(cfg: Config) -> int:
    from rich.console import Console
    from rich.table import Table

    from hardware.sound.audio_in import list_audio_devices
    from hardware.video.camera import list_cameras
    from hardware.video.display import display_available
    from hardware.midi.output import list_midi_ports

    console = Console(highlight=False, soft_wrap=True)
    audio = Table(title="Audio devices")
    for column in ("index", "name", "host API", "in", "out", "rate Hz"):
        audio.add_column(column)
    devices = safe_devices(list_audio_devices)
    for d in devices:
        audio.add_row(str(d.get("index")), str(d.get("name")), str(d.get("hostapi")), str(d.get("max_input_channels")),
                      str(d.get("max_output_channels")), str(d.get("default_samplerate")))
    console.print(audio if devices else "Audio devices: none (no sound card or PortAudio host found)")
    cameras = list_cameras()
    console.print("Cameras: " + (", ".join(str(c.get("device", c)) for c in cameras) if cameras else "none"))
    with quiet_stderr():
        ports = list_midi_ports(cfg.midi.backend)
    console.print("MIDI inputs: " + (", ".join(ports.get("inputs", [])) or "none"))
    console.print("MIDI outputs: " + (", ".join(ports.get("outputs", [])) or "none"))
    for problem in ports.get("problems", []):
        console.print(f"MIDI: {problem}")
    console.print("Display: " + ("available" if display_available() else "none (headless)"))
    return 0
