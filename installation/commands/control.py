"""Operators' sub-commands: `report`, `osc` (send one command, print the reply), `bench control`."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from installation.errors import UserError

ROOT = Path(__file__).resolve().parent.parent.parent


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from installation.startup import config_options
    common = config_options()

    report = sub.add_parser("report", parents=[common], help="turn a show log into one HTML page (VA plots, captions, thumbnails)")
    report.add_argument("source", type=Path, metavar="DIR|LOG", help="a recording folder or its show.jsonl")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write the page (default: beside the log)")
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
    bench.add_argument("--flood-s", type=float, default=3.0, help="seconds of the 10,000 msg/s flood")
    bench.add_argument("--fps", type=float, default=30.0, help="frame rate of the simulated projector loop")
    bench.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                       help="SCHED_FIFO priority for the OSC and main threads (0 = normal scheduling)")
    bench.set_defaults(handler=_bench)


def _report(args: argparse.Namespace) -> int:
    from installation.report import write_report
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
    client = SimpleUDPClient(host, port)
    client.send_message(args.address, [_parse_arg(a) for a in args.args])
    for message in client.get_messages(args.timeout_s):
        print(message.address, *message.params)
        return 0 if '"status":"error"' not in str(message.params) else 1
    print(f"no reply from {host}:{port} within {args.timeout_s:g} s (is the installation running, and is this host in osc.allow?)",
          file=sys.stderr)
    return 1


SENDER = r"""
import json, random, socket, sys, time
from hardware.osc import build_message
host, port, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rng = random.Random(1)
time.sleep(0.5)
for i in range(n):
    sock.sendto(build_message("/prompt", f"bench {i} {time.monotonic():.9f}"), (host, port))
    time.sleep(rng.uniform(0.5, 1.5) / rate)
"""

FLOOD = r"""
import json, socket, sys, time
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from hardware.osc import build_message
# host port flood_msgs_per_s seconds [bundles_per_s bundle_messages]: one host floods fader values
# (/param/brightness, a new value each time) and, when asked, bundles of fader values and commands
# (/param/speed and /crossfade); prints what it sent and the last value of each fader.
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
bundle_hz = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
bundle_size = int(sys.argv[6]) if len(sys.argv) > 6 else 0
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

def bundle(k):
    b, speed = OscBundleBuilder(IMMEDIATELY), None
    for j in range(bundle_size):
        if j % 2 == 0:
            m, speed = OscMessageBuilder(address="/param/speed"), ((k * bundle_size + j) % 400) / 100.0
            m.add_arg(speed)
        else:
            m = OscMessageBuilder(address="/crossfade")
            m.add_arg(float(j % 60))
        b.add_content(m.build())
    return b.build().dgram, speed

sent = bundles = bundle_msgs = 0
last = {"brightness": None, "speed": None}
start = time.monotonic()
while (elapsed := time.monotonic() - start) < seconds:
    while sent < int(elapsed * rate):
        value = (sent % 1000) / 1000.0
        try:
            sock.sendto(build_message("/param/brightness", value), (host, port))
            last["brightness"] = value
        except OSError:
            pass
        sent += 1
    while bundles < int(elapsed * bundle_hz):
        dgram, speed = bundle(bundles)
        try:
            sock.sendto(dgram, (host, port))
            bundle_msgs += bundle_size
            last["speed"] = speed
        except OSError:
            pass
        bundles += 1
    time.sleep(0.001)
print(json.dumps({"sent": sent, "bundles": bundles, "bundle_messages": bundle_msgs, "last": last}))
"""

PROBE = r"""
import json, selectors, socket, sys, time
# host port seconds rate_hz: another host (127.0.0.2) asks /status rate_hz times a second at fixed
# instants, each from its own port so every answer is matched to its question; an answer later
# than 2 s counts as lost.
host, port, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
from hardware.osc import build_message
ask = build_message("/status")
sel = selectors.DefaultSelector()
sent_at, rtts = {}, []
start = time.perf_counter(); n = 0
while True:
    now = time.perf_counter()
    if now - start < seconds and now - start >= n / rate:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.2", 0)); sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, n)
        sent_at[n] = time.perf_counter()
        sock.sendto(ask, (host, port))
        n += 1
    if now - start >= seconds and (not sel.get_map() or now - max(sent_at.values(), default=now) > 2.0):
        break
    for key, _ in sel.select(timeout=0.002):
        got = time.perf_counter()
        try:
            key.fileobj.recv(65536)
        except OSError:
            continue
        rtts.append((got - sent_at[key.data]) * 1000.0)
        sel.unregister(key.fileobj); key.fileobj.close()
    for key in list(sel.get_map().values()):
        if time.perf_counter() - sent_at[key.data] > 2.0:
            sel.unregister(key.fileobj); key.fileobj.close()
