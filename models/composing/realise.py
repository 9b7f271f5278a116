"""A phrase's decisions -> sounding notes: the melody varied by learned steps, chords chosen under it,
and every voice played with the articulation, loudness and groove the picture asks for.

The pretrained music-emotion rater hears energy mostly in loudness, a struck rather than held
accompaniment, busy notes and drums, and happiness in detached, bouncy playing over a light groove;
sad music is legato, soft and low. The picture's arousal (`drive`) and valence (`lift`) set exactly those.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping

from installation.records import ImageState, NoteEvent
from models.composing.corpus import METRES, PHRASE_BARS, CorpusTable
from models.composing.settings import SceneComposeSettings
from models.composing.theory import MODES, chord_symbol, pitch_of, tonic_near

FOLD_LOW, FOLD_HIGH = -3, 9
"""Melody degrees outside (the fourth below the tonic .. the tenth above) move by octaves inside."""
MELODY_FLOOR_MIDI = 62
"""The melody's median pitch is at least this (D above middle C); chords sit below the melody."""
VELOCITY_FLOOR = {"melody": 40, "accompaniment": 30, "bass": 34, "drums": 28}
"""Softest velocity per voice: pianissimo, still heard through a General MIDI synth."""
GM_DRUM_NAMES = {35: "kick", 36: "kick", 37: "side stick", 38: "snare", 42: "closed hi-hat", 46: "open hi-hat"}

Items = list[tuple[int, int, list[tuple[int, int]] | None]]
"""One voice's notation: (onset16, dur16, [(degree, alteration)] or None for a rest)."""
DrumPattern = Callable[[int, int], list[tuple[int, int, float]]]
"""(bar16, beat16) -> one bar of (offset16, GM drum note, velocity as a share of the base loudness)."""


@dataclass
class HeldPhrase:
    """Decisions held for one phrase."""

    index: int
    tempo_bpm: float
    tonic_pc: int
    mode: str
    metre: str
    melody: list[tuple[int, int, int | None]]  # (onset16, dur16, degree) over the whole phrase
    chords: list[tuple[int, int, int]]  # (onset16, dur16, degree)
    source: str
    varied: int
    reasons: list[str] = field(default_factory=list)


@dataclass
class Realised:
    """Some bars of a phrase as played and as written."""

    events: list[NoteEvent] = field(default_factory=list)
    notated: list[float] = field(default_factory=list)
    """Each event's written length in seconds (the event's own is shortened by articulation)."""
    abc: dict[str, Items] = field(default_factory=dict)
    chord_cues: list[tuple[float, str, str, tuple[int, ...]]] = field(default_factory=list)
    texture: list[str] = field(default_factory=list)
    tonics: dict[str, int] = field(default_factory=dict)
    """The MIDI tonic each voice is written from."""
    drums: list[tuple[int, int]] = field(default_factory=list)
    """(onset16, GM drum note) of each drum hit."""


