"""Dashboard sign-in: the token is given once (the login form, or `?token=` in a link) and the
browser then holds a signed session cookie instead, so the token does not stay in the address
bar, the history or a screenshot.

A session is `issued.nonce.signature`, signed with a key of this process: revoking every session
is a new key (the dashboard's button, OSC `/web/revoke` from an `osc.admin_allow` host); a restart
signs everyone out too, and a new `web.token` closes the door to the old token as well.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Callable

COOKIE = "chromesthesia_session"


class Sessions:
    """Issues and checks session cookies; `revoke_all()` ends every one of them at once."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self.revoked = 0
        """Times every session was revoked (shown on the dashboard)."""

    def _sign(self, key: bytes, payload: str) -> str:
        return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{int(self._clock())}.{secrets.token_urlsafe(12)}"
        with self._lock:
            key = self._key
        return f"{payload}.{self._sign(key, payload)}"

    def valid(self, cookie: str | None) -> bool:
        if not cookie or cookie.count(".") != 2:
            return False
        payload, _, signature = cookie.rpartition(".")
        with self._lock:
            key = self._key
        if not hmac.compare_digest(signature.encode(), self._sign(key, payload).encode()):
            return False
        issued = payload.split(".", 1)[0]
        return issued.isdigit() and 0 <= self._clock() - int(issued) <= self.max_age_s

    def revoke_all(self) -> None:
        with self._lock:
            self._key = secrets.token_bytes(32)
            self.revoked += 1
