"""Config: validation errors name the key; overrides; config.toml documents every key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from installation.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid_and_equals_defaults():
    assert load_config(ROOT / "config.toml") == Config()


def test_every_key_in_the_model_is_in_config_toml_with_a_comment():
    text = (ROOT / "config.toml").read_text()
    commented: dict[str, dict[str, bool]] = {}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]")
            commented[section] = {}
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            commented[section][key] = "#" in stripped.split("=", 1)[1]
    for name, field in Config.model_fields.items():
        assert name in commented, f"[{name}] missing from config.toml"
        for key in field.annotation.model_fields:
            assert key in commented[name], f"{name}.{key} missing from config.toml"
            assert commented[name][key], f"{name}.{key} has no comment in config.toml"


def test_unknown_section_names_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[audoi]\ndevice = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "'audoi'" in str(err.value) and "audio" in str(err.value)


def test_out_of_range_names_key_and_value(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[display]\nfps = -3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "display.fps" in str(err.value) and "-3" in str(err.value) and "greater than 0" in str(err.value)


def test_wrong_type_and_bad_choice(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[render]\nbackend = 'magic'\n")
    with pytest.raises(ConfigError, match="render.backend"):
        load_config(path)
    path.write_text("[osc]\nport = 'seven'\n")
    with pytest.raises(ConfigError, match="osc.port"):
        load_config(path)


def test_overrides_parse_toml_values_and_bare_strings():
    cfg = load_config(None, ['audio.device="USB"', "osc.port=9100", "midi.outputs=['a','b']", "camera.device=/dev/video2"])
    assert cfg.audio.device == "USB"
    assert cfg.osc.port == 9100
    assert cfg.midi.outputs == ("a", "b")
    assert cfg.camera.device == "/dev/video2"
    with pytest.raises(ConfigError, match="display.fps"):
        load_config(None, ["display.fps=0"])
    with pytest.raises(ConfigError, match="no '='"):
        load_config(None, ["display.fps"])


def test_config_objects_are_frozen():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.display.fps = 10


@pytest.mark.parametrize("content,needle", [("[audoi]\ndevice = 'x'\n", "audoi"), ("[display]\nfps = -3\n", "display.fps"),
                                            ("[display\nfps = 3\n", "not valid TOML")])
def test_cli_exits_2_with_one_sentence_and_no_traceback(tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    for command in ([], ["check"]):
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *command, "--config", str(path), "--headless",
                               "--duration", "1"] if not command else
                              [sys.executable, str(ROOT / "run.py"), *command, "--config", str(path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_after_a_restart_a_config_saved_badly_meanwhile_falls_back_to_the_validated_text(tmp_path, monkeypatch):
    import argparse

    from installation.startup import LAST_GOOD_ENV
    from installation.startup import load

    config = tmp_path / "config.toml"
    config.write_text("[display]\nfps = -3\n")  # the second, bad save
    last_good = tmp_path / "last-good.toml"
    last_good.write_text("[display]\nfps = 25\n")  # what the reload validated before restarting
    monkeypatch.setenv(LAST_GOOD_ENV, str(last_good))
    cfg = load(argparse.Namespace(config=config, overrides=[]))
    assert cfg.display.fps == 25
    assert LAST_GOOD_ENV not in __import__("os").environ and not last_good.exists()
    with pytest.raises(ConfigError, match="display.fps"):  # without a validated text: the usual error
        load(argparse.Namespace(config=config, overrides=[]))


@pytest.mark.parametrize("override", ['installation.name="unterminated', 'audio.device=["USB"',
                                      "installation.name='open", "midi.outputs=['a',"])
def test_malformed_toml_in_set_is_an_error_naming_the_option(override):
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError, match=rf"^--set {key}: .*not valid TOML") as caught:
        load_config(None, [override])
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")


def test_malformed_set_value_exits_2_with_one_sentence():
    root = Path(__file__).resolve().parents[2]
    for override in ('installation.name="unterminated', 'audio.device=["USB"'):
        done = subprocess.run([sys.executable, str(root / "run.py"), "check", "--set", override],
                              capture_output=True, text=True, timeout=120, cwd=root)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and override.split("=")[0] in lines[0], done.stderr
