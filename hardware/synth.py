"""The built-in software synth: the embedded default's instruments, and the music it hears.

`Synth` takes mido messages like any MIDI output and renders audio on demand. `SynthLoopInput` is
an AudioInput that hands the listener what the synth played, paced by the clock, so the embedded
default listens to its own music in a closed loop. `SynthSpeakers` plays the same signal to an
output device when one exists; the loop input then taps that stream instead of rendering twice.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from installation.records import AudioBlock

log = logging.getLogger("chromesthesia.synth")

MAX_VOICES = 32


@dataclass
class _Voice:
    channel: int
    note: int
    freq_hz: float
    amp: float
    timbre: str
    phase: float = 0.0
    age_s: float = 0.0
    released_at_s: float | None = None
    done: bool = False


def timbre_for_program(program: int, channel: int) -> str:
    """General MIDI program families mapped to the few timbres the synth has."""
    if channel == 9:
        return "drum"
    if program < 8 or 8 <= program < 16:
        return "piano"
    if 32 <= program < 40:
        return "bass"
    if 40 <= program < 56 or 88 <= program < 96:
        return "pad"
    if 80 <= program < 88:
        return "lead"
    return "organ"


# attack, decay, sustain level, release (seconds / fraction)
_ENVELOPES = {
    "piano": (0.005, 1.2, 0.0, 0.25),
    "bass": (0.01, 0.4, 0.6, 0.12),
    "pad": (0.25, 0.6, 0.75, 0.8),
    "lead": (0.01, 0.2, 0.7, 0.15),
    "organ": (0.02, 0.1, 0.9, 0.1),
    "drum": (0.001, 0.12, 0.0, 0.05),
}


class Synth:
    """A small polyphonic synth. `send` may be called from any thread; `render` from one."""

    name = "built-in synth"

    def __init__(self, sample_rate_hz: int = 22050, gain: float = 0.5, seed: int = 0) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.gain = gain
        self._voices: list[_Voice] = []
        self._programs = [0] * 16
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.stats = {"notes": 0, "stolen": 0, "panics": 0}

    # --- MidiOut ---------------------------------------------------------------------------
    def send(self, message) -> None:
        kind = message.type
        with self._lock:
            if kind == "note_on" and message.velocity > 0:
                self._start(message.channel, message.note, message.velocity)
            elif kind in ("note_on", "note_off"):
                for voice in self._voices:
                    if voice.channel == message.channel and voice.note == message.note and voice.released_at_s is None:
                        voice.released_at_s = voice.age_s
            elif kind == "program_change":
                self._programs[message.channel] = message.program
            elif kind == "control_change" and message.control in (120, 123):
                for voice in self._voices:
                    if voice.channel == message.channel:
                        if message.control == 120:
                            voice.done = True
                        elif voice.released_at_s is None:
                            voice.released_at_s = voice.age_s

    def panic(self) -> None:
        with self._lock:
            for voice in self._voices:
                if voice.released_at_s is None:
                    voice.released_at_s = voice.age_s
            self.stats["panics"] += 1

    def close(self) -> None:
        self.panic()

    def sounding(self) -> list[tuple[int, int]]:
        """(channel, note) of voices not yet released."""
        with self._lock:
            return [(v.channel, v.note) for v in self._voices if v.released_at_s is None and not v.done]

    # --- audio -----------------------------------------------------------------------------
    def _start(self, channel: int, note: int, velocity: int) -> None:
        if len(self._voices) >= MAX_VOICES:
            oldest = max(self._voices, key=lambda v: (v.released_at_s is not None, v.age_s))
            self._voices.remove(oldest)
            self.stats["stolen"] += 1
        timbre = timbre_for_program(self._programs[channel], channel)
        amp = (velocity / 127.0) ** 1.5 * 0.25
        self._voices.append(_Voice(channel, note, 440.0 * 2 ** ((note - 69) / 12), amp, timbre))
        self.stats["notes"] += 1

    def render(self, n_frames: int) -> np.ndarray:
        """The next `n_frames` of mono float32 audio."""
        out = np.zeros(n_frames, dtype=np.float64)
        if n_frames <= 0:
            return out.astype(np.float32)
        sr = self.sample_rate_hz
        t = np.arange(n_frames) / sr
        with self._lock:
            for voice in self._voices:
                out += self._voice_block(voice, t, n_frames / sr)
            self._voices = [v for v in self._voices if not v.done]
        out *= self.gain
        # soft clip: a chord at full velocity must not wrap around
        return np.tanh(out).astype(np.float32)

    def _voice_block(self, voice: _Voice, t: np.ndarray, block_s: float) -> np.ndarray:
        attack_s, decay_s, sustain, release_s = _ENVELOPES[voice.timbre]
        age = voice.age_s + t
        env = np.where(age < attack_s, age / attack_s,
                       sustain + (1 - sustain) * np.exp(-(age - attack_s) / max(decay_s, 1e-3)))
        if voice.released_at_s is not None:
            since = np.maximum(age - voice.released_at_s, 0.0)
            env = env * np.exp(-since / max(release_s / 4, 1e-3))
            if since[-1] > release_s * 1.5:
                voice.done = True
        phase = voice.phase + 2 * np.pi * voice.freq_hz * t
        if voice.timbre == "piano":
            wave = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
        elif voice.timbre == "bass":
            wave = np.sin(phase) + 0.3 * np.sign(np.sin(phase))
        elif voice.timbre == "pad":
            wave = sum(np.sin(k * phase) / k for k in range(1, 7)) * 0.6
        elif voice.timbre == "lead":
            wave = 0.6 * np.sign(np.sin(phase)) + 0.3 * np.sin(phase)
        elif voice.timbre == "drum":
            wave = self._rng.standard_normal(len(t)) * 0.8 + np.sin(2 * np.pi * 60 * age)
        else:
            wave = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(4 * phase)
        voice.phase = float((voice.phase + 2 * np.pi * voice.freq_hz * block_s) % (2 * np.pi))
        voice.age_s += block_s
        if voice.released_at_s is None and sustain == 0.0 and voice.age_s > attack_s + 6 * decay_s:
            voice.done = True
        return voice.amp * env * wave


class SynthLoopInput:
    """AudioInput that hears the synth: each read renders the time elapsed since the last one.

    With speakers attached (`tap` given) it returns what the speaker stream rendered instead.
    Called from the listener thread.
    """

    def __init__(self, synth: Synth, clock, block_frames: int = 1024, tap: "SynthSpeakers | None" = None) -> None:
        self.synth = synth
        self.clock = clock
        self.block_frames = block_frames
        self.tap = tap
        self.name = "synth loop" + (" (speakers)" if tap else "")
        self.stats = {"blocks": 0, "frames": 0}
        self._t0_s = 0.0
        self._frames_done = 0
        self._stop = threading.Event()

    STALL_S = 2.0
    """A speaker stream that delivers nothing for this long has died (device gone): reopen it."""

    def open(self) -> None:
        """Opens the speaker stream too, so the listener's supervisor reopens it after a failure."""
        self._stop.clear()
        self._t0_s = self.clock.now_s()
        self._frames_done = 0
        if self.tap is not None:
            self.tap.open()

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self.tap is not None:
            block = self.tap.read(timeout_s)
            if block is not None:
                self._t0_s = self.clock.now_s()
            elif self.clock.now_s() - self._t0_s > self.STALL_S:
                raise OSError(f"the speaker stream has delivered nothing for {self.STALL_S:.0f} s")
            return block
        sr = self.synth.sample_rate_hz
        # Count frames from one origin so rounding never drifts the loop away from the clock.
        due_s = self._t0_s + (self._frames_done + self.block_frames) / sr
        if not self.clock.sleep_until(min(due_s, self.clock.now_s() + timeout_s), self._stop):
            return None
        elapsed_frames = round((self.clock.now_s() - self._t0_s) * sr)
        n_frames = elapsed_frames - self._frames_done
        if n_frames < self.block_frames // 4:
            return None
        if n_frames > sr:  # after a stall, hand over one second and drop the rest of the backlog
            self._frames_done = elapsed_frames - sr
            n_frames = sr
        start_s = self._t0_s + self._frames_done / sr
        samples = self.synth.render(n_frames)
        self._frames_done += n_frames
        self.stats["blocks"] += 1
        self.stats["frames"] += n_frames
        return AudioBlock(t_s=start_s, samples=samples, sample_rate_hz=sr)

    def close(self) -> None:
        self._stop.set()
        if self.tap is not None:
            self.tap.close()