# --- the phrase's notes ---------------------------------------------------------------------------
def vary(events, mode_class: str, metre: str, density: float, variation: float, table: CorpusTable,
         rng: random.Random) -> tuple[list[tuple[int, int, int | None]], int]:
    """Corpus phrase -> (onset16, dur16, degree) with Markov-step variations and density changes."""
    notes: list[tuple[int | None, int]] = list(events)
    sung = [d for d, _ in notes if d is not None]
    # Variations stay inside the phrase's own compass, as a folk singer's would.
    low, high = (min(sung), max(sung)) if sung else (-3, 10)
    out: list[tuple[int, int, int | None]] = []
    onset = 0
    varied = 0
    previous_degree: int | None = None
    previous_step = 0
    split_p = max(0.0, (density - 0.55) * 1.6)
    merge_p = max(0.0, (0.45 - density) * 1.6)
    i = 0
    while i < len(notes):
        degree, dur = notes[i]
        # Sparse: absorb the next short note into this one (keeping the rhythm's span).
        if merge_p and i + 1 < len(notes) and dur <= 4 and notes[i + 1][1] <= 4 and rng.random() < merge_p \
                and (onset + dur) % 4 != 0:
            dur += notes[i + 1][1]
            i += 1
        # Keep the first and last notes (the phrase's opening and cadence) as written.
        if degree is not None and previous_degree is not None and 0 < i < len(notes) - 1 \
                and rng.random() < variation:
            step = table.next_step(mode_class, previous_step, rng)
            candidate = previous_degree + step
            if low <= candidate <= high and candidate != degree:
                degree = candidate
                varied += 1
        # Busy: split a long note into two, the second a learned step away.
        if degree is not None and dur >= 4 and dur % 2 == 0 and rng.random() < split_p:
            half = dur // 2
            out.append((onset, half, degree))
            step = table.next_step(mode_class, previous_step, rng)
            second = max(low, min(high, degree + max(-2, min(2, step))))
            out.append((onset + half, half, second))
            previous_step, previous_degree = second - degree, second
            onset += dur
            i += 1
            continue
        out.append((onset, dur, degree))
        if degree is not None:
            if previous_degree is not None:
                previous_step = degree - previous_degree
            previous_degree = degree
        onset += dur
        i += 1
    return [(on, dur, None if d is None else d + _fold(d)) for on, dur, d in out], varied


