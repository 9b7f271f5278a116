"""Operators' sub-commands: `report`, `osc` (send one command, print the reply), `bench control`."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from installation.commands.shared import print_figures
from installation.errors import UserError
from models.evaluation.control_load import FADERS, FLOOD, PROBE, SENDER
from models.stats import latency_summary, percentile

ROOT = Path(__file__).resolve().parent.parent.parent


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()

    report = sub.add_parser("report", parents=[common], help="turn a show log into one HTML page (VA plots, captions, thumbnails)")
    report.add_argument("source", type=Path, metavar="DIR|LOG", help="a recording folder or its show.jsonl")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write the page (default: report-YYYY-MM-DD-PERIOD.html beside the log)")
    report.add_argument("--period", choices=("show", "day", "week"), default="show",
                        help="show: the newest log; day or week: every daily log in the folder, cut to that period")
    report.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="the day (or a week's last day); default: the last day logged")
    report.set_defaults(handler=_report)

    osc = sub.add_parser("osc", parents=[common], help="send one OSC command to a running installation and print the reply")
    osc.add_argument("address", help="e.g. /scene, /blackout, /param/brightness, /status")
    osc.add_argument("args", nargs="*", help="arguments; numbers are sent as numbers (quote them to send text)")
    osc.add_argument("--host", default=None, help="installation host (default: osc.host, or 127.0.0.1 when it is 0.0.0.0)")
    osc.add_argument("--port", type=int, default=None, help="installation port (default: osc.port)")
    osc.add_argument("--timeout-s", type=float, default=1.0, help="how long to wait for the reply")
    osc.set_defaults(handler=_osc)

    bench = groups["bench"].add_parser("control", parents=[common],
                                       help="command-to-effect latency while rendering; /status under a flood")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    bench.add_argument("--commands", type=int, default=600, help="commands sent for the latency figure")
    bench.add_argument("--rate-hz", type=float, default=100.0, help="commands a second for the latency figure")
    bench.add_argument("--flood-s", type=float, default=3.0,
                       help="seconds of each load phase: the 10,000 msg/s flood, the bundle storm, both together")
    bench.add_argument("--probe-hz", type=float, default=20.0, help="/status questions a second from the other host")
    bench.add_argument("--start-s", type=float, default=15.0,
                       help="seconds of the start phase: /status asked from the first second after the server "
                            "starts, while the sentence model loads as in a live show, and of the same questions "
                            "again after the renderer's warm-up (0 = skip both)")
    bench.add_argument("--bundle-hz", type=float, default=2.0, help="bundles a second in the bundle storm")
    bench.add_argument("--bundle-messages", type=int, default=2000, help="messages in each bundle of the storm")
    bench.add_argument("--fader-seconds", type=float, default=60.0, help="seconds of the fader stream (0 = skip)")
    bench.add_argument("--faders", type=int, default=5, help="fader addresses in the fader stream (1-5)")
    bench.add_argument("--fader-hz", type=float, default=50.0, help="values a second each fader sends while it moves")
    bench.add_argument("--fps", type=float, default=30.0, help="frame rate of the simulated projector loop")
    bench.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                       help="SCHED_FIFO priority for the OSC and main threads (0 = normal scheduling)")
    bench.set_defaults(handler=_bench)


def _report(args: argparse.Namespace) -> int:
    from installation.showlog.report import write_report
    out = write_report(args.source, args.output, args.period, args.date)
    print(out)
    return 0


def _date(text: str):
    import datetime as dt
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from None


def _parse_arg(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _osc(args: argparse.Namespace) -> int:
    from pythonosc.udp_client import SimpleUDPClient
    from installation.startup import load
    cfg = load(args).osc
    host = args.host or (cfg.host if cfg.host not in ("0.0.0.0", "::") else "127.0.0.1")
    port = args.port or cfg.port
    if not args.address.startswith("/"):
        raise UserError(f"OSC address {args.address!r} must start with '/', e.g. /blackout 1.")
    if not 0 < port <= 65535:
        raise UserError(f"--port {port} is not a port; use 1-65535.")
    try:
        client = SimpleUDPClient(host, port)
        client.send_message(args.address, [_parse_arg(a) for a in args.args])
    except OSError as exc:
        raise UserError(f"cannot send to {host}:{port} ({exc.strerror or exc}); check --host and --port.") from None
    for message in client.get_messages(args.timeout_s):
        print(message.address, *message.params)
        return 0 if '"status":"error"' not in str(message.params) else 1
    print(f"no reply from {host}:{port} within {args.timeout_s:g} s (is the installation running, and is this host in osc.allow?)",
          file=sys.stderr)
    return 1


def _renderer_load(stop: threading.Event, counter: list[int], nice: int) -> None:
    """Keeps one core busy the way the renderer does: torch kernels on one thread, at the render
    thread's priority (render.thread_nice)."""
    from installation.workers import lower_own_priority
    lower_own_priority(nice, "bench renderer")
    try:
        import torch
        torch.set_num_threads(1)
        a = torch.randn(384, 384)
        while not stop.is_set():
            a = torch.tanh(a @ a * 0.01)
            counter[0] += 1
    except ImportError:
        import numpy as np
        a = np.random.default_rng(0).standard_normal((384, 384)).astype(np.float32)
        while not stop.is_set():
            a = np.tanh(a @ a * 0.01)
            counter[0] += 1


