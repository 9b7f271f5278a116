"""Every device's health in one place, for /status, /metrics and the dashboard; a new loss is a fault.

Devices in this process report through their `health` (hardware.recovery.DeviceHealth); the MIDI
ports of the real-time sender process report through its scheduler's stats. `refresh()` runs on
the main thread at the status rate (asking the sender process there, never on the OSC thread);
each loss it has not seen before goes to the show log as a fault, once.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable


class DeviceBoard:
    def __init__(self, devices: Iterable[Any], schedulers: Iterable[Any],
                 on_loss: Callable[[str, str], None] = lambda name, reason: None) -> None:
        self._local = [health for device in devices if (health := getattr(device, "health", None)) is not None]
        self._remote = [s for s in schedulers if hasattr(s, "output_specs")]  # the sender process's ports
        self._on_loss = on_loss
        self._lock = threading.Lock()
        self._states: dict[str, dict] = {}
        self._losses_seen: dict[str, int] = {}

    def refresh(self) -> None:
        states = {health.name: health.snapshot() for health in self._local}
        for scheduler in self._remote:
            states.update(scheduler.stats.get("devices") or {})
        for name, state in states.items():
            seen = self._losses_seen.get(name, 0)
            if state.get("losses", 0) > seen:
                self._on_loss(f"{state.get('kind', 'device')} {name}", f"lost: {state.get('reason', 'unknown')}")
            self._losses_seen[name] = max(seen, state.get("losses", 0))
        with self._lock:
            self._states = states

    def refreshing(self, snapshot: Callable[[], dict], guard: Callable[..., object]) -> Callable[[], dict]:
        """`snapshot` with a refresh first (under `guard`, the main loop's fault catcher): the main
        loop's status call, so the sender process is asked on the main thread only."""
        def refreshed() -> dict:
            guard("devices", self.refresh)
            return snapshot()
        return refreshed

    def states(self) -> dict[str, dict]:
        """name -> {kind, state, since_s, losses, reopens, reopen_failures[, reason]} (any thread)."""
        with self._lock:
            return dict(self._states)

    def losses(self) -> int:
        with self._lock:
            return sum(int(state.get("losses", 0)) for state in self._states.values())
