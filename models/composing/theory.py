"""The music theory the composer speaks: modes, key names, triads and where a tonic sits."""
from __future__ import annotations

MODES: dict[str, tuple[int, ...]] = {
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}
MODE_ORDER = tuple(MODES)  # darkest -> brightest, indexed by valence
MODE_CLASS = {"phrygian": "minor", "minor": "minor", "dorian": "minor",
              "mixolydian": "major", "major": "major", "lydian": "major"}
ABC_MODE = {"phrygian": "phr", "minor": "m", "dorian": "dor", "mixolydian": "mix", "major": "", "lydian": "lyd"}
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # by pitch class
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODE_OFFSET = {"major": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "minor": 9}
LETTERS = "CDEFGAB"
NATURAL_PC = (0, 2, 4, 5, 7, 9, 11)
CHORD_QUALITY = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug"}


def key_name(tonic_pc: int, mode: str) -> str:
    """The tonic spelled so the key signature stays sane: sharps when the parent major key has
    sharps (C# phrygian, not Db phrygian with double flats), flats otherwise."""
    parent = (tonic_pc - MODE_OFFSET[mode]) % 12
    return SHARP_NAMES[tonic_pc] if parent in (0, 7, 2, 9, 4, 11, 6) else KEY_NAMES[tonic_pc]


def pitch_of(degree: int, tonic_midi: int, scale: tuple[int, ...]) -> int:
    return tonic_midi + 12 * (degree // 7) + scale[degree % 7]


def chord_symbol(tonic_pc: int, mode: str, degree: int, cadence: bool = False) -> tuple[str, str, list[int]]:
    """Symbol, quality and pitch classes offsets (from the tonic) of the triad on `degree`."""
    scale = MODES[mode]
    tones = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
    if cadence and mode == "minor" and degree == 4:
        tones[1] += 1  # harmonic minor: the raised leading tone makes the dominant pull home
    quality = CHORD_QUALITY.get((tones[1] - tones[0], tones[2] - tones[0]), "maj")
    root = KEY_NAMES[(tonic_pc + tones[0]) % 12]
    symbol = root + {"maj": "", "min": "m", "dim": "dim", "aug": "+"}[quality]
    return symbol, quality, tones


def tonic_near(tonic_pc: int, target_midi: int) -> int:
    """The MIDI note of pitch class `tonic_pc` nearest `target_midi` (the higher one at a tritone)."""
    base = target_midi - ((target_midi - tonic_pc) % 12)
    return base + 12 if target_midi - base > 6 else base
