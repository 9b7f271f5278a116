"""A PortAudio input stream in a child process of its own, replaced whole when its server dies.

PortAudio cannot outlive its JACK server in one process (a stream close waits minutes, Pa_Terminate
aborts, re-initialising crashes in libjack's clean-up of the dead client), so the sounddevice and
PyAudio inputs run their stream in a child (hardware.child_process) with a fresh PortAudio each time. The child's
callback sends each block down the pipe with the time its first sample was captured (PortAudio's
ADC time on the monotonic clock, `BlockDates`); a reader thread here hands it to the input's ring. Given an onset
detector's factory, the child also runs the detector on each block as it arrives, at the device's
rate, and sends the state with the block: a hit then reaches the parent without waiting for its
interpreter lock twice, for resampling, or for a part-filled hop. The
stream is inactive when the child dies or its JACK server stopped or was replaced (the socket probe
of hardware.sound.jack_server); closing it then SIGKILLs the child, since a polite close would wait
on the dead server.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from hardware.child_process import ChildProcess, serve_stream
from hardware.sound.jack_server import server_identity

START_TIMEOUT_S = 10.0


def adc_time_s(time_info, frames: int, rate_hz: int, now_s: float) -> float:
    """When the block's first sample was captured, on the monotonic clock: PortAudio's ADC time
    moved from its stream clock by the callback's own `currentTime`; without one, a block ago."""
    adc_s, current_s = float(time_info.inputBufferAdcTime), float(time_info.currentTime)
    if adc_s > 0.0 and current_s > 0.0 and 0.0 <= current_s - adc_s < 1.0:
        return now_s - (current_s - adc_s)
    return now_s - frames / rate_hz


class BlockDates:
    """Each block's first sample on the monotonic clock, counted in frames from the last: the ADC
    time of one callback jitters with the callback's wake-up, so it steers the count (keeping up with
    a device clock that drifts), and takes over after a gap (an overrun, a stall)."""

    STEER = 0.25
    """Share of the difference to the ADC time taken per block: a callback's wake-up jitter (a few
    ms) moves a date by a quarter of it, a clock that falls behind (a JACK server running late) is
    caught up within a few blocks."""
    JUMP_S = 0.05

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._next_s: float | None = None

    def __call__(self, adc_s: float, frames: int) -> float:
        expected_s = self._next_s
        if expected_s is None or abs(adc_s - expected_s) > self.JUMP_S:
            t_s = adc_s
        else:
            t_s = expected_s + self.STEER * (adc_s - expected_s)
        self._next_s = t_s + frames / self.rate_hz
        return t_s


def _block_sender(conn, rate_hz: int, block_frames: int, onsets: tuple[Any, int] | None):
    """The callback's work, whichever binding runs the stream: date the block, run the detector
    on it, send both up. Returns `send(indata, frames, time_info, status_flags)`."""
    import time

    from installation.records import AudioBlock

    detectors = [] if onsets is None else [onsets[0].at_device_rate(rate_hz, block_frames, onsets[1])]
    dates = BlockDates(rate_hz)

    def send(indata: np.ndarray, frames: int, time_info, status_flags: int) -> None:
        t_s = dates(adc_time_s(time_info, frames, rate_hz, time.monotonic()), frames)
        state = None
        for detector in detectors:
            mono = np.nan_to_num(indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0], posinf=0.0, neginf=0.0)
            try:
                state = detector.push(AudioBlock(t_s=t_s, samples=np.clip(mono, -1.0, 1.0), sample_rate_hz=rate_hz))
            except Exception:  # noqa: BLE001 - a detector fault must not stop the stream: the parent detects instead
                detectors.clear()
                state = False
        try:
            conn.send(("block", (indata.copy(), 1 if status_flags else 0, t_s, state)))
        except OSError:  # the parent has gone
            pass
    return send


def _find_device(devices: list[dict], device_name: str) -> dict:
    from hardware.sound.devices import find_input_device
    exact = [d for d in devices if d["name"] == device_name and d["max_input_channels"] > 0]
    return exact[0] if exact else find_input_device(device_name, devices)


def _input_main(conn, device_name: str, rate_hz: int, channels: int, block_frames: int,
                onsets: tuple[Any, int] | None = None) -> None:
    """The child: one PortAudio input stream on the device named `device_name`, its blocks sent up.
    `onsets`: (detector factory, the analysis rate its hop is given at), or None."""
    import sounddevice as sd

    from hardware.sound.devices import portaudio_devices

    send = _block_sender(conn, rate_hz, block_frames, onsets)

    def callback(indata, frames, time_info, status) -> None:
        send(indata, frames, time_info, 1 if status else 0)

    try:
        info = _find_device(portaudio_devices(), device_name)
        on_jack = "JACK" in info["hostapi"]
        stream = sd.InputStream(device=info["index"], samplerate=rate_hz, channels=channels, dtype="float32",
                                blocksize=block_frames, callback=callback)
    except Exception as exc:  # noqa: BLE001 - no device, a server gone since probing, a rate refused
        conn.send(("error", f"the audio input cannot open ({exc})"))
        return
    conn.send(("ready", {"jack_server": server_identity() if on_jack else None, "device": str(info["name"])}))
    serve_stream(conn, stream, "the audio input stream")


