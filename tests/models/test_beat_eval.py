"""Scoring the beat tracker against a chart: the tempo map's beats, settling, octave errors, beat
distances, and `eval beats` end to end on a charted click track."""
from __future__ import annotations

import json
import math

import mido
import numpy as np
import pytest
import soundfile as sf

from installation.cli import main
from models.evaluation.beats import TrackPoint, predicted_beats, score, song_delay_s, song_folders, tempo_map

PER_BEAT = 480


def write_chart(path, changes: list[tuple[int, float]]) -> None:
    """A one-track notes.mid with `(tick, bpm)` tempo changes."""
    midi = mido.MidiFile(type=0, ticks_per_beat=PER_BEAT)
    track = mido.MidiTrack()
    now = 0
    for tick, bpm in changes:
        track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=tick - now))
        now = tick
    track.append(mido.Message("note_on", note=60, velocity=1, time=8 * PER_BEAT))
    midi.tracks.append(track)
    midi.save(str(path))


def test_the_tempo_map_gives_every_beat_across_a_tempo_change(tmp_path):
    write_chart(tmp_path / "notes.mid", [(0, 120.0), (4 * PER_BEAT, 150.0)])
    chart = tempo_map(tmp_path / "notes.mid", end_s=4.0, delay_s=0.1)
    # Four beats at 0.5 s, then 0.4 s each, all shifted by the song's delay.
    expected = 0.1 + np.concatenate([np.arange(4) * 0.5, 2.0 + np.arange(5) * 0.4])
    assert chart.beats_s == pytest.approx(expected[expected <= 4.0])
    assert chart.bpm_at(1.0) == pytest.approx(120.0)
    assert chart.bpm_at(2.2) == pytest.approx(150.0)


def test_song_ini_delay_and_song_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "song.ini").write_text("[song]\nname = A\ndelay = 250\n")
    (tmp_path / "a" / "notes.mid").write_bytes(b"")
    (tmp_path / "b").mkdir()
    assert song_delay_s(tmp_path / "a") == pytest.approx(0.25)
    assert song_delay_s(tmp_path / "b") == 0.0
    assert song_folders(tmp_path) == [tmp_path / "a"]


def synthetic_track(bpm_of, beat_offset_s: float, seconds: float = 30.0, step_s: float = 0.01):
    """Tracker states every `step_s`: tempo `bpm_of(t)`, beats on the 120 BPM grid shifted by the offset."""
    return [TrackPoint(t, bpm_of(t), beat_offset_s + 0.5 * math.floor((t - beat_offset_s) / 0.5), 0.5, False)
            for t in np.arange(0.0, seconds, step_s)]


def test_settling_beat_distances_and_octave_errors(tmp_path):
    write_chart(tmp_path / "notes.mid", [(0, 120.0)])
    chart = tempo_map(tmp_path / "notes.mid", end_s=30.0)
    # Wrong for 3 s, then right: settled at 3 s; beats 10 ms late on every one.
    s = score(synthetic_track(lambda t: 100.0 if t < 3.0 else 120.0, 0.01), chart, tolerance=0.02, hold_s=10.0)
    assert s.settle_s == pytest.approx(3.0, abs=0.02)
    assert s.in_band_after == pytest.approx(1.0)
    assert s.beat_p50_ms == pytest.approx(10.0, abs=1.0)
    assert s.beat_p95_ms == pytest.approx(10.0, abs=1.0)
    assert s.octave_share == 0.0
    # Half time all along: an octave error is a miss, never settled, and counted as such.
    half = score(synthetic_track(lambda t: 60.0, 0.0), chart)
    assert half.settle_s is None and half.beats == 0
    assert half.octave_share == pytest.approx(1.0)
    # In the band only in stretches shorter than the hold: not settled.
    flicker = score(synthetic_track(lambda t: 120.0 if int(t) % 8 < 5 else 90.0, 0.0), chart, hold_s=6.0)
    assert flicker.settle_s is None


def test_predicted_beats_are_the_projectors_and_stop_below_the_confidence_floor():
    track = [TrackPoint(t, 120.0, 0.0, 0.5, False) for t in np.arange(0.0, 2.01, 0.01)]
    assert predicted_beats(track) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    quiet = [TrackPoint(p.t_s, p.tempo_bpm, p.beat_t_s, 0.0, False) for p in track]
    assert predicted_beats(quiet) == []


def click_song(tmp_path, seconds: int):
    rate = 22050
    song = tmp_path / "songs" / "clicks_150"
    song.mkdir(parents=True)
    write_chart(song / "notes.mid", [(0, 150.0)])
    # A quiet hum under the clicks, so the room is never silent between them.
    x = (0.01 * np.sin(2 * np.pi * 220.0 * np.arange(seconds * rate) / rate)).astype(np.float32)
    rng = np.random.default_rng(0)
    n = np.arange(int(0.05 * rate))
    for t_s in np.arange(0.0, seconds, 0.4):
        i = int(t_s * rate)
        click = (0.6 * rng.standard_normal(n.size) * np.exp(-n / (0.005 * rate))).astype(np.float32)
        x[i:i + n.size] += click[:x.size - i]
    sf.write(song / "song.wav", x, rate)


def test_eval_beats_on_a_charted_click_track(tmp_path, capsys):
    click_song(tmp_path, 14)
    out = tmp_path / "beats.json"
    assert main(["eval", "beats", "--audio", str(tmp_path / "songs"), "--hold-s", "5", "--json", str(out)]) == 0
    assert "simulated" in capsys.readouterr().err
    row = json.loads(out.read_text())["songs"][0]
    assert row["song"] == "clicks_150" and row["chart_bpm"] == pytest.approx(150.0)
    assert row["settle_s"] is not None and row["settle_s"] <= 8.0
    assert row["beat_p50_ms"] <= 30.0


def test_eval_beats_live_plays_through_the_onset_stage(tmp_path, capsys):
    click_song(tmp_path, 6)
    out = tmp_path / "beats.json"
    assert main(["eval", "beats", "--audio", str(tmp_path / "songs"), "--live", "--hold-s", "2",
                 "--json", str(out)]) == 0
    assert "live" in json.loads(out.read_text())["feed"]
    row = json.loads(out.read_text())["songs"][0]
    assert row["median_bpm"] == pytest.approx(150.0, rel=0.02)
    assert row["beats"] > 0
