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
from hardware.sound.jack_server import server_identity, uses_jack
from hardware.recovery import DeviceHealth
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
    """Port outputs: loss found by probing, reopened with back-off when the port returns.

    rtmidi does not raise when only the connection is gone (a synth power-cycled, a JACK server
    restarted), so every `probe_s` a send first checks, through the port's own client, that the
    destination is still listed, and that the JACK server is still the one the port joined. A port
    of a JACK server that died is set aside, never closed: its client would wait for the dead server.
    """

    retry_s = 1.0
    probe_s = 0.5

    def __init__(self, name: str, backend: str) -> None:
        super().__init__(name)
        self.backend = backend
        self._port: Any = None
        self._retry_at_s = 0.0
        self._probe_at_s = 0.0
        self._server_id: int | None = None
        self._stale: list[Any] = []  # ports of servers that died: kept, never closed
        self.health = DeviceHealth(name, "MIDI out")
        self.stats.update(reopens=0, connected=False)

    def _open_port(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _destination(self) -> str | None:
        """The port name the connection goes to (None: nothing to look for, e.g. a virtual port)."""
        return None

    def _connect(self) -> None:
        self._server_id = server_identity() if uses_jack(self.backend) else None
        self._port = self._open_port()
        self._probe_at_s = time.monotonic() + self.probe_s
        self.stats["connected"] = True
        self.health.opened()

    def open(self) -> None:
        """Open now; raises UserError if the port cannot be found (at start only)."""
        with self._send_lock:
            self._connect()

    def _try_reopen(self) -> None:
        now_s = time.monotonic()
        if now_s < self._retry_at_s or not self.health.reopen_due():
            return
        self._retry_at_s = now_s + self.retry_s
        if uses_jack(self.backend) and server_identity() is None:
            self.health.reopen_failed("no JACK server is running")  # a client now would only print noise
            return
        try:
            self._connect()
        except Exception as exc:
            self.health.reopen_failed(str(exc))
            log.debug("reopen of %s failed: %s", self.name, exc)
            return
        self.stats["reopens"] += 1
        log.info("MIDI output %s is back", self.name)

    def _lost_because(self) -> str | None:
        """Why the open port no longer reaches its destination, or None while it does."""
        if uses_jack(self.backend) and server_identity() != self._server_id:
            return "the JACK server stopped or restarted"
        destination = self._destination()
        rt = getattr(self._port, "_rt", None)
        if destination is None or rt is None:
            return None
        try:
            return None if destination in rt.get_ports() else f"{destination} is gone"
        except Exception as exc:  # noqa: BLE001 - a broken client is a lost port too
            return f"its MIDI client failed ({exc})"

    def _probe(self) -> None:
        """Under the send lock: drop the port when the probe finds it lost."""
        now_s = time.monotonic()
        if self._port is None or now_s < self._probe_at_s:
            return
        self._probe_at_s = now_s + self.probe_s
        reason = self._lost_because()
        if reason is not None:
            self._drop(reason, server_gone=reason.startswith("the JACK server"))

    def check(self) -> dict:
        """Probe now (any thread) and return the health snapshot."""
        with self._send_lock:
            if not self.closed:
                self._probe_at_s = 0.0
                self._probe()
                if self._port is None:
                    self._try_reopen()
        return self.health.snapshot()

    def _send(self, message) -> None:
        self._probe()
        if self._port is None:
            self._try_reopen()
            if self._port is None:
                raise _NotConnected(self.name)
        self._port.send(message)

    def _drop(self, reason: str, server_gone: bool = False) -> None:
        port, self._port = self._port, None
        self.stats["connected"] = False
        self._retry_at_s = 0.0
        self.health.lost(reason)
        if port is None:
            return
        if server_gone:
            self._stale.append(port)
            return
        try:
            port.close()
        except Exception:  # noqa: BLE001 - the port is being given up anyway
            pass

    def _on_error(self, exc: Exception) -> None:
        """rtmidi raises SystemError/OSError/RuntimeError when a port vanishes: close, retry later."""
        if isinstance(exc, _NotConnected):
            return
        self._drop(f"sending failed ({exc})")

    def _close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None
        self.stats["connected"] = False
        self.health.closed()


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
            self.health.reopen_failed(str(exc))

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

    def _destination(self) -> str | None:
        return self.port_name or None


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
