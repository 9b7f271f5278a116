"""Hand-offs between threads. Both kinds count what they drop, so nothing is lost silently."""
from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    """One slot, overwritten by each put. Readers see only the freshest item.

    `dropped` counts items overwritten before any reader took them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._version = 0
        self._taken_version = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._version > self._taken_version:
                self.dropped += 1
            self._item = item
            self._version += 1
            self._cond.notify_all()

    def peek(self) -> T | None:
        """The latest item (or None), without marking it taken. Never blocks."""
        with self._cond:
            return self._item

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def take(self, timeout_s: float | None = None, after_version: int | None = None) -> T | None:
        """Wait for an item newer than `after_version` (default: the last taken); None on timeout."""
        with self._cond:
            seen = self._taken_version if after_version is None else after_version
            if not self._cond.wait_for(lambda: self._version > seen, timeout_s):
                return None
            self._taken_version = self._version
            return self._item


class DropOldest(Generic[T]):
    """Bounded FIFO; when full, the oldest item is dropped and counted."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout_s: float | None = None) -> T | None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) > 0, timeout_s):
                return None
            return self._items.popleft()

    def drain(self) -> list[T]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
