"""The fitted valence head: its shipped weights load offline, predict in range, and order real music."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from installation.config import ListenConfig
from installation.errors import UserError
from installation.records import Descriptors
from models.listening.va import FeaturesHead, FittedHead, build_listener
from models.listening.va_fitted import CUE_NAMES, DEFAULT_WEIGHTS, FittedValence, valence_cues

RATE = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def test_shipped_weights_load_and_say_how_they_were_fitted():
    model = FittedValence.load()
    assert model.cues == CUE_NAMES and model.coef.shape == (len(CUE_NAMES),)
    assert DEFAULT_WEIGHTS.stat().st_size < 20_000
    assert "fit_valence.py" in model.meta["fitted_by"]
    # The held-out set is never among the tuning material.
    assert not any("others" in s for s in model.meta["fitted_on"])
    assert model.meta["recordings"] >= 20


def test_valence_stays_in_range_and_finite_for_extreme_descriptors():
    head = FittedHead()
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = Descriptors(loudness_lufs=float(rng.uniform(-120, 10)), onset_rate_hz=float(rng.uniform(0, 40)),
                        tempo_bpm=float(rng.uniform(0, 300)), beat_confidence=float(rng.uniform(0, 1)),
                        mode_strength=float(rng.uniform(-1, 1)), key_confidence=float(rng.uniform(0, 1)),
                        consonance=float(rng.uniform(0, 1)), brightness=float(rng.uniform(0, 1)),
                        band_low=float(rng.uniform(0, 1)), harmonic_ratio=float(rng.uniform(0, 1)),
                        flux=float(rng.uniform(0, 2)), major_chords=float(rng.uniform(0, 1)),
                        minor_chords=float(rng.uniform(0, 1)), dissonance=float(rng.uniform(0, 1)),
                        register_hz=float(rng.uniform(0, 5000)), silent=False)
        assert np.all(np.abs(valence_cues(d)) <= 1.0)
        v, a, c = head.predict(d)
        assert -1.0 <= v <= 1.0 and -1.0 <= a <= 1.0 and 0.0 <= c <= 1.0
        assert a == FeaturesHead().arousal(d)  # arousal is the transparent head's, untouched


def test_missing_or_foreign_weights_are_one_user_sentence(tmp_path):
    with pytest.raises(UserError, match="do not exist"):
        FittedValence.load(tmp_path / "none.json")
    data = json.loads(DEFAULT_WEIGHTS.read_text())
    data["cues"] = data["cues"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="other cues"):
        FittedValence.load(tmp_path / "old.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="cannot be read"):
        FittedValence.load(tmp_path / "bad.json")


def _render_chorale(name: str, out: Path) -> np.ndarray:
    """A Bach chorale from music21's corpus, 80 BPM, through fluidsynth and TimGM6mb; the first 25 s."""
    import mido
    import soundfile as sf
    from music21 import corpus
    mid = out / f"{name.replace('/', '_')}.mid"
    corpus.parse(name).write("midi", fp=str(mid))
    m = mido.MidiFile(mid)
    for track in m.tracks:
        for msg in track:
            if msg.type == "set_tempo":
                msg.tempo = mido.bpm2tempo(80)
    m.save(mid)
    wav = mid.with_suffix(".wav")
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(RATE), "-g", "0.6", "-F", str(wav), str(SOUNDFONT),
                    str(mid)], check=True, stdout=subprocess.DEVNULL, timeout=120)
    x, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == RATE
    return x.mean(axis=1)[:25 * RATE]


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
                    reason="fluidsynth and timgm6mb-soundfont are not installed")
def test_on_a_rendered_chorale_the_fitted_head_changes_valence_only(tmp_path):
    # A real record (a Bach chorale from music21's corpus, not in any tuning set): the fitted head
    # gives its own valence, in range at every hop, while arousal is the features head's, hop by hop.
    x = _render_chorale("bach/bwv269", tmp_path)
    hop = int(0.25 * RATE)
    runs = {}
    for head in ("features", "fitted"):
        listener = build_listener(ListenConfig(va_head=head, hop_s=0.25).settings(), RATE, live=False)
        states = []
        for i in range(0, x.size - hop + 1, hop):
            listener.feed(x[i:i + hop])
            states.append(listener.state((i + hop) / RATE))
        runs[head] = states
    audible = [k for k, s in enumerate(runs["fitted"]) if not s.silent and s.t_s >= 6.0]
    assert len(audible) > 40
    assert all(runs["fitted"][k].head == "fitted" for k in audible)
    assert [runs["fitted"][k].arousal for k in audible] == [runs["features"][k].arousal for k in audible]
    short = np.array([runs["fitted"][k].valence_short for k in audible])
    assert np.all(np.isfinite(short)) and np.all(np.abs(short) <= 1.0)
    assert not np.allclose(short, [runs["features"][k].valence_short for k in audible])


def test_weights_fitted_with_vibenet_cues_make_the_head_run_vibenet_on_recent_audio():
    from models.evaluation.listening import synthetic_music
    from models.listening.va_fitted import VIBENET_CUES, VIBENET_WEIGHTS
    model = FittedValence.load(VIBENET_WEIGHTS)
    assert model.uses_vibenet and model.cues[-2:] == VIBENET_CUES
    assert not FittedValence.load().uses_vibenet  # the default file stays cheap: descriptors only
    listener = build_listener(ListenConfig(va_head="fitted", fitted_weights=str(VIBENET_WEIGHTS)).settings(), RATE,
                              live=False)
    assert listener.recent.last().size == 0 and listener.recent._buf.size == 10 * RATE  # heard for vibenet
    x = synthetic_music(4.0, RATE, True)
    hop = int(0.1 * RATE)
    for i in range(0, x.size - hop + 1, hop):
        listener.feed(x[i:i + hop])
        s = listener.state((i + hop) / RATE)
        assert -1.0 <= s.valence_short <= 1.0 and s.head == "fitted"
    assert listener.head.vibenet.runs >= 1
    listener.close()
