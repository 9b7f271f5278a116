"""The working fakes every test shares: small classes that really do their job, in one place.

Each implements the interface it stands in for (hardware.base, models.renderer), so the contract
tests in tests/test_contracts.py run over them as over the real implementations. Servers bind
127.0.0.1 on a port the OS chooses, so parallel test runs never collide.
"""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import numpy as np

from installation.records import AudioBlock


# --- an OpenAI-compatible chat server ------------------------------------------------------------
class FakeLlm(ThreadingHTTPServer):
    """Answers POST /v1/chat/completions over real HTTP the way `mode` says.

    `contents` maps a mode to the assistant's text, or to a function of the request body that
    returns it. Two modes are built in: "hang" (no answer until stopped) and "garbage" (bytes
    that are not JSON). Every request body is kept in `requests`.
    """

    daemon_threads = True

    def __init__(self, contents: dict[str, str | Callable[[dict], str]] | None = None, mode: str = "good") -> None:
        super().__init__(("127.0.0.1", 0), _LlmHandler)
        self.contents: dict[str, str | Callable[[dict], str]] = dict(contents or {})
        self.mode = mode
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, name="fake-llm", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def content_for(self, body: dict) -> str:
        content = self.contents[self.mode]
        return content(body) if callable(content) else content

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _LlmHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: FakeLlm = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append({"path": self.path, **body})
        if server.mode == "hang":
            server.release.wait(10)
            return
        if server.mode == "garbage":
            payload = b"\x00\xffnot json at all"
        else:
            message = {"role": "assistant", "content": server.content_for(body)}
            payload = json.dumps({"choices": [{"message": message}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


# --- audio ---------------------------------------------------------------------------------------
class ArrayAudioInput:
    """An AudioInput that hands out a recording block by block on a ManualClock's time."""

    name = "array"

    def __init__(self, samples: np.ndarray, sample_rate_hz: int, clock, block_frames: int = 1024) -> None:
        self.samples = np.asarray(samples, dtype=np.float32)
        self.sample_rate_hz = sample_rate_hz
        self.clock = clock
        self.block_frames = block_frames
        self.position = 0
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def read(self, timeout_s: float) -> AudioBlock | None:
        if not self.opened or self.position >= len(self.samples):
            return None
        block = self.samples[self.position:self.position + self.block_frames]
        t_s = self.clock.now_s()
        self.position += len(block)
        return AudioBlock(t_s, block, self.sample_rate_hz)

    def close(self) -> None:
        self.opened = False


class DyingSpeakers:
    """A speaker stream that delivers blocks until its device goes away; reopening revives it."""

    name = "dying speakers"

    def __init__(self, clock) -> None:
        self.clock = clock
        self.alive = False
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        self.alive = True

    def read(self, timeout_s: float) -> AudioBlock | None:
        self.clock.advance(timeout_s)
        return AudioBlock(self.clock.now_s(), np.zeros(512, np.float32), 22050) if self.alive else None

    def close(self) -> None:
        self.alive = False


class ToneInto:
    """A JACK client that plays a sine into every PortAudio input port while it is active."""

    def __init__(self, freq_hz: float = 440.0, amplitude: float = 0.5) -> None:
        import jack
        self.client = jack.Client(f"tone{os.getpid()}", no_start_server=True)
        self.port = self.client.outports.register("out")
        self.phase = 0
        rate = self.client.samplerate

        @self.client.set_process_callback
        def process(frames: int) -> None:
            t = (self.phase + np.arange(frames)) / rate
            self.port.get_array()[:] = amplitude * np.sin(2 * np.pi * freq_hz * t)
            self.phase += frames

        self.client.activate()

    def connect_all(self) -> int:
        n = 0
        for port in self.client.get_ports("PortAudio", is_audio=True, is_input=True):
            try:
                self.client.connect(self.port, port)
                n += 1
            except Exception:  # noqa: BLE001 - already connected
                pass
        return n

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class CaptureFrom:
    """A JACK client recording whatever PortAudio plays."""

    def __init__(self) -> None:
        import jack
        self.client = jack.Client(f"capture{os.getpid()}", no_start_server=True)
        self.port = self.client.inports.register("in")
        self.chunks: list[np.ndarray] = []
        self.lock = threading.Lock()
        self.rate_hz = self.client.samplerate

        @self.client.set_process_callback
        def process(frames: int) -> None:
            with self.lock:
                self.chunks.append(self.port.get_array().copy())

        self.client.activate()

    def connect(self) -> bool:
        sources = self.client.get_ports("PortAudio", is_audio=True, is_output=True)
        for port in sources[:1]:
            self.client.connect(port, self.port)
        return bool(sources)

    def audio(self) -> np.ndarray:
        with self.lock:
            return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


# --- pictures ------------------------------------------------------------------------------------
class UnpluggableCapture:
    """A working stand-in for cv2.VideoCapture over a shared 'device' that can be unplugged."""

    def __init__(self, device: dict) -> None:
        self.device = device
        self.opened = device["plugged"]

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        if not (self.opened and self.device["plugged"]):
            return False, None
        return True, self.device["frame"][:, :, ::-1].copy()  # OpenCV hands out BGR

    def release(self) -> None:
        self.opened = False


class ListCamera:
    """A Camera that shows each picture of a list in turn, then holds the last one."""

    name = "list"

    def __init__(self, pictures: list[np.ndarray]) -> None:
        self.pictures = list(pictures)
        self.index = 0
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def read(self) -> np.ndarray | None:
        if not self.opened or not self.pictures:
            return None
        picture = self.pictures[min(self.index, len(self.pictures) - 1)]
        self.index += 1
        return picture

    def close(self) -> None:
        self.opened = False


class RecordingDisplay:
    """A Display that keeps what it was shown; `fail_next` makes the next `show` raise, as a
    window does when its X server or projector goes away."""

    name = "recording display"

    def __init__(self, width: int = 64, height: int = 48) -> None:
        self.width = width
        self.height = height
        self.shown: list[np.ndarray] = []
        self.opens = 0
        self.fail_next = 0
        self.quit = False

    def open(self) -> None:
        self.opens += 1

    def show(self, rgb: np.ndarray) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("display went away")
        self.shown.append(rgb)

    def poll_quit(self) -> bool:
        return self.quit

    def close(self) -> None:
        pass


class BlockingSink:
    """A sink whose send hangs until released (a stalled network peer)."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames: list[np.ndarray] = []

    def open(self, width, height, fps) -> None:
        pass

    def send(self, rgb) -> None:
        self.release.wait()
        self.frames.append(rgb)

    def close(self) -> None:
        self.release.set()


class FlakySink:
    """Fails to open `fail_opens` times, then fails one send after `fail_after` frames."""

    name = "flaky"

    def __init__(self, fail_opens: int = 2, fail_after: int = 3) -> None:
        self.fail_opens = fail_opens
        self.fail_after = fail_after
        self.opens = 0
        self.frames: list[np.ndarray] = []

    def open(self, width, height, fps) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise OSError("device not there yet")

    def send(self, rgb) -> None:
        if len(self.frames) == self.fail_after:
            self.fail_after = -1
            raise OSError("connection reset")
        self.frames.append(rgb)

    def close(self) -> None:
        pass


# --- renderers -----------------------------------------------------------------------------------
class FailingRenderer:
    """A Renderer around a real one that raises on every `fail_every`-th frame: a stage with a real bug."""

    name = "failing"

    def __init__(self, inner, fail_every: int) -> None:
        self.inner = inner
        self.fail_every = fail_every
        self.calls = 0

    def prepare(self, scene) -> None:
        self.inner.prepare(scene)

    def update_prompt(self, caption) -> None:
        self.inner.update_prompt(caption)

    def render(self, music, t_s: float, init_rgb: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        if self.calls % self.fail_every == 0:
            raise RuntimeError(f"render failure {self.calls}")
        return self.inner.render(music, t_s, init_rgb)

    def close(self) -> None:
        self.inner.close()
