"""`run.py compose` end to end on a real photograph."""
from __future__ import annotations

import mido
import skimage.data
import skimage.io

from installation.cli import main


def test_compose_writes_a_playable_midi_file_and_abc(tmp_path, capsys):
    photo = tmp_path / "coffee.png"
    skimage.io.imsave(photo, skimage.data.coffee())
    out = tmp_path / "coffee.mid"
    assert main(["compose", str(photo), "--seconds", "8", "--out", str(out), "--abc"]) == 0
    text = capsys.readouterr().out
    assert "K:" in text and "% tempo" in text and "corpus phrase" in text
    mid = mido.MidiFile(out)
    notes = [m for m in mid if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 10 and 7.5 < mid.length < 20
    assert {0, 1, 2} <= {m.channel for m in notes} <= {0, 1, 2, 9}


def test_compose_on_a_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["compose", str(tmp_path / "none.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_built_in_synth_renders_plans_louder_when_the_picture_is_lively():
    import numpy as np

    from installation.commands.compose import compose_offline, render_internal
    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composer import Composer
    from scenes.scene import load_scene
    rms = {}
    for name, arousal in (("calm", -0.8), ("lively", 0.8)):
        state = ImageState(t_s=0.0, valence=0.0, arousal=arousal, brightness=0.5, dominant_hues_deg=(30.0,))
        plans = compose_offline(Composer(ComposeConfig(), load_scene("nocturne")), lambda t_s: state, 6.0)
        audio = render_internal(plans, 16000)
        assert audio.dtype == np.float32 and np.isfinite(audio).all()
        last_off_s = max(e.start_s + e.duration_s for p in plans for e in p.events)
        assert abs(audio.size / 16000 - (last_off_s + 1.0)) < 0.01
        rms[name] = float(np.sqrt(np.mean(np.square(audio))))
    assert rms["calm"] > 1e-3 and rms["lively"] > 2 * rms["calm"]
