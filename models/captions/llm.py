"""Optional LLM backend: any OpenAI-compatible chat endpoint (llama.cpp server, Ollama, vLLM, ...).

Requests run on their own daemon thread, one at a time; the director submits and polls and never
waits. The answer must be a JSON object with the five facets as short strings; anything else
(garbage, a hang, a slow answer, a blocked word) falls back to the agents' caption. After repeated
failures the endpoint rests for a growing back-off, so an unreachable server costs nothing.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from models.captions.safety import ContentFilter, clean_text
from models.language.checks import EchoCheck
from models.language.client import post_json

log = logging.getLogger(__name__)

FACET_KEYS = ("scene", "motion", "style", "colour", "composition")
MAX_WORDS = 12
_ALLOWED = re.compile(r"^[\w\s,.'&()/-]+$", re.UNICODE)

SYSTEM_PROMPT = (
    "You turn a description of live music into an image prompt for a projection in a public museum. "
    "Answer with one JSON object and nothing else, with exactly these string keys: "
    "scene (what the picture shows), motion (how it moves), style (painting technique), "
    "colour (the palette), composition (framing). Each value is 2 to 10 plain words, family-friendly, "
    "no people's names, no text or letters in the picture. Match the music's mood."
)


@dataclass(frozen=True, slots=True)
class LlmResult:
    request_id: int
    facets: Mapping[str, str] | None
    """None when the answer was unusable; `error` says why."""
    error: str = ""
    latency_s: float = 0.0


def validate_facets(data: Any, content_filter: ContentFilter | None = None) -> dict[str, str]:
    """The five facets from a parsed answer, cleaned; ValueError naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError("answer is not a JSON object")
    facets: dict[str, str] = {}
    for key in FACET_KEYS:
        value = data.get(key)
        if not isinstance(value, str):
            raise ValueError(f"facet '{key}' is missing or not a string")
        facets[key] = check_text(key, value)
    if content_filter is not None:
        terms = content_filter.refuse(" ".join(facets.values()), "llm")
        if terms:
            raise ValueError(f"blocked words: {', '.join(terms)}")
    return facets


def answer_json(body: bytes) -> Any:
    """The JSON object inside an OpenAI-style chat completion's answer; ValueError naming the problem."""
    try:
        reply = json.loads(body.decode("utf-8", errors="replace"))
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ValueError("response is not an OpenAI chat completion") from None
    if not isinstance(content, str):
        raise ValueError("message content is not text")
    match = re.search(r"\{.*\}", content, re.DOTALL)  # models like to wrap JSON in prose or code fences
    if match is None:
        raise ValueError("no JSON object in the answer")
    try:
        return json.loads(match.group(0))
    except ValueError:
        raise ValueError("the answer's JSON does not parse") from None


def parse_answer(body: bytes, content_filter: ContentFilter | None = None) -> dict[str, str]:
    """Facets from an OpenAI-style chat completion response body."""
    return validate_facets(answer_json(body), content_filter)


FACET_ROLES = {
    "scene": "the scene agent: you decide what the picture shows (a place, a landscape, objects)",
    "motion": "the motion agent: you decide how the picture moves (speed, direction, rhythm of movement)",
    "style": "the style agent: you decide the painting or picture technique",
    "colour": "the colour agent: you decide the palette (two to four named colours)",
    "composition": "the composition agent: you decide the framing and where things sit in the picture",
}
AGENT_PROMPT = (
    "You are {role}, one of five agents who together write an image prompt for a projection in a public "
    "museum that follows live music. Read the music and the other agents' drafts, then answer with one JSON "
    "object and nothing else: {{\"{facet}\": \"2 to 10 plain words\", \"why\": \"a short reason\"}}. "
    "Fit the music's mood and agree with the other drafts; family-friendly, no people's names, no text in the picture."
)
DIRECTOR_PROMPT = (
    "You are the director of five image-prompt agents for a projection in a public museum that follows live "
    "music. Read the music and the agents' proposals and make them one coherent picture: keep what fits, "
    "change what clashes. " + SYSTEM_PROMPT.split(". ", 1)[1]
)


USER_FRAMES = ("Music now:", "A curated suggestion you may improve on:", "The other agents' drafts:",
               "Your own draft to improve on:", "The agents' proposals:", "Answer with the JSON object only.")
_ECHO = EchoCheck([SYSTEM_PROMPT, DIRECTOR_PROMPT, AGENT_PROMPT, *FACET_ROLES.values(), *USER_FRAMES])


