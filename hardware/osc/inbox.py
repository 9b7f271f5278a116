"""The hand-off from the control threads (OSC, MIDI in, web) to the thread that applies commands.

`CommandInbox` is a bounded FIFO that never drops what it accepted: `put` refuses (returns False)
when full, so the sender can be told "busy" instead of "ok". Fader values go in with
`put_latest(key, command)`: a value still waiting under the same key (an address and a sender) is
replaced in place, so a fast fader costs one slot and its newest value is the one applied.
"""
from __future__ import annotations

import collections
import threading
from typing import Hashable, TypeVar

from installation.mailbox import DropOldest

T = TypeVar("T")


class CommandInbox(DropOldest[T]):
    """Any thread puts; one thread (the main loop) gets. Reads like mailbox.DropOldest (so it
    stands wherever one is expected), but it refuses instead of dropping."""

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._entries: collections.deque[list] = collections.deque()  # [key or None, item]
        self._keyed: dict[Hashable, list] = {}
        self._cond = threading.Condition()
        self.dropped = 0
        """Always 0: nothing accepted is ever dropped (kept for status pages that show drops)."""
        self.refused = 0
        self.coalesced = 0

    def put(self, item: T) -> bool:  # type: ignore[override]  # True/False instead of None
        """Append; False (and nothing queued) when the inbox is full."""
        with self._cond:
            if len(self._entries) >= self._capacity:
                self.refused += 1
                return False
            self._entries.append([None, item])
            self._cond.notify()
            return True

    def put_latest(self, key: Hashable, item: T) -> bool:
        """Queue `item`, or replace the waiting item with the same key (keeps its place)."""
        with self._cond:
            entry = self._keyed.get(key)
            if entry is not None:
                entry[1] = item
                self.coalesced += 1
                return True
            if len(self._entries) >= self._capacity:
                self.refused += 1
                return False
            entry = [key, item]
            self._keyed[key] = entry
            self._entries.append(entry)
            self._cond.notify()
            return True

    def _pop(self) -> T:
        key, item = self._entries.popleft()
        if key is not None:
            del self._keyed[key]
        return item

    def get(self, timeout_s: float | None = None) -> T | None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._entries) > 0, timeout_s):
                return None
            return self._pop()

    def drain(self) -> list[T]:
        with self._cond:
            items = [item for _, item in self._entries]
            self._entries.clear()
            self._keyed.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)
