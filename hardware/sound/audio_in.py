"""Live audio inputs behind hardware.base.AudioInput: sounddevice, pyaudio and a paced file.

Device inputs share one design: the PortAudio callback copies the interleaved block into a
preallocated ring buffer and counts (blocks, overflows, status flags); nothing else happens on the
audio thread. `read()` (listener thread) takes everything new, mixes down to mono, drops NaN/inf,
resamples once to the requested rate and returns one AudioBlock. When the device stops delivering
(unplugged, server gone), `read()` returns silence paced by the clock and reopens the stream with
exponential backoff; it never raises while running, it counts.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.sound.devices import find_input_device, has_input_device, list_audio_devices  # noqa: F401 - their home for callers
from installation.errors import UserError
from installation.records import AudioBlock

log = logging.getLogger("chromesthesia.audio_in")
RING_S = 4.0
STALL_MIN_S = 0.5
"""No callback for this long (or 8 blocks, if longer) means the device has gone."""
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
RECOVERY_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
"""A child stream is tried again sooner: it is only tried while its JACK server answers."""


def reinitialize_portaudio() -> None:
    """Make PortAudio scan devices again (it caches the list at initialisation).

    Every sounddevice stream in the process must be closed first; PortAudio is reference counted,
    so all of sounddevice's references are released before one is taken again.
    """
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return
    try:
        while sd._initialized > 0:
            sd._terminate()
    finally:
        sd._initialize()


_JACK_SERVER_AT_OPEN: list[int | None] = []
"""The JACK server PortAudio's streams joined (one entry, set by `note_portaudio_server`)."""


def note_portaudio_server(keep: bool = False) -> None:
    """Called where a PortAudio stream opens: remembers the JACK server it joined, if PortAudio is on JACK.

    `keep`: only when none is noted yet (PortAudio joined its server when it initialised, not since)."""
    from hardware.sound.jack_server import server_identity
    if keep and _JACK_SERVER_AT_OPEN:
        return
    sd = sys.modules.get("sounddevice")
    try:
        on_jack = sd is not None and any("JACK" in str(h["name"]) for h in sd.query_hostapis())
    except Exception:  # noqa: BLE001 - PortAudio not initialised: nothing joined
        on_jack = False
    _JACK_SERVER_AT_OPEN[:] = [server_identity()] if on_jack else []


def portaudio_server_gone() -> bool:
    """Whether the JACK server PortAudio's streams joined has stopped or been replaced since."""
    from hardware.sound.jack_server import server_identity
    return bool(_JACK_SERVER_AT_OPEN) and server_identity() != _JACK_SERVER_AT_OPEN[0]


def release_portaudio(timeout_s: float = 1.0) -> bool:
    """Terminate PortAudio now, bounded, before the interpreter's exit does it unbounded.

    False when it cannot be: PortAudio's JACK host never hears that its server died, so
    Pa_Terminate then waits up to 10 minutes for a stream to stop, or aborts the process on an
    assertion. The caller must then leave with os._exit (nothing else is left open by then).
    """
    from hardware.timeouts import call_abandoning
    sd = sys.modules.get("sounddevice")
    if sd is None or sd._initialized == 0:
        return True
    if portaudio_server_gone():
        log.info("PortAudio's JACK server has gone; PortAudio is left for the process exit")
        return False

    def terminate() -> None:
        while sd._initialized > 0:
            sd._terminate()
    return call_abandoning(terminate, timeout_s, "releasing PortAudio")


