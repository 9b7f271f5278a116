"""Write charted songs for tuning the beat tracker: a drum kit, bass and chords from General MIDI,
rendered by fluidsynth, each folder with notes.mid (the chart) and song.wav, like a Frets on Fire song.

    python tools/listening/synth_beat_songs.py OUT [--seconds 40] [--soundfont FILE]

Styles cover what trips an octave choice: straight rock, half-time feel, double-kick metal, a
shuffle, sparse ballad drums, and a song whose tempo changes halfway; and what trips a metrical one:
riffs in eighths or palm-muted sixteenths accented 3+3+2 or in fives, the kick on the accents. Tempi span 70-200 BPM. Like a
band, each song opens with two bars of guitar alone, has a drum fill every eighth bar, drops the
drums for two bars in its middle, and plays off the grid by a few milliseconds (`--jitter-ms`).
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
from pathlib import Path

import mido

PER_BEAT = 480
KICK, SNARE, HAT, CRASH, RIDE = 36, 38, 42, 49, 51
SONGS = (  # (name, style, bpm, bpm after the halfway change or None)
    ("rock_118", "rock", 118.0, None), ("rock_172", "rock", 172.0, None), ("half_time_150", "half", 150.0, None),
    ("metal_185", "metal", 185.0, None), ("metal_196", "metal", 196.0, None), ("shuffle_96", "shuffle", 96.0, None),
    ("ballad_72", "ballad", 72.0, None), ("punk_164", "rock", 164.0, None), ("half_time_176", "half", 176.0, None),
    ("change_128_140", "rock", 128.0, 140.0), ("metal_162", "metal", 162.0, None), ("rock_138", "rock", 138.0, None),
    ("sync_124", "sync", 124.0, None), ("sync_170", "sync", 170.0, None), ("sync_188", "sync", 188.0, None),
    ("five_176", "five", 176.0, None), ("five_140", "five", 140.0, None),
    ("chug_180", "chug", 180.0, None), ("chug_152", "chug", 152.0, None), ("fives16_170", "fives16", 170.0, None),
    ("fives16_190", "fives16", 190.0, None), ("chug_half_170", "chug_half", 170.0, None),
)
ACCENTS = {"sync": (0, 3, 6), "five": (0, 5, 10, 15, 20, 25, 30)}
"""Eighth notes (per bar, or per 4 bars for "five") the guitar and kick accent: riffs grouped 3+3+2
(a dotted-quarter period) or in fives, whose own period competes with the beat's."""
SIXTEENTHS = {"chug": (16, (0, 6, 12)), "chug_half": (16, (0, 6, 12)), "fives16": (80, tuple(range(0, 80, 5)))}
"""(cycle, accented sixteenths) of palm-muted riffs in sixteenths: 3+3+2 eighths, or a group of five sixteenths
(a period of 5/4 beats) running across the bar lines; the kick doubles the accents and no cymbal keeps the beat."""


def drum_hits(style: str, beat: int, rng: random.Random) -> list[tuple[float, int, int]]:
    """(offset in beats, note, velocity) for one beat of `style`; `beat` counts from the song's start."""
    bar_beat = beat % 4
    hits: list[tuple[float, int, int]] = []
    if style == "rock":
        hits += [(0.0, HAT, 80), (0.5, HAT, 60)]
        hits += [(0.0, KICK, 110)] if bar_beat in (0, 2) else [(0.0, SNARE, 110)]
        if bar_beat == 2 and rng.random() < 0.5:
            hits.append((0.5, KICK, 90))
    elif style == "half":  # snare on beat 3 only: the feel of half the charted tempo
        hits += [(0.0, HAT, 75)]
        hits += [(0.0, KICK, 110)] if bar_beat == 0 else [(0.0, SNARE, 115)] if bar_beat == 2 else []
        if bar_beat == 3 and rng.random() < 0.6:
            hits.append((0.5, KICK, 85))
    elif style == "metal":  # double kick in eighths, snare on 2 and 4, crash on each bar
        hits += [(0.0, KICK, 100), (0.5, KICK, 95), (0.0, RIDE, 70)]
        if bar_beat in (1, 3):
            hits.append((0.0, SNARE, 120))
        if bar_beat == 0 and beat % 16 == 0:
            hits.append((0.0, CRASH, 100))
    elif style == "shuffle":
        hits += [(0.0, HAT, 80), (2 / 3, HAT, 55)]
        hits += [(0.0, KICK, 105)] if bar_beat in (0, 2) else [(0.0, SNARE, 100)]
    elif style in ACCENTS:  # kick on the riff's accents, snare on 2 and 4, a soft ride on the beat
        cycle = 8 if style == "sync" else 32
        hits.append((0.0, RIDE, 45))
        for half in (0, 1):
            eighth = (beat * 2 + half) % cycle
            if eighth in ACCENTS[style]:
                hits.append((half / 2, KICK, 115))
        if bar_beat in (1, 3):
            hits.append((0.0, SNARE, 105))
    elif style in SIXTEENTHS:
        cycle, accents = SIXTEENTHS[style]
        for q in range(4):
            if (beat * 4 + q) % cycle in accents:
                hits.append((q / 4, KICK, 118))
        if style == "chug_half":
            hits += [(0.0, SNARE, 112)] if bar_beat == 2 else []
        else:
            hits += [(0.0, SNARE, 100)] if bar_beat in (1, 3) else []
        if beat % 8 == 0:
            hits.append((0.0, CRASH, 95))
    elif style == "ballad":
        hits += [(0.0, RIDE, 55)]
        hits += [(0.0, KICK, 90)] if bar_beat == 0 else [(0.0, SNARE, 80)] if bar_beat == 2 else []
    return hits


