"""The show log survives kill -9, torn lines and odd values, and loses nothing it accepted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from installation.clock import ManualClock, MonotonicClock
from installation.errors import UserError
from installation.showlog.writer import ShowLog, read_show_log
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from pathlib import Path
from installation.clock import MonotonicClock
from installation.showlog.writer import ShowLog
log = ShowLog(Path(sys.argv[1]), MonotonicClock())
i = 0
while True:
    log.write("status", seq=i, music_va=[0.1, -0.2], caption="a harbour at dusk " * 4, scene="nocturne")
    i += 1
    if i == 50:
        print("ready", flush=True)
    time.sleep(0.001)
"""


def test_kill_9_leaves_a_readable_log_with_everything_written(tmp_path):
    path = tmp_path / "show.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: path.exists() and len(read_show_log(path)) > 400, 10)  # a second or so of writing
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    killed_at = time.monotonic()
    records = read_show_log(path)
    seqs = [r["seq"] for r in records]
    assert len(seqs) > 200
    assert seqs == list(range(len(seqs)))  # nothing missing, nothing out of order
    assert killed_at - records[-1]["t_s"] < 1.0  # everything up to the last second is there
    assert all(r["kind"] == "status" and r["music_va"] == [0.1, -0.2] for r in records)

    # a writer after the crash appends cleanly, even after a torn last line
    with open(path, "ab") as f:
        f.write(b'{"t_s": 1.0, "kind": "stat')
    log = ShowLog(path, MonotonicClock())
    log.write("start", note="after the crash")
    log.close()
    again = read_show_log(path)
    assert len(again) == len(records) + 1 and again[-1]["note"] == "after the crash"


def test_records_carry_time_and_kind_and_odd_values_become_json(tmp_path):
    clock = ManualClock(12.5)
    log = ShowLog(tmp_path / "a" / "show.jsonl", clock)
    log.write("status", music_va=(np.float32(0.5), float("nan")), fps=np.int64(30), path=tmp_path,
              arr=np.arange(3), facets={"colour": "amber"})
    clock.advance(1.0)
    log.write("fault", worker="renderer", error=ValueError("boom"))
    log.close()
    log.write("status", after="close")  # ignored, never raises
    first, second = read_show_log(log.path)
    assert first["t_s"] == 12.5 and first["kind"] == "status" and "T" in first["time"]
    assert first["music_va"] == [0.5, None] and first["fps"] == 30 and first["arr"] == [0, 1, 2]
    assert first["facets"] == {"colour": "amber"} and first["path"] == str(tmp_path)
    assert second == {**second, "t_s": 13.5, "kind": "fault", "worker": "renderer", "error": "boom"}
    for line in log.path.read_text().splitlines():
        json.loads(line)  # strict JSON: no NaN tokens


def test_many_threads_write_whole_lines(tmp_path):
    log = ShowLog(tmp_path / "show.jsonl", MonotonicClock())

    def writer(n):
        for i in range(500):
            log.write("caption", thread=n, i=i, prompt="x" * (i % 300))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    records = read_show_log(log.path)
    assert len(records) == 2000
    for n in range(4):
        assert [r["i"] for r in records if r["thread"] == n] == list(range(500))


def test_thumbnails_are_rate_limited_and_announced(tmp_path):
    clock = ManualClock()
    log = ShowLog(tmp_path / "show.jsonl", clock, thumbnail_interval_s=10.0, thumbnail_width=64)
    from skimage import data
    frame = data.astronaut()
    first = log.thumbnail(frame)
    assert first is not None and first.is_file()
    assert log.thumbnail(frame) is None
    clock.advance(10.0)
    assert log.thumbnail(frame) is not None
    log.close()
    thumbs = [r for r in read_show_log(log.path) if r["kind"] == "thumbnail"]
    assert len(thumbs) == 2 and (tmp_path / thumbs[0]["path"]) == first
    import cv2
    assert cv2.imread(str(first)).shape == (64, 64, 3)


def test_unwritable_or_missing_logs_are_user_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot be opened"):
        ShowLog(blocker / "show.jsonl", MonotonicClock())
    with pytest.raises(UserError, match="does not exist"):
        read_show_log(tmp_path / "nope.jsonl")


def test_daily_rotation_keeps_recent_days_and_deletes_older_ones(tmp_path):
    import datetime as dt
    import os

    from installation.clock import ManualClock

    path = tmp_path / "show.jsonl"
    for days_ago in (2, 40):  # days rotated earlier: one to keep, one past keeping
        (tmp_path / f"show-{(dt.date.today() - dt.timedelta(days=days_ago)).isoformat()}.jsonl").write_text("{}\n")
    old_thumb = tmp_path / "show.thumbs" / "000000001.000.jpg"
    old_thumb.parent.mkdir()
    old_thumb.write_bytes(b"jpg")
    long_ago_s = (dt.datetime.now() - dt.timedelta(days=45)).timestamp()
    os.utime(old_thumb, (long_ago_s, long_ago_s))
    showlog = ShowLog(path, ManualClock(), keep_days=30, fsync_interval_s=0.05)
    showlog.write("status", n=1)
    showlog._day = dt.date.today() - dt.timedelta(days=1)  # as if midnight has just passed
    showlog.write("status", n=2)
    wait_for(lambda: not old_thumb.exists(), 5)  # the fsync thread prunes
    showlog.close()
    yesterday = tmp_path / f"show-{(dt.date.today() - dt.timedelta(days=1)).isoformat()}.jsonl"
    assert [r["n"] for r in read_show_log(yesterday)] == [1]
    assert [r["n"] for r in read_show_log(path)] == [2]
    kept = sorted(p.name for p in tmp_path.glob("show-*.jsonl"))
    assert len(kept) == 2 and all("-" in name for name in kept)  # 2 days ago and yesterday
    assert not old_thumb.exists()
