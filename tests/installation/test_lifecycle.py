"""The show's life without a running installation: closed hours, wake-up, scene changes, live
reload and the watchdog, on a manual clock and fakes."""
from __future__ import annotations

from pathlib import Path

from installation.bus import Bus, LiveState
from installation.clock import ManualClock
from installation.operators.control import Control
from installation.show.lifecycle import STALL_RESTART_S, Lifecycle
from installation.records import Command, MusicState
from installation.workers import WorkerStats
from scenes.scene import load_scene


class PanicCounter:
    def __init__(self) -> None:
        self.panics = 0

    def panic(self) -> None:
        self.panics += 1


class Hours:
    """Opening hours decided by the test: tick returns what the test queued."""

    def __init__(self) -> None:
        self.queued: list[Command] = []

    def tick(self, when, now_s, silent, present, scene):
        queued, self.queued = self.queued, []
        return queued


class FakeWorker:
    def __init__(self, name: str, phase: str, since_s: float, alive: bool = True) -> None:
        self.name, self._alive, self.started = name, alive, 0
        self.stats = WorkerStats(phase=phase, phase_since_s=since_s)

    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        self.started += 1
        self._alive = True
        self.stats = WorkerStats(phase="backoff")


class Workers:
    def __init__(self, workers) -> None:
        self.workers = workers

    def stalled(self, now_s, max_silence_s):
        return [w for w in self.workers if not w.alive() or (
            w.stats.phase in ("open", "step", "close") and now_s - w.stats.phase_since_s > max_silence_s)]


class ChangedFiles:
    def __init__(self) -> None:
        self.paths: list[Path] = []

    def changed(self):
        paths, self.paths = self.paths, []
        return paths


def rig(workers=(), **kw):
    clock, scene = ManualClock(), load_scene("nocturne")
    bus = Bus(scene)
    control = Control(LiveState(scene="nocturne"), lambda: ["nocturne", "pulse"], None, snapshots=bus.live)
    fades: list[float] = []
    life = Lifecycle(clock, control, bus, scene, Hours(), Workers(list(workers)), None, on_fade=fades.append, **kw)
    control.effects.update(life.effects())
    return clock, bus, control, life, fades


def test_closed_hours_rest_in_place_and_an_operator_can_light_it_up():
    clock, bus, control, life, _ = rig()
    scheduler = PanicCounter()
    life.started.append(scheduler)
    bus.music.put(MusicState(t_s=0.0))
    life.schedule.queued = [Command(0.0, "/stop", (), "schedule")]
    life.run_schedule(clock.now_s())
    assert life.dormant.is_set() and bus.snapshot().blackout and scheduler.panics == 1
    assert not life.stop_event.is_set()  # resting, not exiting
    control.apply(Command(1.0, "/blackout", (0,), "127.0.0.1:9000"))
    assert not life.dormant.is_set() and not bus.snapshot().blackout


def test_a_scene_change_cross_fades_and_moves_the_stages_and_a_stop_request_stops():
    clock, bus, control, life, fades = rig()
    control.apply(Command(0.0, "/scene", ("pulse", 3.0), "osc"))
    assert life.scene.name == "pulse" and bus.scene.peek().name == "pulse" and fades == [3.0]
    control.apply(Command(0.0, "/prompt", ("a harbour",), "osc"))
    assert bus.prompt.peek() == "a harbour"
    control.apply(Command(0.0, "/restart", (), "schedule"))
    assert life.stop_event.is_set() and life.exit_action == "restart" and "schedule" in life.stop_reason


def test_a_bad_config_edit_is_kept_out_and_a_good_one_restarts(tmp_path):
    from installation.config import load_config
    path = tmp_path / "config.toml"
    path.write_text("[display]\nfps = 30\n")
    watcher = ChangedFiles()
    clock, bus, control, life, _ = rig(watcher=watcher, config_path=path, cfg=load_config(path, []),
                                       load_config=lambda p: load_config(p, []))
    path.write_text("[display]\nfps = -3\n")
    watcher.paths = [path]
    life.reload_changed_files()
    assert not life.stop_event.is_set()
    path.write_text("[display]\nfps = 25\n")
    watcher.paths = [path]
    life.reload_changed_files()
    assert life.exit_action == "restart" and life.validated_config_text == "[display]\nfps = 25\n"


def test_the_watchdog_restarts_a_dead_thread_and_restarts_in_place_after_a_long_stall():
    dead = FakeWorker("camera", "step", 0.0, alive=False)
    stuck = FakeWorker("renderer", "step", 0.0)
    faults: list[str] = []
    _, _, _, life, _ = rig(workers=[dead, stuck], on_fault=lambda worker, text: faults.append(worker))
    life.watchdog(60.0)
    assert dead.started == 1 and not life.stop_event.is_set()
    life.watchdog(STALL_RESTART_S + 1)
    assert life.exit_action == "restart" and "renderer" in life.stop_reason
    assert faults == ["camera", "renderer"]


def test_shutdown_stops_what_started_and_closes_everything_even_when_one_fails():
    _, _, _, life, _ = rig()
    stopped, closed = [], []

    class Scheduler:
        def stop(self, timeout_s):
            stopped.append(timeout_s)

    class Broken:
        def stop(self, timeout_s):
            raise RuntimeError("broken")

    life.supervisor.stop = lambda budget_s: []
    life.started.append(Scheduler())
    life.shutdown([Broken(), None], [lambda: closed.append(1), lambda: 1 / 0, lambda: closed.append(2)])
    assert len(stopped) == 1 and closed == [1, 2]


def test_a_scene_whose_render_or_captions_table_a_stage_would_refuse_is_not_taken(tmp_path):
    """Edited while running or chosen with /scene: the running scene stays, no stage is handed it."""
    import tomllib

    from installation.check import running_scene_check
    from installation.config import load_config

    presets = Path(__file__).resolve().parents[2] / "scenes" / "presets"
    bad_render = tomllib.loads((presets / "pulse.toml").read_text())
    bad_render["render"]["shapes"] = "blobs"
    bad_captions = tomllib.loads((presets / "pulse.toml").read_text())
    bad_captions["captions"]["weights"] = {"scene": "x"}
    from scenes import scene as scenes
    for data in (bad_render, bad_captions):
        clock, bus, control, life, fades = rig(check_scene=running_scene_check(load_config(None, [])))
        original = scenes.load_scene
        scenes.load_scene = lambda name, *a, **k: scenes.parse_scene(data, tmp_path / "pulse.toml")
        try:
            control.apply(Command(0.0, "/scene", ("pulse", 3.0), "osc"))
        finally:
            scenes.load_scene = original
        assert life.scene.name == "nocturne" and bus.scene.peek().name == "nocturne" and fades == []
        assert control.live.scene == "nocturne"