def _spawn(script: str, *args, stdout=None) -> subprocess.Popen:
    """A helper process started with posix_spawn (no cwd, no fd closing: what lets subprocess use
    it), so this torch-sized process is not forked: a fork copies its page tables and stalls
    every thread of the process under test for 100 ms or more, which is the bench, not the product."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=stdout, text=True,
                            close_fds=False, env=env)


def _drive(control, commands, clock, period_s: float, procs: list, on_apply=None, server=None) -> int:
    """The projector loop's part: a blit a frame, commands applied the moment they arrive, until
    every process in `procs` has ended, the inbox is empty and (within 5 s) the server holds no
    coalesced fader value. Returns the frames shown."""
    import numpy as np
    frame = np.zeros((720, 1280, 3), np.uint8)
    screen = np.empty_like(frame)
    frames = 0
    next_frame_s = clock.now_s()
    def waiting() -> bool:
        if any(p.poll() is None for p in procs) or len(commands):
            return True
        if server is None or clock.now_s() >= settle_until_s:
            return False
        stats = server.snapshot()
        return stats["pending_faders"] > 0 or stats["queued_packets"] > 0

    settle_until_s = float("inf")
    while waiting():
        if settle_until_s == float("inf") and not any(p.poll() is None for p in procs):
            settle_until_s = clock.now_s() + 5.0
        np.copyto(screen, frame)  # the blit: the main thread's own work per frame
        frames += 1
        next_frame_s = max(next_frame_s + period_s, clock.now_s())
        control.apply_until(commands, next_frame_s, clock, on_apply=on_apply)
    return frames


def _bench(args: argparse.Namespace) -> int:
    rig = _BenchRig(args)
    start_results = _start_phase(rig) if args.start_s > 0 else {}
    stop = threading.Event()
    iterations = [0]
    renderer = threading.Thread(target=_renderer_load, args=(stop, iterations, rig.render_nice),
                                name="renderer", daemon=True)
    renderer.start()
    warm_until = time.monotonic() + 30.0
    while iterations[0] < 20 and time.monotonic() < warm_until:  # torch's import holds the GIL for a while
        time.sleep(0.05)
    load_at_start = round(os.getloadavg()[0], 2)
    warm_results = _probe_phase(rig, "warm", "after warm-up, the renderer busy") if args.start_s > 0 else {}

    end_to_end_ms, frames, server_to_effect = _latency_phase(rig)
    # --- phases 2-4: one host floods, another asks /status probe_hz times a second ---------------
    phases = {
        "flood": _load_phase(rig, "10,000 msg/s of fader values from one host", 10000.0, 0.0),
        "bundle_storm": _load_phase(rig, f"{args.bundle_hz:g} bundles/s of {args.bundle_messages} messages from one host",
                                    0.0, args.bundle_hz),
        "flood_and_bundles": _load_phase(rig, "both at once from one host", 10000.0, args.bundle_hz),
    }
    fader_results: dict = {"fader_seconds": args.fader_seconds}
    if args.fader_seconds > 0:
        fader_results.update(_fader_phase(rig))

    stop.set()
    renderer.join()
    stats = rig.server.snapshot()
    receive_buffer = rig.server.receive_buffer_bytes
    rig.server.stop()

    results = {
        "count": len(end_to_end_ms),
        **{f"latency_ms_{k}": v for k, v in latency_summary(end_to_end_ms).items() if k != "p95"},
        "what": "send (operator's sendto) to effect (main thread changed LiveState), commands at "
                f"{args.rate_hz:g}/s, projector loop at {args.fps:g} fps, a torch thread busy on one core",
        "server_to_effect_ms_p99": round(percentile(server_to_effect, 99), 3),
        "commands_applied": len(end_to_end_ms),
        "commands_sent": args.commands,
        "renderer_iterations": iterations[0],
        "frames": frames,
        "other_sender_p99_ms": {name: phase["other_sender_p99_ms"] for name, phase in phases.items()},
        "other_sender_lost": {name: phase["other_sender_lost"] for name, phase in phases.items()},
        "other_sender_over_10ms": {name: phase["other_sender_over_10ms"] for name, phase in phases.items()},
        "kernel_drops": stats["kernel_drops"],
        "ring_drops": stats["ring_drops"],
        "receive_buffer_bytes": receive_buffer,
        "phases": phases,
        **start_results,
        **warm_results,
        **fader_results,
        "inbox_dropped": rig.commands.dropped,
        "inbox_refused": rig.commands.refused,
        "realtime_priority": args.realtime,
        "render_thread_nice": rig.render_nice,
        "load_average_1min_at_start": load_at_start,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "target_latency_ms_p99": 5.0,
        "target_other_sender_p99_ms": 10.0,
        "target_fader_command_to_effect_ms_p99": 5.0,
    }
    return print_figures(results, args.json)


class _BenchRig:
    """What every phase of the control bench drives: the live state, the control, the command inbox
    and the OSC server listening on a free local port."""

    def __init__(self, args: argparse.Namespace) -> None:
        from hardware.osc.inbox import CommandInbox
        from installation.clock import MonotonicClock
        from hardware.osc.server import OscControlServer
        from installation.operators.control import Control, LiveState
        from installation.operators.routes import param_key
        from installation.operators.osc_wiring import command_space
        from installation.startup import load
        from scenes.scene import available_scenes

        self.args = args
        cfg = load(args)
        self.render_nice = cfg.render.thread_nice
        osc_cfg = cfg.osc.model_copy(update={"host": "127.0.0.1", "port": 0, "allow": ("127.0.0.0/8",),
                                             "realtime_priority": args.realtime or cfg.osc.realtime_priority})
        self.clock = clock = MonotonicClock()
        sys.setswitchinterval(0.0005)  # what the runtime sets: threads waiting on the GIL get it back quickly
        self.live = live = LiveState(scene=cfg.installation.scene)
        self.control = Control(live, available_scenes, None, clock=clock)
        self.commands: CommandInbox = CommandInbox(4096)
        self.server = OscControlServer(osc_cfg.settings(), self.commands, clock, live.snapshot, command_space(),
                                       validate=self.control.check, values=lambda a: live.params.get(param_key(a)))
        if args.realtime:
            from hardware.osc.server import set_realtime_priority
            set_realtime_priority(args.realtime, "main loop")
        self.server.start()
        self.host, self.port = self.server.address
        self.period_s = 1.0 / args.fps

    def drive(self, procs: list, on_apply=None, server=None) -> int:
        """Run the projector loop's command handling until `procs` have ended; returns the frames."""
        return _drive(self.control, self.commands, self.clock, self.period_s, procs, on_apply, server=server)


