"""The terminal: one console for log lines and the live status block, 80 columns, a closing summary.

The tmux test runs a real terminal (80x24) with the start-up's own logging set-up, logs from
several threads while the status block updates, and reads the screen back.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from installation.status import format_summary, status_lines
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

SNAPSHOT = {"scene": "nocturne", "fps": 29.8, "render": "procedural", "music_va": [0.12, -0.3], "tempo_bpm": 96.0,
            "key": "A minor", "image_va": [0.3, 0.4], "notes_per_s": 3.2, "drops": {"frames": 3, "music": 1},
            "restarts": 2, "failures": 1, "blackout": True,
            "caption": "a slow blue tide under a copper sky, brushed ink, wide open field, soft grain " * 2}


def test_status_lines_fit_80_columns_with_the_important_figures_first():
    first, second, third = status_lines(SNAPSHOT, uptime_s=3723)
    assert first == "nocturne BLACKOUT  29.8 fps procedural  up 1:02:03"
    assert second.startswith("music +0.12 -0.30   96 bpm A minor  image +0.30 +0.40   3.2 notes/s")
    assert len(first) <= 80 and len(second) <= 80
    assert third.startswith("drops 4 restarts 2 faults 1  \u2502 a slow blue tide")  # the caption is cut, not wrapped
    assert status_lines(SNAPSHOT, 3723, drops_per_min=2.5)[2].startswith("drops 2.5/min restarts 2")
    with_diffusion = status_lines({**SNAPSHOT, "render": "diffusion", "fps": 26.5, "diffusion_new_fps": 2.1}, 3723)[0]
    assert with_diffusion == "nocturne BLACKOUT  26.5 fps diffusion 2.1 new/s  up 1:02:03"
    empty = status_lines({})
    assert all(len(line) <= 80 for line in empty)


def test_drops_are_a_rate_over_the_last_minute_not_a_climbing_count():
    from installation.status import DropRate
    rate = DropRate(window_s=60.0)
    assert rate.update(0.0, 100) == 0.0  # drops before the first look are not this minute's
    assert rate.update(30.0, 110) == pytest.approx(20.0)  # 10 in 30 s
    for t in range(31, 200):
        last = rate.update(float(t), 110)  # none since: the rate falls back to 0 within the window
    assert last == 0.0
    assert rate.update(201.0, 5) == 0.0  # counts restarted with the process: no negative rate


QUIET = textwrap.dedent("""
    import logging, os, sys, warnings
    sys.path.insert(0, {root!r})
    os.environ["PATH"] = "/nonexistent"  # no ffmpeg: pydub warns on import
    from installation.quiet import quiet_third_parties
    from installation.startup import setup_logging
    quiet_third_parties()
    setup_logging("info")
    from pydub import AudioSegment
    from huggingface_hub.utils import tqdm as hub_tqdm
    from transformers.utils.logging import tqdm as transformers_tqdm
    for bar in (hub_tqdm, transformers_tqdm):
        for _ in bar(range(50), desc="Loading weights"):
            pass
    warnings.warn("a library's own warning", UserWarning)
    logging.getLogger("sentence_transformers.base.model").info("Loading SentenceTransformer model from /venv")
    from models.captions.drift import log as captions_log
    captions_log.debug("critic: picture drifts from the music")
    print("done", flush=True)
""")


def test_third_party_warnings_and_progress_bars_stay_off_the_console(tmp_path):
    script = tmp_path / "quiet.py"
    script.write_text(QUIET.format(root=str(ROOT)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    for noise in ("ffmpeg", "Loading weights", "it/s]", "warning", "SentenceTransformer", "critic"):
        assert noise not in console, console
    assert console.strip() == "done"


@pytest.mark.slow
def test_a_short_start_shows_status_and_summary_and_nothing_else(tmp_path):
    """A real start of the embedded default: no library warnings, bars or critic lines, drops as
    a rate, and the summary is the last thing said."""
    from tests.system.test_end_to_end import EMBEDDED
    args = [sys.executable, str(ROOT / "run.py"), "--headless", "--duration", "12"]
    for item in EMBEDDED:
        args += ["--set", item]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    console = "\n".join(lines)
    for noise in ("ffmpeg", "Loading weights", "it/s]", "Warning", "critic (", "critic: picture",
                  "SentenceTransformer", "stopped:"):
        assert noise not in console, console
    assert any("/min restarts" in line for line in lines), console  # drops as a rate
    summary = next(i for i, line in enumerate(lines) if " ran 0:00:" in line)
    assert all(" chromesthesia.status: " in line for line in lines[summary:]), console  # nothing after it
    assert "wrote nothing" in lines[-1]


def test_summary_names_run_time_counts_and_paths(tmp_path):
    lines = format_summary({"run_s": 75.2, "frames": 2250, "notes": 310, "faults": 0, "restarts": 1,
                            "paths": [tmp_path / "visuals.mp4", tmp_path / "show.jsonl"]})
    assert lines[0] == "ran 0:01:15  frames 2250  notes 310  faults 0  restarts 1"
    assert lines[1:] == [f"wrote {tmp_path / 'visuals.mp4'}", f"wrote {tmp_path / 'show.jsonl'}"]
    assert format_summary({})[1].startswith("wrote nothing")


SCRIPT = textwrap.dedent("""
    import logging, os, sys, threading
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from installation.startup import setup_logging
    from installation.status import StatusLine
    setup_logging("info")
    status = StatusLine()
    status.starting("starting Chromesthesia: loading models and devices")
    status.start()
    snapshot = {snapshot!r}
    def chatter(name):
        for i in range(6):
            logging.getLogger("chromesthesia." + name).warning("%s says line %d", name, i)
    for i in range(40):
        snapshot["fps"] = 20 + i / 4
        status.update(snapshot)
        status._live.refresh()  # drawn now, as the 4 Hz refresh would between log lines of a real run
        if i % 10 == 0:
            threads = [threading.Thread(target=chatter, args=(n,), name=n) for n in ("renderer", "listener")]
            [t.start() for t in threads]
            [t.join() for t in threads]
    print("a print to stdout while live")
    status.update(snapshot)
    Path({ready!r}).write_text("ready")
    with open({release!r}) as fifo:  # blocks until the test has read the screen
        fifo.read()
    status.stop({{"frames": 1234, "notes": 56, "paths": ["out/demo/show.jsonl"]}})