def pyaudio_devices(pa) -> list[dict]:
    """PortAudio's devices as PyAudio lists them, in the shape of hardware.sound.devices'."""
    try:
        default_in = int(pa.get_default_input_device_info()["index"])
    except (IOError, OSError):  # no default input
        default_in = -1
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        out.append({"index": int(d["index"]), "name": str(d["name"]),
                    "hostapi": str(pa.get_host_api_info_by_index(d["hostApi"])["name"]),
                    "max_input_channels": int(d["maxInputChannels"]),
                    "max_output_channels": int(d["maxOutputChannels"]),
                    "default_samplerate": float(d["defaultSampleRate"]),
                    "default_input": int(d["index"]) == default_in})
    return out


class _PyAudioTimes:
    """PyAudio's time_info dict under the names sounddevice's callback gives (for adc_time_s)."""

    __slots__ = ("inputBufferAdcTime", "currentTime")

    def __init__(self, time_info: dict) -> None:
        self.inputBufferAdcTime = time_info.get("input_buffer_adc_time", 0.0)
        self.currentTime = time_info.get("current_time", 0.0)


class _PyAudioStream:
    """A PyAudio stream as serve_stream drives one (start, abort, close)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def start(self) -> None:
        self._stream.start_stream()

    def abort(self) -> None:
        self._stream.stop_stream()

    def close(self) -> None:
        self._stream.close()


def _pyaudio_input_main(conn, device_name: str, rate_hz: int, channels: int, block_frames: int,
                        onsets: tuple[Any, int] | None = None) -> None:
    """The child of the PyAudio backend: as _input_main, through PyAudio (its own fresh PortAudio)."""
    import pyaudio

    send = _block_sender(conn, rate_hz, block_frames, onsets)

    def callback(in_data, frame_count, time_info, status):
        send(np.frombuffer(in_data, np.float32).reshape(-1, channels), frame_count, _PyAudioTimes(time_info), status)
        return (None, pyaudio.paContinue)

    try:
        pa = pyaudio.PyAudio()
        info = _find_device(pyaudio_devices(pa), device_name)
        on_jack = "JACK" in info["hostapi"]
        stream = pa.open(format=pyaudio.paFloat32, channels=channels, rate=rate_hz, input=True,
                         input_device_index=info["index"], frames_per_buffer=block_frames,
                         stream_callback=callback, start=False)
    except Exception as exc:  # noqa: BLE001 - no device, a server gone since probing, a rate refused
        conn.send(("error", f"the audio input cannot open ({exc})"))
        return
    conn.send(("ready", {"jack_server": server_identity() if on_jack else None, "device": str(info["name"])}))
    serve_stream(conn, _PyAudioStream(stream), "the audio input stream")


class InputChild:
    """The parent's handle on one child stream: `on_block(data, status_flags)` runs on its reader
    thread; so does `on_onset(state)` (first) for each block the child's detector analysed, given
    `onsets` = (detector factory, analysis rate)."""

    child_main = staticmethod(_input_main)

    def __init__(self, device_name: str, rate_hz: int, channels: int, block_frames: int,
                 on_block: Callable[[np.ndarray, int], None], onsets: tuple[Any, int] | None = None,
                 on_onset: Callable[[Any], None] | None = None) -> None:
        self._child = ChildProcess("audio in", self.child_main,
                                   (device_name, rate_hz, channels, block_frames, onsets))
        self._on_block = on_block
        self._on_onset = on_onset
        self.detecting = onsets is not None
        """Whether the child's detector runs (False after it failed: the parent then detects)."""
        self._reader: threading.Thread | None = None
        self._ended = threading.Event()
        self.jack_server: int | None = None
        self.device = device_name

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the child and its stream; ChildFailed (with the child's reason) when it cannot."""
        ready: dict[str, Any] = self._child.start(timeout_s)
        self.jack_server = ready["jack_server"]
        self.device = ready["device"]
        self._reader = threading.Thread(target=self._read, name="audio-in-child", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        conn = self._child.conn
        try:
            while True:
                kind, payload = conn.recv()
                if kind == "block":
                    data, flags, _, state = payload
                    if state is False:
                        self.detecting = False
                    elif state is not None and self._on_onset is not None:
                        self._on_onset(state)
                    self._on_block(data, flags)
                elif kind in ("error", "stopped"):
                    break
        except (EOFError, OSError, TypeError, AttributeError):  # the child ended or was killed
            pass
        finally:
            self._ended.set()

    def server_gone(self) -> bool:
        return self.jack_server is not None and server_identity() != self.jack_server

    @property
    def active(self) -> bool:
        """Whether the child still runs its stream on the server it joined."""
        return not self._ended.is_set() and self._child.alive() and not self.server_gone()

    def close(self) -> None:
        """Stop the stream: politely (bounded) while its server runs, else SIGKILL."""
        if not self.server_gone() and not self._ended.is_set() and self._child.send("stop"):
            self._ended.wait(0.5)  # the reader sees "stopped" (the pipe has one reader: that thread)
            self._child.stop(0.1, ask=None)
        self._child.kill()
        self._ended.wait(1.0)


class PyAudioInputChild(InputChild):
    """The same, its stream opened through PyAudio (audio.backend = "pyaudio")."""

    child_main = staticmethod(_pyaudio_input_main)
