"""Image state -> musical plan -> note events. Pure: no ports, no threads, no clock reads.

How a picture becomes music (every plan carries these reasons in words):
  - tempo from arousal, motion and edge density, inside the scene's tempo range;
  - mode from valence, brightest to darkest: lydian, major, mixolydian, dorian, minor, phrygian;
  - key from the dominant hue on a colour wheel laid over the circle of fifths (red = C,
    orange = G/D, yellow = A, green = E/B, blue = F#/Db, violet = Ab/Eb/Bb, magenta = F);
  - melody register from brightness; density, variation and velocity from edges, motion, arousal;
  - energy (arousal first): tempo, loudness, note density, chords held or struck on every beat,
    and a drum kit on the General MIDI percussion channel (kick and snare, eighth then sixteenth
    hi-hats) once the picture is lively;
  - lift (valence): articulation (legato and held when sad, detached and bouncy when happy),
    mode, a light hi-hat and side-stick groove for happy pictures that are not calm, and for dark
    ones a lower, softer, sustained accompaniment;
  - melody: a real four-bar phrase from the folk corpus (Essen, O'Neill's) chosen by mode class and
    metre, sung in the chosen mode and key and varied with Markov steps learned from the corpus;
  - harmony: one or two chords a bar, chosen by the chorales' bass-line statistics and by how well
    they fit the melody, with a half cadence closing even phrases and an authentic cadence odd ones.
Key, mode, tempo, metre and phrase change only at phrase boundaries (every four bars), so the
music answers the camera without twitching.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from installation.errors import UserError
from installation.records import ImageState, NoteEvent, Plan, clamp_va  # noqa: F401 (Plan re-exported)
from models.composing.corpus import METRES, PHRASE_BARS, CorpusTable, Phrase, load_table
from models.seeing.content import hue_name

log = logging.getLogger(__name__)

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


def key_name(tonic_pc: int, mode: str) -> str:
    """The tonic spelled so the key signature stays sane: sharps when the parent major key has
    sharps (C# phrygian, not Db phrygian with double flats), flats otherwise."""
    parent = (tonic_pc - MODE_OFFSET[mode]) % 12
    return SHARP_NAMES[tonic_pc] if parent in (0, 7, 2, 9, 4, 11, 6) else KEY_NAMES[tonic_pc]
LETTERS = "CDEFGAB"
NATURAL_PC = (0, 2, 4, 5, 7, 9, 11)
CHORD_QUALITY = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug"}
FOLD_LOW, FOLD_HIGH = -3, 9
"""Melody degrees outside (the fourth below the tonic .. the tenth above) move by octaves inside."""
MELODY_FLOOR_MIDI = 62
"""The melody's median pitch is at least this (D above middle C); chords sit below the melody."""
VELOCITY_FLOOR = {"melody": 40, "accompaniment": 30, "bass": 34, "drums": 28}
"""Softest velocity per voice: pianissimo, still heard through a General MIDI synth."""
GM_DRUM_NAMES = {35: "kick", 36: "kick", 37: "side stick", 38: "snare", 42: "closed hi-hat", 46: "open hi-hat"}


def pitch_of(degree: int, tonic_midi: int, scale: tuple[int, ...]) -> int:
    return tonic_midi + 12 * (degree // 7) + scale[degree % 7]


@dataclass
class _Settings:
    metre: str = "auto"
    key_map: tuple[int, ...] = tuple((7 * i) % 12 for i in range(12))
    key_map_name: str = "fifths"
    voices: tuple[str, ...] = ("melody", "chords", "bass")
    register_offset: int = 0
    variation: float = 0.3
    percussion: bool = True
    percussion_channel: int = 9


def _settings(scene, compose_cfg) -> _Settings:
    table: Mapping[str, Any] = scene.table("compose") if scene is not None else {}
    where = f"scene {getattr(scene, 'name', '?')} [compose]"
    s = _Settings()
    s.variation = float(getattr(compose_cfg, "variation", 0.3))
    key_map = table.get("key_map", getattr(compose_cfg, "key_map", "fifths"))
    if key_map == "fifths":
        s.key_map, s.key_map_name = tuple((7 * i) % 12 for i in range(12)), "fifths"
    elif key_map == "chromatic":
        s.key_map, s.key_map_name = tuple(range(12)), "chromatic"
    elif isinstance(key_map, (list, tuple)) and len(key_map) == 12 and all(k in KEY_NAMES for k in key_map):
        s.key_map, s.key_map_name = tuple(KEY_NAMES.index(k) for k in key_map), "scene"
    else:
        raise UserError(f"{where}: key_map = {key_map!r}; use \"fifths\", \"chromatic\" or a list of 12 key names "
                        f"from {', '.join(KEY_NAMES)} (red first, around the hue wheel).")
    metre = table.get("metre", "auto")
    if metre != "auto" and metre not in METRES:
        raise UserError(f"{where}: metre = {metre!r}; use \"auto\" or one of {', '.join(METRES)}.")
    s.metre = metre
    voices = tuple(table.get("voices", s.voices))
    if not voices or any(v not in ("melody", "chords", "bass") for v in voices):
        raise UserError(f"{where}: voices = {list(voices)!r}; use a non-empty list of melody, chords, bass.")
    s.voices = voices
    offset = table.get("register_offset", 0)
    if not isinstance(offset, int) or not -24 <= offset <= 24:
        raise UserError(f"{where}: register_offset = {offset!r}; use whole semitones from -24 to 24.")
    s.register_offset = offset
    percussion = table.get("percussion", getattr(compose_cfg, "percussion", True))
    if not isinstance(percussion, bool):
        raise UserError(f"{where}: percussion = {percussion!r}; use true (drums join lively or happy pictures) "
                        f"or false.")
    s.percussion = percussion
    s.percussion_channel = int(getattr(compose_cfg, "percussion_channel", 9))
    return s


@dataclass
class _Phrase:
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


class Composer:
    """Plans music bar by bar from ImageState. Deterministic for a given seed and input sequence."""

    def __init__(self, compose_cfg, scene, seed: int = 0, table: CorpusTable | None = None, index=None) -> None:
        self.cfg = compose_cfg
        self.bars_ahead = int(getattr(compose_cfg, "bars_ahead", 1))
        self.table = table if table is not None else load_table()
        self._index = index
        self._index_tried = index is not None
        self._tune: tuple[str, int, bytes] | None = None  # (source, phrase number, picture key) now playing
        self._comment_pull: tuple[float, float, str] | None = None  # the comment's VA for this phrase
        self._recent_tunes: list[str] = []
        self.last_retrieved = None
        self.melody_source: Callable[[Phrase, str, str, tuple[float, float]], tuple[Phrase, str] | None] | None = None
        """Optional `(retrieved Phrase, mode class, metre, (valence, arousal)) -> (Phrase, reason) | None`
        that writes the phrase's melody instead (the learned head, the LLM backend); None = corpus."""
        self.wait_for_words = True
        """False in a live installation: until the sentence model has loaded (seconds, in the
        background), melodies are drawn by mode class and metre instead of waiting for it."""
        self.revision: tuple[float, float] = (0.0, 0.0)
        """(lift, drive) added by self-refinement (models.composing.refine) to the picture's valence
        and energy for articulation, register, groove and tempo, density, loudness; mode and key stay."""
        self.rng = random.Random(seed)
        self._scene = scene
        self._settings = _settings(scene, compose_cfg)
        self._pending_scene = None
        self._phrase: _Phrase | None = None
        self._bar_in_phrase = 0
        self._phrase_count = 0
        self._tonic_pc = 0
        self._send_programs = True

    # --- public --------------------------------------------------------------------------------
    _STATE = ("melody_source", "_scene", "_settings", "_pending_scene", "_phrase", "_bar_in_phrase", "_phrase_count", "_tonic_pc",
              "_send_programs", "_tune", "_recent_tunes", "last_retrieved", "revision", "_comment_pull")

    def snapshot(self) -> dict:
        """Everything `plan` changes, so a phrase can be tried, judged and planned again."""
        import copy
        state = {k: copy.copy(getattr(self, k)) for k in self._STATE}
        state["_recent_tunes"] = list(self._recent_tunes)
        state["rng"] = self.rng.getstate()
        return state

    def restore(self, state: dict) -> None:
        for k in self._STATE:
            setattr(self, k, state[k])
        self._recent_tunes = list(state["_recent_tunes"])
        self.rng.setstate(state["rng"])

    @property
    def at_phrase_start(self) -> bool:
        """The next plan starts a phrase (where key, tempo and melody may change)."""
        return self._phrase is None or self._bar_in_phrase >= PHRASE_BARS

    def set_scene(self, scene) -> None:
        """Takes effect at the next phrase boundary (validated now, so a bad table fails here)."""
        _settings(scene, self.cfg)
        self._pending_scene = scene

    def programs(self) -> tuple[tuple[int, int], ...]:
        """(channel, program) for each voice of the current scene."""
        scene = self._scene
        kit = ((self._settings.percussion_channel, 0),) if self._settings.percussion else ()  # GM standard kit
        return tuple((int(scene.channels[v]), int(scene.programs[v])) for v in self._settings.voices) + kit

    def plan(self, image: ImageState, start_s: float, tempo_bpm: float | None = None) -> Plan:
        """The next bar(s) from `start_s`, never crossing a phrase boundary.

        `tempo_bpm` is an outside tempo (an operator's /tempo, an external MIDI clock); it takes
        over from the next bar, because a band following a clock cannot wait for the phrase.
        """
        picture_va = clamp_va(image.valence, image.arousal)
        new_phrase = self._phrase is None or self._bar_in_phrase >= PHRASE_BARS
        if new_phrase:
            self._comment_pull = self._read_comment(image, *picture_va)
        v, a = self._pulled(picture_va)
        programs: tuple[tuple[int, int], ...] = ()
        if new_phrase:
            if self._pending_scene is not None:
                self._scene, self._pending_scene = self._pending_scene, None
                self._settings = _settings(self._scene, self.cfg)
                self._send_programs = True
            self._phrase = self._new_phrase(image, v, a)
            if self._comment_pull is not None:
                self._phrase.reasons.insert(0, self._comment_pull[2])
            self._bar_in_phrase = 0
        if self._send_programs:
            programs, self._send_programs = self.programs(), False
        phrase = self._phrase
        assert phrase is not None
        bars = min(self.bars_ahead, PHRASE_BARS - self._bar_in_phrase)
        bar16 = METRES[phrase.metre]
        tempo = float(tempo_bpm) if tempo_bpm and tempo_bpm > 0 else phrase.tempo_bpm
        s16 = 60.0 / tempo / 4.0
        first16 = self._bar_in_phrase * bar16
        last16 = first16 + bars * bar16
        drive = self._drive(image, a)
        lift = max(-1.0, min(1.0, v + self.revision[0]))
        events, notated, abc_notes, chord_cues, texture = self._realise(phrase, image, drive, lift, first16, last16,
                                                                         start_s, s16)
        self._bar_in_phrase += bars
        key = key_name(phrase.tonic_pc, phrase.mode)
        reasons = list(phrase.reasons) if new_phrase else [f"continuing phrase {phrase.index + 1}, bars "
                                                           f"{first16 // bar16 + 1}-{last16 // bar16} of {PHRASE_BARS}"]
        reasons.append(f"dynamics: drive {drive:+.2f} from arousal {a:+.2f}, motion {image.motion:.2f}, "
                       f"edges {image.edge_density:.2f}")
        if tempo != phrase.tempo_bpm:
            reasons.append(f"tempo {tempo:g} bpm from outside (operator or MIDI clock) instead of {phrase.tempo_bpm:g}")
        reasons.extend(texture if new_phrase else [])
        abc = self._abc(phrase, abc_notes, bars)
        order = sorted(range(len(events)), key=lambda i: (events[i].start_s, events[i].channel, events[i].note))
        return Plan(events=tuple(events[i] for i in order), notated_s=tuple(notated[i] for i in order),
                    start_s=float(start_s), end_s=float(start_s + bars * bar16 * s16),
                    tempo_bpm=tempo, key=key, mode=phrase.mode, abc=abc, reasons=tuple(reasons),
                    metre=phrase.metre, bars=bars, phrase_start=new_phrase, chords=tuple(chord_cues),
                    program_changes=programs, valence=picture_va[0], arousal=picture_va[1])

    # --- a visitor's comment ---------------------------------------------------------------------
    def _read_comment(self, image: ImageState, v: float, a: float) -> tuple[float, float, str] | None:
        """(valence, arousal, reason) a visitor's comment asks for, read once a phrase; None without
        one, with `compose.comment_weight` 0, or while the sentence model loads in a live show."""
        weight = float(getattr(self.cfg, "comment_weight", 0.5))
        if not image.comment or weight <= 0:
            return None
        index = self.index()
        if index is None or (not self.wait_for_words and not index.encoder.ready()):
            return None
        from models.composing.comment_mood import comment_va
        asked = comment_va(image.comment, index.encoder)
        if asked is None:
            return None
        pv, pa = clamp_va(v + weight * (asked[0] - v), a + weight * (asked[1] - a))
        return pv, pa, (f"comment \"{image.comment}\" reads as V{asked[0]:+.2f} A{asked[1]:+.2f}: the picture's "
                        f"V{v:+.2f} A{a:+.2f} pulled {weight:.0%} of the way, to V{pv:+.2f} A{pa:+.2f} "
                        f"(tempo, mode, density and dynamics follow)")

    def _pulled(self, picture_va: tuple[float, float]) -> tuple[float, float]:
        return picture_va if self._comment_pull is None else self._comment_pull[:2]

    # --- decisions per phrase ------------------------------------------------------------------
    def _drive(self, image: ImageState, arousal: float) -> float:
        """Energy in [-1, 1]: arousal first, then movement and busy texture (and a refinement's revision)."""
        d = arousal + 0.5 * image.motion + 0.1 * (image.edge_density - 0.35) + self.revision[1]
        return max(-1.0, min(1.0, d))

    def _new_phrase(self, image: ImageState, v: float, a: float) -> _Phrase:
        index = self._phrase_count
        self._phrase_count += 1
        rng = self.rng
        reasons: list[str] = []
        drive = self._drive(image, a)
        lo, hi = self._scene.tempo_range_bpm
        tempo = round(lo + (hi - lo) * (drive + 1.0) / 2.0)
        reasons.append(f"tempo {tempo} bpm: drive {drive:+.2f} (arousal {a:+.2f}, motion {image.motion:.2f}) "
                       f"in the scene's {lo:.0f}-{hi:.0f} bpm")
        mode = MODE_ORDER[min(len(MODE_ORDER) - 1, int((v + 1.0) / 2.0 * len(MODE_ORDER)))]
        reasons.append(f"mode {mode}: valence {v:+.2f} (modes darkest to brightest: {', '.join(MODE_ORDER)})")
        if image.dominant_hues_deg:
            hue = image.dominant_hues_deg[0]
            self._tonic_pc = self._settings.key_map[int((hue % 360) // 30)]
            reasons.append(f"key {key_name(self._tonic_pc, mode)}: dominant hue {hue:.0f} deg ({hue_name(hue)}) "
                           f"on the {self._settings.key_map_name} colour wheel")
        else:
            reasons.append(f"key {key_name(self._tonic_pc, mode)}: no dominant colour, key kept")
        metre = self._settings.metre
        if metre == "auto":
            metre = "3/4" if drive < -0.35 else ("6/8" if v > 0.2 and drive > 0.35 else "4/4")
        reasons.append(f"metre {metre}" + (" (scene)" if self._settings.metre != "auto" else
                                           f" from drive {drive:+.2f} and valence {v:+.2f}"))
        mode_class = MODE_CLASS[mode]
        source, why = self._retrieve(image, v, a, mode_class, metre)
        reasons.append(why)
        density = max(0.0, min(1.0, 0.5 + 0.5 * drive + 0.1 * (image.edge_density - 0.35)))
        variation = max(0.0, min(0.9, self._settings.variation + 0.4 * image.motion))
        melody_source = self.melody_source
        if melody_source is not None:
            written = melody_source(source, mode_class, metre, (v, a))
            if written is not None:
                source, why = written
                reasons.append(why)
                # The learned model's melody is varied and played as busily as the picture asks,
                # like a corpus phrase; an LLM's melody is sung exactly as written.
                if not source.source.startswith("learned:"):
                    variation, density = 0.0, 0.5
        melody, varied = self._vary(source.events, mode_class, metre, density, variation)
        reasons.append(f"melody: corpus phrase {source.source} ({source.mode_class}, {source.metre}), "
                       f"{varied} of {len(melody)} notes varied by learned steps, density {density:.2f}")
        chords = self._harmonise(melody, mode_class, metre, index, drive)
        symbols = [self._chord_symbol(self._tonic_pc, mode, d, cadence=(i == len(chords) - 2))[0]
                   for i, (_, _, d) in enumerate(chords)]
        reasons.append(f"harmony: {' '.join(symbols)} ({'half' if index % 2 == 0 else 'authentic'} cadence; "
                       f"chorale bass statistics)")
        return _Phrase(index, float(tempo), self._tonic_pc, mode, metre, melody, chords, source.source, varied, reasons)

    def index(self):
        """The corpus index (loaded on first use), or None when it is missing or switched off."""
        if not self._index_tried:
            self._index_tried = True
            if getattr(self.cfg, "retrieval", True):
                from models.composing.index import load_index
                try:
                    self._index = load_index()
                except UserError as exc:
                    log.warning("%s Melodies are drawn at random instead.", exc)
        return self._index

    @staticmethod
    def picture_key(image: ImageState) -> bytes:
        """The picture's own numbers, rounded, as bytes: equal for one picture, different for another."""
        numbers = (image.valence, image.arousal, image.brightness, image.saturation, image.contrast,
                   image.colourfulness, image.edge_density, *image.dominant_hues_deg,
                   *(image.content[k] for k in sorted(image.content)))
        return (image.description + "|" + ",".join(f"{x:.2f}" for x in numbers)).encode()

    def _retrieve(self, image: ImageState, v: float, a: float, mode_class: str, metre: str):
        """The phrase to sing and why: the next phrase of the tune playing while the picture stays,
        otherwise the best tune the index finds for the picture's words and VA."""
        index = self.index()
        if index is None:
            source = self.table.choose_phrase(mode_class, metre, self.rng)
            return source, "melody drawn at random by mode class and metre (no corpus index)"
        if not self.wait_for_words and not index.encoder.ready():
            index.encoder.warm_up()
            source = self.table.choose_phrase(mode_class, metre, self.rng)
            return source, "melody drawn at random by mode class and metre while the sentence model loads"
        key = self.picture_key(image)
        from models.seeing.content import describe
        description = image.description or describe(v, a, image.brightness, image.saturation, image.contrast,
                                                    image.content, image.dominant_hues_deg, image.motion)
        ranked = index.rank(description, (v, a), mode_class, metre, key=key)
        if ranked and self._tune is not None and ranked[0].source == self._tune[0]:
            # The picture still asks for the tune playing: sing its next phrase, then find another.
            phrases = [p for p in self.table.by_source.get(self._tune[0], []) if p.metre == metre]
            nxt = self._tune[1] + 1
            if nxt < len(phrases):
                self._tune = (self._tune[0], nxt, key)
                return phrases[nxt], (f"melody: phrase {nxt + 1} of {len(phrases)} of the retrieved tune "
                                      f"{self._tune[0]}, still the tune picked for the picture")
            ranked = index.rank(description, (v, a), mode_class, metre, key=key, exclude=self._recent_tunes)
        for found in ranked:
            phrases = [p for p in self.table.by_source.get(found.source, []) if p.metre == metre]
            if phrases:
                self._tune = (found.source, 0, key)
                self._recent_tunes = (self._recent_tunes + [found.source])[-8:]
                self.last_retrieved = found
                return phrases[0], found.reason() + f" for \"{description}\""
        source = self.table.choose_phrase(mode_class, metre, self.rng)
        return source, "melody drawn at random: no indexed tune in this metre"

    def _vary(self, events, mode_class: str, metre: str, density: float, variation: float):
        """Corpus phrase -> (onset16, dur16, degree) with Markov-step variations and density changes."""
        rng = self.rng
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
                step = self.table.next_step(mode_class, previous_step, rng)
                candidate = previous_degree + step
                if low <= candidate <= high and candidate != degree:
                    degree = candidate
                    varied += 1
            # Busy: split a long note into two, the second a learned step away.
            if degree is not None and dur >= 4 and dur % 2 == 0 and rng.random() < split_p:
                half = dur // 2
                out.append((onset, half, degree))
                step = self.table.next_step(mode_class, previous_step, rng)
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
        # A note far outside the singing range moves an octave (seven degrees) toward it, so a
        # phrase with a low tail or a high climax stays in one compass with the next.
        out = [(on, dur, None if d is None else d + 7 * ((FOLD_LOW - d + 6) // 7 if d < FOLD_LOW else
                                                          -((d - FOLD_HIGH + 6) // 7) if d > FOLD_HIGH else 0))
               for on, dur, d in out]
        return out, varied

    def _harmonise(self, melody, mode_class: str, metre: str, index: int, drive: float) -> list[tuple[int, int, int]]:
        """(onset16, dur16, degree) chord slots: one or two a bar; cadence at the phrase's end."""
        bar16 = METRES[metre]
        per_bar = 2 if drive > 0.3 and metre == "4/4" else 1
        slot16 = bar16 // per_bar
        n = PHRASE_BARS * per_bar
        degrees = [0] * n
        rng = self.rng
        for i in range(1, n):
            if i == n - 1:
                degrees[i] = 4 if index % 2 == 0 else 0
                continue
            if i == n - 2 and index % 2 == 1:
                degrees[i] = 4
                continue
            weights = self.table.bass_weights(mode_class, degrees[i - 1])
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

    @staticmethod
    def _chord_symbol(tonic_pc: int, mode: str, degree: int, cadence: bool = False) -> tuple[str, str, list[int]]:
        """Symbol, quality and pitch classes offsets (from the tonic) of the triad on `degree`."""
        scale = MODES[mode]
        tones = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        if cadence and mode == "minor" and degree == 4:
            tones[1] += 1  # harmonic minor: the raised leading tone makes the dominant pull home
        quality = CHORD_QUALITY.get((tones[1] - tones[0], tones[2] - tones[0]), "maj")
        root = KEY_NAMES[(tonic_pc + tones[0]) % 12]
        symbol = root + {"maj": "", "min": "m", "dim": "dim", "aug": "+"}[quality]
        return symbol, quality, tones

    # --- realisation ---------------------------------------------------------------------------
    def _realise(self, phrase: _Phrase, image: ImageState, drive: float, lift: float, first16: int, last16: int,
                 start_s: float, s16: float):
        """Events (with their written lengths), ABC items, chord cues and the texture's reasons.

        The pretrained music-emotion rater hears energy mostly in loudness, a struck rather than held
        accompaniment, busy notes and drums, and happiness in detached, bouncy playing over a light
        groove; sad music is legato, soft and low. The picture's arousal (`drive`) and valence
        (`lift`) set exactly those."""
        scene, voices = self._scene, self._settings.voices
        scale = MODES[phrase.mode]
        bar16 = METRES[phrase.metre]
        beat16 = 6 if phrase.metre == "6/8" else 4
        centre = 60 + int(round((image.brightness - 0.5) * 20)) + self._settings.register_offset
        centre += (-3 if lift < -0.4 else 0) + int(round(6 * self.revision[0]))  # refinement moves the register too
        centre = max(48, min(84, centre))
        tonic_m = self._tonic_near(phrase.tonic_pc, centre - 5)
        # The melody sings above the accompaniment: its tonic no lower than a fifth under
        # MELODY_FLOOR_MIDI (phrases are register-neutral, so every phrase sits alike: no octave
        # jumps between phrases), and the chords move below its median.
        while tonic_m < MELODY_FLOOR_MIDI - 7:
            tonic_m += 12
        sung = sorted(pitch_of(d, tonic_m, scale) for _, _, d in phrase.melody if d is not None)
        melody_median = sung[len(sung) // 2] if sung else tonic_m + 7
        # Loudness spans pp to ff with energy; sad pictures play a little softer still.
        base_vel = int(round(64 + 46 * drive + 6 * (image.contrast - 0.3) + 6 * min(0.0, lift)))
        # Accompaniment sinks under the melody when calm and drives with it when lively.
        accomp = int(round(-24 + 22 * (drive + 1.0) / 2.0))
        sad_storm = drive > -0.35 and lift < -0.3  # drums read as cheerful: a dark storm is strings instead
        happy = self._happy(lift)
        # Lively music keeps some weight; very calm music stays smoother, since detached notes also
        # read as energetic.
        detach = 0.5 * happy * (1.0 - 0.5 * max(0.0, drive)) * (0.35 + 0.65 * min(1.0, drive + 1.0))
        melody_legato = max(0.45, min(1.0, 1.0 - detach - 0.1 * max(0.0, drive)))
        accomp_legato = max(0.45, min(1.0, 1.0 - detach - 0.1 * max(0.0, drive)))
        events: list[NoteEvent] = []
        notated: list[float] = []
        abc: dict[str, list[tuple[int, int, list[tuple[int, int]] | None]]] = {v: [] for v in voices}
        chord_cues = []
        texture: list[str] = []

        def t(of16: float) -> float:
            return start_s + (of16 - first16) * s16

        def vel(of16: int, offset: int, floor: int = VELOCITY_FLOOR["accompaniment"]) -> int:
            accent = 8 if of16 % bar16 == 0 else (3 if of16 % beat16 == 0 else 0)
            return max(floor, min(124, base_vel + offset + accent))

        def add(at16: int, len16: int, note: int, velocity: int, channel: int, voice: str, legato: float) -> None:
            events.append(NoteEvent(t(at16), len16 * s16 * legato, note, velocity, channel, voice))
            notated.append(len16 * s16)

        def pitch(degree: int, tonic_midi: int, alter: int = 0) -> int:
            return tonic_midi + 12 * (degree // 7) + scale[degree % 7] + alter

        if "melody" in voices:
            ch = scene.channels["melody"]
            for on, dur, deg in phrase.melody:
                if on + dur <= first16 or on >= last16:
                    continue
                a16, b16 = max(on, first16), min(on + dur, last16)
                if deg is None:
                    abc["melody"].append((a16, b16 - a16, None))
                    continue
                # Short notes stay nearly full so runs do not turn into clicks.
                legato = melody_legato if b16 - a16 >= 2 else max(0.8, melody_legato)
                add(a16, b16 - a16, pitch(deg, tonic_m), vel(a16, 6, VELOCITY_FLOOR["melody"]), ch, "melody", legato)
                abc["melody"].append((a16, b16 - a16, [(deg, 0)]))
        cadence_slot = len(phrase.chords) - 2
        tonic_c = self._tonic_near(phrase.tonic_pc, 55 - (3 if lift < -0.4 else 0))
        tonic_b = self._tonic_near(phrase.tonic_pc, 38)
        # Calm: one held chord; moderate: struck each half; lively: each beat, detached.
        chord_every = "slot" if drive < -0.3 else ("half" if drive < -0.35 else ("eighth" if sad_storm else "beat"))
        for i, (on, dur, deg) in enumerate(phrase.chords):
            if on + dur <= first16 or on >= last16:
                continue
            symbol, quality, tones = self._chord_symbol(phrase.tonic_pc, phrase.mode, deg, cadence=(i == cadence_slot))
            alters = [tones[k] - (scale[(deg + 2 * k) % 7] + 12 * ((deg + 2 * k) // 7)) for k in range(3)]
            chord_notes = [pitch(deg + 2 * k, tonic_c, alters[k]) for k in range(3)]
            shift = 0
            while min(chord_notes) > 62 or (max(chord_notes) > melody_median - 2 and min(chord_notes) - 12 >= 45):
                chord_notes = [n - 12 for n in chord_notes]
                shift += 1
            chord_cues.append((t(on), symbol, quality, tuple(chord_notes)))
            if "chords" in voices:
                ch = scene.channels["chords"]
                step16 = {"slot": dur, "half": max(beat16, dur // 2), "beat": beat16, "eighth": beat16 // 2}[chord_every]
                for s in range(on, on + dur, step16):
                    for n in chord_notes:
                        add(s, min(step16, on + dur - s), n, vel(s, accomp), ch, "chords", accomp_legato)
                    abc["chords"].append((s, min(step16, on + dur - s),
                                          [(deg + 2 * k - 7 * shift, alters[k]) for k in range(3)]))
            if "bass" in voices:
                ch = scene.channels["bass"]
                root = pitch(deg, tonic_b, alters[0])
                fifth = pitch(deg + 4, tonic_b, alters[2])
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
                    add(s, d16, note, vel(s, accomp + 10, VELOCITY_FLOOR["bass"]), ch, "bass", max(0.6, accomp_legato - 0.05))
                    abc["bass"].append((s, d16, [(dg, al)]))
        kit = self._percussion(drive, lift)
        drums: list[tuple[int, int]] = []
        if kit is not None:
            name, pattern = kit
            ch = self._settings.percussion_channel
            for bar_start in range(first16 - first16 % bar16, last16, bar16):
                for off16, note, level in pattern(bar16, beat16):
                    at16 = bar_start + off16
                    if first16 <= at16 < last16:
                        add(at16, 1, note, max(VELOCITY_FLOOR["drums"], min(124, int(round(base_vel * level)))), ch,
                            "drums", 0.9)
                        drums.append((at16, note))
            texture.append(f"percussion: {name}")
        texture.append(f"articulation: melody {melody_legato:.0%} of written length, accompaniment "
                       f"{accomp_legato:.0%}, chords struck every {chord_every}, loudness {base_vel} "
                       f"(valence {lift:+.2f}, drive {drive:+.2f})")
        self._abc_tonics = {"melody": tonic_m, "chords": tonic_c, "bass": tonic_b}
        self._abc_drums = drums
        return events, notated, abc, chord_cues, texture

    @staticmethod
    def _happy(lift: float) -> float:
        """0 (valence -0.3 or below) to 1 (valence +0.4 or above): how detached and bouncy to play.
        Image valence heads rarely go far above +0.4, so the bright end of articulation starts there."""
        return max(0.0, min(1.0, (lift + 0.3) / 0.7))

    def _percussion(self, drive: float, lift: float):
        """(description, bar pattern) of the drum layer, or None. Patterns give (offset16, GM drum note,
        velocity as a share of the base loudness) for one bar."""
        if not self._settings.percussion:
            return None
        if drive > -0.35 and lift < -0.3:
            return None  # the rater hears any kit as cheerful; a dark, lively picture gets driving strings
        if drive > 0.1:
            def busy(bar16: int, beat16: int):
                hits = [(s, 42, 0.75 if s % beat16 else 0.95) for s in range(0, bar16, 1 if beat16 == 4 else 2)]
                hits += [(s, 36, 1.15) for s in range(0, bar16, beat16)]
                hits += [(s, 38, 1.1) for s in range(beat16, bar16, 2 * beat16)]
                return hits
            return f"kit, kick every beat, snare backbeat, sixteenth hi-hats (drive {drive:+.2f} > +0.10)", busy
        if drive > -0.35:
            def rock(bar16: int, beat16: int):
                half = beat16 // 2
                hits = [(s, 42, 0.8) for s in range(0, bar16, half)]
                hits += [(s, 36, 1.1) for s in range(0, bar16, 2 * beat16)]
                hits += [(s, 38, 1.0) for s in range(beat16, bar16, 2 * beat16)]
                return hits
            return f"kit, kick and snare, eighth hi-hats (drive {drive:+.2f} > -0.35)", rock
        if self._happy(lift) > 0.5 and drive > -0.4:
            def light(bar16: int, beat16: int):
                half = beat16 // 2
                hits = [(s, 42, 0.55 if s % beat16 else 0.7) for s in range(0, bar16, half)]
                hits += [(s, 37, 0.6) for s in range(beat16, bar16, 2 * beat16)]
                return hits
            return f"light groove, eighth hi-hats and side stick (valence {lift:+.2f} > +0.05)", light
        return None

    @staticmethod
    def _tonic_near(tonic_pc: int, target_midi: int) -> int:
        base = target_midi - ((target_midi - tonic_pc) % 12)
        return base + 12 if target_midi - base > 6 else base

    # --- ABC -----------------------------------------------------------------------------------
    def _abc(self, phrase: _Phrase, notes, bars: int) -> str:
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
            lines.append(self._abc_voice(phrase, items, self._abc_tonics[voice], bar16))
        drums = getattr(self, "_abc_drums", [])
        if drums:
            lines.append(f"V:{number + 1} name=\"drums\" clef=perc")
            lines.append(f"%%MIDI channel {self._settings.percussion_channel + 1}")
            lines.append(self._abc_drum_voice(drums, bar16))
        return "\n".join(lines)

    @classmethod
    def _abc_drum_voice(cls, hits: list[tuple[int, int]], bar16: int) -> str:
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
                out.append(cls._abc_len("z", piece))
                cursor += piece
                if cursor % bar16 == 0:
                    out.append("|")
            if at16 == end:
                break
            names = []
            for n in sorted(set(by_onset[at16])):
                letter = next(i for i in range(6, -1, -1) if NATURAL_PC[i] <= n % 12)
                mark = "^" if n % 12 != NATURAL_PC[letter] else "="
                names.append(mark + cls._abc_pitch(letter, n // 12 - 1))
            out.append(names[0] if len(names) == 1 else "[" + "".join(names) + "]")
            cursor += 1
            if cursor % bar16 == 0:
                out.append("|")
        return " ".join(out)

    def _abc_voice(self, phrase: _Phrase, items, tonic_midi: int, bar16: int) -> str:
        scale = MODES[phrase.mode]
        tonic_letter = LETTERS.index(key_name(phrase.tonic_pc, phrase.mode)[0])
        tonic_octave = tonic_midi // 12 - 1
        out: list[str] = []
        accidentals: dict[int, int] = {}  # an accidental holds to the bar line, as in notation

        def spell(chord) -> str:
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
                names.append(mark + self._abc_pitch(letter, octave))
            return names[0] if len(names) == 1 else "[" + "".join(names) + "]"

        def emit(chord, start: int, length: int) -> None:
            while length > 0:
                piece = min(length, bar16 - start % bar16)
                token = "z" if chord is None else spell(chord)
                tie = "-" if chord is not None and piece < length else ""
                out.append(self._abc_len(token, piece) + tie)
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

    @staticmethod
    def _abc_pitch(letter: int, octave: int) -> str:
        name = LETTERS[letter]
        if octave >= 5:
            return name.lower() + "'" * (octave - 5)
        return name + "," * (4 - octave)

    @staticmethod
    def _abc_len(token: str, sixteenths: int) -> str:
        return token if sixteenths == 1 else f"{token}{sixteenths}"
