"""`bench latency --audio jack`: the kick track through a real PortAudio input on a JACK server.

A JACK server on the dummy driver (a real clocked device, no sound card needed) runs for the bench;
a JACK client in a child process plays the kick track into every PortAudio input port (a loopback
connection) and dates each kick on the system's monotonic clock, which the installation's clock
reads too: a kick written at frame k of a period is dated as a sound card would have captured it,
`cycle start - (period - k) / rate`. The installation opens its input through PortAudio
(`audio.source = "device"`, `audio.backend` as configured) like any sound card.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from hardware.child_process import end_process
from hardware.sound.jack_server import default_server
from installation.errors import UserError

RATE_HZ = 48000

_PLAYER = r"""
import os, sys, time
import jack, numpy as np, soundfile as sf
name, wav, kicks_path = sys.argv[1], sys.argv[2], sys.argv[3]
samples, _ = sf.read(wav, dtype="float32")
starts = set(int(round(float(t) * 48000)) for t in open(kicks_path).read().split())
client = jack.Client(name, no_start_server=True)
port, pos, out = client.outports.register("out"), [-1], sys.stdout

@client.set_process_callback
def process(frames):
    buf = port.get_array()
    if pos[0] < 0:
        buf[:] = 0.0
        return
    cycle_start_s = time.monotonic() - client.frames_since_cycle_start / client.samplerate
    chunk = samples[pos[0]:pos[0] + frames]
    buf[:chunk.size] = chunk
    buf[chunk.size:] = 0.0
    for k in range(frames):
        if pos[0] + k in starts:
            out.write(f"kick {cycle_start_s - (frames - k) / client.samplerate!r}\n")
    pos[0] += frames

client.activate()
print("ready", client.samplerate, flush=True)
for line in sys.stdin:
    if line.strip() == "play":
        pos[0] = 0
    elif line.strip() == "connect":
        for p in client.get_ports("PortAudio", is_audio=True, is_input=True):
            try:
                client.connect(port, p)
            except Exception:
                pass
        print("connected", len(client.get_all_connections(port)), flush=True)
out.flush()
os._exit(0)
"""


@contextlib.contextmanager
def jack_server(period_frames: int) -> Iterator[str]:
    """A JACK dummy server at 48 kHz for the bench, the default for PortAudio while it runs."""
    if shutil.which("jackd") is None:
        raise UserError("jackd is not installed; install the Debian package jackd2, or run bench latency without --audio jack.")
    name = f"chromalatency{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE_HZ),
                             "-p", str(period_frames)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        answer = subprocess.run(["jack_wait", "-c", "-s", name], env=env, capture_output=True, text=True).stdout
        if answer.strip() == "running":
            break
        time.sleep(0.2)
    if proc.poll() is not None or time.monotonic() >= deadline:
        end_process(proc)
        raise UserError(f"the JACK dummy server {name} did not start (exit code {proc.returncode}); JACK's "
                        "registry may be full of servers that were killed: stop stray jackd processes and try again.")
    with default_server(name):
        try:
            yield name
        finally:
            from hardware.sound.audio_in import reinitialize_portaudio
            # PortAudio's JACK host aborts the process at exit when its server has gone: let go first.
            os.environ["JACK_DEFAULT_SERVER"] = f"none{os.getpid()}"
            reinitialize_portaudio()
            end_process(proc)


class KickPlayer:
    """The child JACK client: `connect()` once PortAudio's ports exist, `play()`, then `kicks_s()`."""

    def __init__(self, wav: Path, kicks_s, folder: Path) -> None:
        kicks_path = folder / "kicks.txt"
        kicks_path.write_text(" ".join(repr(float(t)) for t in kicks_s))
        self._out = folder / "played.txt"
        self._proc = subprocess.Popen([sys.executable, "-c", _PLAYER, f"kicks{os.getpid()}", str(wav), str(kicks_path)],
                                      stdin=subprocess.PIPE, stdout=open(self._out, "w"), text=True)
        deadline = time.monotonic() + 20
        while "ready" not in self._out.read_text() and time.monotonic() < deadline and self._proc.poll() is None:
            time.sleep(0.05)
        if "ready" not in self._out.read_text():
            self.close()
            raise UserError("the JACK client that plays the kick track did not start.")

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def connect(self) -> int:
        """Connect to every PortAudio input port now; how many connections the player has."""
        before = self._out.read_text().count("connected")
        self._send("connect")
        deadline = time.monotonic() + 5
        while self._out.read_text().count("connected") == before and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [line for line in self._out.read_text().splitlines() if line.startswith("connected")]
        return int(lines[-1].split()[1]) if len(lines) > before else 0

    def play(self) -> None:
        self._send("play")

    def kicks_s(self) -> list[float]:
        return [float(line.split()[1]) for line in self._out.read_text().splitlines() if line.startswith("kick ")]

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        end_process(self._proc, terminate=False)  # closing its input ends the player
