"""Run as a child process by tests/hardware/test_device_recovery.py: JACK MIDI devices through a power-cycled
destination and a killed and restarted JACK server. Prints one JSON line of results.

Native code here (rtmidi clients of a server that died) can hang or crash; in a child of its own,
that fails the one test with this process's stacks instead of stalling the run.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import time

faulthandler.enable()
faulthandler.dump_traceback_later(float(sys.argv[1]) if len(sys.argv) > 1 else 100.0, exit=True)

import mido  # noqa: E402

from hardware.midi.output import MidoOut  # noqa: E402
from hardware.midi.input import MidoMidiIn  # noqa: E402
from installation.clock import MonotonicClock  # noqa: E402
from tests import fakes  # noqa: E402
from tests.conftest import start_jackd, stop_jackd  # noqa: E402

BACKEND = "mido.backends.rtmidi/UNIX_JACK"


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    name = f"vanish{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    server = start_jackd(name)
    synth_name = f"synth{os.getpid()}"
    synth = fakes.JackMidiMonitor(synth_name)
    out = MidoOut(synth_name, backend=BACKEND)
    controller = mido.Backend(BACKEND).open_output(f"knobs{os.getpid()}", virtual=True)
    midi_in = MidoMidiIn(f"knobs{os.getpid()}", MonotonicClock(), BACKEND, retry_s=0.25)
    midi_in.open()
    result: dict = {}

    def notes_back(monitor, timeout_s: float = 10.0) -> float | None:
        """Seconds until a note sent every 50 ms reaches `monitor`."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            out.send(mido.Message("note_on", note=60, velocity=80))
            if any(m.type == "note_on" for _, m in monitor.received):
                return round(time.monotonic() - t0, 2)
            time.sleep(0.05)
        return None

    def controls_back(port, timeout_s: float = 10.0) -> float | None:
        """Seconds until a control change sent every 50 ms arrives through the MIDI input."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            port.send(mido.Message("control_change", control=7, value=64))
            if any(m.type == "control_change" for m in midi_in.poll()):
                return round(time.monotonic() - t0, 2)
            time.sleep(0.05)
        return None

    result["first_notes_s"] = notes_back(synth)
    result["first_controls_s"] = controls_back(controller)
    # A synth power-cycled: its port goes for a second and comes back under the same name.
    synth.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        out.send(mido.Message("note_on", note=62, velocity=80))
        time.sleep(0.05)
    synth = fakes.JackMidiMonitor(synth_name)
    result["power_cycle_notes_s"] = notes_back(synth)
    # The JACK server killed and started again: every client of the old one is dead.
    synth.close()
    server.kill()
    server.wait(5)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        out.send(mido.Message("note_on", note=64, velocity=80))
        midi_in.poll()
        time.sleep(0.05)
    server = start_jackd(name)
    synth = fakes.JackMidiMonitor(synth_name)
    result["restart_notes_s"] = notes_back(synth)
    stale = controller  # a port of the killed server: closing it would crash, so it is kept
    controller = mido.Backend(BACKEND).open_output(f"knobs{os.getpid()}", virtual=True)
    result["restart_controls_s"] = controls_back(controller)
    result["out_health"] = out.check()
    result["in_health"] = midi_in.health.snapshot()
    result["warnings"] = warnings.lines
    print(json.dumps(result), flush=True)
    assert stale is not None
    synth.close()
    stop_jackd(server)
    os._exit(0)  # the clients of the killed server are left as they are: their destructors would wait on it


if __name__ == "__main__":
    main()
