"""The side-by-side figures on synthetic frames: frames.csv from the projector, onset correlation
in the 0-150 ms lag range, onset gain and the silence/drums change ratio (tools/visuals/onset_figures.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from installation.bus import Bus
from installation.clock import ManualClock
from models.evaluation.reactivity import best_lag_correlation
from installation.projection.frame_stamps import FrameStamps
from installation.projection.projector import Projector
from installation.records import Frame

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("onset_figures", ROOT / "tools/visuals/onset_figures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


figures = _load()
FPS = 30.0


def _hits(seed: int = 1, seconds: float = 20.0, env_rate: float = 86.0):
    rng = np.random.default_rng(seed)
    env = np.zeros(int(seconds * env_rate))
    hits = np.sort(rng.choice(np.arange(40, env.size - 40), 30, replace=False))
    env[hits] = rng.uniform(0.5, 1.0, hits.size)
    return env, env_rate, hits / env_rate


def _frames_reacting(onsets_s, strengths, lag_s: float, seconds: float = 20.0, floor: float = 1.0):
    times = np.arange(1, int(seconds * FPS) + 1) / FPS
    change = np.full(times.size, floor)
    for t, s in zip(onsets_s, strengths):
        k = int(np.ceil((t + lag_s) * FPS)) - 1
        if k < change.size:
            change[k] += 10 * s
    return times, change


def test_correlation_is_searched_from_0_to_150_ms_only():
    env, env_rate, onsets = _hits()
    times, late = _frames_reacting(onsets, env[(onsets * env_rate).round().astype(int)], 0.1)
    corr, lag_s = best_lag_correlation(late, times, env, env_rate, max_lag_s=0.15, min_lag_s=0.0)
    assert corr > 0.7 and 0.05 <= lag_s <= 0.15
    # frames that change 80 ms before the sound: not a reaction, so no lag in range finds it
    _, early = _frames_reacting(onsets, env[(onsets * env_rate).round().astype(int)], -0.08)
    corr, _ = best_lag_correlation(early, times, env, env_rate, max_lag_s=0.15, min_lag_s=0.0)
    assert corr < 0.3


def test_onset_gain_sees_a_change_after_the_onsets_and_none_without():
    _, _, onsets = _hits()
    times, change = _frames_reacting(onsets, np.ones(onsets.size), 0.03)
    assert figures.onset_gain(times, change, onsets) > 1.5   # some onsets fall in another's "before"
    flat = np.ones(times.size)
    assert abs(figures.onset_gain(times, flat, onsets) - 1.0) < 1e-9
    assert figures.onset_gain(times, np.zeros(times.size), onsets) is None


def test_silence_to_drums_ratio_counts_the_silence_after_the_tail():
    times = np.arange(1, int(30 * FPS) + 1) / FPS
    drums = [(2.0, 6.0), (12.0, 16.0), (22.0, 26.0)]
    during = np.zeros(times.size, bool)
    for a, b in drums:
        during |= (times >= a) & (times < b + 0.5)   # a picture that settles within half a second
    change = np.where(during, 4.0, 0.4)
    ratio = figures.silence_to_drums(times, change, drums, start_s=0.0, end_s=30.0)
    assert abs(ratio - 0.1) < 1e-6
    restless = np.full(times.size, 4.0)
    assert figures.silence_to_drums(times, restless, drums, 0.0, 30.0) == 1.0


def test_return_ms_is_the_first_moving_frame_after_each_stretch_after_a_silence():
    times = np.arange(1, int(30 * FPS) + 1) / FPS
    drums = [(2.0, 6.0), (12.0, 16.0), (22.0, 26.0)]
    change = np.full(times.size, 0.01)
    for a, _ in drums:
        change[times >= a + 0.05] = 5.0   # moves again 50 ms (and the frame after) into each stretch
        change[times >= a + 1.0] = 0.01
    assert figures.return_ms(times, change, drums, start_s=0.0, end_s=30.0) == [pytest.approx(1e3 * (
        times[times >= a + 0.05][0] - a), abs=0.1) for a, _ in drums[1:]]
    assert figures.return_ms(times, change, drums, start_s=15.0, end_s=30.0) == [pytest.approx(
        1e3 * (times[times >= 22.05][0] - 22.0), abs=0.1)]


def test_the_projector_stamps_each_frame_on_the_audio_clock(tmp_path):
    class File:   # an audio.source = "file" input that started 2.5 s into the run
        started_s = 2.5

    clock, bus = ManualClock(2.0), Bus("nocturne")
    stamps = FrameStamps(tmp_path / "frames.csv", clock, lambda: getattr(File, "started_s", None))
    projector = Projector(bus.frames, bus.live, bus.projected_frames, clock, 10.0, (16, 8), stamps=stamps)
    projector.open()
    for k, level in enumerate((0, 40, 40, 100)):
        bus.frames.put(Frame(clock.now_s(), np.full((8, 16, 3), level, np.uint8)))
        projector.tick(clock.now_s())
        clock.advance(0.1)
    File.started_s = 0.0   # not started (yet): no audio time
    projector.tick(clock.now_s())
    projector.close()
    rows = (tmp_path / "frames.csv").read_text().splitlines()
    assert rows[0] == "t_s,audio_s,change" and len(rows) == 6
    times, change = figures.read_frames(tmp_path / "frames.csv")
    assert np.allclose(times, [-0.5, -0.4, -0.3, -0.2]) and np.allclose(change, [0, 40, 0, 60])


def _projectm_ready() -> bool:
    import shutil
    import subprocess
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "libprojectM"]).returncode == 0 and Path(
        "/usr/share/projectM/presets/presets_milkdrop").is_dir()


@pytest.mark.skipif(not _projectm_ready(), reason="needs libprojectm-dev, projectm-data, g++ (a documented tool)")
def test_projectm_harness_renders_frame_exactly_and_reacts_to_a_kick(tmp_path):
    spec = importlib.util.spec_from_file_location("projectm_render", ROOT / "tools/visuals/projectm_render.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    import soundfile as sf

    rate, seconds = 44100, 3.0
    t = np.arange(int(seconds * rate)) / rate
    audio = np.where((t % 1.0) < 0.15, np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 1.0) / 0.05), 0.0)
    sf.write(str(tmp_path / "kicks.wav"), audio.astype(np.float32), rate)
    binary = harness.build(tmp_path / "projectm_render")
    pcm = tmp_path / "audio.s16"
    assert harness.pcm16_stereo(tmp_path / "kicks.wav", pcm) == pytest.approx(seconds)
    preset = harness.PRESETS_DIR / harness.PRESETS[0]
    n = harness.render(binary, preset, pcm, 30.0, 160, 90, 2, tmp_path / "out", video=False)
    assert n == 90
    times, change = figures.read_frames(tmp_path / "out" / "frames.csv")
    assert np.allclose(times, np.arange(1, 91) / 30.0, atol=1e-4) and change.max() > 0


def test_grey_samples_are_every_4th_pixel_at_any_size():
    from installation.projection.frame_stamps import frame_change, grey_samples

    rng = np.random.default_rng(3)
    for h, w in ((720, 1280), (7, 10), (36, 64)):
        a, b = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
        ref_a, ref_b = (x[::4, ::4].mean(axis=2) for x in (a, b))
        assert np.allclose(grey_samples(a), ref_a, atol=1e-3)
        assert abs(frame_change(grey_samples(a), grey_samples(b)) - np.abs(ref_a - ref_b).mean()) < 1e-3
