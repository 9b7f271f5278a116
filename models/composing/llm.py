"""The LLM composer (`compose.backend = "llm"`): an OpenAI-compatible server writes each phrase's melody.

At a phrase start the corpus composer decides key, mode, metre and tempo and retrieves a tune as
usual; its phrase, in ABC, is the example. The server (Ollama, llama.cpp server, anything speaking
POST {url}/chat/completions) gets the camera picture (vision models, as a JPEG data URL) or its
description, the example, the target valence-arousal and the frame it must keep (key, metre, four
bars), and answers ABC. music21 parses it; it must be one voice of four bars in the metre, on a
sixteenth grid, within two octaves of the tonic, with at least three different pitches. Where the
server takes a GBNF grammar (llama.cpp's `grammar` field) the answer is constrained to such ABC under
a fixed header (models/composing/abc_grammar.py); a server that refuses it (HTTP 4xx) or ignores it
(the answer does not start with that header) gets free text from then on, validated the same way.
A valid melody is sung in the composer's harmony and texture; anything else (garbage, prose, a wrong metre, no answer in time, no server) is retried
while time and `llm_retries` allow, then the corpus composer's own phrase plays. No answer may delay
the music beyond `llm_timeout_s` (the caller may pass a shorter deadline per phrase).

Live (`background=True`) nothing waits: each phrase start hands the request for the *next* phrase to
a helper thread and sings the melody that came back for this one, when it is in this phrase's metre
(a melody is in scale degrees, so it fits any key and mode); otherwise the corpus phrase plays.
`plan` is called from the composer thread.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import numpy as np

from installation.records import ImageState
from models.composing.abc_grammar import abc_grammar, abc_header
from models.composing.corpus import METRES, PHRASE_BARS, Phrase
from models.language.checks import TuneCopyCheck
from models.language.client import post_json

log = logging.getLogger(__name__)

SYSTEM = ("You are a composer. Answer with ABC notation only: a header (X:, M:, L:, K:) and one melody line of "
          "exactly four bars. No words before or after, no chords, no second voice.")


class InvalidAbc(ValueError):
    pass


def extract_abc(text: str) -> str:
    """The ABC inside an answer: a fenced block if there is one, else from the first header line."""
    fenced = re.search(r"```(?:abc)?\s*\n(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1)
    start = re.search(r"^X:", text, re.M) or re.search(r"^[MLK]:", text, re.M)
    return text[start.start():].strip() if start else text.strip()


def abc_to_phrase(abc: str, tonic: str, metre: str) -> tuple[tuple[int | None, int], ...]:
    """Four bars of melody as (scale degree or None, sixteenths) from ABC; InvalidAbc says why not."""
    from music21 import converter, meter
    from music21 import pitch as m21pitch
    try:
        score = converter.parse(abc, format="abc")
    except Exception as exc:
        raise InvalidAbc(f"music21 cannot parse it ({type(exc).__name__})") from None
    sigs = list(score.flatten().getElementsByClass(meter.TimeSignature))
    if sigs and sigs[0].ratioString != metre and not (metre == "4/4" and sigs[0].ratioString in ("C", "2/2")):
        raise InvalidAbc(f"metre {sigs[0].ratioString}, not {metre}")
    parts = list(getattr(score, "parts", [])) or [score]
    items = list(parts[0].flatten().notesAndRests)
    tonic_dnn = m21pitch.Pitch(tonic + "4").diatonicNoteNum
    tonic_midi = m21pitch.Pitch(tonic + "4").midi
    events: list[tuple[int | None, int]] = []
    total = 0
    for n in items:
        dur = float(n.quarterLength) * 4.0
        if dur == 0:
            continue
        if abs(dur - round(dur)) > 1e-6:
            raise InvalidAbc("durations off the sixteenth grid")
        if n.isRest:
            events.append((None, int(round(dur))))
        else:
            p = n.pitches[-1]
            if abs(p.midi - tonic_midi) > 24:
                raise InvalidAbc(f"note {p.nameWithOctave} is more than two octaves from the tonic")
            events.append((p.diatonicNoteNum - tonic_dnn, int(round(dur))))
        total += int(round(dur))
    want = METRES[metre] * PHRASE_BARS
    if sum(1 for d, _ in events if d is not None) < 4:
        raise InvalidAbc("fewer than four notes")
    if len({d for d, _ in events if d is not None}) < 3:
        raise InvalidAbc("fewer than three different pitches")
    if total < want * 3 // 4 or total > want * 5 // 4:
        raise InvalidAbc(f"{total / METRES[metre]:.1f} bars, not {PHRASE_BARS}")
    out, at = [], 0
    for d, r in events:  # cut or pad to exactly four bars
        if at >= want:
            break
        r = min(r, want - at)
        out.append((d, r))
        at += r
    if at < want:
        out.append((None, want - at))
    return tuple(out)


def jpeg_data_url(rgb: np.ndarray, side_px: int = 384) -> str:
    import cv2
    h, w = rgb.shape[:2]
    scale = min(1.0, side_px / max(h, w))
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (max(1, round(w * scale)), max(1, round(h * scale))))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


class LlmComposer:
    """Wraps a models.composing.composer.Composer; `plan` has the same call plus the picture and a deadline."""

    def __init__(self, composer, url: str, model: str, timeout_s: float = 20.0, retries: int = 1,
                 vision: bool = True, background: bool = False, api_key: str = "", grammar: bool = True) -> None:
        self.composer = composer
        self.background = background
        self._lock = threading.Lock()
        self._ready: tuple[str, tuple, str] | None = None  # (metre, melody, why) for the next phrase
        self._worker: threading.Thread | None = None
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.vision = vision
        self.grammar = grammar
        """Ask for ABC by grammar; turned off for good when the server refuses or ignores it."""
        self.stats: dict[str, int] = {"phrases": 0, "written": 0, "fallbacks": 0, "requests": 0, "constrained": 0}
        self.last_error = ""
        self._corpus: TuneCopyCheck | None = None

    def __getattr__(self, name):
        return getattr(self.composer, name)

    @property
    def wants_frame(self) -> bool:
        """True when `plan` should be given the camera frame (`compose.llm_vision`)."""
        return self.vision

    def plan(self, image: ImageState, start_s: float, tempo_bpm: float | None = None, frame: np.ndarray | None = None,
             deadline_s: float | None = None):
        composer = self.composer
        if not composer.at_phrase_start:
            return composer.plan(image, start_s, tempo_bpm)
        self.stats["phrases"] += 1
        started = time.monotonic()
        budget = self.timeout_s if deadline_s is None else max(0.0, min(self.timeout_s, deadline_s))
        if self.background:
            return self._plan_background(image, start_s, tempo_bpm, frame)
        preview, example = self._preview(image, start_s, tempo_bpm)
        melody, why = self._write(image, frame, preview, example, started, budget)
        return self._sing(image, start_s, tempo_bpm, melody, why, time.monotonic() - started, frame)

    def _preview(self, image: ImageState, start_s: float, tempo_bpm: float | None):
        """The corpus composer's whole phrase (key, mode, metre, tempo, the example ABC), state kept."""
        composer = self.composer
        saved = composer.snapshot()
        bars_ahead = composer.bars_ahead
        composer.bars_ahead = PHRASE_BARS
        try:
            preview = composer.plan(image, start_s, tempo_bpm)
        finally:
            composer.bars_ahead = bars_ahead
            composer.restore(saved)
        return preview, preview.abc.split("\nV:2")[0]

    def _plan_background(self, image: ImageState, start_s: float, tempo_bpm: float | None, frame):
        preview, example = self._preview(image, start_s, tempo_bpm)
        with self._lock:
            ready, self._ready = self._ready, None
        melody, why = None, "no melody ready yet (asked in the background for the next phrase)"
        if ready is not None:
            metre, written, reason = ready
            if written is not None and metre == preview.metre:
                melody, why = written, reason
            elif written is not None:
                why = f"the melody that came back is in {metre}, this phrase in {preview.metre}"
            else:
                why = reason
        if self._worker is None or not self._worker.is_alive():
            def ask() -> None:
                got, reason = self._write(image, frame, preview, example, time.monotonic(), self.timeout_s)
                with self._lock:
                    self._ready = (preview.metre, got, reason)
            self._worker = threading.Thread(target=ask, name="llm-composer", daemon=True)
            self._worker.start()
        return self._sing(image, start_s, tempo_bpm, melody, why, 0.0, frame)

    def _write(self, image, frame, preview, example: str, started: float, budget: float):
        """(melody or None, why) from the server, retried while time and `retries` allow."""
        melody, why = None, ""
        for attempt in range(self.retries + 1):
            left = budget - (time.monotonic() - started)
            if left <= 0.05:
                why = why or "no time left"
                break
            try:
                text, constrained = self._ask(image, frame, preview, example, left)
                self.stats["constrained"] += constrained
                melody = abc_to_phrase(extract_abc(text), preview.key, preview.metre)
                copied = self._copied(melody, example, preview)
                if copied:
                    melody = None
                    raise InvalidAbc(f"it copies {copied}")
                why = "ABC constrained by grammar" if constrained else "free ABC, validated"
                break
            except InvalidAbc as exc:
                why = f"invalid ABC: {exc}"
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                why = f"no answer ({getattr(exc, 'reason', exc)})"
                if isinstance(getattr(exc, "reason", None), ConnectionRefusedError) or "refused" in str(exc):
                    break  # nobody is listening: retrying will not help
            except ValueError as exc:
                why = f"unreadable answer ({exc})"
        return melody, why

    def _copied(self, melody, example: str, preview) -> str:
        """What the melody copies: the example in the prompt, or a phrase of the corpus ("" if neither)."""
        try:
            shown = abc_to_phrase(example, preview.key, preview.metre)
        except InvalidAbc:
            shown = ()
        if shown and TuneCopyCheck([("the example in the prompt", shown)]).copied(melody):
            return "the example in the prompt"
        if self._corpus is None:
            table = getattr(self.composer, "table", None)
            by_source = getattr(table, "by_source", {}) if table is not None else {}
            self._corpus = TuneCopyCheck((p.source, p.events) for phrases in by_source.values() for p in phrases)
        source = self._corpus.copied(melody)
        return f"the corpus tune {source}" if source else ""

    def _sing(self, image, start_s, tempo_bpm, melody, why: str, taken: float, frame):
        composer = self.composer
        if melody is None:
            self.stats["fallbacks"] += 1
            self.last_error = why
            plan = composer.plan(image, start_s, tempo_bpm)
            return replace(plan, reasons=plan.reasons + (f"LLM {self.model}: {why}; the corpus composer plays "
                                                         f"this phrase",))
        self.stats["written"] += 1

        def written(source: Phrase, mode_class: str, metre: str, va, words: str = ""):
            return (Phrase(f"llm:{self.model}", mode_class, metre, melody),
                    f"melody written by the LLM {self.model} in {taken:.1f} s (example: {source.source}; "
                    f"{'picture' if self.vision and frame is not None else 'description'} and target VA sent; {why})")
        previous = composer.melody_source
        composer.melody_source = written
        try:
            return composer.plan(image, start_s, tempo_bpm)
        finally:
            composer.melody_source = previous

    def _ask(self, image: ImageState, frame: np.ndarray | None, preview, example: str,
             timeout_s: float) -> tuple[str, bool]:
        """(the answer's text, whether the grammar shaped it)."""
        v, a = image.valence, image.arousal
        prompt = (f"Write a new four-bar melody for this picture: {image.description or 'no description'}\n"
                  f"Target mood: valence {v:+.2f}, arousal {a:+.2f} (both -1..1).\n"
                  f"Keep M:{preview.metre}, L:1/16, K:{preview.key}{'' if preview.mode == 'major' else ' ' + preview.mode}, "
                  f"about {preview.tempo_bpm:.0f} bpm. A real folk tune in this key, as an example of the style:\n"
                  f"{example}")
        content: Any = prompt
        if self.vision and frame is not None:
            content = [{"type": "text", "text": prompt}, {"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}}]
        payload = {"model": self.model, "temperature": 0.7, "max_tokens": 400,
                   "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]}
        header = abc_header(preview.metre, preview.key, preview.mode)
        if self.grammar:
            payload["grammar"] = abc_grammar(preview.metre, preview.key, preview.mode)
        self.stats["requests"] += 1
        started = time.monotonic()
        try:
            body = post_json(self.endpoint, payload, max(0.05, timeout_s), api_key=self.api_key)
        except ValueError as exc:
            if not (self.grammar and str(exc).startswith("HTTP 4")):
                raise
            log.info("LLM server %s refuses a grammar (%s); asking for free ABC", self.endpoint, exc)
            self.grammar = False
            payload.pop("grammar")
            self.stats["requests"] += 1
            left = timeout_s - (time.monotonic() - started)
            body = post_json(self.endpoint, payload, max(0.05, left), api_key=self.api_key)
        try:
            text = str(json.loads(body)["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an OpenAI chat answer: {type(exc).__name__}") from None
        constrained = "grammar" in payload and text.startswith(header)
        if "grammar" in payload and not constrained:
            log.info("LLM server %s ignores the grammar (the answer does not start with its header); "
                     "asking for free ABC", self.endpoint)
            self.grammar = False
        return text, constrained
