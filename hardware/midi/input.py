"""MIDI controllers in (implements hardware.base.MidiIn), reopened when they come back; a virtual input.

The backend's callback thread only stamps each message with the clock and appends it to a bounded
deque; `poll()` (the control thread) drains it and, at most every `retry_s`, checks that the port
still exists: a controller unplugged mid-show is closed, counted and reopened when it returns.

Listing ports through mido's backend opens a new MIDI client each time (on JACK a new JACK client:
~180 ms and a graph change, every second, which halved the frames shown). So the backend is never
asked while a controller is connected: a port that has sent nothing for `retry_s` is looked for
in its own open client's port table (well under a millisecond), and while it is absent one probe
client, made once, is asked.
"""
from __future__ import annotations

import collections
import logging
import threading

import mido

from hardware.sound.jack_server import server_identity, uses_jack
from hardware.midi.output import load_backend
from hardware.recovery import DeviceHealth
from installation.errors import UserError

CALLBACK_DRAIN_S = 0.1
"""How long a closing input lets a backend callback already under way finish (see close_input)."""
EVENT_POLL_S = 0.002
"""How often the thread that takes an rtmidi port's events looks at the port's queue (the events'
times come from the driver's deltas, not from when they were taken)."""


class _EventPoller:
    """Takes an rtmidi port's events off the port's own queue on a thread of ours.

    With a callback, rtmidi calls into Python from the JACK process thread, which then waits for the
    interpreter lock; on a loaded machine a thread holding that lock can be off the CPU for tens of
    milliseconds, the client misses its cycle and JACK drops that cycle's MIDI (a Stop among it). The
    port's queue is filled without any lock the interpreter holds.
    """

    def __init__(self, rt, on_event) -> None:
        self._rt = rt
        self._on_event = on_event
        self._stop = threading.Event()
        rt.cancel_callback()
        self._thread = threading.Thread(target=self._run, name="midi-in-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._rt.get_message()
            except Exception:  # noqa: BLE001 - the port was closed under us
                return
            if event is None:
                self._stop.wait(EVENT_POLL_S)
                continue
            data, delta_s = event
            try:
                message = mido.Message.from_bytes(data)
            except ValueError:  # as mido does: an invalid message is dropped
                continue
            self._on_event(message, delta_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)


def close_input(port) -> None:
    """Close a mido input whose backend thread may call into Python (a callback port).

    Closing an rtmidi port on JACK waits for the JACK process thread and cancels it when it does not
    finish in time. If that thread is inside a callback, waiting for the interpreter lock that the
    closing thread holds, it is cancelled while taking the lock and dies holding the lock's mutex:
    every Python thread then hangs. So the thread taking events stops first (or the backend stops
    calling into Python), this thread lets go of the interpreter for a moment so that a callback
    already under way finishes, and the port is unregistered before mido closes it (mido
    re-registers its wrapper while closing).
    """
    poller = getattr(port, "_event_poller", None)
    if poller is not None:
        poller.stop()
    rt = getattr(port, "_rt", None)  # mido's rtmidi backend; other backends have no such thread
    if rt is not None:
        rt.cancel_callback()
        threading.Event().wait(CALLBACK_DRAIN_S)
        rt.close_port()
    port.close()

log = logging.getLogger(__name__)


class EventStamps:
    """A message's time from the MIDI driver's own event times, anchored to the clock.

    rtmidi measures each event's delta from the previous one in the driver's thread (JACK's frame
    time); the callback into Python may then wait for the interpreter, on a loaded machine for tens
    of milliseconds, which would move a clock tick's stamp. Stamps follow the deltas from the first
    message on and are never later than now; where there is no delta, the time of arrival.
    """

    def __init__(self, clock) -> None:
        self._clock = clock
        self._last_s: float | None = None

    def stamp(self, delta_s: float | None = None) -> float:
        now_s = self._clock.now_s()
        if delta_s is None or delta_s < 0 or self._last_s is None:
            t_s = now_s
        else:
            t_s = min(now_s, self._last_s + delta_s)
        self._last_s = t_s
        return t_s


def take_event_times(port, on_event) -> None:
    """Route an rtmidi port's events (bytes, delta) to `on_event(message, delta_s)` instead of mido's
    wrapper, which drops the delta, from a thread of ours (_EventPoller), not from the driver's;
    ports of other backends keep calling back without one. close_input stops that thread."""
    rt = getattr(port, "_rt", None)
    if rt is None:
        return
    port._event_poller = _EventPoller(rt, on_event)


class MidoMidiIn:
    """One controller, found by name substring among the backend's input ports."""

    def __init__(self, name: str, clock, backend: str = "", retry_s: float = 1.0, capacity: int = 4096) -> None:
        if not name:
            raise UserError("a MIDI input needs a port name (or part of one) in midi.inputs; `run.py devices` lists them.")
        self.name = name
        self._clock = clock
        self._backend = load_backend(backend)
        self._jack = uses_jack(backend)
        self._server_id: int | None = None
        self._stale: list = []  # clients of a JACK server that died: kept, never closed (they would wait for it)
        self.health = DeviceHealth(name, "MIDI in", clock.now_s)
        self._retry_s = retry_s
        self._messages: collections.deque = collections.deque(maxlen=capacity)
        self._stamps = EventStamps(clock)
        self._lock = threading.Lock()
        self._port = None
        self.port_name: str | None = None
        self._next_check_s = float("-inf")
        self._probe = None
        self._last_message_s = float("-inf")
        self.listings = 0
        """Port lists asked of the backend or the probe client (not of the open port's own client)."""
        self.received = 0
        self.vanished = 0
        self.reopened = 0
        self.errors = 0

    @property
    def connected(self) -> bool:
        return self._port is not None

    def _input_names(self) -> list[str] | None:
        self.listings += 1
        if self._jack and self._probe is not None and server_identity() != self._server_id:
            self._stale.append(self._probe)  # the probe client joined a server that has gone
            self._probe = None
        try:
            if self._probe is None:
                self._probe = self._make_probe()
            if self._probe is not None:
                return list(self._probe.get_ports())
            return list(self._backend.get_input_names())
        except Exception as exc:  # rtmidi raises SystemError without ALSA; no server: RuntimeError
            self.errors += 1
            if self.errors in (1, 100) or self.errors % 10000 == 0:
                log.warning("MIDI in %r: cannot list ports (%s)", self.name, exc)
            return None

    def _make_probe(self):
        """One rtmidi input client kept for listing (rtmidi backends only; None otherwise)."""
        module = getattr(self._backend, "module", None)
        rtmidi = getattr(module, "rtmidi", None)
        api_id = getattr(module, "_get_api_id", None)
        if rtmidi is None or api_id is None:
            return None
        return rtmidi.MidiIn(rtapi=api_id(getattr(self._backend, "api", None)))

    def _still_there(self) -> bool | None:
        """Whether the open port's peer still exists, from the port's own client; None if unknown."""
        if self._jack and server_identity() != self._server_id:
            return False  # its client's server died (or was replaced): that client never hears again
        rt = getattr(self._port, "_rt", None)
        if rt is None:
            names = self._input_names()
            return None if names is None else self.port_name in names
        try:
            return self.port_name in rt.get_ports()
        except Exception:
            return None

    def _on_message(self, message, delta_s: float | None = None) -> None:
        """Backend thread: stamp and store, nothing else."""
        t_s = self._stamps.stamp(delta_s)
        self._messages.append(message.copy(time=t_s))
        self._last_message_s = t_s
        self.received += 1

    def open(self) -> None:
        """Open the port if it exists now; if not, `poll` keeps looking. Never raises for absence."""
        self._next_check_s = self._clock.now_s() + self._retry_s
        if self._jack:
            self._server_id = server_identity()
            if self._server_id is None:
                self.health.reopen_failed("no JACK server is running")  # a client now would only print noise
                return
        names = self._input_names()
        match = next((n for n in names or [] if self.name.lower() in n.lower()), None)
        if match is None:
            self.health.reopen_failed(f"no input matches {self.name!r}")
            return
        try:
            self._stamps = EventStamps(self._clock)  # a new port's first delta counts from nothing
            port = self._backend.open_input(match, callback=self._on_message)
            take_event_times(port, self._on_message)
        except Exception as exc:
            self.errors += 1
            self.health.reopen_failed(str(exc))
            log.warning("MIDI in %r: opening %r failed (%s); retrying every %.0f s", self.name, match, exc, self._retry_s)
            return
        with self._lock:
            self._port, self.port_name = port, match
        self.health.opened()
        log.info("MIDI in: %r opened", match)

    def poll(self) -> list:
        """Messages since the last poll, each with `.time` = arrival on the clock (control thread)."""
        now_s = self._clock.now_s()
        if now_s >= self._next_check_s:
            self._next_check_s = now_s + self._retry_s
            if self._port is None:
                self.open()
                if self._port is not None:
                    self.reopened += 1
            elif now_s - self._last_message_s >= self._retry_s:  # a controller that is talking is there
                if self._still_there() is False:
                    server_gone = self._jack and server_identity() != self._server_id
                    self.health.lost("the JACK server stopped or restarted" if server_gone else
                                     f"{self.port_name} vanished")
                    self.vanished += 1
                    self._close_port(abandon=server_gone)
        messages = []
        while self._messages:
            messages.append(self._messages.popleft())
        return messages

    def _close_port(self, abandon: bool = False) -> None:
        with self._lock:
            port, self._port = self._port, None
        if port is not None and abandon:
            poller = getattr(port, "_event_poller", None)
            if poller is not None:
                poller.stop()  # its queue stays empty: the server that filled it is gone
            self._stale.append(port)
        elif port is not None:
            try:
                close_input(port)
            except Exception as exc:
                log.debug("MIDI in: closing %r: %s", self.port_name, exc)

    def close(self) -> None:
        self._close_port(abandon=self._jack and server_identity() != self._server_id)
        self.health.closed()
        probe, self._probe = self._probe, None
        if probe is not None and self._jack and server_identity() != self._server_id:
            self._stale.append(probe)
            probe = None
        if probe is not None:
            try:
                probe.delete()
            except Exception:
                pass


class VirtualMidiIn:
    """A MIDI input port of our own that performers' software and controllers connect to.

    Opened once and never looked up again; `poll` drains what arrived. Where the MIDI system cannot
    make virtual ports (Windows MME), opening fails with one sentence.
    """

    def __init__(self, name: str, clock, backend: str = "", capacity: int = 4096) -> None:
        if not name:
            raise UserError("midi.virtual_input needs a port name, e.g. \"Chromesthesia In\".")
        self.name = name
        self._clock = clock
        self._backend_name = backend
        self._backend = load_backend(backend)
        self._messages: collections.deque = collections.deque(maxlen=capacity)
        self._stamps = EventStamps(clock)
        self._port = None
        self.received = 0

    @property
    def connected(self) -> bool:
        return self._port is not None

    def _on_message(self, message, delta_s: float | None = None) -> None:
        """Backend thread: stamp and store, nothing else."""
        self._messages.append(message.copy(time=self._stamps.stamp(delta_s)))
        self.received += 1

    def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = self._backend.open_input(self.name, virtual=True, callback=self._on_message)
            take_event_times(self._port, self._on_message)
        except Exception as exc:  # rtmidi: SystemError without ALSA, NotImplementedError on Windows MME
            raise UserError(f"midi.virtual_input {self.name!r} cannot be opened ({type(exc).__name__}: {exc}); "
                            f"check midi.backend (e.g. \"mido.backends.rtmidi/UNIX_JACK\" with a JACK server "
                            f"running) or set midi.virtual_input = \"\".") from None
        log.info("MIDI in: virtual port %r open", self.name)

    def poll(self) -> list:
        messages = []
        while self._messages:
            messages.append(self._messages.popleft())
        return messages

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                close_input(port)
            except Exception as exc:
                log.debug("MIDI in: closing virtual %r: %s", self.name, exc)
