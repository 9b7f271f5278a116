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
