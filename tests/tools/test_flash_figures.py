"""The flash figures of a recording: a strobe before and after the guard (tools/visuals/flash_figures.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("flash_figures", ROOT / "tools/visuals/flash_figures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_strobe_is_counted_and_the_guard_output_keeps_to_three():
    white, black = np.full((90, 160, 3), 255, np.uint8), np.zeros((90, 160, 3), np.uint8)
    pictures = [white if (i / 30 * 10) % 1 < 0.5 else black for i in range(120)]
    out = _load().figures(pictures, 30.0)
    assert out["pictures"] == 120 and out["flashes_max"] >= 9 and out["seconds_over_3"] > 0.5
    assert out["after_flashes_max"] <= 3 and out["after_seconds_over_3"] == 0 and out["limited"] > 0
