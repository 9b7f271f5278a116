"""The built-in synth on a real PortAudio output (JACK's dummy driver): heard there and by the loop."""
from __future__ import annotations

import time
from pathlib import Path

import mido
import numpy as np
import pytest

from hardware.sound.synth import Synth, SynthLoopInput, SynthSpeakers, output_rate_hz
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
        heard: list[np.ndarray] = []
        deadline = time.monotonic() + 15  # a loaded machine delivers late, never less
        while sum(h.size for h in heard) < 1.5 * 48000 and time.monotonic() < deadline:
            block = loop.read(0.1)
            if block is not None:
                heard.append(block.samples)
        synth.send(mido.Message("note_off", channel=0, note=69))
    finally:
        loop.close()
        played = capture.audio()
        capture.close()
    looped = np.concatenate(heard)
    # the listener got 1.5 s of audio carrying the note (pacing is the benchmark's business)
    assert looped.size >= 1.5 * 48000
    assert abs(peak_hz(looped, 48000) - 440.0) < 5
    # and the same note reached the device, through the JACK graph
    assert played.size > 48000 and np.abs(played).max() > 0.05
    assert abs(peak_hz(played, capture.rate_hz) - 440.0) < 5
    assert speakers.stats["underflows"] < played.size / 1024  # most callbacks had audio to play


VANISHING = r"""
import json, os, random, sys, threading, time
import mido
from hardware.sound.synth import Synth, SynthLoopInput, SynthSpeakers, output_rate_hz
from installation.clock import MonotonicClock
from installation.config import load_config
from installation.mailbox import Latest
from installation.stages import ListenerStage
from installation.workers import Worker
from models.listening.va import build_listener

clock = MonotonicClock()
synth = Synth(output_rate_hz(), gain=0.8)
loop = SynthLoopInput(synth, clock, 1024, tap=SynthSpeakers(synth, clock, None, 1024))
music = Latest()
stage = ListenerStage(loop, build_listener(load_config(None, []).listen.settings(), synth.sample_rate_hz), music, clock, 0.1)
worker = Worker(stage.name, stage.step, open=stage.open, close=stage.close)
worker.start()

def play():
    rng = random.Random(1)
    synth.send(mido.Message("program_change", channel=0, program=80))
    while True:
        note, velocity = rng.randint(40, 90), rng.randint(30, 127)
        synth.send(mido.Message("note_on", channel=0, note=note, velocity=velocity))
        threading.Event().wait(rng.choice((0.1, 0.25, 0.5)))
        synth.send(mido.Message("note_off", channel=0, note=note))

threading.Thread(target=play, daemon=True).start()
while True:
    state = music.take(timeout_s=0.5)
    if state is not None:
        print(json.dumps({"t": clock.now_s(), "music_t": state.t_s, "va": [state.valence, state.arousal],
                          "speaking": loop.speaking, "failures": worker.stats.failures}), flush=True)
"""


@pytest.mark.jack
def test_music_va_keeps_moving_within_2_s_after_the_jack_server_goes_away(tmp_path):
    """The speaker stream's device vanishes mid-run (its JACK server stopped): the listener goes
    on without it within 2 s. In a child process: PortAudio's JACK host aborts a process at exit
    whose server has gone."""
    import json
    import os
    import subprocess
    import sys
    import threading
    import time

    from tests.conftest import start_jackd, stop_jackd
    from tests.waiting import wait_for

    name = f"vanishing{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    jackd = start_jackd(name)
    child = None
    lines: list[dict] = []
    try:
        root = Path(__file__).resolve().parents[2]
        child = subprocess.Popen([sys.executable, "-c", VANISHING], cwd=root, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        reader = threading.Thread(target=lambda: [lines.append(json.loads(line)) for line in child.stdout],
                                  daemon=True)
        reader.start()
        assert wait_for(lambda: len([x for x in lines if x["speaking"]]) >= 20, 60), "never heard the speakers"
        jackd.terminate()
        jackd.wait(30)
        # the moment the server had gone, on the child's clock (MonotonicClock: the system's monotonic
        # clock, the same in both processes), not on when this process got round to reading its lines
        gone_s = time.monotonic()
        assert wait_for(lambda: lines[-1]["t"] > gone_s + 4.0, 60)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(5)
        stop_jackd(jackd)
    after = [x for x in lines if x["t"] > gone_s]
    assert not after[-1]["speaking"] and after[-1]["failures"] == 0
    # a state at least every 2 s from the moment the server went, and the VA moves again
    times = [gone_s] + [x["music_t"] for x in after]
    assert max(b - a for a, b in zip(times, times[1:])) < 2.0, times
    assert len({tuple(x["va"]) for x in after if x["t"] > gone_s + 2.0}) >= 3
