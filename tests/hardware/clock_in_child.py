"""Run as a child process by tests/hardware/test_clock_in.py: the installation's MIDI clock-in path
(a virtual JACK MIDI input through rtmidi, the MIDI-in thread, the clock follower, /tempo commands
applied to the live state) against a sender in a process of its own (tests.hardware.clock_sender_child).
Prints one JSON line: every reading, every command applied, and what the sender sent.

Arguments: timeout_s, then the sender's after its port (bpm run_s cycles stopped_s started_s
stall_every_s stall_s timeout_s). The JACK server is the one JACK_DEFAULT_SERVER names. Its native
work (rtmidi on JACK, callbacks on JACK's threads) stays out of the test process: a crash prints
this process's stack, a hang prints every thread's and exits at timeout_s.
"""
from __future__ import annotations

import faulthandler
import json
import subprocess
import sys
from pathlib import Path

faulthandler.enable()
faulthandler.dump_traceback_later(float(sys.argv[1]) if len(sys.argv) > 1 else 170.0, exit=True)

from installation.clock import MonotonicClock  # noqa: E402
from installation.config import ControlConfig  # noqa: E402
from installation.mailbox import DropOldest  # noqa: E402
from installation.operators.control import Control, LiveState, MidiControlThread  # noqa: E402
from installation.operators.midi_learn import LiveMidiMap  # noqa: E402
from installation.tempo import MidiClockTempo  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PORT = "Chroma Clock In"
SENDER_WAIT_S = 120.0
"""About 45 s of clock: bounded here, then the sender is killed and the run is an error."""


def run(sender_args: list[str]) -> dict:
    from hardware.midi.input import VirtualMidiIn

    clock = MonotonicClock()
    tempo = MidiClockTempo(clock, bpm=100.0)
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    commands: DropOldest = DropOldest(4096)
    port = VirtualMidiIn(PORT, clock, backend="mido.backends.rtmidi/UNIX_JACK")
    thread = MidiControlThread([port], LiveMidiMap(ControlConfig(), tempo=tempo), commands, check=control.check)
    # (kind, arrival stamp, the follower's tempo, the tempo the installation uses) after every message
    readings: list[tuple[str, float, float | None, float]] = []
    applied: list[tuple[float, float, float | None]] = []  # (command time, its value, live tempo after it)
    refused: list[str] = []
    follow = tempo.on_message

    def on_message(message):
        bpm = follow(message)
        readings.append((message.type, float(message.time), tempo.follower.exact_bpm(), tempo.tempo_bpm()))
        return bpm

    def apply_pending() -> None:
        for command in commands.drain():
            if not control.apply(command)["ok"]:
                refused.append(repr(command))
            applied.append((command.t_s, command.args[0], live.tempo_bpm))

    tempo.on_message = on_message
    thread.start()
    sender = subprocess.Popen([sys.executable, "-m", "tests.hardware.clock_sender_child", PORT, *sender_args], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None and sender.stdin is not None
        if sender.stdout.readline().strip() != "ready":
            sender.kill()
            return {"error": f"the sender did not start: {sender.communicate(timeout=10)}"}
        sender.stdin.write("go\n")
        sender.stdin.flush()
        if not wait_for(lambda: apply_pending() or sender.poll() is not None, timeout_s=SENDER_WAIT_S, interval_s=0.01):
            return {"error": f"the sender did not finish in {SENDER_WAIT_S:g} s"}
        out, err = sender.communicate(timeout=10)
        sent = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-2000:]}
        if "error" in sent:
            return {"error": sent}
        wait_for(lambda: apply_pending() or len(readings) >= sent["messages"], timeout_s=5.0)  # the last ones in flight
        apply_pending()
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait(5)
        thread.stop()
    return {"readings": readings, "applied": applied, "refused": refused, "sent": sent}


def main() -> None:
    print(json.dumps(run(sys.argv[2:])), flush=True)


if __name__ == "__main__":
    main()
