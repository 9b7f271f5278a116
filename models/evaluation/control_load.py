"""The control bench's other senders (`bench control`): Python scripts each run in a process of its own
(`python -c SCRIPT args...`), so their sockets and timing are another host's, not the bench's."""


SENDER = r"""
import json, random, socket, sys, time
from hardware.osc.server import build_message
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
from hardware.osc.server import build_message
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
priority = int(sys.argv[5]) if len(sys.argv) > 5 else 0
from hardware.osc.server import build_message, set_realtime_priority
if priority:  # the other host is another machine: its own scheduling must not be what is measured
    set_realtime_priority(priority, "probe")
ask = build_message("/status")
sel = selectors.DefaultSelector()
sent_at, rtts, order = {}, [], []
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
        order.append(key.data)
        sel.unregister(key.fileobj); key.fileobj.close()
    for key in list(sel.get_map().values()):
        if time.perf_counter() - sent_at[key.data] > 2.0:
            sel.unregister(key.fileobj); key.fileobj.close()
worst = order[rtts.index(max(rtts))] if rtts else None
print(json.dumps({"sent": n, "rtts": rtts, "lost": n - len(rtts), "worst_index": worst}))
"""


FADERS = r"""
import json, socket, sys, time
from hardware.osc.server import build_message
# host port faders hz seconds: a TouchDesigner OSC Out CHOP: each fader sends hz values a second
# while it moves (1 s moves, 0.2 s holds, when nothing is sent); every value is new, so each
# application can be matched to its sending. Prints every value with its send time and the
# last value of every move.
host, port, n, hz, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
ranges = [("/param/brightness", 0.0, 1.0), ("/param/speed", 0.0, 4.0), ("/param/volume", 0.0, 2.0),
          ("/param/valence_bias", -1.0, 1.0), ("/param/arousal_bias", -1.0, 1.0)][:n]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
total = int(seconds * hz) + 2
sent, finals = [], []
start = time.monotonic(); steps = int(seconds * hz)
for k in range(steps):
    due = start + k / hz
    while (now := time.monotonic()) < due:
        time.sleep(min(0.002, due - now))
    if (k / hz) % 1.2 >= 1.0:
        continue  # holding: a CHOP sends nothing while a fader rests
    last_of_move = k + 1 == steps or ((k + 1) / hz) % 1.2 >= 1.0
    for address, low, high in ranges:
        value = round(low + (high - low) * (k + 1) / total, 6)
        t = time.monotonic()
        sock.sendto(build_message(address, value), (host, port))
        sent.append((address, value, t))
        if last_of_move:
            finals.append((address, value))
print(json.dumps({"sent": sent, "finals": finals}))
"""
