"""The interfaces of devices and senders, used in annotations where the installation wires them.

Every implementation is checked by tests/hardware/test_contracts.py; the working fakes in tests/fakes.py
implement them too. `BaseMidiOut` is the one shared body of MIDI outputs, after mido's
`BaseOutput`: `send` validates, locks and delegates to `_send`; `panic` is written once.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np

from installation.records import AudioBlock, Cue, NoteEvent, Plan

log = logging.getLogger(__name__)

ALL_CHANNELS = range(16)
CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123


@runtime_checkable
class AudioInput(Protocol):
    """Live audio. `read` is called from the listener thread; the device callback only copies."""

    name: str

    def open(self) -> None: ...

    def read(self, timeout_s: float) -> AudioBlock | None:
        """Everything captured since the last read as one mono block, or None if nothing came."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Camera(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The latest RGB uint8 frame (H, W, 3), or None when there is no new frame."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class MidiOut(Protocol):
    """Anything that takes mido messages: ports, the built-in synth, a MIDI-file recorder.

    Called from one thread, the scheduler's. `send` never raises while running, also after
    `close` (the message is counted as lost)."""

    name: str

    def send(self, message: Any) -> None: ...

    def panic(self) -> None:
        """All notes off (and sound off) on every channel."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class MidiIn(Protocol):
    name: str

    def poll(self) -> list:
        """Messages received since the last poll, each with `.time` set from the one clock."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class OscOut(Protocol):
    name: str

    def send(self, address: str, *args: Any) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class OscIn(Protocol):
    """The operators' control port: a reader thread that turns packets into Commands."""

    def start(self) -> None:
        """Bind and start reading; UserError (one sentence) when it cannot listen, e.g. the port is taken."""
        ...

    def stop(self, timeout_s: float = 2.0) -> None: ...


@runtime_checkable
class FrameSink(Protocol):
    """Where projected frames go: a window, a recording, a video-out stream.

    `show` is called from the main thread at the display rate and must never block long."""

    name: str

    def open(self) -> None: ...

    def show(self, rgb: np.ndarray) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Display(FrameSink, Protocol):
    """The projector window (or its headless stand-in)."""

    width: int
    height: int

    def poll_quit(self) -> bool:
        """True when the operator closed the window or pressed Escape."""
        ...


@runtime_checkable
class Scheduler(Protocol):
    """Sends notes, cues and messages at absolute deadlines from the one clock.

    Every method is safe from any thread. Implementations: installation.scheduler's
    ThreadScheduler (in-process outputs) and ProcessScheduler (MIDI ports, real-time process)."""

    def start(self, timeout_s: float = 20.0) -> None: ...

    def submit(self, events: Iterable[NoteEvent | Cue]) -> None: ...

    def submit_messages(self, items: Iterable[tuple[float, Any]]) -> None: ...

    def submit_plan(self, plan: Plan, valence: float | None = None, arousal: float | None = None) -> None: ...

    def set_tempo(self, tempo_bpm: float) -> None: ...

    def send_now(self, message: Any) -> None: ...

    def horizon_s(self) -> float: ...

    def panic(self, clear_queue: bool = True, timeout_s: float = 1.0) -> None:
        """Silence everything now; with `clear_queue` the planned notes are dropped too."""
        ...

    def stop(self, timeout_s: float = 1.0) -> None:
        """Panic first, then stop sending."""
        ...

    @property
    def stats(self) -> dict: ...

    def late_ms(self) -> np.ndarray: ...


def panic_messages() -> list:
    """All sound off and all notes off on every channel (CC 120 and CC 123)."""
    import mido
    return [mido.Message("control_change", channel=ch, control=cc, value=0)
            for ch in ALL_CHANNELS for cc in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF)]


class BaseMidiOut:
    """The shared body of every MidiOut: validate, lock, delegate to `_send`, count; one panic.

    Subclasses implement `_send(message)` (raise on failure) and may implement `_close()` and
    `_on_error(exc)`. Cue-accepting outputs (`accepts_cues = True`) also take Cue records.
    """

    name = "midi out"
    accepts_cues = False

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.closed = False
        self._send_lock = threading.Lock()
        self.stats: dict[str, Any] = {"sent": 0, "lost": 0, "invalid": 0, "panics": 0}

    def _valid(self, message: Any) -> bool:
        if isinstance(message, Cue):
            return self.accepts_cues
        return isinstance(getattr(message, "type", None), str) and hasattr(message, "bytes")

    def send(self, message: Any) -> None:
        """Send one message (a mido Message, or a Cue where accepted). Never raises."""
        if not self._valid(message):
            self.stats["invalid"] += 1
            return
        with self._send_lock:
            if self.closed:
                self.stats["lost"] += 1
                return
            try:
                self._send(message)
            except Exception as exc:  # noqa: BLE001 - a vanished port must not stop the music
                self.stats["lost"] += 1
                self._on_error(exc)
                return
            self.stats["sent"] += 1

    def panic(self) -> None:
        """All sound off and all notes off on all 16 channels."""
        self.stats["panics"] += 1
        for message in panic_messages():
            self.send(message)

    def close(self) -> None:
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._close()
            except Exception:  # noqa: BLE001 - closing must not raise at shutdown
                log.debug("closing %s failed", self.name, exc_info=True)

    def _send(self, message: Any) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _on_error(self, exc: Exception) -> None:
        log.debug("%s: send failed: %s", self.name, exc)
