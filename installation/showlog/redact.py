"""Secrets (web.token, osc.admin_token, the LLM backends' api_key) kept out of what is printed.

Two layers: config errors never quote a secret key's value (installation/config.py asks
`is_secret` before it quotes), and once a config is loaded its secret values are masked in every
log record, whichever logger writes it and wherever it goes (terminal, journal, the dashboard's
fault list, the show log's faults).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

MASK = "<redacted>"
SECRET_NAMES = frozenset({"token", "admin_token", "api_key", "password", "secret"})
SECRET_ENDINGS = ("_token", "_api_key", "_password", "_secret")
MIN_SECRET_CHARS = 4
"""Shorter values are not masked in logs: masking "a" would garble every line."""


def is_secret(key: str) -> bool:
    """True for a secret key, by its last part: `web.token`, `osc.admin_token`, `caption.llm_api_key`."""
    name = key.rsplit(".", 1)[-1].lower()
    return name in SECRET_NAMES or name.endswith(SECRET_ENDINGS)


def redact_data(value: Any, key: str = "") -> Any:
    """A copy of config data (dicts, lists, values) with every secret key's value masked."""
    if key and is_secret(key) and value not in ("", None):
        return MASK
    if isinstance(value, dict):
        return {k: redact_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v) for v in value)
    return value


def secret_values(cfg: Any) -> list[str]:
    """The non-empty secret values of a validated config (a pydantic model or its dict)."""
    data = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg
    found: list[str] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)
        elif key and is_secret(key) and isinstance(node, str) and len(node) >= MIN_SECRET_CHARS:
            found.append(node)

    walk(data, "")
    return found


class _Masker:
    """A log record factory that masks the remembered secrets in each record's message."""

    def __init__(self) -> None:
        self.secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._installed = False
        self._factory = logging.getLogRecordFactory()

    def remember(self, values: Iterable[str]) -> None:
        with self._lock:
            self.secrets = self.secrets | {v for v in values if len(v) >= MIN_SECRET_CHARS}
            if self.secrets and not self._installed:
                self._factory = logging.getLogRecordFactory()
                logging.setLogRecordFactory(self._record)
                self._installed = True

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._factory(*args, **kwargs)
        if self.secrets:
            try:
                message = record.getMessage()
            except Exception:  # a broken format is the logging module's to report
                return record
            masked = self.mask(message)
            if masked != message:
                record.msg, record.args = masked, None
        return record


_masker = _Masker()


def remember(cfg: Any) -> None:
    """Mask this config's secret values in every later log record of the process."""
    _masker.remember(secret_values(cfg))


def remembered(cfg: Any) -> Any:
    """`remember(cfg)`, then cfg."""
    remember(cfg)
    return cfg


def mask(text: str) -> str:
    """`text` with every remembered secret masked (for text that does not go through logging)."""
    return _masker.mask(text)