def _latency_phase(rig: _BenchRig) -> tuple[list[float], int, list[float]]:
    """Phase 1: command-to-effect latency through the projector loop; returns the send-to-effect
    latencies (ms), the frames driven and the server-to-effect latencies (ms)."""
    end_to_end_ms: list[float] = []

    def on_apply(command, result) -> None:
        now = time.monotonic()
        text = command.args[0] if command.args else ""
        if result["ok"] and isinstance(text, str) and text.startswith("bench "):
            end_to_end_ms.append((now - float(text.split()[-1])) * 1000.0)

    sender = _spawn(SENDER, rig.host, rig.port, rig.args.commands, rig.args.rate_hz)
    frames = rig.drive([sender], on_apply)
    return end_to_end_ms, frames, rig.control.latency_ms()


def _start_phase(rig: _BenchRig) -> dict:
    """Phase 0, before the renderer's load starts: another host asks /status from the first second
    after the server started, while the composer's sentence model loads the way a live show starts
    it (TextEncoder.warm_up, on the first retrieval); returns how that host was answered."""
    from models.composing.index import TextEncoder

    args = rig.args
    started = time.monotonic()
    probe = _spawn(PROBE, rig.host, rig.port, args.start_s, args.probe_hz, args.realtime, stdout=subprocess.PIPE)
    ready_after: list[float] = []

    def watch() -> None:  # when the model answers, for the record
        while not TextEncoder.ready() and time.monotonic() - started < 600:
            time.sleep(0.1)
        ready_after.append(time.monotonic() - started)

    TextEncoder.warm_up()
    threading.Thread(target=watch, name="bench-model-watch", daemon=True).start()
    results = _probe_phase(rig, "start", "from the server's start (the probe's interpreter takes ~0.5 s to begin), "
                                         "the sentence model loading", probe)
    return {**results, "start_sentence_model_ready_after_s": round(ready_after[0], 1) if ready_after else None,
            "start_torch_in_this_process": "torch" in sys.modules}


