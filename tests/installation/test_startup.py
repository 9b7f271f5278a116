"""Start-up: what an in-place restart carries across exec (deadline, counts), without a process."""
from __future__ import annotations

import json

from installation.startup import COUNTS_ENV, DEADLINE_ENV, inherited_counts, inherited_duration_s


def test_duration_after_an_in_place_restart_is_what_is_left_of_the_original_deadline():
    import time
    assert inherited_duration_s(600.0, {}) == 600.0  # first start: the whole of it
    left = inherited_duration_s(600.0, {DEADLINE_ENV: repr(time.time() + 61.0)})
    assert 55.0 < left <= 61.0
    assert inherited_duration_s(600.0, {DEADLINE_ENV: repr(time.time() - 5.0)}) == 0.1  # already over: stop soon
    assert inherited_duration_s(None, {DEADLINE_ENV: "123"}) is None  # no --duration: runs on
    assert inherited_duration_s(30.0, {DEADLINE_ENV: "garbage"}) == 30.0


def test_counts_are_carried_across_in_place_restarts():
    assert inherited_counts({}) == {"restarts_in_place": 0, "failures": 0, "restarts": 0}
    carried = {COUNTS_ENV: json.dumps({"restarts_in_place": 2, "failures": 5, "restarts": 4})}
    assert inherited_counts(carried) == {"restarts_in_place": 2, "failures": 5, "restarts": 4}
    assert inherited_counts({COUNTS_ENV: "not json"})["restarts_in_place"] == 0
    assert inherited_counts({COUNTS_ENV: json.dumps({"failures": -1})})["failures"] == 0


def test_cli_is_not_imported_back_by_what_it_dispatches():
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "installation"
    for path in root.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "installation.cli", path


def test_a_run_restarted_in_place_stops_at_the_original_deadline(tmp_path):
    """--duration 30 after a restart whose original deadline is a moment away: it stops then,
    not 30 s later (the deadline travels across exec in the environment)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from installation.showlog.writer import read_show_log

    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, str(root / "run.py"), "--headless", "--quiet", "--duration", "30", "--record", str(tmp_path)]
    for item in ["osc.enabled=false", 'display.mode="headless"', 'audio.source="synth"', 'camera.source="photos"',
                 'render.backend="procedural"', 'synth.speakers="off"']:
        args += ["--set", item]
    env = dict(os.environ, **{DEADLINE_ENV: repr(time.time() + 1.0),
                              COUNTS_ENV: json.dumps({"restarts_in_place": 1, "failures": 2, "restarts": 2})})
    proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    show = read_show_log(tmp_path / "show.jsonl")
    start, stop = [r for r in show if r["kind"] == "start"][0], show[-1]
    assert stop["kind"] == "stop" and stop["reason"] == "duration reached"
    assert stop["t_s"] - start["t_s"] < 15.0  # far less than the 30 s a fresh --duration would give
    assert (stop["restarts_in_place"], stop["failures"], stop["restarts"]) == (1, 2, 2)  # counts carried on


def test_a_normal_exit_leaves_the_live_heap_out_of_the_interpreters_last_collection(monkeypatch):
    """The interpreter's exit collected every object still alive (corpus, models, caches): 2-3 s of
    a SIGTERM stop on two loaded cores. `leave` freezes them first; atexit handlers still run."""
    import gc

    import hardware.sound.audio_in
    from installation.startup import leave

    monkeypatch.setattr(hardware.sound.audio_in, "release_portaudio", lambda: True)
    try:
        assert leave(3) == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