def chart(style: str, bpm: float, change_bpm: float | None, seconds: float, seed: int,
          jitter_ms: float = 8.0) -> mido.MidiFile:
    """A type-1 file: tempo track, drums (channel 10), bass and chords (roots move every bar)."""
    rng = random.Random(seed)
    midi = mido.MidiFile(type=1, ticks_per_beat=PER_BEAT)
    tempo = mido.MidiTrack()
    beats = int(seconds * bpm / 60.0)
    half = beats // 2 if change_bpm else None
    tempo.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    if half is not None and change_bpm is not None:
        first_half_s = half * 60.0 / bpm
        beats = half + int((seconds - first_half_s) * change_bpm / 60.0)
        tempo.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(change_bpm), time=half * PER_BEAT))
    midi.tracks.append(tempo)
    events: list[tuple[int, mido.Message]] = []
    roots = [40, 43, 45, 38, 41, 36]
    jitter = jitter_ms / 1000.0 * bpm / 60.0 * PER_BEAT  # ticks
    quiet = range((beats // 2) // 4 * 4, (beats // 2) // 4 * 4 + 8)  # two bars without drums
    for b in range(beats):
        bar = b // 4
        drums = [] if b < 8 or b in quiet else drum_hits(style, b, rng)
        if bar % 8 == 7 and b % 4 == 3 and b >= 8:  # a fill: sixteenth-note snare and toms into the next bar
            drums = [(i / 4, (SNARE, 45, 47, 48)[i], 100) for i in range(4)]
        for offset, note, vel in drums:
            at = max(0, b * PER_BEAT + int(offset * PER_BEAT + rng.gauss(0.0, jitter)))
            vel = max(1, min(127, vel + rng.randint(-8, 8)))
            events += [(at, mido.Message("note_on", channel=9, note=note, velocity=vel)),
                       (at + PER_BEAT // 8, mido.Message("note_off", channel=9, note=note))]
        root = roots[(b // 4 + seed) % len(roots)]
        per_beat = 4 if style in SIXTEENTHS else 2
        for i in range(per_beat):  # distorted guitar in eighths or sixteenths, accented on the beat or the riff's accents
            at = max(0, b * PER_BEAT + i * PER_BEAT // per_beat + int(rng.gauss(0.0, jitter)))
            if style in SIXTEENTHS:
                vel = 118 if (b * 4 + i) % SIXTEENTHS[style][0] in SIXTEENTHS[style][1] else 50
            elif style in ACCENTS:
                accent = (b * 2 + i) % (8 if style == "sync" else 32) in ACCENTS[style]
                vel = 115 if accent else 55
            else:
                vel = 100 if i == 0 else 80
            for n in (root + 12, root + 19):
                events += [(at, mido.Message("note_on", channel=2, note=n, velocity=vel)),
                           (at + PER_BEAT // per_beat - 20, mido.Message("note_off", channel=2, note=n))]
        if style != "ballad" or b % 2 == 0:
            events += [(b * PER_BEAT, mido.Message("note_on", channel=0, note=root, velocity=90)),
                       (b * PER_BEAT + PER_BEAT * 3 // 4, mido.Message("note_off", channel=0, note=root))]
        if b % 4 == 0:
            for n in (root + 24, root + 28, root + 31):
                events += [(b * PER_BEAT, mido.Message("note_on", channel=1, note=n, velocity=60)),
                           (b * PER_BEAT + 4 * PER_BEAT - 10, mido.Message("note_off", channel=1, note=n))]
    track = mido.MidiTrack()
    track += [mido.Message("program_change", channel=0, program=33),
              mido.Message("program_change", channel=1, program=29 if style != "ballad" else 48),
              mido.Message("program_change", channel=2, program=30 if style != "ballad" else 25)]
    now = 0
    for at, msg in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(msg.copy(time=at - now))
        now = at
    midi.tracks.append(track)
    return midi


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--jitter-ms", type=float, default=8.0, help="timing spread of each note off the grid")
    ap.add_argument("--soundfont", type=Path, default=Path("/usr/share/sounds/sf2/TimGM6mb.sf2"))
    args = ap.parse_args()
    if shutil.which("fluidsynth") is None:
        raise SystemExit("fluidsynth is not installed (apt-get install --no-install-recommends fluidsynth)")
    for i, (name, style, bpm, change) in enumerate(SONGS):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        chart(style, bpm, change, args.seconds, seed=i, jitter_ms=args.jitter_ms).save(str(folder / "notes.mid"))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "22050", "-F", str(folder / "song.wav"),
                        str(args.soundfont), str(folder / "notes.mid")], check=True, capture_output=True)
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