def _probe_phase(rig: _BenchRig, name: str, when: str, probe: subprocess.Popen | None = None) -> dict:
    """Another host asks /status probe_hz times a second for start_s seconds while the projector
    loop runs; returns how it was answered, as `<name>_*` figures."""
    args = rig.args
    if probe is None:
        probe = _spawn(PROBE, rig.host, rig.port, args.start_s, args.probe_hz, args.realtime, stdout=subprocess.PIPE)
    rig.drive([probe])
    probed = json.loads(probe.communicate()[0])
    rtts = probed["rtts"]
    return {
        f"{name}_what": f"/status from 127.0.0.2 at {args.probe_hz:g}/s for {args.start_s:g} s {when}",
        f"{name}_other_sender_asked": probed["sent"],
        f"{name}_other_sender_lost": probed["lost"],
        **{f"{name}_other_sender_p{q}_ms": round(percentile(rtts, q), 3) for q in (50, 95, 99)},
        f"{name}_other_sender_max_ms": round(max(rtts), 3) if rtts else float("nan"),
        f"{name}_other_sender_over_10ms": sum(1 for r in rtts if r > 10.0),
        f"{name}_load_average_1min": round(os.getloadavg()[0], 2),
    }


def _load_phase(rig: _BenchRig, name: str, flood_hz: float, bundle_hz: float) -> dict:
    """Phases 2-4: one host floods (fader values at flood_hz, bundles at bundle_hz) while another asks
    /status probe_hz times a second; returns how the other host was answered and what the server did."""
    args, server, clock = rig.args, rig.server, rig.clock
    before = server.snapshot()
    flood = _spawn(FLOOD, rig.host, rig.port, flood_hz, args.flood_s, bundle_hz, args.bundle_messages, stdout=subprocess.PIPE)
    started_s = clock.now_s()  # the other host starts asking once the flood is arriving (not while
    while server.snapshot()["received"] == before["received"] and clock.now_s() - started_s < 10.0:
        rig.control.apply_until(rig.commands, clock.now_s() + rig.period_s, clock)  # interpreters start)
    probe = _spawn(PROBE, rig.host, rig.port, args.flood_s, args.probe_hz, args.realtime, stdout=subprocess.PIPE)
    rig.drive([flood, probe], server=server)
    flooded = json.loads(flood.communicate()[0])
    probed = json.loads(probe.communicate()[0])
    after = server.snapshot()
    rtts = probed["rtts"]
    return {
        "what": name,
        "flood_msgs_per_s": flood_hz, "bundles_per_s": bundle_hz,
        "bundle_messages": args.bundle_messages if bundle_hz else 0,
        "flood_packets_sent": flooded["sent"] + flooded["bundles"],
        "flood_messages_sent": flooded["sent"] + flooded["bundle_messages"],
        "other_sender_asked": probed["sent"],
        "other_sender_answered": len(rtts),
        "other_sender_lost": probed["lost"],
        "other_sender_p50_ms": round(percentile(rtts, 50), 3),
        "other_sender_p99_ms": round(percentile(rtts, 99), 3),
        "other_sender_p95_ms": round(percentile(rtts, 95), 3),
        "other_sender_max_ms": round(max(rtts), 3) if rtts else float("nan"),
        "other_sender_over_10ms": sum(1 for r in rtts if r > 10.0),
        "other_sender_worst_question": probed["worst_index"],
        **{key: after[key] - before[key] for key in ("accepted", "rate_limited", "coalesced", "superseded", "busy",
                                                    "kernel_drops", "ring_drops")},
        "flood_faders_final": {name: abs(rig.live.params.get(name, -9.0) - flooded["last"][name]) < 1e-6
                               for name in ("brightness", "speed") if flooded["last"][name] is not None},
    }


