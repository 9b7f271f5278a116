"""The built-in software synth: the embedded default's instruments, and the music it hears.

`Synth` takes mido messages like any MIDI output and renders audio on demand. `SynthLoopInput` is
an AudioInput that hands the listener what the synth played, paced by the clock, so the embedded
default listens to its own music in a closed loop. `SynthSpeakers` (hardware.sound.speakers) plays the
same signal to an output device when one exists, from a child process that is replaced when its
device or JACK server goes; the loop input then hears what it played instead of rendering twice.

The instruments behave like real ones where it is cheap to: a harder key or bow gives a brighter
tone (more upper harmonics: band-limited wavetables chosen by velocity), bowed pads start faster
when played hard and are slightly detuned against a second oscillator (chorus), and channel 9 is a
General MIDI drum kit by note number (pitched sine sweeps for kick and toms, filtered noise with
short decays for snare, hi-hats and cymbals). All tonal voices render together as one array
operation, with envelopes computed at a control rate, so a block renders in well under its length.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from hardware.base import CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF, BaseMidiOut
from hardware.sound.speakers import SynthSpeakers
from installation.records import AudioBlock

log = logging.getLogger("chromesthesia.synth")

MAX_VOICES = 32

TABLE_SIZE = 2048
"""Samples per single-cycle wavetable (a power of two)."""
BRIGHTNESS_LEVELS = 12
"""Velocity is quantised into this many brightness steps, each its own wavetable."""
_TIERS = 10
"""Band-limiting tiers, one per octave from 27.5 Hz: a tier's tables stop below Nyquist for its top note."""
_MAX_HARMONICS = 64
_CONTROL_FRAMES = 32
"""Envelopes are exact every this many frames and linear in between."""
_CHORUS_CENTS = 6.0
VELOCITY_EXPONENT = 1.5
"""Amplitude follows (velocity / 127) ** this (velocity 20 sits 24 dB under 127). GM's square law
(40 log10) was tried: soft playing then rated as more energetic, not less."""


@dataclass
class _Voice:
    channel: int
    note: int
    freq_hz: float
    amp: float
    timbre: str
    phase: float = 0.0  # position in the wavetable, in table samples
    age_s: float = 0.0
    released_at_s: float | None = None
    done: bool = False
    velocity: int = 64
    row: int = 0  # wavetable row in the bank
    attack_s: float = 0.0
    phase2: float = 0.0  # chorus oscillator (pads)
    drum: tuple = ()  # drum components (drums only)
    noise_at: int = 0  # where this hit reads the noise banks
    choked_at_s: float | None = None  # drums: panic or a closing hi-hat cuts the ring short
    life_s: float = 0.0


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

_TONAL = ("piano", "bass", "pad", "lead", "organ")

# Harmonic k's amplitude is base(k) * k ** -slope * exp(-(k - 1) * darkness), slope and darkness
# going from the first pair (softest) to the second (hardest): velocity opens the tone as a hammer,
# pluck or bow does. The soft ends keep some harmonics on purpose: near-sine soft tones were rated
# by vibenet as more energetic and happier than brighter ones (Spearman with arousal fell to ~0), so
# softness here means a steeper rolloff, not a pure tone. Tuned on `run.py eval composer --renderer
# synth`, where the figures move by ~0.3 with small changes to the pad's spectrum: treat as fragile.
_SPECTRA = {"piano": ((0.2, 1.1), (0.6, 0.1)), "bass": ((1.2, 0.4), (0.9, 0.15)),
            "pad": ((1.0, 0.2), (0.7, 0.0)), "lead": ((0.95, 0.08), (0.75, 0.0)), "organ": ((0.85, 0.12), (0.8, 0.05))}
# overall level of each timbre (tables keep their fundamental at 1, so bright ones come out louder)
_LEVEL = {"piano": 0.9, "bass": 1.0, "pad": 0.55, "lead": 0.5, "organ": 0.65}


