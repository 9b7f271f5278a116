"""The recording stays playable after a full disk or a kill -9, and says honestly when it was cut short."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import cv2

from installation.status import format_summary

ROOT = Path(__file__).resolve().parents[2]

RECORD = """
import resource, signal, sys, time
import numpy as np
from pathlib import Path
from hardware.video.display import VideoRecorder
limit, frames, kill = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "kill"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write answers EFBIG, as a full disk answers ENOSPC
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
rec = VideoRecorder(Path(sys.argv[1]), 30, 320, 240)
rec.open()
rng = np.random.default_rng(0)
for i in range(frames):
    rec.show(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))  # noise: every frame is large
    time.sleep(0.002)
if kill:
    while rec.stats["frames"] < frames:
        time.sleep(0.01)
    print("written", flush=True)
    time.sleep(60)
rec.close()
print(rec.stats["frames"], rec.failure)
"""


def frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    return count


def test_a_full_disk_leaves_a_playable_recording_and_says_where_it_was_cut(tmp_path):
    path = tmp_path / "visuals.mp4"
    done = subprocess.run([sys.executable, "-c", RECORD, str(path), str(600_000), "150", "close"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written, failure = done.stdout.split(" ", 1)
    assert "cut short at" in failure and "plays up to there" in failure
    assert int(written) < 150
    assert frames_in(path) >= 30  # every whole fragment (1 s = 30 frames) before the disk filled


def test_a_kill_9_leaves_a_playable_recording(tmp_path):
    path = tmp_path / "visuals.mp4"
    child = subprocess.Popen([sys.executable, "-c", RECORD, str(path), "0", "100", "kill"], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert frames_in(path) >= 60  # up to the last whole fragment


def test_the_exit_summary_says_a_recording_was_cut_short_instead_of_written(tmp_path):
    lines = format_summary({"run_s": 10, "paths": [tmp_path / "visuals.mp4", tmp_path / "show.jsonl"],
                            "problems": {str(tmp_path / "visuals.mp4"): "cut short at 4.0 s (No space left on device)"}})
    assert f"wrote {tmp_path / 'visuals.mp4'}" not in lines
    assert f"did not finish {tmp_path / 'visuals.mp4'}: cut short at 4.0 s (No space left on device)" in lines
    assert f"wrote {tmp_path / 'show.jsonl'}" in lines