# --- shared machinery --------------------------------------------------------------------------
class _Ring:
    """Preallocated interleaved ring; `write` runs on the audio thread and only copies."""

    def __init__(self, frames: int, channels: int) -> None:
        self.buf = np.zeros((frames, channels), np.float32)
        self.write_pos = 0  # frames ever written
        self.read_pos = 0   # frames ever read
        self.overflows = 0  # frames overwritten before they were read
        self.last_write_s = 0.0
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def write(self, data: np.ndarray, now_s: float) -> None:
        n = data.shape[0]
        cap = self.buf.shape[0]
        with self.lock:
            start = self.write_pos % cap
            if n >= cap:
                self.buf[:] = data[-cap:]
            else:
                first = min(n, cap - start)
                self.buf[start:start + first] = data[:first]
                if first < n:
                    self.buf[:n - first] = data[first:]
            self.write_pos += n
            lost = self.write_pos - self.read_pos - cap
            if lost > 0:
                self.overflows += lost
                self.read_pos += lost
            self.last_write_s = now_s
        self.ready.set()

    def take(self) -> tuple[np.ndarray, float]:
        """All unread frames and the time of the last write."""
        cap = self.buf.shape[0]
        with self.lock:
            n = self.write_pos - self.read_pos
            start = self.read_pos % cap
            idx = (start + np.arange(n)) % cap
            out = self.buf[idx].copy()
            self.read_pos = self.write_pos
            self.ready.clear()
            return out, self.last_write_s