def output_rate_hz(device: str | int | None = None, fallback_hz: int = 22050) -> int:
    """The output device's own sample rate (the synth renders at it so nothing resamples), or
    `fallback_hz` when there is no output device after all."""
    try:
        import sounddevice as sd
        return int(sd.query_devices(device, kind="output")["default_samplerate"])
    except Exception as exc:  # noqa: BLE001 - PortAudio missing, or the device went away since probing
        log.warning("no output device rate (%s); the synth runs at %d Hz", exc, fallback_hz)
        return fallback_hz


class SynthSpeakers:
    """Plays the synth to an output device through a PortAudio callback and keeps a copy to read.

    The synth must run at the device's rate (`output_rate_hz`): JACK and many interfaces accept
    only their own.
    """

    def __init__(self, synth: Synth, clock, device: str | int | None = None, block_frames: int = 1024) -> None:
        self.synth = synth
        self.clock = clock
        self.device = device
        self.block_frames = block_frames
        self.name = "synth speakers"
        self._stream = None
        self._ring: list[AudioBlock] = []
        self._cond = threading.Condition()
        self.stats = {"underflows": 0, "dropped_blocks": 0}

    def open(self) -> None:
        import sounddevice as sd

        self.close()  # reopening after a failure: never two streams on one device

        def callback(outdata, frames, time_info, status) -> None:
            if status.output_underflow:
                self.stats["underflows"] += 1
            samples = self.synth.render(frames)
            outdata[:, 0] = samples
            if outdata.shape[1] > 1:
                outdata[:, 1:] = samples[:, None]
            with self._cond:
                if len(self._ring) >= 64:
                    self._ring.pop(0)
                    self.stats["dropped_blocks"] += 1
                self._ring.append(AudioBlock(self.clock.now_s(), samples, self.synth.sample_rate_hz))
                self._cond.notify()

        info = sd.query_devices(self.device, kind="output")
        self._stream = sd.OutputStream(samplerate=self.synth.sample_rate_hz, blocksize=self.block_frames,
                                       device=self.device, channels=min(2, int(info["max_output_channels"])),
                                       dtype="float32", callback=callback)
        self._stream.start()

    def read(self, timeout_s: float) -> AudioBlock | None:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._ring), timeout_s):
                return None
            blocks, self._ring = self._ring, []
        return AudioBlock(blocks[0].t_s, np.concatenate([b.samples for b in blocks]), blocks[0].sample_rate_hz)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()  # stop() would wait for buffers a vanished device never plays
            finally:
                stream.close()
        with self._cond:
            self._ring = []  # a reopened stream must not hand out blocks from before
