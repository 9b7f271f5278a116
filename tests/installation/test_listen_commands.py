"""run.py analyze / eval music-va / train music-va / bench listen, end to end on written files."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from installation.cli import main
from models.evaluation.listening import pair_accuracy, read_labels, synthetic_music
from installation.errors import UserError


@pytest.fixture(scope="module")
def music_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("music")
    for k in range(3):
        sf.write(d / f"calm{k}.wav", synthetic_music(8, 22050, False, seed=k) * (0.6 + 0.2 * k), 22050)
        sf.write(d / f"lively{k}.flac", synthetic_music(8, 22050, True, seed=k) * (0.6 + 0.2 * k), 22050)
    (d / "labels.csv").write_text("song_id,valence_mean,arousal_mean\n" +
                                  "".join(f"calm{k},2,2\nlively{k},8,8\n" for k in range(3)))
    return d


def test_analyze_json_has_va_curve_tempo_key_loudness(music_dir, capsys):
    assert main(["analyze", str(music_dir / "lively0.flac"), str(music_dir / "calm0.wav"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lively, calm = out
    assert lively["arousal"] > calm["arousal"] and lively["valence"] > calm["valence"]
    assert {"valence", "arousal", "curve", "tempo_bpm", "key", "mode", "loudness_lufs"} <= set(lively)
    assert len(lively["curve"]) >= 7 and lively["mode"] == "major" and calm["mode"] == "minor"


def test_analyze_missing_and_unreadable_files(tmp_path, capsys, recwarn):
    assert main(["analyze", str(tmp_path / "gone.wav")]) == 2
    assert "gone.wav does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\x00" * 100)
    assert main(["analyze", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.ogg cannot be read" in err
    # one sentence, no library warnings before it
    assert len(err.strip().splitlines()) == 1 and not [w for w in recwarn if "audioread" in str(w.message) or "PySoundFile" in str(w.message)]


def test_labels_on_the_deam_scale_are_mapped(music_dir):
    labels = read_labels(music_dir / "labels.csv", music_dir)
    assert [l.arousal for l in labels] == pytest.approx([-0.75, 0.75] * 3)
    assert labels[1].path.suffix == ".flac"
    bad = music_dir / "bad.csv"
    bad.write_text("song_id,arousal\nnosuchsong,1\n")
    with pytest.raises(UserError, match="nosuchsong"):
        read_labels(bad, music_dir)


def test_pair_accuracy():
    acc, n = pair_accuracy([0.1, 0.5, 0.3, 0.2], [-1, 1, -1, 1], ["a", "a", "b", "b"])
    assert n == 2 and acc == 0.5


@pytest.mark.slow
def test_train_then_eval_learned_head(music_dir, tmp_path, capsys):
    out = tmp_path / "head.npz"
    assert main(["train", "music-va", "--annotations", str(music_dir / "labels.csv"), "--audio", str(music_dir),
                 "--out", str(out), "--excerpt-s", "0"]) == 0
    assert out.is_file()
    report = tmp_path / "eval.json"
    assert main(["eval", "music-va", "--labels", str(music_dir / "labels.csv"), "--audio", str(music_dir),
                 "--head", "features", "--head", "learned", "--set", f'listen.learned_head="{out}"',
                 "--excerpt-s", "0", "--json", str(report)]) == 0
    table = json.loads(report.read_text())["table"]
    assert table["features"]["arousal_auc"] == 1.0 and table["learned"]["arousal_auc"] == 1.0
    assert table["features"]["rtf"] > 0
    capsys.readouterr()


def test_bench_listen_writes_the_agreed_keys(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "listen", "--heads", "features", "--seconds", "5", "--latency-seconds", "2", "--json", str(path)]) == 0
    figures = json.loads(path.read_text())
    assert set(figures) >= {"rtf", "latency_ms_p95", "reaction_s"}
    assert 0 < figures["rtf"]["features"] < 1 and figures["latency_ms_p95"] > 0
    assert figures["reaction_s"] is not None
    capsys.readouterr()


def test_bench_valence_hold_reports_steadiness_and_followed_changes(tmp_path):
    for k in range(2):  # minor-calm and major-lively recordings long enough for a steady part
        sf.write(tmp_path / f"calm{k}.wav", synthetic_music(24, 22050, False, seed=k) * 0.7, 22050)
        sf.write(tmp_path / f"lively{k}.wav", synthetic_music(24, 22050, True, seed=k) * 0.7, 22050)
    (tmp_path / "moods.csv").write_text("song_id,valence,arousal\n" +
                                        "".join(f"calm{k},-1,\nlively{k},1,\n" for k in range(2)))
    out = tmp_path / "hold.json"
    assert main(["bench", "valence-hold", "--labels", str(tmp_path / "moods.csv"), "--audio", str(tmp_path),
                 "--sections", "3", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["section_changes"] == 2 and len(figures["changes"]) == 2
    assert 0 <= figures["steady_p95_valence_change_per_s"] <= 0.1 + 1e-9  # the held valence's rate limit
