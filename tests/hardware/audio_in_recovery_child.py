"""Run as a child process by tests/hardware/test_device_recovery.py: the sounddevice input (or, with
`pyaudio` after the timeout argument, the PyAudio input) on a JACK server that is killed (-9) and
started again. Prints one JSON line of results.

A JACK client of the test (tests.fakes.ToneInto, a child of its own) plays a tone into the input's
ports; the input is "back" when its blocks carry that tone again. The input's PortAudio runs in its
own child process, and so does the device listing: this process never joins a server.
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

import numpy as np  # noqa: E402

from installation.clock import MonotonicClock  # noqa: E402
from tests.conftest import start_jackd, stop_jackd, with_jack_servers  # noqa: E402
from tests.fakes import ToneInto  # noqa: E402
from tests.hardware.device_recovery_child import Warnings  # noqa: E402

LOUD = 0.1


def tone_back(inp, timeout_s: float = 15.0) -> tuple[float | None, float | None, ToneInto | None]:
    """Seconds until blocks from the device arrive, and until they carry the tone (connecting it
    to the input's ports as soon as they exist)."""
    t0 = time.monotonic()
    blocks_before = inp.stats["blocks"]
    blocks_s = None
    tone = ToneInto(440.0, 0.5)
    while time.monotonic() - t0 < timeout_s:
        tone.connect_all()
        block = inp.read(0.05)
        if blocks_s is None and inp.stats["blocks"] > blocks_before:
            blocks_s = round(time.monotonic() - t0, 2)
        if block is not None and np.abs(block.samples).max(initial=0.0) > LOUD:
            return blocks_s, round(time.monotonic() - t0, 2), tone
    return blocks_s, None, tone


def run(servers: list) -> None:
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    name = f"audioin{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    server = start_jackd(name)
    servers.append(server)
    from hardware.sound.audio_in import PyAudioInput, SoundDeviceInput  # PortAudio here initialises with the server running
    cls = PyAudioInput if sys.argv[2:3] == ["pyaudio"] else SoundDeviceInput
    inp = cls("system", 16000, 0, 1024, MonotonicClock())
    inp.open()
    result: dict = {}
    _, result["first_tone_s"], tone = tone_back(inp)
    server.kill()  # kill -9: no client hears of it
    server.wait(5)
    if tone is not None:
        tone.abandon()
        tone.close()
    t0 = time.monotonic()
    silent = 0
    while time.monotonic() - t0 < 1.5:  # the listener goes on meanwhile, fed silence
        block = inp.read(0.1)
        silent += 0 if block is None else int(block.samples.size)
    result["while_gone"] = {"silent_samples": silent, "state": inp.health.snapshot()["state"]}
    server = start_jackd(name)
    servers.append(server)
    result["restart_blocks_s"], result["restart_tone_s"], tone = tone_back(inp)
    result["health"] = inp.health.snapshot()
    result["stats"] = dict(inp.stats)
    result["warnings"] = warnings.lines
    if tone is not None:
        tone.close()
    inp.close()
    print(json.dumps(result), flush=True)
    stop_jackd(server)
    os._exit(0)  # nothing left of the killed server is closed politely


def main() -> None:
    with_jack_servers(run)


if __name__ == "__main__":
    main()
