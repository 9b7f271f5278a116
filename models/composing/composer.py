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

import copy
import logging
import random
from typing import Callable

from installation.errors import UserError
from installation.records import ImageState, Plan
from models.composing.abc import phrase_abc
from models.composing.corpus import METRES, PHRASE_BARS, CorpusTable, Phrase, load_table
from models.composing.realise import HeldPhrase, harmonise, realise, vary
from models.composing.settings import ComposeSettings, scene_compose_settings
from models.composing.theory import MODE_CLASS, MODE_ORDER, chord_symbol, key_name
from models.seeing.content import hue_name

log = logging.getLogger(__name__)


class Composer:
    """Plans music bar by bar from ImageState. Deterministic for a given seed and input sequence."""

    def __init__(self, settings: ComposeSettings, scene, seed: int = 0, table: CorpusTable | None = None,
                 index=None) -> None:
        self.settings = settings
        self.bars_ahead = settings.bars_ahead
        self.table = table if table is not None else load_table()
        self._index = index
        self._index_tried = index is not None
        self._tune: tuple[str, int, bytes] | None = None  # (source, phrase number, picture key) now playing
        self._comment_pull: tuple[float, float, str] | None = None  # the comment's VA for this phrase
        self._recent_tunes: list[str] = []
        self.last_retrieved = None
        self.melody_source: Callable[[Phrase, str, str, tuple[float, float], str],
                                     tuple[Phrase, str] | None] | None = None
        """Optional `(retrieved Phrase, mode class, metre, (valence, arousal), the picture's description)
        -> (Phrase, reason) | None` that writes the phrase's melody instead (the learned head, the LLM
        backend); None = corpus."""
        self.wait_for_words = True
        """False in a live installation: until the sentence model has loaded (seconds, in the
        background), melodies are drawn by mode class and metre instead of waiting for it."""
        self.revision: tuple[float, float] = (0.0, 0.0)
        """(lift, drive) added by self-refinement (models.composing.refine) to the picture's valence
        and energy for articulation, register, groove and tempo, density, loudness; mode and key stay."""
        self.rng = random.Random(seed)
        self._scene = scene
        self._scene_settings = scene_compose_settings(scene, settings)
        self._pending_scene = None
        self._phrase: HeldPhrase | None = None
        self._bar_in_phrase = 0
        self._phrase_count = 0
        self._tonic_pc = 0
        self._send_programs = True

    # --- public --------------------------------------------------------------------------------
    _STATE = ("melody_source", "_scene", "_scene_settings", "_pending_scene", "_phrase", "_bar_in_phrase",
              "_phrase_count", "_tonic_pc", "_send_programs", "_tune", "_recent_tunes", "last_retrieved", "revision",
              "_comment_pull")

    def snapshot(self) -> dict:
        """Everything `plan` changes, so a phrase can be tried, judged and planned again."""
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
        scene_compose_settings(scene, self.settings)
        self._pending_scene = scene

    def programs(self) -> tuple[tuple[int, int], ...]:
        """(channel, program) for each voice of the current scene."""
        scene = self._scene
        settings = self._scene_settings
        kit = ((settings.percussion_channel, 0),) if settings.percussion else ()  # GM standard kit
        return tuple((int(scene.channels[v]), int(scene.programs[v])) for v in settings.voices) + kit

    def plan(self, image: ImageState, start_s: float, tempo_bpm: float | None = None) -> Plan:
        """The next bar(s) from `start_s`, never crossing a phrase boundary.

        `tempo_bpm` is an outside tempo (an operator's /tempo, an external MIDI clock); it takes
        over from the next bar, because a band following a clock cannot wait for the phrase.
        """
        picture_va = (image.valence, image.arousal)
        new_phrase = self._phrase is None or self._bar_in_phrase >= PHRASE_BARS
        if new_phrase:
            self._comment_pull = self._read_comment(image, *picture_va)
        v, a = self._pulled(picture_va)
        programs: tuple[tuple[int, int], ...] = ()
        if new_phrase:
            if self._pending_scene is not None:
                self._scene, self._pending_scene = self._pending_scene, None
                self._scene_settings = scene_compose_settings(self._scene, self.settings)
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
        played = realise(phrase, image, drive, lift, first16, last16, start_s, s16, self._scene_settings,
                         self._scene.channels, register_lift=self.revision[0])
        events, notated = played.events, played.notated
        self._bar_in_phrase += bars
        key = key_name(phrase.tonic_pc, phrase.mode)
        reasons = list(phrase.reasons) if new_phrase else [f"continuing phrase {phrase.index + 1}, bars "
                                                           f"{first16 // bar16 + 1}-{last16 // bar16} of {PHRASE_BARS}"]
        reasons.append(f"dynamics: drive {drive:+.2f} from arousal {a:+.2f}, motion {image.motion:.2f}, "
                       f"edges {image.edge_density:.2f}")
        if tempo != phrase.tempo_bpm:
            reasons.append(f"tempo {tempo:g} bpm from outside (operator or MIDI clock) instead of {phrase.tempo_bpm:g}")
        reasons.extend(played.texture if new_phrase else [])
        abc = phrase_abc(phrase, played.abc, played.tonics, played.drums, self._scene_settings.percussion_channel)
        order = sorted(range(len(events)), key=lambda i: (events[i].start_s, events[i].channel, events[i].note))
        return Plan(events=tuple(events[i] for i in order), notated_s=tuple(notated[i] for i in order),
                    start_s=float(start_s), end_s=float(start_s + bars * bar16 * s16),
                    tempo_bpm=tempo, key=key, mode=phrase.mode, abc=abc, reasons=tuple(reasons),
                    metre=phrase.metre, bars=bars, phrase_start=new_phrase, chords=tuple(played.chord_cues),
                    program_changes=programs, valence=picture_va[0], arousal=picture_va[1])

    # --- a visitor's comment ---------------------------------------------------------------------
    def _read_comment(self, image: ImageState, v: float, a: float) -> tuple[float, float, str] | None:
        """(valence, arousal, reason) a visitor's comment asks for, read once a phrase; None without
        one, with `compose.comment_weight` 0, or while the sentence model loads in a live show."""
        weight = self.settings.comment_weight
        if not image.comment or weight <= 0:
            return None
        index = self.index()
        if index is None or (not self.wait_for_words and not index.encoder.ready()):
            return None
        from models.composing.comment_mood import comment_va
        asked = comment_va(image.comment, index.encoder)
        if asked is None:
            return None
        # both ends are in [-1, 1] and weight in [0, 1], so the pull stays in bounds
        pv, pa = v + weight * (asked[0] - v), a + weight * (asked[1] - a)
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

    def _new_phrase(self, image: ImageState, v: float, a: float) -> HeldPhrase:
        index = self._phrase_count
        self._phrase_count += 1
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
            self._tonic_pc = self._scene_settings.key_map[int((hue % 360) // 30)]
            reasons.append(f"key {key_name(self._tonic_pc, mode)}: dominant hue {hue:.0f} deg ({hue_name(hue)}) "
                           f"on the {self._scene_settings.key_map_name} colour wheel")
        else:
            reasons.append(f"key {key_name(self._tonic_pc, mode)}: no dominant colour, key kept")
        metre = self._scene_settings.metre
        if metre == "auto":
            metre = "3/4" if drive < -0.35 else ("6/8" if v > 0.2 and drive > 0.35 else "4/4")
        reasons.append(f"metre {metre}" + (" (scene)" if self._scene_settings.metre != "auto" else
                                           f" from drive {drive:+.2f} and valence {v:+.2f}"))
        mode_class = MODE_CLASS[mode]
        source, why = self._retrieve(image, v, a, mode_class, metre)
        reasons.append(why)
        density = max(0.0, min(1.0, 0.5 + 0.5 * drive + 0.1 * (image.edge_density - 0.35)))
        variation = max(0.0, min(0.9, self._scene_settings.variation + 0.4 * image.motion))
        melody_source = self.melody_source
        if melody_source is not None:
            written = melody_source(source, mode_class, metre, (v, a), self.picture_words(image, v, a))
            if written is not None:
                source, why = written
                reasons.append(why)
                # The learned model's melody is varied and played as busily as the picture asks,
                # like a corpus phrase; an LLM's melody is sung exactly as written.
                if not source.source.startswith("learned:"):
                    variation, density = 0.0, 0.5
        melody, varied = vary(source.events, mode_class, metre, density, variation, self.table, self.rng)
        reasons.append(f"melody: corpus phrase {source.source} ({source.mode_class}, {source.metre}), "
                       f"{varied} of {len(melody)} notes varied by learned steps, density {density:.2f}")
        chords = harmonise(melody, mode_class, metre, index, drive, self.table, self.rng)
        symbols = [chord_symbol(self._tonic_pc, mode, d, cadence=(i == len(chords) - 2))[0]
                   for i, (_, _, d) in enumerate(chords)]
        reasons.append(f"harmony: {' '.join(symbols)} ({'half' if index % 2 == 0 else 'authentic'} cadence; "
                       f"chorale bass statistics)")
        return HeldPhrase(index, float(tempo), self._tonic_pc, mode, metre, melody, chords, source.source, varied,
                          reasons)

    def index(self):
        """The corpus index (loaded on first use), or None when it is missing or switched off."""
        if not self._index_tried:
            self._index_tried = True
            if self.settings.retrieval:
                from models.composing.index import load_index
                try:
                    self._index = load_index()
                except UserError as exc:
                    log.warning("%s Melodies are drawn at random instead.", exc)
        return self._index

    @staticmethod
    def picture_words(image: ImageState, v: float, a: float) -> str:
        """The picture's description, as retrieval and a melody source read it."""
        from models.seeing.content import describe
        return image.description or describe(v, a, image.brightness, image.saturation, image.contrast,
                                             image.content, image.dominant_hues_deg, image.motion)

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
        description = self.picture_words(image, v, a)
        ranked = index.rank(description, (v, a), mode_class, metre, key=key,
                            content_weight=self.settings.content_weight)
        if ranked and self._tune is not None and ranked[0].source == self._tune[0]:
            # The picture still asks for the tune playing: sing its next phrase, then find another.
            phrases = [p for p in self.table.by_source.get(self._tune[0], []) if p.metre == metre]
            nxt = self._tune[1] + 1
            if nxt < len(phrases):
                self._tune = (self._tune[0], nxt, key)
                return phrases[nxt], (f"melody: phrase {nxt + 1} of {len(phrases)} of the retrieved tune "
                                      f"{self._tune[0]}, still the tune picked for the picture")
            ranked = index.rank(description, (v, a), mode_class, metre, key=key, exclude=self._recent_tunes,
                                content_weight=self.settings.content_weight)
        for found in ranked:
            phrases = [p for p in self.table.by_source.get(found.source, []) if p.metre == metre]
            if phrases:
                self._tune = (found.source, 0, key)
                self._recent_tunes = (self._recent_tunes + [found.source])[-8:]
                self.last_retrieved = found
                return phrases[0], found.reason() + f" for \"{description}\""
        source = self.table.choose_phrase(mode_class, metre, self.rng)
        return source, "melody drawn at random: no indexed tune in this metre"

