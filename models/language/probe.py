"""What a configured LLM server supports, for `run.py check`: reachable, the model listed, JSON by
schema, ABC by grammar.

Two tiny requests tell. A chat completion of one token with `response_format` json_schema: a 2xx
answer means the schema is taken (llama.cpp, Ollama, vLLM turn it into a grammar); HTTP 4xx means
the server refuses it, and the captions ask for free text and validate it. A completion with a GBNF
`grammar` (llama.cpp's field) that admits one odd word only: the word back means the grammar is
taken (the composer asks for ABC by grammar); anything else means it is ignored, HTTP 4xx that it is
refused, and the composer asks for free ABC and validates it.
"""
from __future__ import annotations

import json
from typing import Any

from models.language.client import get_json, post_json

PROBE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"ok": {"type": "string"}}, "required": ["ok"]}
PROBE_WORD = "qz"
"""What the probe's grammar admits: no model says it unasked."""
PROBE_GRAMMAR = f'root ::= "{PROBE_WORD}"'


def grammar_support(url: str, model: str, timeout_s: float = 10.0) -> str:
    """"taken", "ignored" or "refused (HTTP 4xx ...)" for a GBNF `grammar` at `url` (".../v1");
    OSError, TimeoutError or ValueError when the server gives no usable answer."""
    payload = {"model": model, "max_tokens": 4, "temperature": 0, "grammar": PROBE_GRAMMAR,
               "messages": [{"role": "user", "content": "Say hello."}]}
    try:
        body = post_json(url.rstrip("/") + "/chat/completions", payload, timeout_s)
    except ValueError as exc:
        if str(exc).startswith("HTTP 4"):
            return f"refused ({exc})"
        raise
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not an OpenAI chat answer") from None
    return "taken" if str(content).strip() == PROBE_WORD else "ignored"


def describe_llm_server(url: str, model: str, timeout_s: float = 10.0) -> str:
    """One line: whether the server at `url` (".../v1") answers, lists `model`, takes a JSON schema
    and a GBNF grammar."""
    base = url.rstrip("/")
    listed = get_json(base + "/models", timeout_s)
    names = [str(m.get("id", "")) for m in listed.get("data", []) if isinstance(m, dict)] \
        if isinstance(listed, dict) and isinstance(listed.get("data"), list) else []
    payload = {"model": model, "max_tokens": 1, "temperature": 0,
               "messages": [{"role": "user", "content": "Answer {\"ok\": \"yes\"}."}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "probe", "schema": PROBE_SCHEMA}}}
    try:
        post_json(base + "/chat/completions", payload, timeout_s)
        schema = "JSON schema: taken (constrained output)"
    except ValueError as exc:
        if not str(exc).startswith("HTTP 4"):
            return f"{base}: unusable answer ({exc}); the fallback is used"
        schema = f"JSON schema: refused ({exc}); free text, validated"
    except (OSError, TimeoutError) as exc:
        return f"{base}: not reachable ({exc}); the fallback is used until it is"
    try:
        support = grammar_support(base, model, timeout_s)
        grammar = ("ABC grammar: taken (constrained output)" if support == "taken"
                   else f"ABC grammar: {support}; free ABC, validated")
    except (OSError, TimeoutError, ValueError) as exc:
        grammar = f"ABC grammar: no usable answer ({exc}); free ABC, validated"
    if not names:
        models = "no model list"
    elif any(model == n or n.startswith(model + ":") or n.endswith("/" + model) for n in names):
        models = f"model {model} listed"
    else:
        models = f"model {model} not listed (serves {', '.join(names[:3])})"
    return f"{base}: answers; {models}; {schema}; {grammar}"