def _harmonics(timbre: str, k: np.ndarray, brightness: float) -> np.ndarray:
    (slope_soft, dark_soft), (slope_hard, dark_hard) = _SPECTRA[timbre]
    slope = slope_soft + (slope_hard - slope_soft) * brightness
    darkness = dark_soft + (dark_hard - dark_soft) * brightness
    amplitude = k ** -slope * np.exp(-(k - 1) * darkness)
    if timbre == "piano":  # hammer at 1/7 of the string: the 7th, 14th, ... harmonics are weak
        return amplitude * (0.15 + np.abs(np.sin(np.pi * k / 7)) / np.sin(np.pi / 7)) / 1.15
    if timbre == "lead":  # square: odd harmonics
        return amplitude * (k % 2 == 1)
    if timbre == "organ":  # drawbars 8', 4', 2' strong; the rest come in with velocity
        drawbar = np.isin(k, (1, 2, 4))
        return np.where(drawbar, 1.0 / k, 0.3 * brightness * amplitude)
    return amplitude  # sawtooth-like: piano, bass, strings


def _build_bank(sample_rate_hz: int) -> np.ndarray:
    """Single-cycle wavetables, one row per (timbre, brightness level, tier), each with a guard sample."""
    rows = []
    for timbre in _TONAL:
        for level in range(BRIGHTNESS_LEVELS):
            brightness = level / (BRIGHTNESS_LEVELS - 1)
            for tier in range(_TIERS):
                top_hz = 27.5 * 2 ** (tier + 1)
                n_harm = int(max(1, min(_MAX_HARMONICS, 0.45 * sample_rate_hz // top_hz)))
                k = np.arange(1, n_harm + 1, dtype=np.float64)
                spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
                spectrum[1:n_harm + 1] = -0.5j * TABLE_SIZE * _harmonics(timbre, k, brightness) * _LEVEL[timbre]
                table = np.fft.irfft(spectrum, TABLE_SIZE)  # sum of sines, fundamental amplitude 1
                rows.append(np.append(table, table[0]))
    return np.asarray(rows, dtype=np.float32)


def _bank_row(timbre: str, level: int, freq_hz: float) -> int:
    tier = int(min(_TIERS - 1, max(0, math.floor(math.log2(max(freq_hz, 27.5) / 27.5)))))
    return (_TONAL.index(timbre) * BRIGHTNESS_LEVELS + level) * _TIERS + tier


def _shaped_noise(rng: np.random.Generator, n: int, sample_rate_hz: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    """White noise band-passed (gentle 4th-order slopes) to lo..hi Hz, unit RMS, twice over so reads never wrap."""
    white = rng.standard_normal(n)
    f = np.fft.rfftfreq(n, 1 / sample_rate_hz)
    hi_hz = min(hi_hz, 0.45 * sample_rate_hz)
    lo_hz = min(lo_hz, 0.6 * hi_hz)
    with np.errstate(divide="ignore"):
        gain = 1 / (1 + (lo_hz / np.maximum(f, 1e-3)) ** 4) / (1 + (f / hi_hz) ** 4)
    noise = np.fft.irfft(np.fft.rfft(white) * gain, n)
    noise /= max(float(np.sqrt(np.mean(noise ** 2))), 1e-9)
    return np.concatenate([noise, noise]).astype(np.float32)


# Drum components: ("sweep", start Hz, end Hz, pitch time constant s, decay s, gain) is a sine whose
# pitch falls from start to end; ("noise", bank, decay s, gain) reads a filtered noise bank.
def _tom(hz: float) -> tuple:
    return (("sweep", hz * 1.6, hz, 0.05, 0.3, 1.3), ("noise", "snare", 0.02, 0.25))


_KICK = (("sweep", 200.0, 60.0, 0.03, 0.2, 1.2), ("noise", "snare", 0.01, 0.8))
_SNARE = (("sweep", 260.0, 185.0, 0.02, 0.08, 0.8), ("noise", "snare", 0.18, 1.4))
_CLOSED_HAT = (("noise", "hat", 0.06, 1.2),)
_DRUMS: dict[int, tuple] = {
    35: _KICK, 36: _KICK,
    37: (("sweep", 1000.0, 850.0, 0.01, 0.015, 0.7), ("noise", "click", 0.012, 0.9)),  # side stick
    38: _SNARE, 40: _SNARE,
    39: (("noise", "snare", 0.08, 1.1),),  # clap
    41: _tom(82.0), 43: _tom(98.0), 45: _tom(110.0), 47: _tom(131.0), 48: _tom(147.0), 50: _tom(175.0),
    42: _CLOSED_HAT, 44: (("noise", "hat", 0.025, 0.4),), 46: (("noise", "hat", 0.35, 0.5),),
    49: (("noise", "cymbal", 1.0, 0.55),), 57: (("noise", "cymbal", 1.0, 0.55),),
    52: (("noise", "cymbal", 0.6, 0.5),), 55: (("noise", "cymbal", 0.4, 0.5),),
    51: (("noise", "cymbal", 0.45, 0.35), ("sweep", 3150.0, 3150.0, 1.0, 0.3, 0.08)),  # ride
    59: (("noise", "cymbal", 0.45, 0.35), ("sweep", 3150.0, 3150.0, 1.0, 0.3, 0.08)),
    53: (("sweep", 780.0, 780.0, 1.0, 0.5, 0.3), ("sweep", 1180.0, 1180.0, 1.0, 0.4, 0.2),
         ("noise", "cymbal", 0.3, 0.2)),  # ride bell
    54: (("noise", "hat", 0.1, 0.45),),  # tambourine
    56: (("sweep", 540.0, 540.0, 1.0, 0.12, 0.4), ("sweep", 800.0, 800.0, 1.0, 0.1, 0.3)),  # cowbell
}
_HAT_CHOKERS = (42, 44)  # a closing hi-hat stops an open one ringing
_OPEN_HAT = 46
_CHOKE_S = 0.05


def _drum(note: int) -> tuple:
    """Components for a GM drum note; notes without their own sound get a small pitched knock."""
    if note in _DRUMS:
        return _DRUMS[note]
    hz = 180.0 * 2 ** ((note - 60) / 24)
    return (("sweep", hz * 1.3, hz, 0.02, 0.08, 0.6), ("noise", "snare", 0.03, 0.3))


class Synth(BaseMidiOut):
    """A small polyphonic synth. `send` may be called from any thread; `render` from one."""

    name = "built-in synth"

    def __init__(self, sample_rate_hz: int = 22050, gain: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.sample_rate_hz = sample_rate_hz
        self.gain = gain
        self._voices: list[_Voice] = []
        self._programs = [0] * 16
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.stats.update(notes=0, stolen=0)
        self._bank = _build_bank(sample_rate_hz)
        self._flat_bank = self._bank.reshape(-1)
        n_noise = int(sample_rate_hz)
        self._noise = {"hat": _shaped_noise(self._rng, n_noise, sample_rate_hz, 7000.0, 16000.0),
                       "cymbal": _shaped_noise(self._rng, n_noise, sample_rate_hz, 3500.0, 14000.0),
                       "snare": _shaped_noise(self._rng, n_noise, sample_rate_hz, 900.0, 9000.0),
                       "click": _shaped_noise(self._rng, n_noise, sample_rate_hz, 1500.0, 6000.0)}
        self._n_noise = n_noise
        self._frames = np.arange(0, dtype=np.float64)
        self._ramp = np.arange(_CONTROL_FRAMES, dtype=np.float32) / _CONTROL_FRAMES

    # --- MidiOut ---------------------------------------------------------------------------
    def _send(self, message) -> None:
        kind = message.type
        with self._lock:
            if kind == "note_on" and message.velocity > 0:
                self._start(message.channel, message.note, message.velocity)
            elif kind in ("note_on", "note_off"):
                # drums ring out by themselves, as on any GM kit; the note-off only ends the note
                for voice in self._voices:
                    if voice.channel == message.channel and voice.note == message.note and voice.released_at_s is None:
                        voice.released_at_s = voice.age_s
            elif kind == "program_change":
                self._programs[message.channel] = message.program
            elif kind == "control_change" and message.control in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
                for voice in self._voices:
                    if voice.channel != message.channel:
                        continue
                    if voice.released_at_s is None:
                        voice.released_at_s = voice.age_s
                    if message.control == CC_ALL_SOUND_OFF and voice.choked_at_s is None:
                        # Sound off through the release and a short choke: silent in well under a
                        # second, without the click of cutting a waveform mid-cycle.
                        voice.choked_at_s = voice.age_s

    def _close(self) -> None:
        with self._lock:
            for voice in self._voices:
                if voice.released_at_s is None:
                    voice.released_at_s = voice.age_s

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
        amp = (velocity / 127.0) ** VELOCITY_EXPONENT * 0.25
        freq_hz = 440.0 * 2 ** ((note - 69) / 12)
        voice = _Voice(channel, note, freq_hz, amp, timbre, velocity=velocity)
        brightness = velocity / 127.0
        if timbre == "drum":
            voice.drum = _drum(note)
            voice.noise_at = int(self._rng.integers(0, self._n_noise))
            voice.life_s = 6.9 * max(c[4] if c[0] == "sweep" else c[2] for c in voice.drum)
            if note in _HAT_CHOKERS:
                for other in self._voices:
                    if other.channel == channel and other.note == _OPEN_HAT and other.choked_at_s is None:
                        other.choked_at_s = other.age_s
        else:
            level = int(round(brightness * (BRIGHTNESS_LEVELS - 1)))
            voice.row = _bank_row(timbre, level, freq_hz)
            attack_s = _ENVELOPES[timbre][0]
            if timbre == "pad":  # a bow dug in hard speaks at once; a gentle one swells
                attack_s = 0.35 - 0.32 * brightness
            voice.attack_s = attack_s
            voice.phase = float(self._rng.random() * TABLE_SIZE) if timbre in ("pad", "organ") else 0.0
            voice.phase2 = float(self._rng.random() * TABLE_SIZE)
        self._voices.append(voice)
        self.stats["notes"] += 1

    def render(self, n_frames: int) -> np.ndarray:
        """The next `n_frames` of mono float32 audio."""
        if n_frames <= 0:
            return np.zeros(0, dtype=np.float32)
        out = np.zeros(n_frames, dtype=np.float32)
        with self._lock:
            if self._voices:
                if len(self._frames) < n_frames:
                    self._frames = np.arange(max(n_frames, 4096), dtype=np.float64)
                self._render_tonal(out, n_frames)
                for voice in self._voices:
                    if voice.timbre == "drum":
                        self._render_drum(out, voice, n_frames)
                self._voices = [v for v in self._voices if not v.done]
        out *= self.gain
        # soft clip: a chord at full velocity must not wrap around
        return np.tanh(out, out=out)

    def _render_tonal(self, out: np.ndarray, n: int) -> None:
        """Every tonal voice at once: one wavetable row per oscillator, envelopes at control rate."""
        sr = self.sample_rate_hz
        block_s = n / sr
        rows, pos0, steps, amps, ages, attacks, decays, sustains, releases, released = ([] for _ in range(10))
        step_scale = TABLE_SIZE / sr
        chorus = 2 ** (_CHORUS_CENTS / 1200)
        for voice in self._voices:
            if voice.timbre == "drum":
                continue
            _, decay_s, sustain, release_s = _ENVELOPES[voice.timbre]
            oscillators: tuple[tuple[float, float, float], ...] = ((voice.phase, voice.freq_hz, voice.amp),)
            if voice.timbre == "pad":
                oscillators = ((voice.phase, voice.freq_hz / chorus, voice.amp * 0.6),
                               (voice.phase2, voice.freq_hz * chorus, voice.amp * 0.6))
            for phase, freq_hz, amp in oscillators:
                rows.append(voice.row)
                pos0.append(phase)
                steps.append(freq_hz * step_scale)
                amps.append(amp)
                ages.append(voice.age_s)
                attacks.append(voice.attack_s)
                decays.append(decay_s)
                sustains.append(sustain)
                releases.append(release_s)
                released.append(-1.0 if voice.released_at_s is None else voice.released_at_s)
            # advance the voice
            if voice.timbre == "pad":
                voice.phase = (voice.phase + voice.freq_hz / chorus * step_scale * n) % TABLE_SIZE
                voice.phase2 = (voice.phase2 + voice.freq_hz * chorus * step_scale * n) % TABLE_SIZE
            else:
                voice.phase = (voice.phase + voice.freq_hz * step_scale * n) % TABLE_SIZE
            voice.age_s += block_s
            if voice.released_at_s is not None and voice.age_s - voice.released_at_s > release_s * 1.5:
                voice.done = True
            if voice.released_at_s is None and sustain == 0.0 and voice.age_s > voice.attack_s + 6 * decay_s:
                voice.done = True
        if not rows:
            return
        # envelopes, exact at control points every _CONTROL_FRAMES frames
        c = _CONTROL_FRAMES
        n_ctrl = -(-n // c)
        t_ctrl = np.arange(n_ctrl + 1) * (c / sr)
        age = np.asarray(ages)[:, None] + t_ctrl[None, :]
        att = np.asarray(attacks)[:, None]
        dec = np.asarray(decays)[:, None]
        sus = np.asarray(sustains)[:, None]
        env = np.where(age < att, age / np.maximum(att, 1e-6),
                       sus + (1 - sus) * np.exp(-np.maximum(age - att, 0.0) / np.maximum(dec, 1e-3)))
        rel_at = np.asarray(released)[:, None]
        rel = np.asarray(releases)[:, None]
        since = np.where(rel_at >= 0, np.maximum(age - rel_at, 0.0), 0.0)
        env *= np.exp(-since / np.maximum(rel / 4, 1e-3))
        env *= np.asarray(amps)[:, None]
        env = env.astype(np.float32)
        ramp = env[:, :-1, None] + (env[:, 1:] - env[:, :-1])[:, :, None] * self._ramp[None, None, :]
        ramp = ramp.reshape(len(rows), n_ctrl * c)[:, :n]
        # oscillators: linear interpolation in each one's band-limited wavetable
        pos = np.asarray(pos0)[:, None] + np.asarray(steps)[:, None] * self._frames[None, :n]
        idx = pos.astype(np.int64)
        frac = (pos - idx).astype(np.float32)
        idx &= TABLE_SIZE - 1
        idx += (np.asarray(rows, dtype=np.int64) * (TABLE_SIZE + 1))[:, None]
        a = self._flat_bank[idx]
        idx += 1
        wave = self._flat_bank[idx]
        wave -= a
        wave *= frac
        wave += a
        out += np.einsum("ij,ij->j", wave, ramp)

    def _render_drum(self, out: np.ndarray, voice: _Voice, n: int) -> None:
        sr = self.sample_rate_hz
        end_s = voice.life_s
        if voice.choked_at_s is not None:
            end_s = min(end_s, voice.choked_at_s + _CHOKE_S * 6)
        m = min(n, max(0, int(math.ceil((end_s - voice.age_s) * sr))))
        if m > 0:
            age = (voice.age_s + self._frames[:m] / sr).astype(np.float32)
            hit = np.zeros(m, dtype=np.float32)
            start = int(round(voice.age_s * sr))
            for part in voice.drum:
                if part[0] == "sweep":
                    _, f0, f1, tau_p, decay_s, gain = part
                    if f0 >= 0.45 * sr:
                        continue
                    phase = 2 * np.pi * (f1 * age + (f0 - f1) * tau_p * (1 - np.exp(-age / tau_p)))
                    hit += gain * np.exp(-age / decay_s) * np.sin(phase)
                else:
                    _, bank, decay_s, gain = part
                    noise = self._noise[bank]
                    at = (voice.noise_at + start) % self._n_noise
                    if m <= self._n_noise:
                        chunk = noise[at:at + m]
                    else:
                        chunk = np.resize(np.roll(noise[:self._n_noise], -at), m)
                    hit += gain * np.exp(-age / decay_s) * chunk
            if voice.choked_at_s is not None:
                hit *= np.exp(-np.maximum(age - voice.choked_at_s, 0.0) / _CHOKE_S)
            out[:m] += voice.amp * hit
        voice.age_s += n / sr
        if voice.age_s >= end_s:
            voice.done = True


class SynthLoopInput:
    """AudioInput that hears the synth: each read renders the time elapsed since the last one.

    With speakers attached (`tap` given) it returns what the speakers played instead, while they
    play. When they are lost (their JACK server went, the stream stopped) listening goes on at once
    on the clock, and switches back when the speakers do (they recover by themselves: see
    hardware.sound.speakers). Called from the listener thread.
    """

    def __init__(self, synth: Synth, clock, block_frames: int = 1024, tap: SynthSpeakers | None = None) -> None:
        self.synth = synth
        self.clock = clock
        self.block_frames = block_frames
        self.tap = tap
        self.name = "synth loop" + (" (speakers)" if tap else "")
        self.stats = {"blocks": 0, "frames": 0, "speaker_losses": 0, "speaker_reopens": 0}
        self._t0_s = 0.0
        self._frames_done = 0
        self._stop = threading.Event()
        self._speaking = False
        self._spoke = False
        if tap is not None:
            self.health = tap.health

    def open(self) -> None:
        """Opens the speakers too; without them, listening runs on the clock until they come."""
        self._stop.clear()
        self._restart_clock()
        self._speaking = self._spoke = False
        if self.tap is not None:
            self.tap.open()

    @property
    def speaking(self) -> bool:
        """True while the speakers' stream is what the listener hears."""
        return self._speaking

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self.tap is not None and self.tap.playing:
            if not self._speaking:
                self._speaking = True
                self.stats["speaker_reopens"] += int(self._spoke)
                self._spoke = True
            block = self.tap.read(timeout_s)
            if block is not None or self.tap.playing:
                return block
        if self._speaking:  # the speakers just went: the clock takes over from now
            self._speaking = False
            self.stats["speaker_losses"] += 1
            self._restart_clock()
        return self._render(timeout_s)

    def _restart_clock(self) -> None:
        self._t0_s = self.clock.now_s()
        self._frames_done = 0

    def _render(self, timeout_s: float) -> AudioBlock | None:
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
        self._speaking = False


def output_rate_hz(device: str | int | None = None, fallback_hz: int = 22050) -> int:
    """The output device's own sample rate (the synth renders at it so nothing resamples), or
    `fallback_hz` when there is no output device after all. `device`: an index, a name substring,
    or None for the default output. Listed in a child process (hardware.sound.devices)."""
    from hardware.sound.devices import default_output, list_audio_devices
    devices = list_audio_devices()
    if device is None:
        info = default_output(devices)
    else:
        outputs = [d for d in devices if d["max_output_channels"] > 0]
        text = str(device).strip()
        info = next((d for d in outputs if (d["index"] == int(text) if text.lstrip("-").isdigit()
                                            else text.lower() in d["name"].lower())), None)
    if info is None:
        log.warning("no output device%s; the synth runs at %d Hz", "" if device is None else f" {device!r}", fallback_hz)
        return fallback_hz
    return int(info["default_samplerate"])
