"""A small OpenAI-compatible chat server for a GGUF model, run with transformers on the CPU.

The fast route to a real local model when llama.cpp's server is not built: transformers reads the
GGUF (de-quantised to float32; the converted model is cached under
~/.cache/chromesthesia/gguf-hf/ so later starts skip the conversion), decodes greedily on one
thread, one request at a time, and answers POST /v1/chat/completions and GET /v1/models.
`response_format` {"type": "json_schema"} (or llama.cpp's top-level `json_schema`) is honoured by
constrained decoding (lm-format-enforcer masks every token the schema does not allow);
`--no-schema` answers such requests with HTTP 400 instead, as a server without it does. A GBNF
`grammar` is refused with HTTP 400. Images in a message are dropped: these are text models.

    python tools/gguf_chat_server.py --model smollm2 --port 8090
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_llm import CACHE_DIR, gguf_path  # noqa: E402

log = logging.getLogger("gguf_chat_server")


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set rest = messages[1:] %}{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ (first if loop.first else '') + m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
"""Gemma's turn format (the system prompt goes into the first user turn): its GGUF carries no template."""
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""What llama.cpp's server falls back to for a model without a template."""


def with_template(model, tokenizer):
    """The tokenizer with a chat template (the GGUF's, else the family's), and the ids that end a turn."""
    if not tokenizer.chat_template:
        gemma = str(getattr(model.config, "model_type", "")).startswith("gemma")
        tokenizer.chat_template = GEMMA_TEMPLATE if gemma else CHATML_TEMPLATE
    stops = {tokenizer.eos_token_id}
    for marker in ("<end_of_turn>", "<|im_end|>"):
        idx = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(idx, int) and idx != tokenizer.unk_token_id:
            stops.add(idx)
    return tokenizer, sorted(i for i in stops if i is not None)


def load(gguf: Path):
    """(model, tokenizer) for the GGUF file, converted once and cached as a transformers folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tag = hashlib.sha256(f"{gguf.resolve()}:{gguf.stat().st_size}".encode()).hexdigest()[:12]
    cached = CACHE_DIR / "gguf-hf" / f"{gguf.stem}-{tag}"
    if (cached / "config.json").exists():
        return (AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32).eval(),
                AutoTokenizer.from_pretrained(cached))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    partial = cached.with_name(cached.name + ".partial")
    # The weights are plain float32 once read; only the GGUF marker stops transformers saving them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(cached)  # whole or not at all: a killed conversion leaves no half cache
    return model, tokenizer


@functools.lru_cache(maxsize=1)
def enforcer_data(tokenizer):
    """lm-format-enforcer's view of the vocabulary (its transformers helper does not import under
    transformers 5; this is the same table, built once per server)."""
    from lmformatenforcer import TokenEnforcerTokenizerData

    token_0 = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for idx in range(len(tokenizer)):
        if idx in special:
            continue
        after_0 = tokenizer.decode([token_0, idx])[1:]
        regular.append((idx, after_0, len(after_0) > len(tokenizer.decode([idx]))))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")
    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, len(tokenizer))


class SchemaMask:
    """A logits processor that leaves only the tokens the JSON schema allows next."""

    def __init__(self, tokenizer, schema: dict[str, Any]) -> None:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        # The enforcer takes the first sequence it sees as the prompt and parses only what follows.
        self.enforcer = TokenEnforcer(enforcer_data(tokenizer), JsonSchemaParser(schema))

    def __call__(self, input_ids, scores):
        import torch

        allowed = self.enforcer.get_allowed_tokens(input_ids[0].tolist()).allowed_tokens
        mask = torch.full_like(scores, float("-inf"))
        mask[:, allowed] = 0.0
        return scores + mask


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list (images dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def build_app(model, tokenizer, name: str, schema_ok: bool, max_tokens_cap: int):
    tokenizer, stops = with_template(model, tokenizer)
    import torch
    from fastapi import FastAPI, HTTPException
    from transformers import LogitsProcessorList

    app = FastAPI()
    lock = threading.Lock()  # one generation at a time, as a one-slot llama-server
    stats = {"requests": 0, "constrained": 0}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "local",
                                            "meta": {"route": "transformers", "json_schema": schema_ok}}]}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", **stats}

    @app.post("/v1/chat/completions")
    def chat(body: dict) -> dict:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPException(400, "messages missing")
        if body.get("grammar"):
            raise HTTPException(400, "grammar (GBNF) is not supported by this server")
        schema = None
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
        elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
            schema = {"type": "object"}
        elif isinstance(body.get("json_schema"), dict):
            schema = body["json_schema"]
        if schema is not None and not schema_ok:
            raise HTTPException(400, "response_format json_schema is not supported by this server")
        chat_messages = [{"role": str(m.get("role", "user")), "content": text_of(m.get("content"))}
                         for m in messages if isinstance(m, dict)]
        try:
            max_new = max(1, min(int(body.get("max_tokens") or max_tokens_cap), max_tokens_cap))
        except (TypeError, ValueError):
            raise HTTPException(400, "max_tokens is not a number") from None
        with lock:
            started = time.monotonic()
            enc = tokenizer.apply_chat_template(chat_messages, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
            prompt_len = int(enc["input_ids"].shape[1])
            processors = LogitsProcessorList([SchemaMask(tokenizer, schema)] if schema is not None else [])
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, logits_processor=processors,
                                     eos_token_id=stops, pad_token_id=tokenizer.eos_token_id)
            new = out[0][prompt_len:].tolist()
            stats["requests"] += 1
            stats["constrained"] += schema is not None
            text = tokenizer.decode(new, skip_special_tokens=True)
            finish = "length" if len(new) >= max_new and (not new or new[-1] not in stops) else "stop"
            log.info("answered %d tokens in %.1f s (%s)", len(new), time.monotonic() - started,
                     "schema" if schema is not None else "free")
        return {"id": f"chatcmpl-{stats['requests']}", "object": "chat.completion", "created": int(time.time()),
                "model": name, "choices": [{"index": 0, "finish_reason": finish,
                                            "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt_len, "completion_tokens": len(new),
                          "total_tokens": prompt_len + len(new)}}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, gemma3 or a path to a .gguf file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=400, help="cap on max_tokens per answer")
    parser.add_argument("--no-schema", action="store_true", help="refuse response_format json_schema (HTTP 400)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    import torch
    import uvicorn
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(max(1, args.threads))
    hf_logging.disable_progress_bar()
    path = gguf_path(args.model)
    started = time.monotonic()
    model, tokenizer = load(path)
    log.info("loaded %s in %.1f s", path.name, time.monotonic() - started)
    app = build_app(model, tokenizer, path.stem, not args.no_schema, args.max_tokens)
    # Headers must arrive promptly and connections are few: this is a test server, not a service.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=5, limit_concurrency=32)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
