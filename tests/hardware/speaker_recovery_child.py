"""Run as a child process by tests/hardware/test_device_recovery.py: the synth on the speakers through a JACK
server that is killed (-9) and started again. Prints one JSON line of results.

A JACK client of the test (in a child of its own, tests.fakes.CaptureFrom) records the speakers'
port: sound is "back" when a sustained note is heard there again. The speakers' PortAudio runs in
their own child process; native code here that hangs or crashes fails the one test with its stacks.
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
import numpy as np  # noqa: E402

from hardware.sound.synth import Synth, SynthLoopInput, SynthSpeakers, output_rate_hz  # noqa: E402
from installation.clock import MonotonicClock  # noqa: E402
from tests.hardware.device_recovery_child import Warnings  # noqa: E402
from tests.fakes import CaptureFrom  # noqa: E402
from tests.conftest import start_jackd, stop_jackd, with_jack_servers  # noqa: E402

LOUD = 0.05


def sound_back(loop: SynthLoopInput, timeout_s: float = 15.0) -> tuple[float | None, CaptureFrom]:
    """Seconds until the speakers' port is heard (connecting as soon as it exists), and the capture."""
    t0 = time.monotonic()
    capture = CaptureFrom()
    while time.monotonic() - t0 < timeout_s:
        if capture.connect() or capture.audio().size:
            if np.abs(capture.audio()).max(initial=0.0) > LOUD:
                return round(time.monotonic() - t0, 2), capture
        loop.read(0.05)  # the listener, as in the show
    return None, capture


def run(servers: list) -> None:
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    name = f"speakers{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    server = start_jackd(name)
    servers.append(server)
    clock = MonotonicClock()
    synth = Synth(output_rate_hz(), gain=0.8)  # listed in a child of its own, as the show lists it
    speakers = SynthSpeakers(synth, clock, None, 1024)
    loop = SynthLoopInput(synth, clock, 1024, tap=speakers)
    synth.send(mido.Message("program_change", channel=0, program=80))  # square lead: sustained
    synth.send(mido.Message("note_on", channel=0, note=69, velocity=110))
    result: dict = {}
    loop.open()
    result["first_sound_s"], capture = sound_back(loop)
    server.kill()  # kill -9: no client hears of it
    server.wait(5)
    capture.abandon()
    capture.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:  # the listener goes on meanwhile
        loop.read(0.1)
    result["while_gone"] = {"playing": speakers.playing, "state": speakers.health.snapshot()["state"]}
    server = start_jackd(name)
    servers.append(server)
    result["restart_sound_s"], capture = sound_back(loop)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:  # the listener goes on (the capture may hear the speakers before it reads them)
        loop.read(0.05)
    heard = capture.audio()[-48000:]
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(heard.size)))
    result["restart_peak_hz"] = round(float(np.argmax(spectrum)) * 48000 / heard.size, 1)
    latency_ms = speakers.added_latency_ms()
    result["added_latency_ms"] = {f"p{q}": round(float(np.percentile(latency_ms, q)), 1) for q in (50, 90, 99, 100)}
    result["speaker_stats"] = dict(speakers.stats)
    result["loop_stats"] = dict(loop.stats)
    result["health"] = speakers.health.snapshot()
    result["warnings"] = warnings.lines
    loop.close()
    capture.close()
    print(json.dumps(result), flush=True)
    stop_jackd(server)
    os._exit(0)  # nothing left of the killed server is closed politely


def main() -> None:
    with_jack_servers(run)


if __name__ == "__main__":
    main()
