#!/usr/bin/env python3
"""Build the music valence-arousal evaluation sets in DIR (default: eval-data/listening).

  arousal/  calm and energetic orchestral game music from Debian's `wesnoth-1.16-music` package
            (GPL-2+, fetched with `apt-get download`), labelled by title and in-game role:
            battle/siege/chase tracks +1, love/sanctuary/lament/ambient tracks -1.
  valence/  Bach chorales from music21's bundled corpus rendered with fluidsynth and the TimGM6mb
            General MIDI soundfont; mode from the notation: the key signature's major or relative
            minor tonic that the opening bass note names (+1 major, -1 minor; others skipped).
  pairs/    folk tunes from music21's corpus (Essen collection), each rendered plain, 1.5x faster and
            louder (velocity 50 -> 105); a `pair` column ties each plain version to its variant.
  moods/    22 tracks of the same Debian package labelled for valence by the mood their titles name:
            victory, love, merry minstrels, homecoming, heroes, liberation, sanctuary +1; defeat,
            sadness, a king's death, a fallen city, casualties, suspense, shadows, revenge, a funeral
            canticle -1. Held out: no weight of the valence head was set on these tracks.

Needs: apt-get (Debian), dpkg-deb, fluidsynth, timgm6mb-soundfont, music21, mido. About 3 minutes.
Then: python run.py eval music-va --labels DIR/arousal/labels.csv --audio DIR/arousal (and so on).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
WESNOTH_PACKAGE = "wesnoth-1.16-music"
ENERGETIC = ("battle", "battle-epic", "casualties_of_war", "frantic", "siege_of_laurelmor", "the_city_falls",
             "vengeful", "weight_of_revenge", "heroes_rite", "northerners", "legends_of_the_north",
             "the_dangerous_symphony")
CALM = ("love_theme", "silvan_sanctuary", "wanderer", "elf-land", "nunc_dimittis", "journeys_end", "sad",
        "transience", "the_deep_path", "underground", "knolls", "elvish-theme")
# Valence by the mood the title names (the package's own words, not a listening panel).
POSITIVE = ("victory", "victory2", "love_theme", "traveling_minstrels", "return_to_wesnoth", "heroes_rite",
            "breaking_the_chains", "journeys_end", "revelation", "silvan_sanctuary")
NEGATIVE = ("defeat", "defeat2", "sad", "the_king_is_dead", "the_city_falls", "casualties_of_war", "suspense",
            "into_the_shadows", "weight_of_revenge", "vengeful", "nunc_dimittis", "transience")
RENDER_RATE_HZ = 22050


def _copy_wesnoth(dest: Path, names: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", WESNOTH_PACKAGE], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        music = next(Path(tmp, "x").rglob("music"))
        for name in names:
            shutil.copy(music / f"{name}.ogg", dest / f"{name}.ogg")
        licence = next(Path(tmp, "x").rglob("copyright"), None)
        if licence:
            shutil.copy(licence, dest / "COPYRIGHT")


def fetch_wesnoth(out: Path) -> None:
    dest = out / "arousal"
    _copy_wesnoth(dest, ENERGETIC + CALM)
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        for name in ENERGETIC:
            w.writerow([name, "", 1])
        for name in CALM:
            w.writerow([name, "", -1])


def fetch_moods(out: Path) -> None:
    dest = out / "moods"
    _copy_wesnoth(dest, POSITIVE + NEGATIVE)
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        for name in POSITIVE:
            w.writerow([name, 1, ""])
        for name in NEGATIVE:
            w.writerow([name, -1, ""])


def render(midi_path: Path, wav_path: Path) -> None:
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(RENDER_RATE_HZ), "-g", "0.6", "-F", str(wav_path),
                    str(SOUNDFONT), str(midi_path)], check=True, stdout=subprocess.DEVNULL)


def retime(src: Path, dst: Path, qpm: float, velocity: int | None) -> None:
    """Rewrite a MIDI file with one tempo (quarter notes per minute) and, optionally, one velocity."""
    import mido
    mid = mido.MidiFile(src)
    for track in mid.tracks:
        for msg in list(track):
            if msg.type == "set_tempo":
                msg.tempo = mido.bpm2tempo(qpm)
            if velocity is not None and msg.type == "note_on" and msg.velocity > 0:
                msg.velocity = velocity
    if not any(m.type == "set_tempo" for m in mid.tracks[0]):
        mid.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0))
    mid.save(dst)


def notated_mode(score) -> str | None:
    """'major'/'minor' from the key signature and the opening bass note; None when they disagree."""
    from music21 import key as m21key
    sigs = score.recurse().getElementsByClass(m21key.KeySignature)
    if not sigs:
        return None
    ks = sigs[0]
    notes = list(score.parts[-1].recurse().notes)
    if not notes:
        return None
    first = notes[0]
    bass = min(first.pitches, key=lambda p: p.ps).pitchClass
    if bass == ks.asKey("major").tonic.pitchClass:
        return "major"
    if bass == ks.asKey("minor").tonic.pitchClass:
        return "minor"
    return None


def fetch_chorales(out: Path, per_mode: int) -> None:
    from music21 import corpus
    dest = out / "valence"
    dest.mkdir(parents=True, exist_ok=True)
    counts = {"major": 0, "minor": 0}
    rows = []
    for path in sorted(corpus.getComposer("bach")):
        if min(counts.values()) >= per_mode:
            break
        try:
            score = corpus.parse(path)
            mode = notated_mode(score)
        except Exception:
            continue
        if mode is None or counts[mode] >= per_mode or len(score.parts) < 4:
            continue
        name = Path(str(path)).stem.replace(".", "_")
        with tempfile.TemporaryDirectory() as tmp:
            mid = Path(tmp) / "a.mid"
            score.write("midi", fp=str(mid))
            fixed = Path(tmp) / "b.mid"
            retime(mid, fixed, 80.0, 80)
            render(fixed, dest / f"{name}.wav")
        counts[mode] += 1
        rows.append([name, 1 if mode == "major" else -1, ""])
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal"])
        w.writerows(rows)


def fetch_pairs(out: Path, n: int) -> None:
    from music21 import corpus
    dest = out / "pairs"
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    paths = [p for p in corpus.getPaths() if "essenFolksong" in str(p)]
    done = 0
    for path in sorted(paths)[:10]:
        try:
            opus = corpus.parse(path)
        except Exception:
            continue
        scores = list(getattr(opus, "scores", [opus]))
        for k, score in enumerate(scores[:: max(1, len(scores) // 8)]):
            if done >= n:
                break
            if score.highestTime < 24:  # too short to hear a tempo
                continue
            name = f"{Path(str(path)).stem}_{k}"
            with tempfile.TemporaryDirectory() as tmp:
                mid = Path(tmp) / "a.mid"
                try:
                    score.write("midi", fp=str(mid))
                except Exception:  # a few corpus entries do not export; skip them
                    continue
                for suffix, qpm, vel in (("plain", 80.0, 50), ("fast", 120.0, 50), ("loud", 80.0, 105)):
                    fixed = Path(tmp) / f"{suffix}.mid"
                    retime(mid, fixed, qpm, vel)
                    render(fixed, dest / f"{name}_{suffix}.wav")
            rows += [[f"{name}_plain", "", -1, f"{name}-tempo"], [f"{name}_fast", "", 1, f"{name}-tempo"],
                     [f"{name}_plain", "", -1, f"{name}-loud"], [f"{name}_loud", "", 1, f"{name}-loud"]]
            done += 1
    with (dest / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "valence", "arousal", "pair"])
        w.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", type=Path, default=Path("eval-data/listening"))
    parser.add_argument("--chorales", type=int, default=30, help="chorales per mode")
    parser.add_argument("--pairs", type=int, default=12, help="folk tunes rendered plain/faster/louder")
    parser.add_argument("--only", choices=("arousal", "valence", "pairs", "moods"), action="append")
    args = parser.parse_args()
    for tool in ("fluidsynth",):
        if shutil.which(tool) is None or not SOUNDFONT.is_file():
            print("error: needs fluidsynth and the TimGM6mb soundfont: apt-get install --no-install-recommends "
                  "fluidsynth timgm6mb-soundfont", file=sys.stderr)
            return 2
    only = set(args.only or ("arousal", "valence", "pairs", "moods"))
    if "arousal" in only:
        fetch_wesnoth(args.dir)
    if "valence" in only:
        fetch_chorales(args.dir, args.chorales)
    if "pairs" in only:
        fetch_pairs(args.dir, args.pairs)
    if "moods" in only:
        fetch_moods(args.dir)
    print(f"evaluation sets written under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
