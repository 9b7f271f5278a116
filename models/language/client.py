"""One POST to an LLM server with an overall deadline and a size cap, whatever the server does.

A socket timeout bounds each read, not the answer: a server that trickles one byte every half
second, or streams forever, would hold a reader for ever and grow its memory without bound. Here
a timer shuts the socket down at the deadline (any blocked read returns at once), and the body
is refused as soon as it passes `max_bytes`.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from typing import Any

MAX_ANSWER_BYTES = 1 << 20
"""No chat answer the installation asks for is near this; an endless stream stops here."""


class AnswerTooLarge(ValueError):
    pass


API_KEY_ENV = "CHROMESTHESIA_LLM_API_KEY"
"""The key sent when the config gives none (captions.llm_api_key, compose.llm_api_key)."""


def auth_headers(api_key: str = "") -> dict[str, str]:
    """The request's headers: JSON, and `Authorization: Bearer` when a key is set or in API_KEY_ENV."""
    import os
    key = api_key or os.environ.get(API_KEY_ENV, "")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def post_json(url: str, payload: Any, timeout_s: float, max_bytes: int = MAX_ANSWER_BYTES, api_key: str = "") -> bytes:
    """The body of a 2xx answer to POST `payload` at `url`, read within `timeout_s` in all.

    TimeoutError past the deadline, AnswerTooLarge past `max_bytes`, OSError for a refused or
    broken connection, ValueError for a non-2xx status.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) address: {url!r}")
    deadline = time.monotonic() + max(0.01, timeout_s)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=max(0.01, timeout_s))
    expired = threading.Event()

    def cut() -> None:  # runs on the timer's thread: unblocks whatever read is waiting
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(max(0.01, timeout_s), cut)
    timer.daemon = True
    timer.start()
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(payload).encode("utf-8")
        conn.request("POST", path or "/", body=body, headers=auth_headers(api_key))
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise AnswerTooLarge(f"answer of {int(length)} bytes, more than {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete answer within {timeout_s:.1f} s")
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise AnswerTooLarge(f"answer larger than {max_bytes} bytes")
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout_s:.1f} s")
        if not 200 <= response.status < 300:
            raise ValueError(f"HTTP {response.status} from {parts.hostname}")
        return b"".join(chunks)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise TimeoutError(f"no complete answer within {timeout_s:.1f} s") from None
        if isinstance(exc, OSError):
            raise
        raise OSError(f"broken HTTP answer ({type(exc).__name__})") from None
    finally:
        timer.cancel()
        conn.close()


def get_json(url: str, timeout_s: float, max_bytes: int = 1 << 16) -> Any:
    """A small JSON document by GET (server capabilities), within `timeout_s`; None when there is none."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        data = response.read(max_bytes + 1)
        if response.status != 200 or len(data) > max_bytes:
            return None
        return json.loads(data)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
