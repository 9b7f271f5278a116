"""Some bars of a phrase written out as ABC notation: one voice per part, accidentals as a score has them."""
from __future__ import annotations

from models.composing.corpus import METRES
from models.composing.realise import HeldPhrase, Items
from models.composing.theory import ABC_MODE, LETTERS, MODES, NATURAL_PC, key_name


def phrase_abc(phrase: HeldPhrase, notes: dict[str, Items], tonics: dict[str, int], drums: list[tuple[int, int]],
               percussion_channel: int) -> str:
    """The tune header, each voice's items written from its tonic, and the drum hits on their own voice."""
    key = key_name(phrase.tonic_pc, phrase.mode)
    bar16 = METRES[phrase.metre]
    lines = ["X:1", f"T:Chromesthesia phrase {phrase.index + 1}", f"M:{phrase.metre}", "L:1/16",
             f"Q:1/4={int(round(phrase.tempo_bpm))}", f"K:{key}{ABC_MODE[phrase.mode]}"]
    number = 0
    for voice, items in notes.items():
        if not items:
            continue
        number += 1
        clef = " clef=bass" if voice == "bass" else ""
        lines.append(f"V:{number} name=\"{voice}\"{clef}")
        lines.append(_voice(phrase, items, tonics[voice], bar16))
    if drums:
        lines.append(f"V:{number + 1} name=\"drums\" clef=perc")
        lines.append(f"%%MIDI channel {percussion_channel + 1}")
        lines.append(_drum_voice(drums, bar16))
    return "\n".join(lines)


def _drum_voice(hits: list[tuple[int, int]], bar16: int) -> str:
    """General MIDI drum notes as written pitches (kick C,, snare D,, hi-hat ^F,,), each hit a
    sixteenth, explicit accidentals on every note."""
    by_onset: dict[int, list[int]] = {}
    for at16, note in hits:
        by_onset.setdefault(at16, []).append(note)
    onsets = sorted(by_onset)
    cursor = onsets[0] - onsets[0] % bar16
    end = onsets[-1] - onsets[-1] % bar16 + bar16
    out: list[str] = []
    for at16 in onsets + [end]:
        while cursor < at16:
            piece = min(at16 - cursor, bar16 - cursor % bar16)
            out.append(_length("z", piece))
            cursor += piece
            if cursor % bar16 == 0:
                out.append("|")
        if at16 == end:
            break
        names = []
        for n in sorted(set(by_onset[at16])):
            letter = next(i for i in range(6, -1, -1) if NATURAL_PC[i] <= n % 12)
            mark = "^" if n % 12 != NATURAL_PC[letter] else "="
            names.append(mark + _pitch(letter, n // 12 - 1))
        out.append(names[0] if len(names) == 1 else "[" + "".join(names) + "]")
        cursor += 1
        if cursor % bar16 == 0:
            out.append("|")
    return " ".join(out)


def _voice(phrase: HeldPhrase, items: Items, tonic_midi: int, bar16: int) -> str:
    scale = MODES[phrase.mode]
    tonic_letter = LETTERS.index(key_name(phrase.tonic_pc, phrase.mode)[0])
    tonic_octave = tonic_midi // 12 - 1
    out: list[str] = []
    accidentals: dict[int, int] = {}  # an accidental holds to the bar line, as in notation

    def spell(chord: list[tuple[int, int]]) -> str:
        names = []
        for degree, alter in chord:
            dnn = tonic_octave * 7 + tonic_letter + degree
            letter, octave = dnn % 7, dnn // 7
            midi = tonic_midi + 12 * (degree // 7) + scale[degree % 7] + alter
            written = midi - (12 * (octave + 1) + NATURAL_PC[letter])
            signature = (phrase.tonic_pc + scale[degree % 7] - NATURAL_PC[letter] + 6) % 12 - 6
            mark = ""
            if written != accidentals.get(dnn, signature):
                mark = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}.get(written, "")
                accidentals[dnn] = written
            names.append(mark + _pitch(letter, octave))
        return names[0] if len(names) == 1 else "[" + "".join(names) + "]"

    def emit(chord: list[tuple[int, int]] | None, start: int, length: int) -> None:
        while length > 0:
            piece = min(length, bar16 - start % bar16)
            token = "z" if chord is None else spell(chord)
            tie = "-" if chord is not None and piece < length else ""
            out.append(_length(token, piece) + tie)
            start += piece
            length -= piece
            if start % bar16 == 0:
                out.append("|")
                accidentals.clear()

    cursor = items[0][0] - items[0][0] % bar16
    for on, dur, chord in sorted(items, key=lambda x: x[0]):
        if on > cursor:
            emit(None, cursor, on - cursor)
        emit(chord, on, dur)
        cursor = on + dur
    return " ".join(out)


def _pitch(letter: int, octave: int) -> str:
    name = LETTERS[letter]
    if octave >= 5:
        return name.lower() + "'" * (octave - 5)
    return name + "," * (4 - octave)


def _length(token: str, sixteenths: int) -> str:
    return token if sixteenths == 1 else f"{token}{sixteenths}"
