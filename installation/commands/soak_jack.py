"""`bench soak`'s failing studio: a JACK server it kills and starts again, and a JACK MIDI synth it
power-cycles, with an ear on the speakers' port and the synth's input.

The server is jackd on the dummy driver (48 kHz, 1,024 frames) under a fixed name, so a server
killed with -9 gives its slot in JACK's registry back to the next one. The synth is
`jack_midi_dump` (its port `<name>:input`); the ear is a JACK client in a child process of its own
that connects to every PortAudio output port and prints the loudest sample of each 0.1 s. Every
child is told apart by its own process: no Python runs on a JACK thread of the soak.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

SERVER_NAME = "chromesthesia_soak"
SYNTH_NAME = "soaksynth"
LOUD = 1e-3
"""A 0.1 s window whose loudest sample passes this is sound (the synth at gain 0.5 is near 0.1)."""

EAR = r"""
import os, sys, threading, time
import jack
import numpy as np
client = jack.Client("soakear", no_start_server=True)
port = client.inports.register("in")
peak = [0.0]
lock = threading.Lock()
gone = threading.Event()

@client.set_process_callback
def process(frames):
    value = float(np.abs(port.get_array()).max(initial=0.0))
    with lock:
        peak[0] = max(peak[0], value)

client.set_shutdown_callback(lambda status, reason: gone.set())
client.activate()
print("ready", flush=True)
while not gone.wait(0.1):
    joined = {p.name for p in client.get_all_connections(port)}
    for source in client.get_ports("PortAudio", is_audio=True, is_output=True):
        if source.name not in joined:
            try:
                client.connect(source, port)
            except Exception:
                pass
    with lock:
        value, peak[0] = peak[0], 0.0
    print(f"{time.monotonic():.3f} {value:.5f}", flush=True)