""")



@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (Debian package tmux); `make test` installs it")
def test_tmux_80x24_shows_no_stale_status_lines(tmp_path):
    import os
    ready, release = tmp_path / "ready", tmp_path / "release"
    os.mkfifo(release)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), snapshot=SNAPSHOT, ready=str(ready), release=str(release)))
    session = f"chroma-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    f"{sys.executable} {script}; echo EXITED; exec cat"], check=True, timeout=30)
    try:
        def screen(history: bool = False) -> list[str]:
            done = subprocess.run([*tmux, "capture-pane", "-p", "-t", session, *(["-S", "-"] if history else [])],
                                  capture_output=True, text=True, timeout=30)
            return done.stdout.rstrip("\n").splitlines()

        assert wait_for(ready.exists, 60)
        during = wait_for(lambda: (lines := screen()) and any("fps" in line for line in lines) and lines, 30)
        status_rows = [line for line in during if " fps " in line]
        assert len(status_rows) == 1, "\n".join(during)  # one live block, no stale copies above it
        assert sum(1 for line in during if line.startswith("music ")) == 1
        assert sum(1 for line in during if "says line" in line) >= 10  # the log lines are there, whole
        assert any("a print to stdout while live" in line for line in during)
        assert all(len(line) <= 80 for line in during)
        block = during.index(status_rows[0])
        assert block >= len(during) - 3  # the block stays at the bottom, under the log

        with open(release, "w") as fifo:
            fifo.write("go")
        after = wait_for(lambda: (lines := screen(history=True)) and any("EXITED" in line for line in lines) and lines, 30)
        assert not [line for line in after if " fps " in line], "\n".join(after)  # the block is gone, no copy anywhere
        assert after[0].startswith("starting Chromesthesia")  # the first thing on the screen
        assert any(line.startswith("ran 0:00:") and "frames 1234  notes 56" in line for line in after), "\n".join(after)
        assert any("wrote out/demo/show.jsonl" in line for line in after)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def test_a_silent_input_is_warned_about_after_30_s_once_and_cleared(caplog):
    from installation.status import SilenceWatch
    watch = SilenceWatch("input 2 'system' (JACK Audio Connection Kit)")
    assert watch.update(False, 0.0) is None
    assert [watch.update(True, t) for t in (1.0, 20.0, 30.9)] == [None, None, None]
    warning = watch.update(True, 31.0)
    assert warning.startswith("audio: input 2 'system' (JACK Audio Connection Kit) has been silent for 30 s")
    assert watch.update(True, 90.0) is None  # once, not every tick
    assert watch.update(False, 91.0).endswith("has sound again")
    assert watch.update(True, 100.0) is None and watch.update(True, 129.0) is None
    assert watch.update(True, 130.0) is not None


@pytest.mark.jack
def test_auto_names_the_input_device_it_listens_to(portaudio_on_jack, caplog):
    import logging
    from installation.config import load_config
    from installation.sources import choose_sources
    with caplog.at_level(logging.INFO, logger="chromesthesia"):
        sources = choose_sources(load_config(None, ['render.backend="procedural"']), headless=True)
    assert sources.audio == "device"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audio: listening to")]
    assert said and "'system' (JACK Audio Connection Kit)" in said[0], said


def test_the_status_line_polls_the_silence_watch_of_a_live_input():
    from installation.config import Config
    from installation.mailbox import Latest
    from installation.records import MusicState
    from installation.status import StatusLine, input_silence_watch

    class Sources:
        audio = "synth"

    assert input_silence_watch(Config(), Sources(), Latest()) is None  # the built-in synth is not a room
    Sources.audio = "device"
    box: Latest = Latest()
    watch = input_silence_watch(Config(), Sources(), box, after_s=0.0)
    status = StatusLine(quiet=True, silence=watch)
    box.put(MusicState(t_s=0.0, silent=False))
    status.update({})
    assert not watch.warned
    box.put(MusicState(t_s=1.0, silent=True))
    status.update({})
    status.update({})
    assert watch.warned


def test_run_summary_lists_the_files_this_run_wrote(tmp_path):
    import os
    import time
    from installation.status import run_summary
    old = tmp_path / "visuals-1.mp4"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    since = time.time()
    for name in ("visuals.mp4", "midi.mid", "show.jsonl"):
        (tmp_path / name).write_bytes(b"x")

    class Log:
        path = tmp_path / "show.jsonl"
    summary = run_summary({"frames_shown": 100, "failures": 1, "restarts": 2, "main_faults": 1}, 7, tmp_path, Log(), since)
    assert [p.name for p in summary["paths"]] == ["midi.mid", "show.jsonl", "visuals.mp4"]
    assert (summary["frames"], summary["notes"], summary["faults"], summary["restarts"]) == (100, 7, 2, 2)
