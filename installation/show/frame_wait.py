"""The main loop's wait between projector frames: operator commands applied the moment they
arrive, and, with display.wake_on_onset, a new hit drawn at once instead of at the next frame.

The onset stage puts a WAKE on the commands queue for each hit strong enough to draw
(installation.stages.onsets.WAKE_STRENGTH), so one wait serves both. Frames stay at least
WAKE_FLOOR periods apart (at most twice display.fps); the cadence goes on from the woken frame.
"""
from __future__ import annotations

import threading

from installation.clock import Clock

WAKE_FLOOR = 0.5
"""With display.wake_on_onset, frames come at least this many periods apart."""


class FrameWait:
    """`until(next_s, frame_s)` -> when the next frame is due. `control` is
    installation.operators.control.Control, `guard` the projector's MainFaults."""

    def __init__(self, control, commands, clock: Clock, stop_event: threading.Event, guard, period_s: float,
                 wake_on_onset: bool) -> None:
        self.control, self.commands, self.clock = control, commands, clock
        self.stop_event, self.guard = stop_event, guard
        self.floor_s = WAKE_FLOOR * period_s if wake_on_onset else None

    def until(self, next_s: float, frame_s: float) -> float:
        """Wait for the frame due at `next_s` (the last one was drawn at `frame_s`); a hit brings it
        forward to now, or to the floor after `frame_s` when that is later."""
        if self.floor_s is None:
            self.guard("control", self.control.apply_until, self.commands, next_s, self.clock)
            if self.clock.now_s() < next_s:  # apply_until failed early: still keep the frame rate
                self.clock.sleep_until(next_s, self.stop_event)
            return next_s
        earliest_s = frame_s + self.floor_s
        while True:
            woken = self.guard("control", self.control.wait_frame, self.commands, next_s, self.clock)
            now_s = self.clock.now_s()
            if now_s >= next_s or self.stop_event.is_set():
                return next_s
            if not woken:  # wait_frame failed early: still keep the frame rate
                self.clock.sleep_until(next_s, self.stop_event)
                return next_s
            if now_s >= earliest_s:
                return now_s
            next_s = min(next_s, earliest_s)  # the hit is drawn as soon as the floor allows