os._exit(0)
"""


def jack_available() -> bool:
    return all(shutil.which(tool) for tool in ("jackd", "jack_wait", "jack_midi_dump", "jack_lsp"))


def jack_env() -> dict[str, str]:
    return {**os.environ, "JACK_DEFAULT_SERVER": SERVER_NAME, "JACK_NO_AUDIO_RESERVATION": "1"}


def _wait(predicate, timeout_s: float, every_s: float = 0.1) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()


def _stop(proc: subprocess.Popen | None, kill: bool = False) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Studio:
    """The server, the synth and the ear; times are time.monotonic() seconds (shared by processes)."""

    server: subprocess.Popen | None = None
    synth: subprocess.Popen | None = None
    ear: subprocess.Popen | None = None
    loud_s: list[float] = field(default_factory=list)
    notes_s: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start_server(self, timeout_s: float = 30.0) -> float:
        """Start jackd and wait until it answers; the time it did."""
        env = jack_env()
        self.server = subprocess.Popen(["jackd", "-n", SERVER_NAME, "--no-realtime", "-d", "dummy", "-r", "48000",
                                        "-p", "1024"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answering() -> bool:  # jack_wait -c exits 0 either way; its answer is what it prints
            return subprocess.run(["jack_wait", "-c", "-s", SERVER_NAME], env=env, capture_output=True,
                                  text=True).stdout.strip() == "running"
        if not _wait(lambda: self.server is None or self.server.poll() is not None or answering(), timeout_s):
            raise RuntimeError(f"jackd {SERVER_NAME} did not answer within {timeout_s:g} s")
        if self.server.poll() is not None:
            raise RuntimeError(f"jackd {SERVER_NAME} exited with code {self.server.returncode}")
        answered_s = time.monotonic()
        self.start_ear()
        return answered_s

    def kill_server(self) -> None:
        """kill -9: no client hears of it; the ear and the synth die with it (they are ended here)."""
        _stop(self.server, kill=True)
        _stop(self.ear, kill=True)
        _stop(self.synth, kill=True)
        self.ear = self.synth = None

    def start_synth(self) -> float:
        """The synth's port appears; the time it was listed."""
        env = jack_env()
        self.synth = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", SYNTH_NAME], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read_notes, args=(self.synth,), daemon=True).start()
        port = f"{SYNTH_NAME}:input"
        _wait(lambda: port in subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout.split("\n"),
              10.0, 0.05)
        return time.monotonic()

    def stop_synth(self) -> None:
        _stop(self.synth, kill=True)
        self.synth = None

    def start_ear(self) -> None:
        self.ear = subprocess.Popen([sys.executable, "-c", EAR], env=jack_env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read_ear, args=(self.ear,), daemon=True).start()

    def _read_notes(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # "  70656: 90 3c 64 note on (channel 0): ..."
            if "note on" in line:
                with self._lock:
                    self.notes_s.append(time.monotonic())

    def _read_ear(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2:
                try:
                    t_s, peak = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                if peak > LOUD:
                    with self._lock:
                        self.loud_s.append(t_s)

    def first_after(self, what: str, t_s: float) -> float | None:
        """Seconds from `t_s` to the first sound ("loud") or note ("notes") after it, None if none yet."""
        with self._lock:
            times = self.loud_s if what == "loud" else self.notes_s
            later = [t for t in times if t >= t_s]
        return round(later[0] - t_s, 2) if later else None

    def silent_minutes(self, what: str, start_s: float, end_s: float) -> int:
        """Whole minutes from `start_s` to `end_s` with no sound (or no note) at all."""
        with self._lock:
            times = list(self.loud_s if what == "loud" else self.notes_s)
        minutes = int((end_s - start_s) // 60)
        return sum(1 for m in range(minutes)
                   if not any(start_s + 60 * m <= t < start_s + 60 * (m + 1) for t in times))

    def close(self) -> None:
        _stop(self.ear, kill=True)
        _stop(self.synth, kill=True)
        _stop(self.server)


class FailingStudio:
    """The schedule: the server restarted every `restart_min`, the synth power-cycled every
    `cycle_min` (halfway between restarts when both are set); each return's figures kept."""

    GAP_S = 2.0
    """How long the server or the synth stays away."""

    def __init__(self, restart_min: float, cycle_min: float) -> None:
        self.restart_s = 60.0 * restart_min
        self.cycle_s = 60.0 * cycle_min
        self.studio = Studio()
        self.events: list[dict] = []
        self._plan: list[tuple[float, str]] = []
        self._started_s = 0.0

    def start(self) -> dict[str, str]:
        """Start the server and the synth; the environment the installation needs."""
        self.studio.start_server()
        self.studio.start_synth()
        return {"JACK_DEFAULT_SERVER": SERVER_NAME, "JACK_NO_AUDIO_RESERVATION": "1"}

    def began(self, started_s: float, horizon_s: float) -> None:
        self._started_s = started_s
        plan: list[tuple[float, str]] = []
        if self.restart_s > 0:
            plan += [(k * self.restart_s, "jack restart") for k in range(1, int(horizon_s // self.restart_s) + 1)]
        if self.cycle_s > 0:
            offset_s = self.restart_s / 2 if 0 < self.restart_s else 0.0
            first_s = offset_s if offset_s > 0 else self.cycle_s
            plan += [(first_s + k * self.cycle_s, "midi power-cycle")
                     for k in range(int(horizon_s // self.cycle_s) + 1)]
        self._plan = sorted(p for p in plan if p[0] < horizon_s - 30.0)  # a return needs time to be heard

    def step(self, now_s: float) -> None:
        while self._plan and now_s - self._started_s >= self._plan[0][0]:
            _, kind = self._plan.pop(0)
            if kind == "jack restart":
                self.studio.kill_server()
                time.sleep(self.GAP_S)
                back_s = self.studio.start_server()
                self.studio.start_synth()
            else:
                self.studio.stop_synth()
                time.sleep(self.GAP_S)
                back_s = self.studio.start_synth()
            self.events.append({"kind": kind, "at_min": round((back_s - self._started_s) / 60.0, 2), "back_s": back_s})
            print(f"soak: {kind} at {self.events[-1]['at_min']} min", file=sys.stderr, flush=True)

    def figures(self, end_s: float) -> dict:
        """Per return: seconds to the first sound and note, and whole silent minutes until the next event."""
        studio = self.studio
        out = []
        bounds = [e["back_s"] for e in self.events] + [end_s]
        for event, until_s in zip(self.events, bounds[1:]):
            back_s = event["back_s"]
            out.append({"kind": event["kind"], "at_min": event["at_min"],
                        "sound_back_s": studio.first_after("loud", back_s) if event["kind"] == "jack restart" else None,
                        "notes_back_s": studio.first_after("notes", back_s),
                        "silent_sound_minutes": studio.silent_minutes("loud", back_s, until_s),
                        "silent_note_minutes": studio.silent_minutes("notes", back_s, until_s)})
        first_s = self.events[0]["back_s"] if self.events else end_s
        return {"returns": out,
                "before_first_event": {"silent_sound_minutes": studio.silent_minutes("loud", self._started_s, first_s),
                                       "silent_note_minutes": studio.silent_minutes("notes", self._started_s, first_s)},
                "sounds_heard_windows": len(studio.loud_s), "notes_heard": len(studio.notes_s)}

    def close(self) -> None:
        self.studio.close()
