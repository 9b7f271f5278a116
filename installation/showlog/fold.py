"""Folding of the show log's chattiest records, so a day's log stays small and still complete.

- A fader gesture (the same continuous command, e.g. /param/brightness, from the same sender,
  with no pause longer than `gesture_gap_s`) becomes one "gesture" record: first value, last
  value, count, duration. A gesture longer than `gesture_max_s` is written in parts, so a crash
  never loses more than that much of one.
- /tempo (MIDI clock in, an operator) is written when it moved by `tempo_min_change_bpm` and at
  most once every `tempo_min_interval_s`; a held value is written when it falls due, and /tempo 0
  (the sender stopped) at once.
- Consecutive critic records of the same kind (same event, same texts; only the numbers differ)
  become one record with `repeats` and the latest numbers.

Nothing an operator did is lost: the last value of every gesture is written, at the latest when
the log closes (`flush`). The folder holds no lock: ShowLog calls it under its own.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from installation.config import ShowLogConfig

Record = tuple[float, str, dict[str, Any]]
"""(t_s, kind, fields) of a record to write."""

CONTINUOUS_PREFIXES = ("/param/",)
CONTINUOUS_ADDRESSES = frozenset({"/crossfade"})


@dataclasses.dataclass(frozen=True)
class FoldSettings:
    gesture_gap_s: float = 0.5
    gesture_max_s: float = 10.0
    tempo_min_change_bpm: float = 1.0
    tempo_min_interval_s: float = 1.0

    @classmethod
    def from_config(cls, cfg: ShowLogConfig) -> "FoldSettings":
        return cls(cfg.gesture_gap_s, cfg.gesture_max_s, cfg.tempo_min_change_bpm, cfg.tempo_min_interval_s)


@dataclasses.dataclass
class _Gesture:
    address: str
    sender: Any
    first: float
    last: float
    start_s: float
    last_s: float
    count: int = 1

    def record(self) -> Record:
        return (self.last_s, "gesture", {"address": self.address, "sender": self.sender, "first": self.first,
                                         "last": self.last, "count": self.count,
                                         "duration_s": round(self.last_s - self.start_s, 3)})


def _number(args: Any) -> float | None:
    if isinstance(args, (list, tuple)) and len(args) == 1 and isinstance(args[0], (int, float)) \
            and not isinstance(args[0], bool):
        return float(args[0])
    return None


class RecordFolder:
    """Decides per record: write now, hold (folded), or write what it ends. Not thread-safe."""

    def __init__(self, settings: FoldSettings = FoldSettings()) -> None:
        self._s = settings
        self._gestures: dict[tuple[str, str], _Gesture] = {}
        self._tempo_written: tuple[float, float] | None = None  # (t_s, bpm)
        self._tempo_held: tuple[float, dict[str, Any]] | None = None
        self._critic: tuple[tuple, float, dict[str, Any], int] | None = None  # (key, t_s, fields, repeats)

    @property
    def pending(self) -> bool:
        return bool(self._gestures or self._tempo_held or self._critic)

    def offer(self, t_s: float, kind: str, fields: dict[str, Any]) -> list[Record] | None:
        """None: not foldable, write it as it is (after the due records `due(t_s)` gives).
        A list: the records to write now in its place (maybe none: it was folded)."""
        if kind == "critic":
            return self._offer_critic(t_s, fields)
        if kind != "command" or not fields.get("ok"):
            return None
        address, value = fields.get("address"), _number(fields.get("args"))
        if not isinstance(address, str) or value is None:
            return None
        if address == "/tempo":
            return self._offer_tempo(t_s, value, fields)
        if not (address.startswith(CONTINUOUS_PREFIXES) or address in CONTINUOUS_ADDRESSES):
            return None
        key = (address, str(fields.get("sender")))
        gesture = self._gestures.get(key)
        if gesture is not None and t_s - gesture.last_s <= self._s.gesture_gap_s \
                and t_s - gesture.start_s <= self._s.gesture_max_s:
            gesture.last, gesture.last_s, gesture.count = value, t_s, gesture.count + 1
            return []
        out = [gesture.record()] if gesture is not None else []
        self._gestures[key] = _Gesture(address, fields.get("sender"), value, value, t_s, t_s)
        return out

    def _offer_tempo(self, t_s: float, bpm: float, fields: dict[str, Any]) -> list[Record]:
        written = self._tempo_written
        if bpm <= 0 or written is None or written[1] <= 0:  # a release, or the first tempo: at once
            held, self._tempo_held = self._tempo_held, None
            self._tempo_written = (t_s, bpm)
            return ([(held[0], "command", held[1])] if held is not None else []) + [(t_s, "command", fields)]
        if abs(bpm - written[1]) < self._s.tempo_min_change_bpm:
            self._tempo_held = None  # back within a bpm of what the log says
            return []
        if t_s - written[0] >= self._s.tempo_min_interval_s:
            self._tempo_held = None
            self._tempo_written = (t_s, bpm)
            return [(t_s, "command", fields)]
        self._tempo_held = (t_s, fields)
        return []

    def _offer_critic(self, t_s: float, fields: dict[str, Any]) -> list[Record]:
        key = tuple(sorted((k, repr(v)) for k, v in fields.items() if not isinstance(v, (int, float, list))))
        held = self._critic
        if held is not None and held[0] == key:
            self._critic = (key, t_s, fields, held[3] + 1)
            return []
        out = self._critic_record()
        self._critic = (key, t_s, fields, 0)
        return out + [(t_s, "critic", fields)]

    def _critic_record(self) -> list[Record]:
        held, self._critic = self._critic, None
        if held is None or held[3] == 0:
            return []
        return [(held[1], "critic", {**held[2], "repeats": held[3]})]

    def due(self, now_s: float) -> list[Record]:
        """Held records whose fold has ended by `now_s` (a gesture paused, a tempo's second passed)."""
        out = []
        for key, gesture in list(self._gestures.items()):
            if now_s - gesture.last_s > self._s.gesture_gap_s:
                out.append(gesture.record())
                del self._gestures[key]
        if self._tempo_held is not None and self._tempo_written is not None \
                and now_s - self._tempo_written[0] >= self._s.tempo_min_interval_s:
            t_s, fields = self._tempo_held
            self._tempo_held = None
            self._tempo_written = (t_s, float(fields["args"][0]))
            out.append((t_s, "command", fields))
        return sorted(out, key=lambda record: record[0])

    def flush(self) -> list[Record]:
        """Everything held, as records (at stop and before a rotation)."""
        out = [g.record() for g in self._gestures.values()]
        self._gestures.clear()
        if self._tempo_held is not None:
            t_s, fields = self._tempo_held
            self._tempo_held = None
            self._tempo_written = (t_s, float(fields["args"][0]))
            out.append((t_s, "command", fields))
        out += self._critic_record()
        return sorted(out, key=lambda record: record[0])
