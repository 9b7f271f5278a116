"""Run as a child process by tests/hardware/test_device_recovery.py: the speakers play on a JACK server that
is then killed, and the process leaves as the installation does. Prints "killed" when the server is
gone; the test times the exit from there."""
from __future__ import annotations

import faulthandler
import os
import sys
import time

faulthandler.enable()
faulthandler.dump_traceback_later(60.0, exit=True)

from hardware.sound.audio_in import reinitialize_portaudio  # noqa: E402
from hardware.sound.synth import Synth, SynthSpeakers  # noqa: E402
from hardware.timeouts import call_abandoning  # noqa: E402
from installation.clock import MonotonicClock  # noqa: E402
from installation.startup import leave  # noqa: E402
from tests.conftest import start_jackd  # noqa: E402


def main() -> int:
    name = f"vanish{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    server = start_jackd(name)
    import sounddevice  # noqa: F401 - PortAudio initialised while the server runs
    reinitialize_portaudio()
    speakers = SynthSpeakers(Synth(48000), MonotonicClock())
    speakers.open()
    assert speakers.read(2.0) is not None, "the speakers never played"
    server.kill()
    server.wait(5)
    print("killed", flush=True)
    time.sleep(0.3)
    call_abandoning(speakers.close, 1.0, "closing the speaker stream")  # as the synth loop does
    return leave(0)


if __name__ == "__main__":
    sys.exit(main())
