"""What a configured LLM server supports, for `run.py check`: reachable, the model listed, JSON by schema.

One tiny request tells: a chat completion of one token with `response_format` json_schema. A 2xx
answer means the schema is taken (llama.cpp, Ollama, vLLM turn it into a grammar); HTTP 4xx means
the server refuses it, and the installation will ask for free text and validate it.
"""
from __future__ import annotations

from typing import Any

from models.language.client import get_json, post_json

PROBE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"ok": {"type": "string"}}, "required": ["ok"]}


def describe_llm_server(url: str, model: str, timeout_s: float = 10.0) -> str:
    """One line: whether the server at `url` (".../v1") answers, lists `model`, and takes a JSON schema."""
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
    if not names:
        models = "no model list"
    elif any(model == n or n.startswith(model + ":") or n.endswith("/" + model) for n in names):
        models = f"model {model} listed"
    else:
        models = f"model {model} not listed (serves {', '.join(names[:3])})"
    return f"{base}: answers; {models}; {schema}"