print(json.dumps({"sent": n, "rtts": rtts, "lost": n - len(rtts)}))
"""


def _renderer_load(stop: threading.Event, counter: list[int]) -> None:
    """Keeps one core busy the way the renderer does: torch kernels on one thread."""
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


def _bench(args: argparse.Namespace) -> int:
    import numpy as np
    from installation.startup import load
    from installation.clock import MonotonicClock
    from installation.control import Control, LiveState, OscControlServer, latency_summary, percentile
    from installation.mailbox import DropOldest
    from scenes.scene import available_scenes

    cfg = load(args)
    osc_cfg = cfg.osc.model_copy(update={"host": "127.0.0.1", "port": 0, "allow": ("127.0.0.0/8",)})
    clock = MonotonicClock()
    sys.setswitchinterval(0.0005)  # what the runtime sets: threads waiting on the GIL get it back quickly
    live = LiveState(scene=cfg.installation.scene)
    control = Control(live, available_scenes, None, clock=clock)
    commands: DropOldest = DropOldest(256)
    server = OscControlServer(osc_cfg, commands, clock, live.snapshot, validate=control.check,
                              realtime_priority=args.realtime)
    if args.realtime:
        from hardware.osc import set_realtime_priority
        set_realtime_priority(args.realtime, "main loop")
    server.start()
    host, port = server.address
    stop = threading.Event()
    iterations = [0]
    renderer = threading.Thread(target=_renderer_load, args=(stop, iterations), name="renderer", daemon=True)
    renderer.start()
    warm_until = time.monotonic() + 30.0
    while iterations[0] < 20 and time.monotonic() < warm_until:  # torch's import holds the GIL for a while
        time.sleep(0.05)

    # --- phase 1: command-to-effect latency through the projector loop ---------------------------
    end_to_end_ms: list[float] = []

    def on_apply(command, result) -> None:
        now = time.monotonic()
        text = command.args[0] if command.args else ""
        if result["ok"] and isinstance(text, str) and text.startswith("bench "):
            end_to_end_ms.append((now - float(text.split()[-1])) * 1000.0)

    sender = subprocess.Popen([sys.executable, "-c", SENDER, host, str(port), str(args.commands), str(args.rate_hz)],
                              cwd=ROOT)
    frame = np.zeros((720, 1280, 3), np.uint8)
    screen = np.empty_like(frame)
    period_s = 1.0 / args.fps
    next_frame_s = clock.now_s()
    frames = 0
    while sender.poll() is None or len(commands):
        np.copyto(screen, frame)  # the blit: the main thread's own work per frame
        frames += 1
        next_frame_s += period_s
        control.apply_until(commands, next_frame_s, clock, on_apply=on_apply)
    sender.wait()
    phase1 = server.snapshot()

    # --- phase 2: a 10,000 msg/s flood from one host, /status from another -----------------------
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, host, str(port), "10000", str(args.flood_s)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    probe = subprocess.Popen([sys.executable, "-c", PROBE, host, str(port), str(args.flood_s)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    while flood.poll() is None or probe.poll() is None:
        next_frame_s = clock.now_s() + period_s
        control.apply_until(commands, next_frame_s, clock)
    flood_sent = int(flood.communicate()[0])
    probed = json.loads(probe.communicate()[0])
    stop.set()
    renderer.join()
    stats = server.snapshot()
    server.stop()

    rtts = probed["rtts"]
    results = {
        **latency_summary(end_to_end_ms),
        "what": "send (operator's sendto) to effect (main thread changed LiveState), commands at "
                f"{args.rate_hz:g}/s, projector loop at {args.fps:g} fps, a torch thread busy on one core",
        "server_to_effect_ms_p99": round(percentile(control.latency_ms(), 99), 3),
        "commands_applied": len(end_to_end_ms),
        "commands_sent": args.commands,
        "renderer_iterations": iterations[0],
        "frames": frames,
        "flood_msgs_per_s": 10000,
        "flood_sent": flood_sent,
        "flood_rate_limited": stats["rate_limited"] - phase1["rate_limited"],
        "flood_accepted": stats["accepted"] - phase1["accepted"],
        "status_under_flood_ms_p50": round(percentile(rtts, 50), 3),
        "status_under_flood_ms_p99": round(percentile(rtts, 99), 3),
        "status_under_flood_ms_max": round(max(rtts), 3) if rtts else float("nan"),
        "status_under_flood_answered": len(rtts),
        "status_under_flood_lost": probed["lost"],
        "realtime_priority": args.realtime,
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "target_latency_ms_p99": 5.0,
        "target_status_under_flood_ms": 10.0,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0
