"""The show log stays small and complete: gestures, tempo and critic records are folded, nothing an
operator did is lost, a short write never glues two records, and the log rotates by size."""
from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

from installation.clock import ManualClock
from installation.showlog.writer import ShowLog, read_show_log
from installation.showlog.fold import FoldSettings, RecordFolder

ROOT = Path(__file__).resolve().parents[2]


def test_five_faders_at_60_hz_for_4_s_become_at_most_10_records_with_every_final_value(tmp_path):
    clock = ManualClock()
    log = ShowLog(tmp_path / "show.jsonl", clock)
    finals = {}
    for frame in range(4 * 60):
        for fader in range(5):
            value = round((frame * (fader + 1)) % 127 / 127.0, 4)
            log.write("command", address=f"/param/fader{fader}", args=[value], sender="192.168.1.20:9000", ok=True)
            finals[f"/param/fader{fader}"] = value
        clock.advance(1 / 60)
    log.close()
    records = [r for r in read_show_log(log.path)]
    assert len(records) <= 10, len(records)
    gestures = {r["address"]: r for r in records if r["kind"] == "gesture"}
    assert {a: g["last"] for a, g in gestures.items()} == finals
    assert all(g["count"] == 240 and 3.9 <= g["duration_s"] <= 4.0 and g["first"] == 0.0 for g in gestures.values())


def test_a_pause_ends_a_gesture_and_a_long_one_is_written_in_parts():
    folder = RecordFolder(FoldSettings(gesture_gap_s=0.5, gesture_max_s=10.0))
    fields = {"address": "/param/brightness", "sender": "osc", "ok": True}
    assert folder.offer(0.0, "command", {**fields, "args": [0.1]}) == []
    assert folder.offer(0.1, "command", {**fields, "args": [0.2]}) == []
    assert folder.due(0.5) == []
    (t_s, kind, record), = folder.due(0.7)
    assert (t_s, kind, record["first"], record["last"], record["count"]) == (0.1, "gesture", 0.1, 0.2, 2)
    written = []
    for step in range(0, 1500):  # 15 s without a pause
        written += folder.offer(step * 0.01, "command", {**fields, "args": [step / 1500]}) or []
    written += folder.flush()
    assert len(written) == 2 and written[-1][2]["last"] == 1499 / 1500


def test_discrete_and_refused_commands_are_written_as_they_come():
    folder = RecordFolder()
    assert folder.offer(0.0, "command", {"address": "/blackout", "args": [1], "ok": True}) is None
    assert folder.offer(0.0, "command", {"address": "/param/x", "args": [3], "ok": False}) is None
    assert folder.offer(0.0, "status", {"fps": 30}) is None


def test_tempo_is_logged_on_a_change_of_a_bpm_at_most_once_a_second_and_its_release_at_once():
    clock = ManualClock()
    folder = RecordFolder()
    written = []
    bpm = 120.0
    for tick in range(14 * 10):  # 10 s of a follower saying a new tempo 14 times a second
        bpm = 120.0 + (tick % 7) * 0.3 + tick * 0.05
        fields = {"address": "/tempo", "args": [round(bpm, 1)], "ok": True, "sender": "midi:clock"}
        written += folder.due(clock.now_s()) + (folder.offer(clock.now_s(), "command", fields) or [])
        clock.advance(1 / 14)
    written += folder.offer(clock.now_s(), "command", {"address": "/tempo", "args": [0], "ok": True}) or []
    times = [t for t, _, _ in written]
    assert len(written) <= 12
    assert all(b - a >= 0.99 for a, b in zip(times[:-3], times[1:-2]))  # the last two: held value, release
    values = [f["args"][0] for _, _, f in written]
    assert values[-1] == 0 and abs(values[-2] - round(bpm, 1)) < 1.0


def test_repeated_critic_records_are_folded_with_their_count():
    folder = RecordFolder()
    out = []
    for i in range(20):
        out += folder.offer(i * 4.0, "critic", {"event": "correction", "colour": "blue", "drift": [0.1 * i, 0.0]}) or []
    out += folder.offer(90.0, "critic", {"event": "head", "head": "clip", "note": "loaded"}) or []
    out += folder.flush()
    assert [(r[2].get("event"), r[2].get("repeats")) for r in out] == [("correction", None), ("correction", 19), ("head", None)]


def test_pending_gestures_are_written_at_close(tmp_path):
    clock = ManualClock()
    log = ShowLog(tmp_path / "show.jsonl", clock)
    log.write("command", address="/param/volume", args=[0.3], sender="dashboard", ok=True)
    clock.advance(0.05)
    log.write("command", address="/param/volume", args=[1.7], sender="dashboard", ok=True)
    log.write("stop", reason="done")
    log.close()
    kinds = [(r["kind"], r.get("last")) for r in read_show_log(log.path)]
    assert ("gesture", 1.7) in kinds


SHORT_WRITER = """
import resource, signal, sys
from pathlib import Path
from installation.clock import ManualClock
from installation.showlog.writer import ShowLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit answers EFBIG, as a full disk answers ENOSPC
log = ShowLog(Path(sys.argv[1]), ManualClock(), fold=None)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
for i in range(40):
    log.write("status", seq=i, caption="a harbour at dusk")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk has room again
for i in range(40, 45):
    log.write("status", seq=i, caption="a harbour at dusk")
log.close()
print(log.torn, log.errors)
"""


def test_a_short_write_on_a_full_disk_never_glues_the_next_record(tmp_path):
    path = tmp_path / "show.jsonl"
    done = subprocess.run([sys.executable, "-c", SHORT_WRITER, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    torn, errors = map(int, done.stdout.split())
    assert torn == 1 and errors > 1
    lines = path.read_bytes().split(b"\n")
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    seqs = [r["seq"] for r in parsed]
    assert seqs[-5:] == [40, 41, 42, 43, 44]  # every record after the disk had room again, whole
    assert seqs == sorted(seqs) and len(parsed) == len([l for l in lines if l]) - 1  # one torn line, alone


def test_the_always_on_log_starts_a_new_part_past_its_size_cap_and_prunes_over_the_total(tmp_path):
    clock = ManualClock()
    log = ShowLog(tmp_path / "show.jsonl", clock, keep_days=30, max_file_mb=0.01, max_total_mb=0.025)
    for i in range(600):
        log.write("status", seq=i, caption="a slow blue tide " * 2)
    log._prune(_dt.date.today() - _dt.timedelta(days=30))
    log.close()
    parts = sorted(tmp_path.glob("show-*.jsonl"))
    assert parts and all(p.stat().st_size < 12_000 for p in parts)
    assert sum(p.stat().st_size for p in parts) <= 25_000
    seqs = [r["seq"] for p in [*parts, log.path] for r in read_show_log(p)]
    assert seqs[-1] == 599 and seqs == sorted(seqs)