class _Converter:
    """Interleaved device frames -> mono float32 at the output rate: mix down, clean, resample once."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        import soxr
        self.in_rate_hz, self.out_rate_hz = in_rate_hz, out_rate_hz
        self._resampler = (None if in_rate_hz == out_rate_hz else
                           soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ"))
        self.bad_samples = 0
        self.clipped_samples = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames, np.float32)
        if x.ndim == 2:
            finite = np.isfinite(x)
            if not finite.all():
                self.bad_samples += int(x.size - np.count_nonzero(finite))
                x = np.where(finite, x, np.float32(0.0))
            self.clipped_samples += int(np.count_nonzero(np.abs(x) >= 1.0))
            x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        x = np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
        if self._resampler is not None and x.size:
            x = self._resampler.resample_chunk(x)
        return x


class _DeviceInput:
    """Common behaviour of the PortAudio inputs; subclasses open and close the stream."""

    backend = "portaudio"
    backoff_s: tuple[float, ...] = BACKOFF_S

    def __init__(self, device: str, sample_rate_hz: int, channels: int, block_frames: int, clock) -> None:
        self.device = str(device)
        self.requested_rate_hz = int(sample_rate_hz)
        self.requested_channels = int(channels)
        self.block_frames = int(block_frames)
        self.clock = clock
        self.name = f"{self.backend}:{self.device or 'default'}"
        self.sample_rate_hz = int(sample_rate_hz)  # the output rate; known for sure after open()
        self.stats: dict[str, int] = {"blocks": 0, "overflows": 0, "status_flags": 0, "reopens": 0,
                                      "reopen_failures": 0, "stalls": 0, "silence_frames": 0,
                                      "bad_samples": 0, "clipped_samples": 0, "resumes": 0,
                                      "hung_calls": 0}
        self._ring: _Ring | None = None
        self._convert: _Converter | None = None
        self._stream: Any = None
        self._device_rate_hz = 0
        self._channels = 0
        self._open = False
        self._lost_since_s: float | None = None
        self._next_retry_s = 0.0
        self._retry = 0
        self._silence_until_s = 0.0
        self._stalled = False
        self._reinit_hung = False
        self._closing: list[threading.Event] = []  # closes still running on their helper threads
        from hardware.recovery import DeviceHealth
        self.health = DeviceHealth(self.name, "audio in", clock.now_s)

    # subclasses: _start(info, rate, channels), _stop_stream(stream), _alive(), _reinitialize()
    def _start(self, info: dict, rate: int, channels: int) -> None:
        raise NotImplementedError

    def _stop_stream(self, stream: Any) -> None:
        raise NotImplementedError

    def _devices(self) -> list[dict]:
        return list_audio_devices()

    def open(self) -> None:
        """Open the device; UserError (listing the devices) when it does not exist or refuses."""
        info = find_input_device(self.device, self._devices())
        self._start_device(info)
        self._silence_until_s = self.clock.now_s()
        self._stalled = False
        self._open = True
        self.health.opened()

    def _start_device(self, info: dict) -> None:
        channels = self.requested_channels or min(2, info["max_input_channels"])
        channels = max(1, min(channels, info["max_input_channels"]))
        rate = int(info["default_samplerate"])
        if self.requested_rate_hz and self._supports(info, self.requested_rate_hz, channels):
            rate = self.requested_rate_hz
        out_rate = self.requested_rate_hz or rate
        if self._convert is None or self._convert.in_rate_hz != rate or self._convert.out_rate_hz != out_rate:
            self._convert = _Converter(rate, out_rate)
        self._ring = _Ring(int(RING_S * rate), channels)
        self._device_rate_hz, self._channels = rate, channels
        self.sample_rate_hz = out_rate
        self.name = f"{self.backend}:{info['name']}"
        try:
            self._start(info, rate, channels)
        except Exception as exc:
            raise UserError(f"audio input {info['name']!r} cannot be opened at {rate} Hz with {channels} "
                            f"channel(s) ({exc}); choose another audio.device, sample_rate_hz or channels.") from None
        self._lost_since_s = None
        self._retry = 0

    def _supports(self, info: dict, rate: int, channels: int) -> bool:
        return True

    def _callback_copy(self, data: np.ndarray, status_flags: int) -> None:
        """Audio thread: copy and count, nothing else."""
        ring = self._ring
        if ring is None:
            return
        ring.write(data, self.clock.now_s())
        self.stats["blocks"] += 1
        if status_flags:
            self.stats["status_flags"] += 1

    def read(self, timeout_s: float) -> AudioBlock | None:
        """Listener thread: all frames since the last read as one mono block, or None.

        A stalled device (no callbacks) yields paced silence until it delivers again; a stream that
        ended (device unplugged, server gone) is abandoned and reopened with backoff.
        """
        if not self._open:
            return None
        if self._lost_since_s is not None:
            return self._recover(self.clock.now_s(), timeout_s)
        ring, convert = self._ring, self._convert
        if ring is None or convert is None:
            return None
        ring.ready.wait(timeout_s)
        frames, last_write_s = ring.take()
        self.stats["overflows"] = ring.overflows
        now = self.clock.now_s()
        if frames.shape[0]:
            if self._stalled:
                self._stalled = False
                self.stats["resumes"] += 1
                log.info("audio input %s delivers again", self.name)
            x = convert(frames)
            self.stats["bad_samples"] = convert.bad_samples
            self.stats["clipped_samples"] = convert.clipped_samples
            t_s = max(last_write_s - frames.shape[0] / self._device_rate_hz, self._silence_until_s)
            self._silence_until_s = max(self._silence_until_s, t_s + x.size / self.sample_rate_hz)
            return AudioBlock(t_s=t_s, samples=x, sample_rate_hz=self.sample_rate_hz)
        if not self._alive():
            self.health.lost("the stream stopped; feeding silence meanwhile")
            self.stats["stalls"] += 0 if self._stalled else 1
            self._stalled = False
            self._lost_since_s = now
            self._next_retry_s = now + self.backoff_s[0]
            self._retry = 0
            self._abandon_stream()
            return self._silence(now)
        stall_s = max(STALL_MIN_S, 8 * self.block_frames / max(1, self._device_rate_hz))
        if not self._stalled and now - max(last_write_s, self._silence_until_s) >= stall_s:
            self._stalled = True
            self.stats["stalls"] += 1
            log.warning("audio input %s delivers nothing; feeding silence until it does", self.name)
        return self._silence(now) if self._stalled else None

    def _server_absent(self) -> bool:
        """Whether the JACK server the stream was on is still away (a try now would only fail)."""
        return False

    def _recover(self, now: float, timeout_s: float) -> AudioBlock | None:
        if now >= self._next_retry_s and self._server_absent():
            self.clock.sleep_until(now + min(timeout_s, 0.1))  # probed again soon, not backed off
        elif now >= self._next_retry_s:
            try:
                if self._retry >= 1:
                    self._reinitialize_bounded()
                self._start_device(find_input_device(self.device, self._devices()))
                self.stats["reopens"] += 1
                self._silence_until_s = self.clock.now_s()
                self.health.opened()
                return None
            except Exception as exc:  # still gone: count, back off, keep feeding silence
                self.stats["reopen_failures"] += 1
                self.health.reopen_failed(str(exc))
                self._next_retry_s = self.clock.now_s() + self.backoff_s[min(self._retry, len(self.backoff_s) - 1)]
                self._retry += 1
                log.debug("audio input %s still unavailable: %s", self.device, exc)
        else:
            self.clock.sleep_until(min(self._next_retry_s, now + timeout_s))
        return self._silence(self.clock.now_s())

    def _silence(self, now: float) -> AudioBlock | None:
        n = int((now - self._silence_until_s) * self.sample_rate_hz)
        if n <= 0:
            return None
        t_s = self._silence_until_s
        self._silence_until_s += n / self.sample_rate_hz
        self.stats["silence_frames"] += n
        return AudioBlock(t_s=t_s, samples=np.zeros(n, np.float32), sample_rate_hz=self.sample_rate_hz)

    def _alive(self) -> bool:
        return True

    def _reinitialize(self) -> None:
        pass

    def _bounded(self, fn, what: str, timeout_s: float = 2.0, done: threading.Event | None = None) -> bool:
        """Run `fn` on a helper thread: PortAudio calls can hang when an audio server died under them."""
        done = done or threading.Event()

        def run():
            try:
                fn()
            except Exception as exc:
                log.debug("%s %s: %s", what, self.name, exc)
            finally:
                done.set()

        threading.Thread(target=run, name=f"audio-{what}", daemon=True).start()
        if not done.wait(timeout_s):
            self.stats["hung_calls"] += 1
            log.warning("audio input %s: %s did not return within %.0f s; abandoned", self.name, what, timeout_s)
            return False
        return True

    def _reinitialize_bounded(self) -> None:
        if self._reinit_hung:
            return  # a hung PortAudio stays hung; only reopening without re-initialising is left
        if not self._closes_settled():
            return  # terminating PortAudio under a stream still closing frees what that close is using
        if not self._bounded(self._reinitialize, "reinitialise"):
            self._reinit_hung = True

    def _abandon_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            done = threading.Event()
            if not self._bounded(lambda: self._stop_stream(stream), "close", 1.0, done):
                self._closing.append(done)  # slow (a loaded machine) or hung: remembered until it returns

    def _closes_settled(self, timeout_s: float = 2.0) -> bool:
        """Whether every abandoned close has returned, waiting up to `timeout_s` in all for the late ones."""
        deadline = time.monotonic() + timeout_s
        self._closing = [d for d in self._closing if not d.wait(max(0.0, deadline - time.monotonic()))]
        return not self._closing

    def _stop(self) -> None:
        self._stop_stream(self._stream)

    def close(self) -> None:
        self._open = False
        self.health.closed()
        self._abandon_stream()


class SoundDeviceInput(_DeviceInput):
    """A PortAudio input through python-sounddevice (the default backend), its stream in a child
    process (hardware.sound.input_child): after its JACK server dies, a new child with a fresh
    PortAudio joins the next server, without restarting the show."""

    backend = "sounddevice"
    backoff_s = RECOVERY_BACKOFF_S
    child_class_name = "InputChild"
    """The class of hardware.sound.input_child that runs the stream."""

    def __init__(self, device: str, sample_rate_hz: int, channels: int, block_frames: int, clock) -> None:
        super().__init__(device, sample_rate_hz, channels, block_frames, clock)
        self._device_list: list[dict] | None = None
        self._supported: dict[tuple[int, int, int], bool] = {}
        self._on_jack = False
        self._onsets: tuple[Any, Any] | None = None

    def detect_onsets(self, detector_factory, publish) -> None:
        """Run the onset detector in the stream's own process on each device block as it arrives;
        `publish(state)` gets each state on the reader thread. `onsets_live` says when it does.
        A factory that cannot travel to that process (not picklable) leaves detection to the caller."""
        import pickle
        try:
            pickle.dumps(detector_factory)
        except Exception as exc:  # noqa: BLE001 - a lambda, a closure: whatever pickle refuses
            log.debug("onsets stay in this process (%s)", exc)
            return
        self._onsets = (detector_factory, publish)

    @property
    def onsets_live(self) -> bool:
        """Whether the child's detector is publishing now (not while the stream is lost or stalled)."""
        stream = self._stream
        return (self._onsets is not None and stream is not None and stream.detecting and self._open
                and self._lost_since_s is None and not self._stalled and bool(stream.active))

    def _devices(self) -> list[dict]:
        # Listed once (in a child process of its own, hardware.sound.devices); the stream's child
        # finds the device again by name in its own fresh PortAudio.
        if self._device_list is None:
            self._device_list = list_audio_devices()
        return self._device_list

    def _supports(self, info: dict, rate: int, channels: int) -> bool:
        # Asked once per setting, as the device list is listed once.
        key = (int(info["index"]), rate, channels)
        if key not in self._supported:
            try:
                self._supported[key] = self._format_supported(info, rate, channels)
            except Exception:
                self._supported[key] = False
        return self._supported[key]

    def _format_supported(self, info: dict, rate: int, channels: int) -> bool:
        # Asked in a child: this process's PortAudio would join a JACK server.
        from hardware.sound.devices import input_settings_supported
        return input_settings_supported(int(info["index"]), rate, channels)

    def _start(self, info: dict, rate: int, channels: int) -> None:
        from hardware.sound import input_child
        factory, publish = self._onsets if self._onsets is not None else (None, None)
        child_class = getattr(input_child, self.child_class_name)
        stream = child_class(info["name"], rate, channels, self.block_frames,
                             lambda data, flags: self._callback_copy(data, flags),
                             None if factory is None else (factory, self.sample_rate_hz), publish)
        stream.start()
        self._on_jack = self._on_jack or stream.jack_server is not None
        self._stream = stream

    def _server_absent(self) -> bool:
        from hardware.sound.jack_server import server_identity
        return self._on_jack and server_identity() is None

    def _alive(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    @staticmethod
    def _stop_stream(stream) -> None:
        if stream is not None:
            stream.close()


class PyAudioInput(SoundDeviceInput):
    """A PortAudio input through PyAudio (the alternative backend), its stream in a child process
    (and its onsets detected there) as the sounddevice input's, so it comes back after a JACK restart
    the same way."""

    backend = "pyaudio"
    child_class_name = "PyAudioInputChild"

    def __init__(self, device: str, sample_rate_hz: int, channels: int, block_frames: int, clock) -> None:
        super().__init__(device, sample_rate_hz, channels, block_frames, clock)
        self._pa = None
        self._pa_server: int | None = None

    def _audio(self):
        if self._pa is None:
            import pyaudio

            from hardware.sound.jack_server import server_identity
            self._pa = pyaudio.PyAudio()
            self._pa_server = server_identity()
        return self._pa

    def _devices(self) -> list[dict]:
        # Listed once, as the sounddevice input's: the child finds the device again by name.
        if self._device_list is None:
            from hardware.sound.input_child import pyaudio_devices
            self._device_list = pyaudio_devices(self._audio())
        return self._device_list

    def _format_supported(self, info: dict, rate: int, channels: int) -> bool:
        import pyaudio
        return bool(self._audio().is_format_supported(rate, input_device=info["index"], input_channels=channels,
                                                      input_format=pyaudio.paFloat32))

    def close(self) -> None:
        super().close()
        from hardware.sound.jack_server import server_identity
        if self._pa is not None and server_identity() == self._pa_server:
            # Only while the JACK server this process's PortAudio joined still runs: after it died,
            # terminating waits for it (minutes) or aborts; leaving it is harmless.
            self._pa.terminate()
            self._pa = None


# --- file ------------------------------------------------------------------------------------
class FileInput:
    """An audio file decoded once, mixed to mono, resampled once, and released in real time."""

    def __init__(self, path: str, sample_rate_hz: int, clock, loop: bool = True) -> None:
        self.path = Path(path)
        self.requested_rate_hz = int(sample_rate_hz)
        self.sample_rate_hz = int(sample_rate_hz)
        self.clock = clock
        self.loop = loop
        self.name = f"file:{self.path.name}"
        self.stats: dict[str, int] = {"blocks": 0, "loops": 0, "bad_samples": 0, "clipped_samples": 0,
                                      "silence_frames": 0}
        self._samples = np.zeros(0, np.float32)
        self._pos = 0
        self._t0_s = 0.0
        self._emitted = 0

    def open(self) -> None:
        """Decode the whole file; UserError naming it when it is missing, unreadable or empty."""
        import soundfile as sf
        if not self.path.is_file():
            raise UserError(f"audio file {self.path} does not exist; fix audio.file or give an existing file.")
        try:
            data, rate = sf.read(str(self.path), dtype="float32", always_2d=True)
        except Exception as exc:
            raise UserError(f"audio file {self.path} cannot be read ({exc}); convert it to WAV, FLAC or Ogg.") from None
        if data.shape[0] == 0:
            raise UserError(f"audio file {self.path} holds no audio; give a file with sound in it.")
        conv = _Converter(int(rate), self.requested_rate_hz or int(rate))
        x = conv(data)
        if conv._resampler is not None:
            x = np.concatenate([x, conv._resampler.resample_chunk(np.zeros(0, np.float32), last=True)])
        self.stats["bad_samples"], self.stats["clipped_samples"] = conv.bad_samples, conv.clipped_samples
        self.sample_rate_hz = conv.out_rate_hz
        self._samples = x.astype(np.float32)
        self._pos = 0
        self._emitted = 0
        self._t0_s = self.clock.now_s()

    @property
    def started_s(self) -> float:
        """When the file's first sample played, on the clock: sample i plays at started_s + i / rate."""
        return self._t0_s

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self._samples.size == 0:
            return None
        due = int((self.clock.now_s() - self._t0_s) * self.sample_rate_hz) - self._emitted
        if due <= 0:
            self.clock.sleep_until(self._t0_s + (self._emitted + 1) / self.sample_rate_hz
                                   + min(timeout_s, 0.02))
            due = int((self.clock.now_s() - self._t0_s) * self.sample_rate_hz) - self._emitted
            if due <= 0:
                return None
        t_s = self._t0_s + self._emitted / self.sample_rate_hz
        parts = []
        need = due
        while need > 0:
            if self._pos >= self._samples.size:
                if not self.loop:
                    parts.append(np.zeros(need, np.float32))  # after the end: silence, still paced
                    self.stats["silence_frames"] += need
                    break
                self._pos = 0
                self.stats["loops"] += 1
            take = min(need, self._samples.size - self._pos)
            parts.append(self._samples[self._pos:self._pos + take])
            self._pos += take
            need -= take
        self._emitted += due
        self.stats["blocks"] += 1
        return AudioBlock(t_s=t_s, samples=np.concatenate(parts), sample_rate_hz=self.sample_rate_hz)

    def close(self) -> None:
        self._samples = np.zeros(0, np.float32)
