"""The command line: --config and --set apply before or after every command."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installation.cli import build_parser, parse

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[list[str]]:
    """Every command and bench/eval/train target that reads the config, with its required arguments."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, command in sub.choices.items():
        inner = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for path, leaf in ([([name, t], p) for t, p in inner[0].choices.items()] if inner else [([name], command)]):
            if not any(a.dest == "overrides" for a in leaf._actions):
                continue
            required = [a for a in leaf._actions if not a.option_strings and a.dest != "help"
                        and a.nargs not in ("?", "*") and not isinstance(a, argparse._SubParsersAction)]
            options = [[a.option_strings[0], "1"] for a in leaf._actions if a.option_strings and a.required]
            argv = path + [f"arg{i}" for i, _ in enumerate(required)] + [x for o in options for x in o]
            if not any(a.dest == "config" for a in leaf._actions):
                NO_CONFIG.add(tuple(argv))
            found.append(argv)
    return found


NO_CONFIG: set[tuple[str, ...]] = set()
"""Commands with --set but no --config of their own (bench soak makes its own config)."""


COMMANDS = _commands()


def test_every_config_reading_command_is_covered():
    names = {" ".join(c[:2]) if c[0] in ("bench", "eval", "train") else c[0] for c in COMMANDS}
    assert {"check", "devices", "analyze", "report", "osc", "bench control", "bench report"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c).replace(" arg", "") for c in COMMANDS])
def test_options_before_and_after_the_command_both_apply(command, tmp_path):
    if tuple(command) in NO_CONFIG:
        assert parse(["--set", "display.fps=12", *command]).overrides == ["display.fps=12"]
        assert parse([*command, "--set", "display.fps=12"]).overrides == ["display.fps=12"]
        return
    config = tmp_path / "c.toml"
    before = parse(["--config", str(config), "--set", "display.fps=12", *command])
    assert before.config == config and before.overrides == ["display.fps=12"], command
    after = parse([*command, "--set", "display.fps=12", "--config", str(config)])
    assert after.config == config and after.overrides == ["display.fps=12"], command
    both = parse(["--set", "osc.port=9100", *command, "--set", "display.fps=12"])
    assert both.overrides == ["osc.port=9100", "display.fps=12"], command
    plain = parse(command)
    assert plain.overrides == [] and plain.config.name == "config.toml"


def test_run_options_before_no_command_still_apply():
    args = parse(["--set", "display.fps=12", "--duration", "3"])
    assert args.overrides == ["display.fps=12"] and args.duration == 3 and getattr(args, "handler", None) is None


@pytest.mark.parametrize("argv", [["--set", "display.fps=-3", "check"], ["check", "--set", "display.fps=-3"]])
def test_a_bad_value_before_or_after_check_exits_2_with_the_sentence(argv):
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {ROOT / 'config.toml'}: display.fps = -3 is not allowed (input should be greater than 0); "
        "fix it and start again."]


@pytest.mark.parametrize("key", ["osc.targets", "osc.out_targets"])
def test_check_refuses_an_osc_target_the_run_would_refuse(key, capsys):
    from installation.cli import main
    code = main(["check", "--set", f'{key}=["nohost"]', "--set", 'display.mode="headless"'])
    assert code == 2
    assert any("nohost" in line and "host:port" in line for line in capsys.readouterr().err.splitlines())


def test_check_checks_the_scene_named_with_scene(capsys):
    from installation.cli import main
    code = main(["--scene", "nosuch", "check", "--set", 'display.mode="headless"'])
    assert code == 2
    assert any("nosuch" in line for line in capsys.readouterr().err.splitlines())


def test_make_demo_with_other_options_still_records_to_out_demo():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-o", "setup", "demo", "DEMO_ARGS=--scene pulse --duration 60"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = [l for l in done.stdout.splitlines() if "run.py" in l][-1]
    assert "--record out/demo" in line and "--scene pulse --duration 60" in line, line


def test_check_refuses_a_midi_backend_that_cannot_load_even_with_no_port_named(capsys):
    from installation.cli import main
    code = main(["check", "--set", 'midi.backend="mido.backends.nosuch"', "--set", 'display.mode="headless"'])
    assert code == 2
    assert any("midi.backend 'mido.backends.nosuch' cannot be loaded" in line
               for line in capsys.readouterr().err.splitlines())
