"""Small protocols every device adapter implements. Fakes in tests implement them too."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from installation.records import AudioBlock


class AudioInput(Protocol):
    """Live audio. `read` is called from the listener thread; the device callback only copies."""

    name: str

    def open(self) -> None: ...

    def read(self, timeout_s: float) -> AudioBlock | None:
        """Everything captured since the last read as one mono block, or None if nothing came."""
        ...

    def close(self) -> None: ...


class Camera(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The latest RGB uint8 frame (H, W, 3), or None when there is no new frame."""
        ...

    def close(self) -> None: ...


class MidiOut(Protocol):
    """Anything that takes mido messages: ports, the built-in synth, a MIDI-file recorder."""

    name: str

    def send(self, message) -> None: ...

    def panic(self) -> None:
        """All notes off (and sound off) on every channel."""
        ...

    def close(self) -> None: ...


class MidiIn(Protocol):
    name: str

    def poll(self) -> list:
        """Messages received since the last poll."""
        ...

    def close(self) -> None: ...


class OscOut(Protocol):
    name: str

    def send(self, address: str, *args) -> None: ...

    def close(self) -> None: ...


class Display(Protocol):
    """The projector. `show` is called from the main thread at the display rate and never blocks long."""

    name: str

    def open(self) -> None: ...

    def show(self, rgb: np.ndarray) -> None: ...

    def poll_quit(self) -> bool:
        """True when the operator closed the window or pressed Escape."""
        ...

    def close(self) -> None: ...
