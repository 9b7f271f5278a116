"""The built-in synth on the speakers, with PortAudio in a child process that can be replaced.

PortAudio cannot outlive its JACK server in one process (a stream close waits ten minutes,
Pa_Terminate aborts, re-initialising crashes in libjack), so the output stream lives in a child
(hardware.child_process). The parent renders the synth block by block and sends each block down
the pipe; the child's callback plays one and answers "played", which is the credit for the next:
`queue_blocks` blocks are in flight, the latency this adds. When the child's JACK server goes
(probed through its socket), the stream stops playing or the child dies, the child is SIGKILLed
and a new one started with back-off once the server is back (hardware.recovery.DeviceHealth).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Protocol

import numpy as np

from hardware.child_process import ChildFailed, ChildProcess, serve_stream
from hardware.sound.jack_server import server_identity
from hardware.recovery import DeviceHealth
from installation.records import AudioBlock

log = logging.getLogger("chromesthesia.speakers")


class Renders(Protocol):
    sample_rate_hz: int

    def render(self, n_frames: int) -> np.ndarray: ...


def _speaker_main(conn, device: str | int | None, rate_hz: int, block_frames: int) -> None:
    """The child: one PortAudio output stream playing the blocks the parent sends, in order."""
    import sounddevice as sd
    queue: collections.deque = collections.deque()
    starved = [0, 0]  # blocks of silence for want of a block; blocks played

    def callback(outdata, frames, time_info, status) -> None:
        try:
            t_render_s, samples = queue.popleft()
        except IndexError:  # the first callback (the parent renders from then on), or the parent is late
            outdata.fill(0)
            starved[0] += starved[1] > 0
            conn.send(("starved", starved[0]))
            return
        starved[1] += 1
        n = min(frames, len(samples))
        outdata[:n, 0] = samples[:n]
        outdata[n:, 0] = 0
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        conn.send(("played", time.monotonic() - t_render_s))

    try:
        info = sd.query_devices(device, kind="output")
        on_jack = "JACK" in str(sd.query_hostapis(info["hostapi"])["name"])
        stream = sd.OutputStream(samplerate=rate_hz, blocksize=block_frames, device=device,
                                 channels=min(2, int(info["max_output_channels"])), dtype="float32",
                                 callback=callback)
    except Exception as exc:  # noqa: BLE001 - no device, a server gone since probing, a rate refused
        conn.send(("error", f"the speakers cannot open ({exc})"))
        return
    # ready before the first callback, so the parent's first blocks are on their way when it comes
    conn.send(("ready", {"jack_server": server_identity() if on_jack else None, "device": str(info["name"]),
                         "latency_s": float(stream.latency)}))
    serve_stream(conn, stream, "the speaker stream", lambda kind, payload: queue.append(payload) if kind == "block" else None)


class SynthSpeakers:
    """Plays the synth to an output device and keeps a copy of what was played to `read`.

    The synth must run at the device's rate (hardware.sound.synth.output_rate_hz): JACK and many
    interfaces accept only their own. `open` starts the first child (a failure is logged and
    retried); from then on a thread of its own feeds the child and replaces it when it is lost.
    """

    STALL_S = 2.0
    """A child that says nothing for this long has a stream that stopped (its device went). A JACK
    server that goes is found sooner by the socket probe; shorter than this, a loaded machine's
    late callbacks replace a working stream, and a new child costs more silence than the wait."""
    PROBE_S = 0.1
    START_TIMEOUT_S = 10.0
    child_main = staticmethod(_speaker_main)
    """What the child runs (a module-level function: spawn imports it by name)."""

    def __init__(self, synth: Renders, clock, device: str | int | None = None, block_frames: int = 1024,
                 queue_blocks: int = 2) -> None:
        self.synth = synth
        self.clock = clock
        self.device = device
        self.block_frames = block_frames
        self.queue_blocks = max(1, queue_blocks)
        self.name = "synth speakers"
        self.health = DeviceHealth("speakers", "audio out", clock.now_s)
        self.stats: dict[str, Any] = {"underflows": 0, "dropped_blocks": 0, "played_blocks": 0}
        self._child: ChildProcess | None = None
        self._jack_server: int | None = None
        self._on_jack = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._playing = threading.Event()
        self._in_flight: collections.deque = collections.deque()
        self._primed = False
        self._underflows_before = 0  # those of children replaced
        self._latency_ms: collections.deque = collections.deque(maxlen=4096)
        self._ring: list[AudioBlock] = []
        self._cond = threading.Condition()

    @property
    def playing(self) -> bool:
        """True while a child plays what the synth renders (the listener then hears it here)."""
        return self._playing.is_set()

    def open(self) -> None:
        """Start playing; without a device now, the speakers keep trying in the background."""
        from hardware.sound.audio_in import note_portaudio_server
        self.close()
        note_portaudio_server(keep=True)  # where this process has a PortAudio of its own (a command, a test)
        self._stop.clear()
        self.health.waiting()
        try:
            self._start_child()
        except ChildFailed as exc:
            log.warning("%s; listening to the synth without them, and trying again", exc)
            self.health.reopen_failed(str(exc))
        self._thread = threading.Thread(target=self._run, name="speakers", daemon=True)
        self._thread.start()

    def read(self, timeout_s: float) -> AudioBlock | None:
        """What was played since the last read, in one block (None when nothing within `timeout_s`)."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._ring), timeout_s):
                return None
            blocks, self._ring = self._ring, []
        return AudioBlock(blocks[0].t_s, np.concatenate([b.samples for b in blocks]), blocks[0].sample_rate_hz)

    def added_latency_ms(self) -> np.ndarray:
        """Per played block: from its render here to its callback in the child (the queue's cost)."""
        return np.asarray(self._latency_ms, dtype=float)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2.0)
        self._end_child(polite=True)
        self.health.closed()
        with self._cond:
            self._ring = []

    # --- the feeder thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._child is None and not self._try_start():
                self._stop.wait(self.PROBE_S)
                continue
            reason = self._pump()
            if reason is not None:
                self._playing.clear()
                self.health.lost(reason)
                self._end_child(polite=False)

    def _try_start(self) -> bool:
        if not self.health.reopen_due():
            return False
        if self._on_jack and server_identity() is None:
            return False  # a child now would only print noise; tried again PROBE_S later, not backed off
        try:
            self._start_child()
        except ChildFailed as exc:
            self.health.reopen_failed(str(exc))
            return False
        return True

    def _start_child(self) -> None:
        child = ChildProcess("speakers", self.child_main, (self.device, self.synth.sample_rate_hz, self.block_frames))
        ready = child.start(self.START_TIMEOUT_S)
        self._child = child
        self._jack_server = ready["jack_server"]
        self._on_jack = self._on_jack or self._jack_server is not None
        self._in_flight.clear()
        self._primed = False
        self._playing.set()
        self.health.opened()
        log.info("speakers: playing on %s (%.0f ms of device latency, %d blocks queued)",
                 ready["device"], ready["latency_s"] * 1000, self.queue_blocks)

    def _feed(self) -> None:
        """Render the next block and send it to the child."""
        assert self._child is not None
        samples = self.synth.render(self.block_frames)
        self._in_flight.append(samples)
        self._child.send("block", (time.monotonic(), samples))

    def _pump(self) -> str | None:
        """Feed the child one block per block it played; why it was lost, or None when stopping."""
        child = self._child
        assert child is not None
        heard_s = probed_s = time.monotonic()
        while not self._stop.is_set():
            try:
                message = child.conn.recv() if child.conn.poll(0.05) else None
            except (EOFError, OSError):
                child.kill()
                return f"the speaker process ended (exit code {child.exitcode})"
            now_s = time.monotonic()
            if message is not None:
                heard_s = now_s
                failed = self._on_message(*message)
                if failed is not None:
                    return failed
            elif now_s - heard_s > self.STALL_S:
                return "the stream stopped playing"
            if now_s - probed_s >= self.PROBE_S:
                probed_s = now_s
                if self._jack_server is not None and server_identity() != self._jack_server:
                    return "the JACK server stopped or restarted"
        return None

    def _on_message(self, kind: str, payload: Any) -> str | None:
        """Handle one message from the child; a reason when it says it failed."""
        if kind == "error":
            return str(payload)
        if not self._primed:  # the stream runs: blocks rendered from now on are played at once
            self._primed = True
            for _ in range(self.queue_blocks):
                self._feed()
        if kind == "starved":
            self.stats["underflows"] = self._underflows_before + payload
            return None
        if kind != "played" or not self._in_flight:
            return None
        samples = self._in_flight.popleft()
        self._latency_ms.append(payload * 1000.0)
        self.stats["played_blocks"] += 1
        with self._cond:
            if len(self._ring) >= 64:  # nobody listening: keep the newest
                self._ring.pop(0)
                self.stats["dropped_blocks"] += 1
            self._ring.append(AudioBlock(self.clock.now_s(), samples, self.synth.sample_rate_hz))
            self._cond.notify()
        self._feed()
        return None

    def _end_child(self, polite: bool) -> None:
        """Polite: ask it to close its stream (bounded). Otherwise, or when its JACK server went,
        SIGKILL: closing a stream of a dead server waits for minutes."""
        child, self._child = self._child, None
        self._playing.clear()
        self._underflows_before = self.stats["underflows"]
        if child is None:
            return
        server_gone = self._jack_server is not None and server_identity() != self._jack_server
        if polite and not server_gone:
            child.stop(1.0)
        else:
            child.kill()