def check_text(facet: str, value: str) -> str:
    """A facet's text cleaned, or ValueError: empty, too long, odd characters, or the instructions echoed."""
    text = clean_text(value, max_chars=120).strip(" .")
    if not text or len(text.split()) > MAX_WORDS or not _ALLOWED.match(text):
        raise ValueError(f"facet '{facet}' = {value[:60]!r} is empty, too long or has odd characters")
    echoed = _ECHO.echo(text)
    if echoed:
        raise ValueError(f"facet '{facet}' = {value[:60]!r} echoes the instructions ('{echoed}')")
    return text


def facet_schema(keys: tuple[str, ...]) -> dict[str, Any]:
    """A JSON schema for an answer with these string keys, each a few words (llama.cpp turns it into a grammar)."""
    words = {"type": "string", "minLength": 3, "maxLength": 80}
    return {"type": "object", "properties": {k: words for k in keys}, "required": list(keys),
            "additionalProperties": False}


class Unchanged(ValueError):
    """The answer hands back the drafts it was given: the caption is the agents', not the LLM's."""


def check_changed(facets: Mapping[str, str], drafts: Mapping[str, str]) -> None:
    if all(facets.get(f, "").strip().lower() == str(drafts.get(f, "")).strip(" .").lower() for f in FACET_KEYS):
        raise Unchanged("the answer repeats the drafts unchanged")


def parse_facet(body: bytes, facet: str, content_filter: ContentFilter | None = None) -> str:
    """One facet's text from a facet agent's chat completion; ValueError naming the problem."""
    data = answer_json(body)
    value = data.get(facet) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"facet '{facet}' is missing or not a string")
    text = check_text(facet, value)
    if content_filter is not None:
        terms = content_filter.refuse(text, "llm")
        if terms:
            raise ValueError(f"blocked words: {', '.join(terms)}")
    return text


