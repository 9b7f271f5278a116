"""The working fakes every test shares: small classes that really do their job, in one place.

Each implements the interface it stands in for (hardware.base, models.renderer), so the contract
tests in tests/hardware/test_contracts.py run over them as over the real implementations. Servers bind
127.0.0.1 on a port the OS chooses, so parallel test runs never collide.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np

from installation.records import AudioBlock
from tests.waiting import wait_for


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
        self.refuse_schema = False
        """Answer HTTP 400 to a request with `response_format`, as a server without schema support does."""
        self.refuse_grammar = False
        """Answer HTTP 400 to a request with a GBNF `grammar`, as a strict OpenAI-style server does."""
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
        if server.refuse_schema and "response_format" in body:
            self.send_error(400, "response_format is not supported")
            return
        if server.refuse_grammar and "grammar" in body:
            self.send_error(400, "grammar is not supported")
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


class HostileLlm:
    """A server on 127.0.0.1 that answers every request badly in one of two ways, for a bounded time.

    "trickle": a valid-looking HTTP head, then one body byte every `interval_s`; "endless": a body
    streamed as fast as the socket takes it. Each connection stops after `limit_s` so a reader
    without a deadline fails its test instead of hanging it. `sent` counts the body bytes written;
    `cut_off` says a reader hung up before that limit.
    """

    def __init__(self, mode: str, interval_s: float = 0.05, limit_s: float = 20.0) -> None:
        import socket
        self.mode, self.interval_s, self.limit_s = mode, interval_s, limit_s
        self.sent = 0
        self.cut_off = False
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, name="hostile-llm", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        import time
        end = time.monotonic() + self.limit_s
        try:
            conn.settimeout(1.0)
            conn.recv(65536)  # the request (small enough for one read here)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            block = b'{"choices": [{"message": {"content": "' + b"a" * 65536
            while not self._stop.is_set() and time.monotonic() < end:
                if self.mode == "trickle":
                    conn.sendall(b" ")
                    self.sent += 1
                    self._stop.wait(self.interval_s)
                else:
                    conn.sendall(block)
                    self.sent += len(block)
        except OSError:
            self.cut_off = True  # the reader hung up before the server's limit: its deadline or size cap held
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self.thread.join(2)


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
    """Speakers that play until their device goes away (`alive = False`) and come back by
    themselves (`alive = True`), as hardware.sound.speakers.SynthSpeakers does."""

    name = "dying speakers"

    def __init__(self, clock) -> None:
        from hardware.recovery import DeviceHealth
        self.clock = clock
        self.alive = False
        self.opens = 0
        self.health = DeviceHealth("speakers", "audio out", clock.now_s)

    @property
    def playing(self) -> bool:
        return self.alive

    def open(self) -> None:
        self.opens += 1
        self.alive = True

    def read(self, timeout_s: float) -> AudioBlock | None:
        self.clock.advance(timeout_s)
        return AudioBlock(self.clock.now_s(), np.zeros(512, np.float32), 22050) if self.alive else None

    def close(self) -> None:
        self.alive = False


def hanging_speaker_main(conn, device, rate_hz: int, block_frames: int) -> None:
    """A speakers' child (hardware.sound.speakers) whose stream plays three blocks and then hangs as
    PortAudio does on a dead JACK server: it answers nothing more and ignores SIGTERM."""
    import signal
    import time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn.send(("ready", {"jack_server": None, "device": "hanging", "latency_s": 0.0}))
    conn.send(("starved", 0))
    for _ in range(3):
        conn.recv()
        time.sleep(block_frames / rate_hz)
        conn.send(("played", 0.0))
    while True:
        time.sleep(60)



def dying_speaker_main(conn, device, rate_hz: int, block_frames: int) -> None:
    """A speakers' child whose device goes after three blocks: the process ends, as a stream's
    child does when its server is killed."""
    import os
    import time
    conn.send(("ready", {"jack_server": None, "device": "dying", "latency_s": 0.0}))
    conn.send(("starved", 0))
    for _ in range(3):
        conn.recv()
        time.sleep(block_frames / rate_hz)
        conn.send(("played", 0.0))
    os._exit(0)

_JACK_CHILD = r"""
import os, sys
import jack, numpy as np
role, name = sys.argv[1], sys.argv[2]
client = jack.Client(name, no_start_server=True)
rate = client.samplerate
if role == "tone":
    freq_hz, amplitude = float(sys.argv[3]), float(sys.argv[4])
    port, phase = client.outports.register("out"), [0]

    @client.set_process_callback
    def process(frames):
        t = (phase[0] + np.arange(frames)) / rate
        port.get_array()[:] = amplitude * np.sin(2 * np.pi * freq_hz * t)
        phase[0] += frames
