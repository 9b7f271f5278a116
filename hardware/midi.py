"""MIDI outputs through mido + python-rtmidi, a MIDI-file recorder, and the OSC event adapter.

All outputs implement hardware.base.MidiOut (`send(message)`, `panic()`, `close()`, `.name`) and
are driven by one thread, the scheduler's. While running they never raise from `send()`: a port
that disappears is counted, and reopened when it comes back. MIDI *input* lives in midi_in.py.
"""
from __future__ import annotations

import logging
import struct
import time
from pathlib import Path
from typing import Any

from hardware.base import CC_ALL_NOTES_OFF, BaseMidiOut
from installation.errors import UserError
from installation.records import Cue

log = logging.getLogger(__name__)


def load_backend(backend: str):
    """The mido backend named in midi.backend ("" = mido's default); UserError when it cannot load."""
    import mido
    try:
        return mido.Backend(backend, load=True) if backend else mido.backend
    except (ImportError, AttributeError) as exc:
        raise UserError(f"midi.backend {backend!r} cannot be loaded ({exc}); use e.g. "
                        f"\"mido.backends.rtmidi\" or \"mido.backends.rtmidi/UNIX_JACK\".") from None


def list_midi_ports(backend: str = "") -> dict[str, list[str]]:
    """{"inputs": [...], "outputs": [...]} for a mido backend.

    Where the MIDI system itself is missing (no ALSA, no JACK server), the lists are empty and
    "problems" holds one sentence saying so, instead of an exception.
    """
    result: dict[str, list[str]] = {"inputs": [], "outputs": [], "problems": []}
    try:
        mod = load_backend(backend)
        result["inputs"] = list(mod.get_input_names())
        result["outputs"] = list(mod.get_output_names())
    except UserError as exc:
        result["problems"].append(str(exc))
    except (SystemError, OSError, RuntimeError) as exc:
        # python-rtmidi raises SystemError when ALSA is absent (no /dev/snd).
        result["problems"].append(f"MIDI system for backend {backend or 'default'!r} is not available ({exc}); "
                                  f"on a machine without ALSA use midi.backend = \"mido.backends.rtmidi/UNIX_JACK\" with a JACK server.")
    return result


class _NotConnected(ConnectionError):
    pass


