"""What the OSC control server is told at its door: its settings and the operators' address space.

`OscSettings` is built by installation.config (`OscConfig.settings()`) from the validated [osc]
section; its defaults are the section's (a test compares them). `CommandSpace` is built from the
operators' route table at the wiring, so this package keeps no list of the operators' addresses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class OscSettings:
    """The control server's port, allowlists and limits."""

    host: str = "127.0.0.1"
    port: int = 7400
    allow: tuple[str, ...] = ("127.0.0.0/8",)
    admin_allow: tuple[str, ...] = ("127.0.0.1/32",)
    admin_token: str = ""
    rate_limit_hz: float = 500.0
    burst: int = 1000
    feedback_hz: float = 5.0
    feedback_max_per_s: float = 1000.0
    subscribe_ttl_s: float = 60.0
    max_subscribers: int = 16
    receive_buffer_bytes: int = 8 << 20
    realtime_priority: int = 0
    wakeup_slice_ms: float = 0.1


def _never(address: str) -> bool:
    return False


@dataclass(frozen=True)
class CommandSpace:
    """Which addresses the server hands on as commands, which only osc.admin_allow hosts may send,
    which answer their current value when sent without arguments, and which address prefixes are
    faders (their values over the rate limit are coalesced, newest kept)."""

    is_command: Callable[[str], bool] = _never
    is_admin: Callable[[str], bool] = _never
    has_value: Callable[[str], bool] = _never
    fader_prefixes: tuple[str, ...] = ()