else:
    port, sink = client.inports.register("in"), open(sys.argv[3], "wb", buffering=0)

    @client.set_process_callback
    def process(frames):
        sink.write(port.get_array().tobytes())
client.activate()
print("ready", rate, flush=True)
sys.stdin.read()  # until the test closes the pipe, or dies
os._exit(0)
"""


_ABANDONED: list[Any] = []
"""Clients of JACK servers that died, kept for the life of the process."""


class _JackChild:
    """A JACK client whose process callback runs Python in a child process.

    Python on a JACK thread of the test process is what can hang a run: closing that client cancels
    its thread, and one cancelled while waiting for the interpreter lock leaves the lock's mutex
    taken. The test process only connects ports, through a client with no callbacks.
    """

    def __init__(self, role: str, *args: str) -> None:
        import jack
        self.name = f"{role}{os.getpid()}"
        self._proc = subprocess.Popen([sys.executable, "-c", _JACK_CHILD, role, self.name, *args],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline().split()
        if ready[:1] != ["ready"]:
            self.close()
            raise RuntimeError(f"the JACK {role} client did not start")
        self.rate_hz = int(ready[1])
        self.client = jack.Client(f"{self.name}-connect", no_start_server=True)

    def _connect(self, source: str, destination: str) -> bool:
        try:
            self.client.connect(source, destination)
            return True
        except Exception:  # noqa: BLE001 - already connected
            return False

    def abandon(self) -> None:
        """After its JACK server died: end the child, and keep the connecting client unclosed
        (closing a client of a dead server waits for it or crashes in libjack)."""
        self._proc.kill()
        self._proc.wait(5)
        _ABANDONED.append(self.client)
        self.client = None

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()  # the child exits when its stdin closes
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None


class ToneInto(_JackChild):
    """A JACK client that plays a sine into every PortAudio input port it is connected to."""

    def __init__(self, freq_hz: float = 440.0, amplitude: float = 0.5) -> None:
        super().__init__("tone", str(freq_hz), str(amplitude))

    def connect_all(self) -> int:
        """Connect to every PortAudio input port; returns how many were newly connected."""
        ports = self.client.get_ports("PortAudio", is_audio=True, is_input=True)
        return sum(self._connect(f"{self.name}:out", port.name) for port in ports)


class CaptureFrom(_JackChild):
    """A JACK client recording whatever PortAudio plays."""

    def __init__(self) -> None:
        self._fd, self._path = tempfile.mkstemp(suffix=".f32")
        super().__init__("capture", self._path)

    def connect(self) -> bool:
        sources = self.client.get_ports("PortAudio", is_audio=True, is_output=True)
        return bool(sources) and self._connect(sources[0].name, f"{self.name}:in")

    def audio(self) -> np.ndarray:
        """Everything recorded so far (whole samples only: the child may be mid-write)."""
        data = Path(self._path).read_bytes()
        return np.frombuffer(data[: len(data) // 4 * 4], np.float32).copy()

    def close(self) -> None:
        super().close()
        os.close(self._fd)
        Path(self._path).unlink(missing_ok=True)


# --- MIDI ----------------------------------------------------------------------------------------
class JackMidiMonitor:
    """A JACK MIDI input port `<name>:input` that JACK's own monitor (jack_midi_dump) listens on.

    The monitor runs in its own process, so no Python runs on a JACK thread of the test process:
    closing a port there can never cancel such a thread while it waits for the interpreter lock,
    which would leave the lock's mutex taken and hang the run. (Polling rtmidi's queue instead is
    no answer: reading it while JACK writes it crashes.) `t_s` is the time JACK stamped on arrival.
    """

    def __init__(self, name: str, rate_hz: int = 48000, timeout_s: float = 10.0) -> None:
        self.port = f"{name}:input"
        self.rate_hz = rate_hz
        self._lock = threading.Lock()
        self._received: list[tuple[float, Any]] = []
        self._proc = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", name], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, name="jack-midi-monitor", daemon=True)
        self._reader.start()

        def registered() -> bool:
            return self.port in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split("\n")
        if not wait_for(lambda: self._proc.poll() is not None or registered(), timeout_s, 0.05) or not registered():
            self.close()
            raise RuntimeError(f"jack_midi_dump did not register {self.port}")

    def _read(self) -> None:
        import mido
        assert self._proc.stdout is not None
        for line in self._proc.stdout:  # "  70656: 90 3c 64 note on (channel 0): ..."
            frames, _, rest = line.partition(":")
            if not frames.strip().isdigit():
                continue  # not an event line
            data = []
            for token in rest.split():
                if len(token) != 2:
                    break
                try:
                    data.append(int(token, 16))
                except ValueError:
                    break
            try:
                message = mido.Message.from_bytes(data)
            except ValueError:
                continue
            with self._lock:
                self._received.append((int(frames) / self.rate_hz, message))

    @property
    def received(self) -> list[tuple[float, Any]]:
        """(t_s, mido.Message) for everything that has arrived, in arrival order."""
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._reader.join(5)


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
    """A sink whose show hangs until released (a stalled network peer)."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames: list[np.ndarray] = []

    def open(self) -> None:
        pass

    def show(self, rgb) -> None:
        self.release.wait()
        self.frames.append(rgb)

    def close(self) -> None:
        self.release.set()


