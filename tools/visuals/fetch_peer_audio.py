#!/usr/bin/env python3
"""Fetch the recordings the installation and projectM are compared on into DIR (default eval-data/peer).

  nexuiz-music            Alientrap (Nexuiz), electronic and rock game music; GPL-2+. The first four
                          tracks in the package's alphabetical order, chosen before listening:
                          beast-of-insanity, brainsukker, chaos-fog, infight; 45 s of each from 30 s
                          in, as nexuiz-NAME.wav (both systems play the same excerpt).
  avldrums.lv2-soundfont  Glen MacArthur's AVL Black Pearl drum kit (a SoundFont); CC BY-SA 3.0.
                          drums-and-silence.wav is made from it: a rock beat at 120 BPM in stretches
                          of 3-6 s with 3-5 s of silence between (seeded), rendered by fluidsynth;
                          drums-and-silence.json names the stretches (start_s, end_s) of drumming.

Neither package is used anywhere else in this project, and nothing in it was tuned on them. Both are
Debian packages (main), fetched with `apt-get download` and unpacked with `dpkg-deb`; the audio is
not part of this repository. Each package's copyright file is copied beside its tracks.
Needs: apt-get, dpkg-deb, unzip (the music is in a zip archive), fluidsynth, mido.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MUSIC_PACKAGE = "nexuiz-music"
MUSIC_ARCHIVE = "usr/share/games/nexuiz/data/music.pk3"
MUSIC = ("beast-of-insanity", "brainsukker", "chaos-fog", "infight")
OFFSET_S, EXCERPT_S = 30.0, 45.0
DRUMS_PACKAGE = "avldrums.lv2-soundfont"
DRUMS_FONT = "usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2"
DRUMS_SECONDS = 60.0
DRUMS_BPM = 120.0
RATE_HZ = 44100
# General MIDI percussion keys; the kit is preset 0 of bank 0, so it plays on channel 1
KICK, SNARE, HAT = 36, 38, 42


def excerpt(source: Path, out: Path) -> None:
    """EXCERPT_S of `source` from OFFSET_S in, as WAV; `source` is removed."""
    import soundfile as sf

    with sf.SoundFile(str(source)) as f:
        f.seek(int(OFFSET_S * f.samplerate))
        x = f.read(int(EXCERPT_S * f.samplerate), dtype="float32", always_2d=True)
        sf.write(str(out), x, f.samplerate)
    source.unlink()


def unpack(package: str, into: Path, out: Path) -> Path:
    """`apt-get download` + `dpkg-deb -x` into `into`; the copyright file goes to `out`."""
    subprocess.run(["apt-get", "download", package], cwd=into, check=True, capture_output=True)
    deb = next(into.glob(f"{package}_*.deb"))
    root = into / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    shutil.copy(root / "usr/share/doc" / package / "copyright", out / f"COPYRIGHT-{package}")
    return root


def drum_stretches(seconds: float, seed: int = 0) -> list[tuple[float, float]]:
    """(start_s, end_s) of each stretch of drumming: 3-6 s long, 3-5 s of silence between, on the beat grid."""
    rng = np.random.default_rng(seed)
    beat_s = 60.0 / DRUMS_BPM
    stretches, t_s = [], 1.0
    while True:
        length_s = beat_s * int(rng.integers(6, 13))
        if t_s + length_s > seconds - 1.0:
            return stretches
        stretches.append((t_s, t_s + length_s))
        t_s += length_s + beat_s * int(rng.integers(6, 11))


def drum_midi(stretches: list[tuple[float, float]], path: Path) -> None:
    """A rock beat (kick on 1 and 3, snare on 2 and 4, closed hi-hat on eighths) inside each stretch."""
    import mido

    ticks_per_beat = 480
    events: list[tuple[int, int, int]] = []  # (tick, key, velocity); velocity 0 = note off
    beat_s = 60.0 / DRUMS_BPM
    for start_s, end_s in stretches:
        n_eighths = int(round((end_s - start_s) / beat_s * 2))
        for i in range(n_eighths):
            tick = int(round((start_s / beat_s + i / 2) * ticks_per_beat))
            keys = [(HAT, 80)]
            if i % 4 == 0:
                keys.append((KICK, 110))
            elif i % 4 == 2:
                keys.append((SNARE, 105))
            for key, velocity in keys:
                events += [(tick, key, velocity), (tick + ticks_per_beat // 4, key, 0)]
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(DRUMS_BPM))])
    now = 0
    for tick, key, velocity in sorted(events, key=lambda e: (e[0], e[2] == 0)):
        track.append(mido.Message("note_on", channel=0, note=key, velocity=velocity, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(str(path))


def make_drums(font: Path, out: Path, seed: int = 0) -> None:
    import soundfile as sf

    stretches = drum_stretches(DRUMS_SECONDS, seed)
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "drums.mid"
        drum_midi(stretches, midi)
        wav = Path(tmp) / "drums.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(RATE_HZ), "-F", str(wav), str(font), str(midi)],
                       check=True, capture_output=True)
        x, rate = sf.read(str(wav), dtype="float32")
    n = int(DRUMS_SECONDS * rate)
    x = np.pad(x, ((0, max(0, n - len(x))), (0, 0)))[:n]
    sf.write(str(out / "drums-and-silence.wav"), x, rate)
    (out / "drums-and-silence.json").write_text(json.dumps(
        {"drums_s": [[round(a, 3), round(b, 3)] for a, b in stretches], "bpm": DRUMS_BPM, "seed": seed}, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=Path("eval-data/peer"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = unpack(MUSIC_PACKAGE, Path(tmp), args.dir)
            members = [f"sound/cdtracks/{name}.ogg" for name in MUSIC]
            subprocess.run(["unzip", "-o", "-j", "-q", str(root / MUSIC_ARCHIVE), *members, "-d", str(args.dir)],
                           check=True)
            for name in MUSIC:
                excerpt(args.dir / f"{name}.ogg", args.dir / f"nexuiz-{name}.wav")
            root = unpack(DRUMS_PACKAGE, Path(tmp), args.dir)
            make_drums(root / DRUMS_FONT, args.dir)
    except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
        print(f"could not fetch the recordings ({exc}); is this a Debian system with apt sources, unzip and "
              "fluidsynth?", file=sys.stderr)
        return 2
    print(f"recordings in {args.dir}: " + ", ".join(sorted(p.name for p in args.dir.glob("*.*") if p.suffix != ".json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