class _PortOut(BaseMidiOut):
    """Port outputs: reopen with backoff when the port vanished or was absent at start."""

    retry_s = 1.0

    def __init__(self, name: str, backend: str) -> None:
        super().__init__(name)
        self.backend = backend
        self._port: Any = None
        self._retry_at_s = 0.0
        self.stats.update(reopens=0, connected=False)

    def _open_port(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def open(self) -> None:
        """Open now; raises UserError if the port cannot be found (at start only)."""
        with self._send_lock:
            self._port = self._open_port()
            self.stats["connected"] = True

    def _try_reopen(self) -> None:
        now_s = time.monotonic()
        if now_s < self._retry_at_s:
            return
        self._retry_at_s = now_s + self.retry_s
        try:
            self._port = self._open_port()
        except Exception as exc:
            log.debug("reopen of %s failed: %s", self.name, exc)
            return
        self.stats["reopens"] += 1
        self.stats["connected"] = True
        log.info("MIDI output %s is back", self.name)

    def _send(self, message) -> None:
        if self._port is None:
            self._try_reopen()
            if self._port is None:
                raise _NotConnected(self.name)
        self._port.send(message)

    def _on_error(self, exc: Exception) -> None:
        """rtmidi raises SystemError/OSError/RuntimeError when a port vanishes: close, retry later."""
        if isinstance(exc, _NotConnected):
            return
        log.warning("MIDI output %s failed (%s); will reopen when it returns", self.name, exc)
        try:
            self._port.close()
        except Exception:
            pass
        self._port = None
        self.stats["connected"] = False
        self._retry_at_s = time.monotonic() + self.retry_s

    def _close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None
        self.stats["connected"] = False


class MidoOut(_PortOut):
    """A hardware (or software) MIDI output found by name substring, e.g. "USB MIDI" or "IAC".

    A port that is not there at start (a USB interface still booting, a synth not yet running)
    is connected when it appears, like one that vanished mid-show; `required=True` makes its
    absence a start-up error instead.
    """

    def __init__(self, name: str, backend: str = "", required: bool = False) -> None:
        super().__init__(name, backend)
        self.port_name = ""
        try:
            self.open()
        except UserError as exc:
            if required:
                raise
            log.warning("%s; it will be connected when it appears", str(exc).rstrip("."))
            self._retry_at_s = time.monotonic() + self.retry_s

    def _open_port(self) -> Any:
        mod = load_backend(self.backend)
        try:
            names = list(mod.get_output_names())
        except (SystemError, OSError, RuntimeError) as exc:
            raise UserError(f"MIDI output {self.name!r}: the MIDI system is not available ({exc}); "
                            f"set midi.backend (e.g. \"mido.backends.rtmidi/UNIX_JACK\") or remove it from midi.outputs.") from None
        matches = [n for n in names if self.name.lower() in n.lower()]
        if not matches:
            raise UserError(f"midi.outputs: no MIDI output matches {self.name!r} (outputs: {', '.join(names) or 'none'}); "
                            f"fix the name or connect the device.")
        self.port_name = matches[0]
        return mod.open_output(matches[0])


class VirtualMidiOut(_PortOut):
    """A virtual output other programs connect to (ALSA, CoreMIDI or JACK; not Windows MME)."""

    def __init__(self, name: str, backend: str = "") -> None:
        super().__init__(name, backend)
        self.open()

    def _open_port(self) -> Any:
        mod = load_backend(self.backend)
        try:
            return mod.open_output(self.name, virtual=True)
        except (SystemError, OSError, RuntimeError, NotImplementedError) as exc:
            raise UserError(f"midi.virtual_port {self.name!r} cannot be created with backend "
                            f"{self.backend or 'default'!r} ({exc}); virtual ports need ALSA, CoreMIDI or a running JACK "
                            f"server with midi.backend = \"mido.backends.rtmidi/UNIX_JACK\".") from None


class RecordingMidiOut(BaseMidiOut):
    """Keeps every message with the time it was sent: for tests, benchmarks and show logs."""

    def __init__(self, clock=None, name: str = "recording") -> None:
        super().__init__(name)
        self.clock = clock
        self.messages: list[tuple[float, Any]] = []

    def _send(self, message) -> None:
        t_s = self.clock.now_s() if self.clock is not None else time.monotonic()
        self.messages.append((t_s, message))


class MidiFileRecorder(BaseMidiOut):
    """Writes every message it is sent to a type-0 MIDI file with real timing.

    The file is valid at every moment after `open`: each message is appended and the track is
    re-terminated and its length patched, so a SIGTERM or a power cut leaves a playable file.
    120 bpm and 960 ticks per beat: one tick is ~0.52 ms.
    """

    ticks_per_beat = 960
    tempo_us = 500_000

    def __init__(self, path: Path, clock) -> None:
        self.path = Path(path)
        super().__init__(f"midifile:{self.path.name}")
        self.clock = clock
        self._file: Any = None
        self._t0_s: float | None = None
        self._last_tick = 0
        self._track_len = 0
        self.open()

    _EOT = b"\x00\xff\x2f\x00"
    _REALTIME = frozenset({"clock", "start", "stop", "continue", "active_sensing", "reset", "songpos"})

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w+b")
        except OSError as exc:
            raise UserError(f"MIDI recording {self.path} cannot be written ({exc}); choose a writable record folder.") from None
        header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, self.ticks_per_beat)
        self._file.write(header + b"MTrk" + struct.pack(">I", 0))
        self._track_start = self._file.tell()
        tempo = b"\x00\xff\x51\x03" + self.tempo_us.to_bytes(3, "big")
        self._append(tempo)

    @staticmethod
    def _varlen(value: int) -> bytes:
        out = [value & 0x7F]
        value >>= 7
        while value:
            out.append(0x80 | (value & 0x7F))
            value >>= 7
        return bytes(reversed(out))

    def _append(self, event: bytes) -> None:
        f = self._file
        f.seek(self._track_start + self._track_len)
        f.write(event + self._EOT)
        self._track_len += len(event)
        f.seek(self._track_start - 4)
        f.write(struct.pack(">I", self._track_len + len(self._EOT)))
        f.flush()

    def _send(self, message) -> None:
        """Append one message at the clock's current time (scheduler thread, under the send lock)."""
        if getattr(message, "is_meta", False) or message.type in self._REALTIME:
            return  # real-time bytes (clock, start, stop) are not allowed in a Standard MIDI File
        if self._file is None:
            raise OSError("the recording is closed")
        now_s = self.clock.now_s()
        if self._t0_s is None:
            self._t0_s = now_s
        tick = max(int(round((now_s - self._t0_s) * 1e6 / self.tempo_us * self.ticks_per_beat)), self._last_tick)
        self._append(self._varlen(tick - self._last_tick) + bytes(message.bytes()))
        self._last_tick = tick

    def _on_error(self, exc: Exception) -> None:
        log.warning("MIDI recording %s failed: %s", self.path, exc)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class OscEventOut(BaseMidiOut):
    """Sends scheduled notes and cues as OSC through any hardware.base.OscOut client.

    Address space (documented in docs/osc-outputs.md), all under `prefix`:
      /note  channel note velocity          (velocity 0 = note off)
      /chord root_name quality notes...     (cue, at the chord's onset)
      /tempo bpm                            (cue, at each plan's start)
      /va    valence arousal                (cue, the image VA that drove the plan)
      /plan  key mode tempo_bpm abc         (cue, at each plan's start)
      /panic                                (on stop, scene change or an operator's panic)
    """

    accepts_cues = True

    def __init__(self, client, prefix: str = "/chromesthesia") -> None:
        super().__init__(f"osc:{getattr(client, 'name', 'client')}")
        self.client = client
        self.prefix = prefix.rstrip("/")

    def _send(self, message) -> None:
        """A cue, a note, or the panic's all-notes-off (one /panic for the 16 channels)."""
        if isinstance(message, Cue):
            self.client.send(self.prefix + message.address, *message.args)
        elif message.type == "note_on":
            self.client.send(self.prefix + "/note", message.channel, message.note, message.velocity)
        elif message.type == "note_off":
            self.client.send(self.prefix + "/note", message.channel, message.note, 0)
        elif message.type == "control_change" and message.control == CC_ALL_NOTES_OFF and message.channel == 15:
            # A receiver of OSC wants one word for silence, not 32 controller messages.
            self.client.send(self.prefix + "/panic")


def output_from_spec(spec: tuple, clock) -> Any:
    """Build an output from a picklable spec, for the sender process:
    ("mido", name, backend) | ("virtual", name, backend) | ("midifile", path) | ("recording",)."""
    kind = spec[0]
    if kind == "mido":
        return MidoOut(spec[1], spec[2] if len(spec) > 2 else "")
    if kind == "virtual":
        return VirtualMidiOut(spec[1], spec[2] if len(spec) > 2 else "")
    if kind == "midifile":
        return MidiFileRecorder(Path(spec[1]), clock)
    if kind == "recording":
        return RecordingMidiOut(clock)
    raise UserError(f"unknown MIDI output spec {spec!r}; use mido, virtual, midifile or recording.")