def _fader_phase(rig: _BenchRig) -> dict:
    """Phase 5: a fader stream (TouchDesigner OSC Out CHOP), every final value applied; returns the
    fader figures."""
    import tempfile

    args, server = rig.args, rig.server
    applied: dict[tuple[str, float], float] = {}
    order: list[tuple[str, float]] = []

    def on_fader(command, result) -> None:
        if result["ok"] and command.address.startswith("/param/"):
            key = (command.address, round(float(command.args[0]), 6))
            applied.setdefault(key, time.monotonic())
            order.append(key)

    before = server.snapshot()
    latencies_before = len(rig.control.latency_ms())
    with tempfile.TemporaryFile("w+") as out:  # a file, not a pipe: the report is larger than a pipe holds
        faders = _spawn(FADERS, rig.host, rig.port, max(1, min(5, args.faders)), args.fader_hz, args.fader_seconds, stdout=out)
        rig.drive([faders], on_fader, server=server)
        out.seek(0)
        streamed = json.loads(out.read())
    after = server.snapshot()
    effect_ms = [(applied[(a, v)] - t) * 1000.0 for a, v, t in streamed["sent"] if (a, v) in applied]
    finals = [tuple(f) for f in streamed["finals"]]
    last_applied = {}
    for address, value in order:
        last_applied[address] = value
    final_by_address = {}
    for address, value in finals:
        final_by_address[address] = value
    return {
        "fader_addresses": max(1, min(5, args.faders)), "fader_hz": args.fader_hz,
        "fader_values_sent": len(streamed["sent"]),
        "fader_values_applied": len(effect_ms),
        "fader_values_superseded": len(streamed["sent"]) - len(effect_ms),
        "fader_moves": len(finals),
        "fader_final_values_applied": sum(1 for f in finals if f in applied),
        "fader_every_final_value_applied": all(f in applied for f in finals),
        "fader_last_value_is_live": all(last_applied.get(a) == v for a, v in final_by_address.items()),
        "fader_command_to_effect_ms_p50": round(percentile(effect_ms, 50), 3),
        "fader_command_to_effect_ms_p99": round(percentile(effect_ms, 99), 3),
        "fader_command_to_effect_ms_max": round(max(effect_ms), 3) if effect_ms else float("nan"),
        "fader_server_to_effect_ms_p99": round(percentile(rig.control.latency_ms()[latencies_before:], 99), 3),
        "fader_rate_limited": after["rate_limited"] - before["rate_limited"],
        "fader_coalesced_at_the_limit": after["coalesced"] - before["coalesced"],
        "fader_kernel_drops": after["kernel_drops"] - before["kernel_drops"],
    }