def _fold(degree: int) -> int:
    """Degrees to move a note far outside the singing range toward it by octaves (seven degrees), so
    a phrase with a low tail or a high climax stays in one compass with the next."""
    if degree < FOLD_LOW:
        return 7 * ((FOLD_LOW - degree + 6) // 7)
    if degree > FOLD_HIGH:
        return 7 * -((degree - FOLD_HIGH + 6) // 7)
    return 0


def harmonise(melody, mode_class: str, metre: str, index: int, drive: float, table: CorpusTable,
              rng: random.Random) -> list[tuple[int, int, int]]:
    """(onset16, dur16, degree) chord slots: one or two a bar; cadence at the phrase's end."""
    bar16 = METRES[metre]
    per_bar = 2 if drive > 0.3 and metre == "4/4" else 1
    slot16 = bar16 // per_bar
    n = PHRASE_BARS * per_bar
    degrees = [0] * n
    for i in range(1, n):
        if i == n - 1:
            degrees[i] = 4 if index % 2 == 0 else 0
            continue
        if i == n - 2 and index % 2 == 1:
            degrees[i] = 4
            continue
        weights = table.bass_weights(mode_class, degrees[i - 1])
        lo16, hi16 = i * slot16, (i + 1) * slot16
        best = []
        for d in range(7):
            tones = {d % 7, (d + 2) % 7, (d + 4) % 7}
            span = total = 0
            for on, dur, deg in melody:
                overlap = min(hi16, on + dur) - max(lo16, on)
                if overlap > 0 and deg is not None:
                    total += overlap
                    span += overlap if deg % 7 in tones else 0
            fit = span / total if total else 0.5
            w = weights[d] * (0.2 if d == degrees[i - 1] else 1.0) * (0.25 + 2.0 * fit) ** 2
            if d == 6:
                w *= 0.3  # the diminished vii chord stands alone poorly
            best.append(w)
        degrees[i] = rng.choices(range(7), weights=[w + 1e-6 for w in best])[0]
    return [(i * slot16, slot16, degrees[i]) for i in range(n)]


# --- how it is played -----------------------------------------------------------------------------
def happy(lift: float) -> float:
    """0 (valence -0.3 or below) to 1 (valence +0.4 or above): how detached and bouncy to play.
    Image valence heads rarely go far above +0.4, so the bright end of articulation starts there."""
    return max(0.0, min(1.0, (lift + 0.3) / 0.7))


def percussion(drive: float, lift: float) -> tuple[str, DrumPattern] | None:
    """(description, bar pattern) of the drum layer, or None."""
    if drive > -0.35 and lift < -0.3:
        return None  # the rater hears any kit as cheerful; a dark, lively picture gets driving strings
    if drive > 0.1:
        def busy(bar16: int, beat16: int) -> list[tuple[int, int, float]]:
            hits = [(s, 42, 0.75 if s % beat16 else 0.95) for s in range(0, bar16, 1 if beat16 == 4 else 2)]
            hits += [(s, 36, 1.15) for s in range(0, bar16, beat16)]
            hits += [(s, 38, 1.1) for s in range(beat16, bar16, 2 * beat16)]
            return hits
        return f"kit, kick every beat, snare backbeat, sixteenth hi-hats (drive {drive:+.2f} > +0.10)", busy
    if drive > -0.35:
        def rock(bar16: int, beat16: int) -> list[tuple[int, int, float]]:
            half = beat16 // 2
            hits = [(s, 42, 0.8) for s in range(0, bar16, half)]
            hits += [(s, 36, 1.1) for s in range(0, bar16, 2 * beat16)]
            hits += [(s, 38, 1.0) for s in range(beat16, bar16, 2 * beat16)]
            return hits
        return f"kit, kick and snare, eighth hi-hats (drive {drive:+.2f} > -0.35)", rock
    if happy(lift) > 0.5 and drive > -0.4:
        def light(bar16: int, beat16: int) -> list[tuple[int, int, float]]:
            half = beat16 // 2
            hits = [(s, 42, 0.55 if s % beat16 else 0.7) for s in range(0, bar16, half)]
            hits += [(s, 37, 0.6) for s in range(beat16, bar16, 2 * beat16)]
            return hits
        return f"light groove, eighth hi-hats and side stick (valence {lift:+.2f} > +0.05)", light
    return None


@dataclass(frozen=True)
class Touch:
    """Loudness and articulation for some bars."""

    base_vel: int
    accomp: int
    """Velocity offset of the accompaniment from `base_vel`."""
    melody_legato: float
    accomp_legato: float
    chord_every: str
    """How often a chord is struck: once a slot, each half, each beat, each eighth."""


def touch(drive: float, lift: float, contrast: float) -> Touch:
    # Loudness spans pp to ff with energy; sad pictures play a little softer still.
    base_vel = int(round(64 + 46 * drive + 6 * (contrast - 0.3) + 6 * min(0.0, lift)))
    # Accompaniment sinks under the melody when calm and drives with it when lively.
    accomp = int(round(-24 + 22 * (drive + 1.0) / 2.0))
    sad_storm = drive > -0.35 and lift < -0.3  # drums read as cheerful: a dark storm is strings instead
    # Lively music keeps some weight; very calm music stays smoother, since detached notes also
    # read as energetic.
    detach = 0.5 * happy(lift) * (1.0 - 0.5 * max(0.0, drive)) * (0.35 + 0.65 * min(1.0, drive + 1.0))
    melody_legato = max(0.45, min(1.0, 1.0 - detach - 0.1 * max(0.0, drive)))
    accomp_legato = max(0.45, min(1.0, 1.0 - detach - 0.1 * max(0.0, drive)))
    # Calm: one held chord; moderate: struck each half; lively: each beat, detached.
    chord_every = "slot" if drive < -0.3 else ("half" if drive < -0.35 else ("eighth" if sad_storm else "beat"))
    return Touch(base_vel, accomp, melody_legato, accomp_legato, chord_every)


# --- the bars, played -----------------------------------------------------------------------------
class _Bars:
    """Bars [first16, last16) of a phrase being written out from `start_s`, a sixteenth `s16` long."""

    def __init__(self, phrase: HeldPhrase, first16: int, last16: int, start_s: float, s16: float,
                 touch_: Touch, voices: tuple[str, ...]) -> None:
        self.first16, self.last16, self.start_s, self.s16 = first16, last16, start_s, s16
        self.bar16 = METRES[phrase.metre]
        self.beat16 = 6 if phrase.metre == "6/8" else 4
        self.touch = touch_
        self.out = Realised(abc={v: [] for v in voices})

    def t(self, of16: float) -> float:
        return self.start_s + (of16 - self.first16) * self.s16

    def vel(self, of16: int, offset: int, floor: int = VELOCITY_FLOOR["accompaniment"]) -> int:
        accent = 8 if of16 % self.bar16 == 0 else (3 if of16 % self.beat16 == 0 else 0)
        return max(floor, min(124, self.touch.base_vel + offset + accent))

    def add(self, at16: int, len16: int, note: int, velocity: int, channel: int, voice: str, legato: float) -> None:
        self.out.events.append(NoteEvent(self.t(at16), len16 * self.s16 * legato, note, velocity, channel, voice))
        self.out.notated.append(len16 * self.s16)

    def within(self, on: int, dur: int) -> bool:
        return not (on + dur <= self.first16 or on >= self.last16)


def realise(phrase: HeldPhrase, image: ImageState, drive: float, lift: float, first16: int, last16: int,
            start_s: float, s16: float, settings: SceneComposeSettings, channels: Mapping[str, int],
            register_lift: float = 0.0) -> Realised:
    """Bars [first16, last16) of `phrase` as events (with their written lengths), ABC items, chord cues
    and the texture's reasons. `register_lift` (a refinement's) moves the melody's register too."""
    scale = MODES[phrase.mode]
    centre = 60 + int(round((image.brightness - 0.5) * 20)) + settings.register_offset
    centre += (-3 if lift < -0.4 else 0) + int(round(6 * register_lift))
    centre = max(48, min(84, centre))
    tonic_m = tonic_near(phrase.tonic_pc, centre - 5)
    # The melody sings above the accompaniment: its tonic no lower than a fifth under
    # MELODY_FLOOR_MIDI (phrases are register-neutral, so every phrase sits alike: no octave
    # jumps between phrases), and the chords move below its median.
    while tonic_m < MELODY_FLOOR_MIDI - 7:
        tonic_m += 12
    sung = sorted(pitch_of(d, tonic_m, scale) for _, _, d in phrase.melody if d is not None)
    melody_median = sung[len(sung) // 2] if sung else tonic_m + 7
    feel = touch(drive, lift, image.contrast)
    bars = _Bars(phrase, first16, last16, start_s, s16, feel, settings.voices)
    if "melody" in settings.voices:
        _melody(bars, phrase, tonic_m, channels["melody"])
    tonic_c = tonic_near(phrase.tonic_pc, 55 - (3 if lift < -0.4 else 0))
    tonic_b = tonic_near(phrase.tonic_pc, 38)
    _harmony(bars, phrase, drive, tonic_c, tonic_b, melody_median, settings.voices, channels)
    kit = percussion(drive, lift) if settings.percussion else None
    if kit is not None:
        _drums(bars, kit[1], settings.percussion_channel)
        bars.out.texture.append(f"percussion: {kit[0]}")
    bars.out.texture.append(f"articulation: melody {feel.melody_legato:.0%} of written length, accompaniment "
                            f"{feel.accomp_legato:.0%}, chords struck every {feel.chord_every}, loudness "
                            f"{feel.base_vel} (valence {lift:+.2f}, drive {drive:+.2f})")
    bars.out.tonics = {"melody": tonic_m, "chords": tonic_c, "bass": tonic_b}
    return bars.out


def _melody(bars: _Bars, phrase: HeldPhrase, tonic_m: int, channel: int) -> None:
    scale = MODES[phrase.mode]
    for on, dur, deg in phrase.melody:
        if not bars.within(on, dur):
            continue
        a16, b16 = max(on, bars.first16), min(on + dur, bars.last16)
        if deg is None:
            bars.out.abc["melody"].append((a16, b16 - a16, None))
            continue
        # Short notes stay nearly full so runs do not turn into clicks.
        legato = bars.touch.melody_legato if b16 - a16 >= 2 else max(0.8, bars.touch.melody_legato)
        bars.add(a16, b16 - a16, pitch_of(deg, tonic_m, scale), bars.vel(a16, 6, VELOCITY_FLOOR["melody"]), channel,
                 "melody", legato)
        bars.out.abc["melody"].append((a16, b16 - a16, [(deg, 0)]))


def _harmony(bars: _Bars, phrase: HeldPhrase, drive: float, tonic_c: int, tonic_b: int, melody_median: int,
             voices: tuple[str, ...], channels: Mapping[str, int]) -> None:
    """The chords (cued for the projection, struck when the scene has a chords voice) and the bass."""
    scale = MODES[phrase.mode]
    cadence_slot = len(phrase.chords) - 2
    for i, (on, dur, deg) in enumerate(phrase.chords):
        if not bars.within(on, dur):
            continue
        symbol, quality, tones = chord_symbol(phrase.tonic_pc, phrase.mode, deg, cadence=(i == cadence_slot))
        alters = [tones[k] - (scale[(deg + 2 * k) % 7] + 12 * ((deg + 2 * k) // 7)) for k in range(3)]
        chord_notes = [pitch_of(deg + 2 * k, tonic_c, scale) + alters[k] for k in range(3)]
        shift = 0
        while min(chord_notes) > 62 or (max(chord_notes) > melody_median - 2 and min(chord_notes) - 12 >= 45):
            chord_notes = [n - 12 for n in chord_notes]
            shift += 1
        bars.out.chord_cues.append((bars.t(on), symbol, quality, tuple(chord_notes)))
        if "chords" in voices:
            _chord(bars, on, dur, chord_notes, [(deg + 2 * k - 7 * shift, alters[k]) for k in range(3)],
                   channels["chords"])
        if "bass" in voices:
            _bass(bars, on, dur, deg, alters, drive, tonic_b, scale, channels["bass"])


def _chord(bars: _Bars, on: int, dur: int, notes: list[int], written: list[tuple[int, int]], channel: int) -> None:
    beat16 = bars.beat16
    step16 = {"slot": dur, "half": max(beat16, dur // 2), "beat": beat16, "eighth": beat16 // 2}[bars.touch.chord_every]
    for s in range(on, on + dur, step16):
        for n in notes:
            bars.add(s, min(step16, on + dur - s), n, bars.vel(s, bars.touch.accomp), channel, "chords",
                     bars.touch.accomp_legato)
        bars.out.abc["chords"].append((s, min(step16, on + dur - s), written))


def _bass(bars: _Bars, on: int, dur: int, deg: int, alters: list[int], drive: float, tonic_b: int,
          scale: tuple[int, ...], channel: int) -> None:
    """Held roots when calm, root and fifth by halves when moderate, alternating each beat when lively."""
    beat16 = bars.beat16
    root = pitch_of(deg, tonic_b, scale) + alters[0]
    fifth = pitch_of(deg + 4, tonic_b, scale) + alters[2]
    if drive < -0.3 or dur < 2 * beat16:
        pattern = [(on, dur, root, deg, alters[0])]
    elif drive < 0.3:
        half = dur // 2 if dur % 2 == 0 else dur
        pattern = [(on, half, root, deg, alters[0])] + \
                  ([(on + half, dur - half, fifth, deg + 4, alters[2])] if half < dur else [])
    else:
        pattern = [(s, beat16, root if (s - on) // beat16 % 2 == 0 else fifth,
                    deg if (s - on) // beat16 % 2 == 0 else deg + 4,
                    alters[0] if (s - on) // beat16 % 2 == 0 else alters[2])
                   for s in range(on, on + dur, beat16)]
    for s, d16, note, dg, al in pattern:
        bars.add(s, d16, note, bars.vel(s, bars.touch.accomp + 10, VELOCITY_FLOOR["bass"]), channel, "bass",
                 max(0.6, bars.touch.accomp_legato - 0.05))
        bars.out.abc["bass"].append((s, d16, [(dg, al)]))


def _drums(bars: _Bars, pattern: DrumPattern, channel: int) -> None:
    first16, last16, bar16 = bars.first16, bars.last16, bars.bar16
    for bar_start in range(first16 - first16 % bar16, last16, bar16):
        for off16, note, level in pattern(bar16, bars.beat16):
            at16 = bar_start + off16
            if first16 <= at16 < last16:
                velocity = max(VELOCITY_FLOOR["drums"], min(124, int(round(bars.touch.base_vel * level))))
                bars.add(at16, 1, note, velocity, channel, "drums", 0.9)
                bars.out.drums.append((at16, note))