class LlmFacets:
    """One worker thread talking to `url` + /chat/completions. `submit`/`poll` never block."""

    def __init__(self, url: str, model: str, timeout_s: float, content_filter: ContentFilter | None = None,
                 failures_before_rest: int = 2, rest_s: float = 30.0, max_rest_s: float = 300.0,
                 api_key: str = "") -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.model = model
        self.timeout_s = float(timeout_s)
        self.api_key = api_key
        self.filter = content_filter
        self._cond = threading.Condition()
        self._request: tuple[int, str, dict[str, str], str] | None = None
        self._results: dict[int, LlmResult] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failures = 0
        self._failures_before_rest = failures_before_rest
        self._rest_s = rest_s
        self._max_rest_s = max_rest_s
        self._resting_until_s = -1.0
        self.stats: dict[str, int] = {"requests": 0, "ok": 0, "failed": 0, "late": 0}

    def available(self, t_s: float) -> bool:
        """False while the endpoint rests after repeated failures."""
        with self._cond:
            return not self._closed and t_s >= self._resting_until_s

    def submit(self, request_id: int, desc: Any, suggestion: Mapping[str, str]) -> None:
        """Queue a request (replacing any not yet started). Starts the worker on first use."""
        user = (f"Music now: {desc.text}.\nA curated suggestion you may improve on: "
                f"{json.dumps(dict(suggestion))}\nAnswer with the JSON object only.")
        with self._cond:
            if self._closed:
                return
            self._request = (request_id, user, dict(suggestion), desc.text)
            self._results = {k: v for k, v in self._results.items() if k >= request_id - 2}
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="caption-llm", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def poll(self, request_id: int) -> LlmResult | None:
        with self._cond:
            return self._results.pop(request_id, None)

    def note_failure(self, t_s: float, why: str) -> None:
        """Count a failure the caller saw (e.g. an answer later than its deadline); may start a rest."""
        with self._cond:
            if why == "late":
                self.stats["late"] += 1
            self._failures += 1
            if self._failures >= self._failures_before_rest:
                rest = min(self._max_rest_s, self._rest_s * 2 ** (self._failures - self._failures_before_rest))
                self._resting_until_s = t_s + rest
                log.warning("LLM endpoint %s failed %d times (last: %s); using the agents for %.0f s",
                            self.endpoint, self._failures, why, rest)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    unusable = "LLM answer unusable (%s); the agents' caption is used"

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._request is not None)
                if self._closed:
                    return
                request, self._request = self._request, None
                assert request is not None
                request_id, user, drafts, music = request
                self.stats["requests"] += 1
            start = time.monotonic()
            try:
                result = LlmResult(request_id, self._answer(user, drafts, music), latency_s=time.monotonic() - start)
            except Exception as exc:  # any failure at all means "use the agents"; the loop must not care why
                result = LlmResult(request_id, None, error=str(exc) or type(exc).__name__, latency_s=time.monotonic() - start)
            with self._cond:
                self._results[request_id] = result
                if result.facets is not None:
                    self.stats["ok"] += 1
                    self._failures = 0
                else:
                    self.stats["failed"] += 1
            if result.facets is None:
                log.info(self.unusable, result.error)

    def _answer(self, user: str, drafts: Mapping[str, str], music: str) -> dict[str, str]:
        facets = self._ask(user)
        check_changed(facets, drafts)
        return facets

    rounds = 1
    """Calls one after another per caption: the director waits at most rounds x timeout_s."""

    def _ask(self, user: str) -> dict[str, str]:
        return parse_answer(self._post(SYSTEM_PROMPT, user), self.filter)

    constrained = True
    """Ask for JSON by schema; turned off for good when the server refuses such a request."""

    def _post(self, system: str, user: str, keys: tuple[str, ...] = FACET_KEYS) -> bytes:
        payload: dict[str, Any] = {"model": self.model, "temperature": 0.7, "max_tokens": 200,
                                   "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        if self.constrained:
            payload["response_format"] = {"type": "json_schema", "json_schema": {"name": "facets", "schema": facet_schema(keys)}}
        try:
            return post_json(self.endpoint, payload, self.timeout_s, api_key=self.api_key)
        except ValueError as exc:
            if not (self.constrained and str(exc).startswith("HTTP 4")):
                raise
            # The server does not take a schema (HTTP 400): free text from now on, validated as before.
            log.info("LLM server %s refuses response_format json_schema (%s); asking for free text", self.endpoint, exc)
            self.constrained = False
            payload.pop("response_format")
            return post_json(self.endpoint, payload, self.timeout_s, api_key=self.api_key)


class LlmAgents(LlmFacets):
    """Five facet agents and a director, each one chat call with its own role.

    Per caption: the five facet agents are asked at once (one thread each), every one with the music
    and the other facets' drafts (the phrase-bank agents' suggestion); then the director gets their
    proposals and answers the five facets. A facet agent that fails keeps the bank's draft; a
    director that fails leaves the agents' proposals (if any agent answered); if nothing usable
    came back the caption falls back to the bank agents. Two rounds, so the caller waits at most
    2 x timeout_s. `log` keeps the last exchanges (role, answer or error) for the show log.
    """

    rounds = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges: list[dict[str, str]] = []

    unusable = "LLM agents gave nothing usable (%s); the bank agents' caption is used"

    def _answer(self, user: str, drafts: Mapping[str, str], music: str) -> dict[str, str]:
        return self._round(music, drafts)  # the agents read the music's words, not the one-call prompt

    def _round(self, music: str, drafts: Mapping[str, str]) -> dict[str, str]:
        proposals: dict[str, str] = {}
        errors: dict[str, str] = {}

        def agent(facet: str) -> None:
            others = {f: v for f, v in drafts.items() if f != facet}
            user = (f"Music now: {music}.\nThe other agents' drafts: {json.dumps(others)}\n"
                    f"Your own draft to improve on: {json.dumps(drafts.get(facet, ''))}\nAnswer with the JSON object only.")
            try:
                proposals[facet] = parse_facet(self._post(AGENT_PROMPT.format(role=FACET_ROLES[facet], facet=facet), user,
                                                          (facet, "why")),
                                               facet, self.filter)
            except Exception as exc:
                errors[facet] = str(exc) or type(exc).__name__

        threads = [threading.Thread(target=agent, args=(f,), name=f"caption-llm-{f}", daemon=True) for f in FACET_KEYS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timeout_s + 0.5)
        answered = dict(proposals)  # a thread still running past its timeout is ignored
        merged = {f: answered.get(f) or drafts.get(f, "") for f in FACET_KEYS}
        user = (f"Music now: {music}.\nThe agents' proposals: {json.dumps(merged)}\nAnswer with the JSON object only.")
        try:
            final = parse_answer(self._post(DIRECTOR_PROMPT, user), self.filter)
            director_error = ""
        except Exception as exc:
            final = None
            director_error = str(exc) or type(exc).__name__
        with self._cond:
            self.exchanges = ([{"role": f, "answer": answered[f]} for f in answered]
                              + [{"role": f, "error": errors[f]} for f in errors if f not in answered]
                              + [{"role": "director", **({"answer": json.dumps(final)} if final else {"error": director_error})}])
        if final is not None:
            check_changed(final, drafts)  # the director handed back the bank's drafts: not the LLM's caption
            return final
        if answered:
            merged_facets = validate_facets(merged, self.filter)
            check_changed(merged_facets, drafts)
            return merged_facets
        raise ValueError(f"no agent answered ({'; '.join(sorted(set(errors.values())))}) and the director failed ({director_error})")
