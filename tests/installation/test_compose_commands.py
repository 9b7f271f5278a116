"""`run.py compose` end to end on a real photograph."""
from __future__ import annotations

import mido
import pytest
import skimage.data
import skimage.io

from installation.cli import main


def test_compose_writes_a_playable_midi_file_and_abc(tmp_path, capsys):
    photo = tmp_path / "coffee.png"
    skimage.io.imsave(photo, skimage.data.coffee())
    out = tmp_path / "coffee.mid"
    assert main(["compose", str(photo), "--seconds", "8", "--out", str(out), "--abc"]) == 0
    text = capsys.readouterr().out
    assert "K:" in text and "% tempo" in text and "melody" in text
    mid = mido.MidiFile(out)
    notes = [m for m in mid if m.type == "note_on" and m.velocity > 0]
    assert len(notes) > 10 and 7.5 < mid.length < 20
    assert {0, 1, 2} <= {m.channel for m in notes} <= {0, 1, 2, 9}


def test_a_composed_file_has_the_plans_tempo_metre_voices_and_audible_velocities(tmp_path):
    import numpy as np
    import soundfile
    from music21 import converter, meter, tempo

    from hardware.sound.offline import write_wav
    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from models.evaluation.composing import compose_offline, plans_to_midi
    from scenes.scene import load_scene
    dark = ImageState(t_s=0.0, valence=-0.8, arousal=-0.9, brightness=0.15, dominant_hues_deg=(230.0,))
    plans = compose_offline(Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne")), lambda t_s: dark, 8.0)
    out = tmp_path / "dark.mid"
    plans_to_midi(plans, out)
    mid = mido.MidiFile(out)
    assert mid.type == 1 and [t.name for t in mid.tracks][:2] == ["Chromesthesia", "melody"]
    score = converter.parse(str(out))
    marks = list(score.flatten().getElementsByClass(tempo.MetronomeMark))
    sigs = list(score.flatten().getElementsByClass(meter.TimeSignature))
    assert marks and abs(marks[0].number - plans[0].tempo_bpm) < 0.5
    assert sigs and sigs[0].ratioString == plans[0].metre
    velocities = {m.channel: [] for m in mid if m.type == "note_on"}
    for m in mid:
        if m.type == "note_on" and m.velocity > 0:
            velocities[m.channel].append(m.velocity)
    assert min(min(v) for v in velocities.values()) >= 28  # a pianissimo, not a whisper of 13
    for plan in plans:  # the melody sings above the chords
        melody = [e.note for e in plan.events if e.voice == "melody"]
        chords = [e.note for e in plan.events if e.voice == "chords"]
        if melody and chords:
            assert np.median(melody) > max(chords)
    wav = tmp_path / "dark.wav"
    write_wav(plans, out, wav, "synth", 16000)
    audio, rate = soundfile.read(str(wav))
    assert rate == 16000 and audio.size > 8 * 16000 and np.abs(audio).max() > 0.01


def test_compose_on_a_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["compose", str(tmp_path / "none.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_built_in_synth_renders_plans_louder_when_the_picture_is_lively():
    import numpy as np

    from hardware.sound.offline import render_internal
    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from models.evaluation.composing import compose_offline
    from scenes.scene import load_scene
    rms = {}
    for name, arousal in (("calm", -0.8), ("lively", 0.8)):
        state = ImageState(t_s=0.0, valence=0.0, arousal=arousal, brightness=0.5, dominant_hues_deg=(30.0,))
        plans = compose_offline(Composer(ComposeConfig().settings(), load_scene("nocturne")), lambda t_s: state, 6.0)
        audio = render_internal(plans, 16000)
        assert audio.dtype == np.float32 and np.isfinite(audio).all()
        last_off_s = max(e.start_s + e.duration_s for p in plans for e in p.events)
        assert abs(audio.size / 16000 - (last_off_s + 1.0)) < 0.01
        rms[name] = float(np.sqrt(np.mean(np.square(audio))))
    assert rms["calm"] > 1e-3 and rms["lively"] > 2 * rms["calm"]


def test_every_key_and_mode_gets_a_key_signature_mido_accepts():
    from mido.midifiles.meta import _key_signature_encode

    from models.composing.theory import KEY_NAMES, MODES, key_name
    from models.evaluation.composing import _midi_key
    for pc in range(12):
        for mode in MODES:
            assert _midi_key(key_name(pc, mode), mode) in _key_signature_encode, (pc, mode)


def test_the_abc_has_every_voice_with_struck_chords_and_the_drums():
    from music21 import converter

    from installation.config import ComposeConfig
    from installation.records import ImageState
    from models.composing.composer import Composer
    from scenes.scene import load_scene
    lively = ImageState(t_s=0.0, valence=0.5, arousal=0.8, brightness=0.6, dominant_hues_deg=(40.0,))
    plan = Composer(ComposeConfig(retrieval=False).settings(), load_scene("nocturne")).plan(lively, 0.0)
    score = converter.parse(plan.abc, format="abc")
    assert len(score.parts) == 4 and [line for line in plan.abc.splitlines() if line.startswith("V:")] == [
        'V:1 name="melody"', 'V:2 name="chords"', 'V:3 name="bass" clef=bass', 'V:4 name="drums" clef=perc']
    strikes = {e.start_s for e in plan.events if e.voice == "chords"}
    assert len(score.parts[1].flatten().notes) == len(strikes)  # a chord written for every strike
    drums = [e for e in plan.events if e.voice == "drums"]
    assert len(score.parts[3].flatten().notes) == len({e.start_s for e in drums})


@pytest.mark.parametrize("option", ["--out", "--wav"])
def test_compose_to_a_path_that_cannot_be_written_is_one_sentence(tmp_path, capsys, option):
    import cv2
    import numpy as np
    from installation.cli import main
    image = tmp_path / "picture.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    (tmp_path / "a-file").write_text("")
    args = ["compose", str(image), "--seconds", "1", "--out", str(tmp_path / "x.mid")]
    assert main([*args, option, str(tmp_path / "a-file" / "inside")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write"), err


@pytest.mark.parametrize("vision", [True, False])
def test_compose_sends_the_picture_to_a_vision_llm_only_when_asked(tmp_path, vision):
    from tests.fakes import FakeLlm
    from tests.models.test_composer_llm import melody_for
    photo = tmp_path / "coffee.png"
    skimage.io.imsave(photo, skimage.data.coffee())
    server = FakeLlm({"good": melody_for})
    try:
        args = ["compose", str(photo), "--seconds", "4", "--out", str(tmp_path / "c.mid"),
                "--set", "compose.backend=llm", "--set", f"compose.llm_url={server.url}",
                "--set", f"compose.llm_vision={'true' if vision else 'false'}", "--set", "compose.retrieval=false"]
        assert main(args) == 0
    finally:
        server.stop()
    assert server.requests
    content = server.requests[0]["messages"][1]["content"]
    if vision:
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    else:
        assert isinstance(content, str)
