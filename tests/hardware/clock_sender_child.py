"""Run as a child process by tests/hardware/test_clock_in.py: a MIDI clock sender on JACK MIDI, timed by deadline.

24 ticks a beat at `bpm` into the first JACK MIDI input whose name contains `port`; every `stall_every_s`
(first at half of it) the sender stalls for `stall_s` and then sends the late ticks together, as a
sender that missed its deadline catches up. After `run_s` of clock it sends `cycles` of Stop, clock
for `stopped_s` (many senders keep clocking while stopped), Start, clock for `started_s`.

In a process of its own (real-time priority where allowed), so that the test's threads never make
a tick late: the only late ticks are the stalls. Prints "ready", waits for a line on stdin, then
prints one JSON line with what it sent. Arguments: port bpm run_s cycles stopped_s started_s
stall_every_s stall_s timeout_s.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
import time

import mido

BACKEND = "mido.backends.rtmidi/UNIX_JACK"


def main() -> None:
    port, bpm, run_s, cycles, stopped_s, started_s, stall_every_s, stall_s, timeout_s = sys.argv[1:10]
    faulthandler.dump_traceback_later(float(timeout_s), exit=True)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except (AttributeError, OSError):
        sys.setswitchinterval(0.0005)  # no real-time priority here: at least wake promptly
    backend = mido.Backend(BACKEND)
    deadline_s = time.monotonic() + 10.0
    name = None
    while name is None and time.monotonic() < deadline_s:
        name = next((n for n in backend.get_output_names() if port in n), None)
        time.sleep(0.05)
    if name is None:
        print(json.dumps({"error": f"no JACK MIDI input named {port!r}"}), flush=True)
        return
    out = backend.open_output(name)
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(0.2)  # let JACK finish the connection before the first message

    interval_s = 60.0 / (24 * float(bpm))
    every_s, late_s = float(stall_every_s), float(stall_s)
    # (time from t0, message) in order: Start, clock, then Stop/Start cycles on tick deadlines
    plan: list[tuple[float, str]] = [(0.0, "start")]
    t = 0.0
    for kind, seconds in [("clock", float(run_s))] + [
            (phase, float(s)) for _ in range(int(cycles)) for phase, s in (("stop", stopped_s), ("start", started_s))]:
        if kind != "clock":
            plan.append((t, kind))
        end_s = t + seconds
        while t < end_s:
            plan.append((t, "clock"))
            t += interval_s
    t0 = time.monotonic() + 0.05
    worst_late_s, stalls = 0.0, 0
    for due_s, kind in plan:
        stall_from = (due_s // every_s) * every_s + every_s / 2
        wake_s = stall_from + late_s if stall_from <= due_s < stall_from + late_s else due_s
        stalls += kind == "clock" and wake_s != due_s and (due_s - interval_s < stall_from)
        delay_s = t0 + wake_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        worst_late_s = max(worst_late_s, time.monotonic() - (t0 + wake_s))
        out.send(mido.Message(kind))
    out.close()
    print(json.dumps({"messages": len(plan), "ticks": sum(kind == "clock" for _, kind in plan), "stalls": stalls,
                      "stops": sum(kind == "stop" for _, kind in plan),
                      "worst_late_ms": round(worst_late_s * 1000.0, 2)}), flush=True)


if __name__ == "__main__":
    main()
