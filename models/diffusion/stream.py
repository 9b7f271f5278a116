"""The frames in flight: each one's timestep plan on the device, how many stream rows hold a
frame, and whether the latent history holds a finished one (the feedback's source)."""
from __future__ import annotations

from collections import deque
from typing import Any

from .engine import StreamEngine
from .schedule import Schedule


class FramesInFlight:
    """Plans made once per allocation, chosen per frame by device-to-device copies only, so a
    strength change never copies from the host mid-show. Owned by the renderer thread."""

    def __init__(self, engine: StreamEngine, schedule: Schedule, device: str, dtype) -> None:
        self.engine, self.schedule = engine, schedule
        self.device, self.dtype = device, dtype
        self._plans: dict[int, tuple[Any, Any]] = {}
        self._keys: deque[int] = deque()
        self.in_flight = 0
        self.history = False
        """True once a finished frame's latents can feed the next frame."""

    def make_plans(self, steps: int) -> None:
        """Every strength's timesteps and constants for `steps`, on the device; forgets the frames in flight."""
        import torch

        self._plans = {}
        for key in self.schedule.all_keys(steps):
            ts, table = self.schedule.table(steps, key)
            self._plans[key] = (torch.from_numpy(ts).to(self.device),
                                torch.from_numpy(table).to(device=self.device, dtype=self.dtype))
        self.clear()

    def clear(self) -> None:
        """No frame in flight, no latent history (a new size, steps or scene)."""
        self._keys.clear()
        self.in_flight = 0
        self.history = False

    def restart(self) -> None:
        """After a bad frame: its NaN can poison the latent feedback and the frames in flight."""
        self.engine.reset_history()
        self.history = False
        self.in_flight = 0

    def plan(self, key: int) -> None:
        """Queue this frame's schedule key and put every row's plan on the device."""
        engine = self.engine
        self._keys.appendleft(key)
        while len(self._keys) > engine.rows:
            self._keys.pop()
        keys = tuple(self._keys) + (self._keys[-1],) * (engine.rows - len(self._keys))
        if not engine.stream_batch:
            engine.set_plan(*self._plans[keys[0]])
            return
        for row, row_key in enumerate(keys):
            ts, table = self._plans[row_key]
            engine.set_plan_row(row, ts, table)

    def filling(self) -> bool:
        """True while the stream batch fills: the output row holds no finished frame yet."""
        if self.in_flight < self.engine.rows - 1:
            self.in_flight += 1
            return True
        return False