class FlakySink:
    """Fails to open `fail_opens` times, then fails one show after `fail_after` frames."""

    name = "flaky"

    def __init__(self, fail_opens: int = 2, fail_after: int = 3) -> None:
        self.fail_opens = fail_opens
        self.fail_after = fail_after
        self.opens = 0
        self.frames: list[np.ndarray] = []

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise OSError("device not there yet")

    def show(self, rgb) -> None:
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


class SlowClients:
    """A child process that opens `count` connections to each "host:port" target from `source`
    (a 127.0.0.x address), sends half a request head on each and then nothing, until `close()`:
    slowloris, bounded (connects stop after 40 s, the child exits after 120 s or when the test
    process goes). Its own descriptor limit is raised; the test process's table stays its own."""

    SCRIPT = r"""
import resource, signal, socket, sys, time
signal.alarm(120)
count, source, targets = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count * len(targets) + 256), hard))
held, failed, deadline = [], 0, time.monotonic() + 40
for target in targets:
    host, port = target.rsplit(":", 1)
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.bind((source, 0))
            s.connect((host, int(port)))
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        except OSError:
            failed += 1
            s.close()
print(len(held), failed, flush=True)
sys.stdin.read()
"""

    def __init__(self, targets: list[tuple[str, int]], count: int, source: str = "127.0.0.2") -> None:
        import subprocess
        import sys
        self._proc = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(count), source,
                                       *(f"{h}:{p}" for h, p in targets)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the child's connects are bounded by its 40 s deadline
        self.opened, self.failed = (int(x) for x in (line.split() or ["0", "0"]))

    def close(self) -> None:
        from hardware.child_process import end_process
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        end_process(self._proc, 10, terminate=False)


# --- operators' inputs: an OSC port without a socket -------------------------
class LoopbackOscIn:
    """hardware.base.OscIn without a socket: while started, `receive(address, *args)` is a message
    from an allowed host, handed to `commands` as a Command (what the real ports do after their rules)."""

    def __init__(self, commands, clock, sender: str = "127.0.0.1:9000") -> None:
        self._commands = commands
        self._clock = clock
        self._sender = sender
        self.started = False

    def start(self) -> None:
        self.started = True

    def receive(self, address: str, *args: Any) -> bool:
        from installation.records import Command
        if not self.started:
            return False
        return self._commands.put(Command(self._clock.now_s(), address, tuple(args), self._sender)) is not False

    def stop(self, timeout_s: float = 2.0) -> None:
        self.started = False


# --- MIDI in -------------------------------------------------------------------------------------
class QueueMidiIn:
    """A controller made of a list (hardware.base.MidiIn): a test pushes messages into it."""

    def __init__(self, name: str = "queue", clock=None) -> None:
        self.name = name
        self._clock = clock
        self._messages: list = []

    def push(self, message) -> None:
        t_s = self._clock.now_s() if self._clock is not None else message.time
        self._messages.append(message.copy(time=t_s))

    def poll(self) -> list:
        messages, self._messages = self._messages, []
        return messages

    def close(self) -> None:
        self._messages = []
