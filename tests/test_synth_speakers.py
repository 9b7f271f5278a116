"""The built-in synth on a real PortAudio output (JACK's dummy driver): heard there and by the loop."""
from __future__ import annotations

import time

import mido
import numpy as np
import pytest

from hardware.synth import Synth, SynthLoopInput, SynthSpeakers, output_rate_hz
from installation.clock import MonotonicClock
from tests.fakes import CaptureFrom


def peak_hz(x: np.ndarray, rate_hz: int) -> float:
    n = 1 << int(np.log2(len(x)))
    spectrum = np.abs(np.fft.rfft(x[-n:] * np.hanning(n)))
    return float(np.argmax(spectrum) * rate_hz / n)


@pytest.mark.jack
def test_synth_plays_to_the_output_device_and_the_loop_hears_the_same(portaudio_on_jack):
    clock = MonotonicClock()
    synth = Synth(output_rate_hz(), gain=0.8)
    assert synth.sample_rate_hz == 48000  # the JACK server's rate: no resampling anywhere
    speakers = SynthSpeakers(synth, clock, None, 1024)
    loop = SynthLoopInput(synth, clock, 1024, tap=speakers)
    capture = CaptureFrom()
    try:
        loop.open()  # opens the speaker stream too
        deadline = time.monotonic() + 3
        while not capture.connect() and time.monotonic() < deadline:
            time.sleep(0.05)
        synth.send(mido.Message("program_change", channel=0, program=80))  # square lead: sustained
        synth.send(mido.Message("note_on", channel=0, note=69, velocity=110))
        heard = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            block = loop.read(0.1)
            if block is not None:
                heard.append(block.samples)
        synth.send(mido.Message("note_off", channel=0, note=69))
    finally:
        loop.close()
        played = capture.audio()
        capture.close()
    looped = np.concatenate(heard)
    # the listener got real-time audio: about 1.5 s of it, carrying the note
    assert 1.2 * 48000 <= looped.size <= 1.8 * 48000
    assert abs(peak_hz(looped, 48000) - 440.0) < 5
    # and the same note reached the device, through the JACK graph
    assert played.size > 48000 and np.abs(played).max() > 0.05
    assert abs(peak_hz(played, capture.rate_hz) - 440.0) < 5
    assert speakers.stats["underflows"] < 5
