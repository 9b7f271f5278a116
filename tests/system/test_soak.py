"""`bench soak`'s figures from its samples and show log (the long run itself is a benchmark)."""
from __future__ import annotations

import math

from models.evaluation.soak import growth_mb_per_hour, summarise


def test_growth_is_the_slope_after_warm_up_in_mb_per_hour():
    times_s = [60.0 * i for i in range(61)]
    # 100 MB of warm-up in the first 10 minutes, then 0.5 MB an hour with noise of 0.2 MB
    rss = [300.0 + (100.0 * min(t, 600.0) / 600.0) + 0.5 * max(0.0, t - 600.0) / 3600.0 + 0.2 * ((i % 3) - 1)
           for i, t in enumerate(times_s)]
    show = [{"kind": "status", "t_s": 1000.0 + t, "fps": 30.0, "restarts": 0, "failures": 0, "drops": {}}
            for t in times_s] + [{"kind": "fault", "t_s": 1200.0}, {"kind": "stop", "reason": "duration reached"}]
    figures = summarise(times_s, rss, 600.0, show)
    assert abs(figures["rss_growth_mb_per_hour"] - 0.5) < 0.3
    assert figures["faults"] == 1 and figures["restarts"] == 0 and figures["fps_median"] == 30.0
    assert figures["stop_reason"] == "duration reached" and figures["samples"] == 51


def test_too_few_samples_give_no_slope():
    assert math.isnan(growth_mb_per_hour([0.0, 1.0], [1.0, 2.0]))


def test_a_crash_is_a_process_ended_by_a_signal_the_soak_did_not_send():
    import signal

    from models.evaluation.soak import crash_of
    assert crash_of(-signal.SIGSEGV) == "SIGSEGV"
    assert crash_of(-signal.SIGABRT) == "SIGABRT"
    assert crash_of(0) is None and crash_of(2) is None  # an exit, however bad, is not a crash
    assert crash_of(-signal.SIGTERM) is None  # the soak's own stop (Ctrl-C)


def test_the_soak_runs_the_installation_with_its_own_config(tmp_path, monkeypatch):
    from installation.cli import parse
    from installation.commands.soak import installation_command

    monkeypatch.chdir(tmp_path)
    (tmp_path / "museum.toml").write_text("")
    for argv in (["bench", "soak", "--config", "museum.toml", "--set", "osc.port=9"],
                 ["--config", "museum.toml", "bench", "soak", "--set", "osc.port=9"]):
        command = installation_command(parse(argv), ["--headless"], 60.0, tmp_path / "show.jsonl")
        at = command.index("--config")
        assert command[at + 1] == str(tmp_path / "museum.toml") and "osc.port=9" in command


def test_the_failing_studio_restarts_and_power_cycles_on_its_schedule_and_times_each_return():
    from installation.commands.soak_jack import FailingStudio

    studio = FailingStudio(restart_min=10.0, cycle_min=10.0)
    studio.began(1000.0, 3600.0)
    plan = studio._plan
    assert [kind for _, kind in plan[:3]] == ["midi power-cycle", "jack restart", "midi power-cycle"]
    assert [t for t, _ in plan[:3]] == [300.0, 600.0, 900.0] and plan[-1] == (3300.0, "midi power-cycle")
    # a restart back at 1600 s: sound 1.5 s later and then every 10 s; notes at 1602 and 1770 s only
    studio.events = [{"kind": "jack restart", "at_min": 10.0, "back_s": 1600.0}]
    studio.studio.loud_s = [1601.5 + 10.0 * i for i in range(30)]
    studio.studio.notes_s = [1602.0, 1770.0]
    figures = studio.figures(end_s=1900.0)["returns"][0]
    assert (figures["sound_back_s"], figures["notes_back_s"]) == (1.5, 2.0)
    assert figures["silent_sound_minutes"] == 0 and figures["silent_note_minutes"] == 3  # of 5 whole minutes


def test_the_whole_process_tree_has_its_own_figures_beside_the_process():
    times_s = [60.0 * i for i in range(31)]
    rss = [500.0] * 31
    tree = [1500.0 + 2.0 * t / 3600.0 for t in times_s]  # a child growing 2 MB an hour (1500.2 MB at 5 min)
    figures = summarise(times_s, rss, 300.0, [], tree)
    assert figures["rss_growth_mb_per_hour"] == 0.0
    assert abs(figures["rss_tree_growth_mb_per_hour"] - 2.0) < 1e-6 and figures["rss_tree_mb_start"] == 1500.2
    assert "rss_tree_mb_end" not in summarise(times_s, rss, 300.0, [])


def test_the_tree_s_resident_size_counts_the_children():
    import subprocess
    import sys

    from installation.commands.soak import rss_mb, tree_rss_mb
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        import psutil
        deadline = 50
        while not psutil.Process(proc.pid).children() and deadline:
            import time
            time.sleep(0.1)
            deadline -= 1
        own, whole = rss_mb(proc.pid), tree_rss_mb(proc.pid)
        assert own is not None and whole is not None and whole > own + 1.0
    finally:
        import psutil
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(5)
    assert tree_rss_mb(proc.pid) is None
