"""MIDI for performers: the mapping in use (swappable while running), MIDI learn, MIDI clock in.

`LiveMidiMap` stands where the MIDI-in thread calls `mapper.map(message, sender)`:
- `/learn/<param>` arms it; the next knob or fader moved (a control change) is mapped to that
  parameter over its whole range, takes effect at once and is saved into config.toml
  ([[control.midi_cc]], comments kept) by `save_cc_mapping`;
- `set_control(control_cfg)` swaps the mapping when config.toml's mappings are edited: the
  installation keeps running (`only_mappings_changed` tells a mapping edit from one that needs a
  restart);
- MIDI clock goes to the tempo follower (a line through the tick times, installation.tempo), and
  its tempo out as /tempo commands.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from installation.operators.control import MidiMapper
from installation.errors import UserError
from installation.records import Command
from installation.tempo import ClockFollower, MidiClockTempo

log = logging.getLogger(__name__)

MAPPING_KEYS = ("midi_cc", "midi_notes", "midi_programs", "midi_channel", "blackout_note", "freeze_note", "midi_clock")
"""[control] keys a running installation takes over without a restart."""


class LiveMidiMap:
    """mido messages -> Commands. `map` runs on the MIDI-in thread; the rest on any thread."""

    def __init__(self, control_cfg, tempo=None, on_learned: Callable[[dict], None] | None = None,
                 clock=None, learn_timeout_s: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._cfg = control_cfg
        self._mapper = MidiMapper(control_cfg.model_copy(update={"midi_clock": False}))
        self._tempo = tempo if isinstance(tempo, MidiClockTempo) else None
        self._follower = self._tempo.follower if self._tempo is not None else ClockFollower()
        self._on_learned = on_learned
        self._clock = clock
        self._learn_timeout_s = learn_timeout_s
        self._learning: tuple[str, float, float, float] | None = None  # (param, low, high, armed at)
        self.learned: list[dict] = []

    @property
    def control_cfg(self):
        with self._lock:
            return self._cfg

    def set_control(self, control_cfg) -> None:
        """New mappings from an edited config; applied from the next message on."""
        mapper = MidiMapper(control_cfg.model_copy(update={"midi_clock": False}))
        with self._lock:
            self._cfg, self._mapper = control_cfg, mapper
        log.info("MIDI mappings updated without a restart (%d knobs)", len(control_cfg.midi_cc))

    def learn(self, param: str, low: float, high: float, t_s: float | None = None) -> None:
        """Arm MIDI learn: the next control change drives `param` over low..high."""
        if t_s is None:
            t_s = self._clock.now_s() if self._clock is not None else 0.0
        with self._lock:
            self._learning = (param, float(low), float(high), t_s)
        log.info("MIDI learn: move a knob or fader for %s", param)

    @property
    def learning(self) -> str | None:
        with self._lock:
            return self._learning[0] if self._learning else None

    def map(self, message, sender: str) -> list[Command]:
        kind = message.type
        t_s = float(getattr(message, "time", 0.0) or 0.0)
        if kind in ("clock", "start", "stop", "continue"):
            return self._clock_message(message, t_s, sender)
        if kind == "control_change":
            learned = self._learn_from(message, t_s)
            if learned is not None and self._on_learned is not None:
                try:
                    self._on_learned(learned)
                except UserError as exc:  # the file kept changing under the save: one sentence
                    log.warning("MIDI learn: %s", exc)
                except Exception:  # saving must never end MIDI control; the mapping works already
                    log.exception("MIDI learn: saving the mapping failed")
        with self._lock:
            mapper = self._mapper
        return mapper.map(message, sender)

    def _learn_from(self, message, t_s: float) -> dict | None:
        with self._lock:
            if self._learning is None:
                return None
            param, low, high, armed_s = self._learning
            if self._clock is not None and self._clock.now_s() - armed_s > self._learn_timeout_s:
                self._learning = None
                log.info("MIDI learn for %s timed out", param)
                return None
            cc, channel = int(message.control), int(message.channel) + 1  # 1-16, as the config counts
            mapping: dict[str, Any] = {"cc": cc, "param": param, "min": low, "max": high, "curve": "linear",
                                       "channel": channel}
            kept = tuple(m for m in self._cfg.midi_cc
                         if m.param != param and not (m.cc == cc and m.channel in (-1, 0, channel)))
            cc_type = type(self._cfg).model_fields["midi_cc"].annotation.__args__[0]
            cfg = self._cfg.model_copy(update={"midi_cc": kept + (cc_type(**mapping),)})
            self._cfg, self._mapper = cfg, MidiMapper(cfg.model_copy(update={"midi_clock": False}))
            self._learning = None
            self.learned.append(mapping)
        log.info("MIDI learn: CC %d on channel %d now drives %s (%g..%g)", cc, channel, param, low, high)
        return mapping

    def _clock_message(self, message, t_s: float, sender: str) -> list[Command]:
        with self._lock:
            follow = self._cfg.midi_clock or self._tempo is not None
        if not follow:
            return []
        if self._tempo is not None:
            bpm = self._tempo.on_message(message)
        elif message.type == "clock":
            bpm = self._follower.tick(t_s)
        else:
            bpm = None
            if message.type == "start":
                self._follower.start()
            elif message.type == "continue":
                self._follower.resume()
            elif message.type == "stop":
                self._follower.stop()
        if message.type == "stop":
            return [Command(t_s, "/tempo", (0,), sender)]
        return [Command(t_s, "/tempo", (bpm,), sender)] if bpm is not None else []


def only_mappings_changed(old_cfg, new_cfg) -> bool:
    """True when two configs differ at most in the [control] keys `LiveMidiMap` takes over live."""
    if old_cfg == new_cfg:
        return False
    mappings = {key: getattr(new_cfg.control, key) for key in MAPPING_KEYS}
    patched = old_cfg.model_copy(update={"control": old_cfg.control.model_copy(update=mappings)})
    return patched == new_cfg


def save_cc_mapping(path: str | Path, mapping: dict) -> None:
    """Write a learned knob into [control] midi_cc of the config file, keeping its comments and layout.

    A mapping of the same parameter, or of the same knob on the same channel, is replaced. The file
    is replaced atomically and fsync'd, a symlink to it is kept, and an edit made meanwhile is kept
    too (installation/config_file.py).
    """
    from installation.config_file import rewrite
    rewrite(path, lambda text: with_cc_mapping(text, mapping))


def with_cc_mapping(text: str, mapping: dict) -> str:
    """The config text with `mapping` in [control] midi_cc."""
    import tomlkit

    document = tomlkit.parse(text)
    control = document.get("control")
    if control is None:
        control = tomlkit.table()
        document["control"] = control
    existing = control.get("midi_cc")
    entries = [dict(item) for item in existing] if existing is not None else []
    entries = [e for e in entries if e.get("param") != mapping["param"]
               and not (e.get("cc") == mapping["cc"] and e.get("channel", 0) in (-1, 0, mapping["channel"]))]
    entries.append(dict(mapping))
    array = tomlkit.array()
    for entry in entries:
        table = tomlkit.inline_table()
        table.update(entry)
        array.append(table)
    if existing is not None and hasattr(existing, "trivia"):
        array.trivia.comment = existing.trivia.comment
        array.trivia.comment_ws = existing.trivia.comment_ws
    control["midi_cc"] = array
    return tomlkit.dumps(document)
