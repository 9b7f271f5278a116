"""display.wake_on_onset: a hit wakes the main loop's wait and is drawn at once, frames never come
closer than the floor, operator commands still apply the moment they arrive, and with the setting
off nothing changes. On the real clock and threads, and on a manual clock."""
from __future__ import annotations

import threading
import time

from installation.bus import Bus, LiveState
from installation.clock import ManualClock, MonotonicClock
from installation.config import load_config
from installation.mailbox import Latest
from installation.operators.control import WAKE, Control, wake
from installation.projection.projector import MainFaults
from installation.records import Command, OnsetState
from installation.show.frame_wait import WAKE_FLOOR
from installation.show.lifecycle import Lifecycle
from installation.stages.onsets import WAKE_STRENGTH, AudioQueue, OnsetStage
from scenes.scene import load_scene
from tests.installation.test_lifecycle import Hours, Workers
from tests.installation.test_projector import rig as projector_rig
from tests.installation.test_projector import solid

FPS = 10
PERIOD_S = 1.0 / FPS


class TickLog:
    """The projector as the main loop sees it: the time of every frame."""

    def __init__(self, clock) -> None:
        self.clock, self.times_s, self.guard = clock, [], MainFaults()

    def tick(self, now_s: float):
        self.times_s.append(self.clock.now_s())
        return None

    def window_closed(self) -> bool:
        return False


class Quiet:
    def update(self, values) -> None: ...

    def watchdog(self) -> None: ...


def rig(clock, wake_on_onset: bool = True):
    cfg = load_config(None, [f"display.fps={FPS}", f"display.wake_on_onset={str(wake_on_onset).lower()}"])
    scene = load_scene("nocturne")
    bus = Bus(scene)
    control = Control(LiveState(scene="nocturne"), lambda: ["nocturne"], None, snapshots=bus.live, clock=clock)
    life = Lifecycle(clock, control, bus, scene, Hours(), Workers([]), Quiet(), cfg=cfg)
    control.effects.update(life.effects())
    return bus, control, life, TickLog(clock)


def run_loop(life, projector, commands, duration_s: float) -> threading.Thread:
    thread = threading.Thread(target=life.loop, args=(projector, commands, Quiet(), dict, lambda: 0, duration_s),
                              daemon=True)
    thread.start()
    return thread


def test_a_hit_is_drawn_within_a_few_ms_not_at_the_next_frame():
    clock = MonotonicClock()
    bus, _, life, projector = rig(clock)
    thread = run_loop(life, projector, bus.commands, 1.2)
    while not projector.times_s:
        time.sleep(0.001)
    hits_s = []
    for delay_s in (0.27, 0.30, 0.53, 0.86):  # between frames, then each too soon after the last frame
        time.sleep(max(0.0, delay_s - (clock.now_s() - projector.times_s[0])))
        hits_s.append(clock.now_s())
        wake(bus.commands)
    thread.join(3.0)
    times_s = projector.times_s
    for hit_s in hits_s:
        after_s = min(t for t in times_s if t >= hit_s) - hit_s
        before_s = hit_s - max(t for t in times_s if t < hit_s)
        # Drawn at once, or at the floor when the last frame was too recent (a loaded machine gets slack).
        assert after_s <= max(0.0, WAKE_FLOOR * PERIOD_S - before_s) + 0.02, (hit_s, times_s)
    assert len(times_s) >= 13


def test_frames_never_come_faster_than_the_floor():
    clock = MonotonicClock()
    bus, _, life, projector = rig(clock)
    thread = run_loop(life, projector, bus.commands, 0.8)
    while thread.is_alive():  # a hit every 4 ms
        wake(bus.commands)
        time.sleep(0.004)
    gaps_s = [b - a for a, b in zip(projector.times_s, projector.times_s[1:])]
    assert min(gaps_s) >= WAKE_FLOOR * PERIOD_S - 1e-3
    assert len(projector.times_s) > 0.8 * FPS + 3  # woken frames came between the regular ones


def test_commands_still_apply_the_moment_they_arrive_and_a_wake_is_no_command():
    clock = MonotonicClock()
    bus, control, life, projector = rig(clock)
    thread = run_loop(life, projector, bus.commands, 0.6)
    time.sleep(0.15)
    wake(bus.commands)
    time.sleep(0.013)
    bus.commands.put(Command(clock.now_s(), "/freeze", (1,), "t"))
    time.sleep(0.1)
    wake(bus.commands)
    bus.commands.put(Command(clock.now_s(), "/param/brightness", (0.5,), "t"))
    thread.join(3.0)
    assert control.live.freeze and control.live.params["brightness"] == 0.5
    assert control.applied == 2 and control.refused == 0
    assert max(control.latency_ms()) < 20.0


def test_with_the_setting_off_a_wake_changes_nothing():
    clock = MonotonicClock()
    bus, _, life, projector = rig(clock, wake_on_onset=False)
    thread = run_loop(life, projector, bus.commands, 0.6)
    while thread.is_alive():
        wake(bus.commands)
        time.sleep(0.01)
    gaps_s = [b - a for a, b in zip(projector.times_s, projector.times_s[1:])]
    assert min(gaps_s) >= 0.8 * PERIOD_S and len(projector.times_s) <= 0.6 * FPS + 1


def test_on_a_manual_clock_a_hit_waits_only_for_the_floor():
    clock = ManualClock()
    bus, _, life, projector = rig(clock)
    wake(bus.commands)  # arrives while the first frame is drawn
    run_loop(life, projector, bus.commands, 3 * PERIOD_S).join(5.0)
    t = [round(s, 6) for s in projector.times_s]
    # The hit at once after the floor, then the cadence goes on from that frame.
    assert t[:3] == [0.0, round(WAKE_FLOOR * PERIOD_S, 6), round((WAKE_FLOOR + 1) * PERIOD_S, 6)]

    clock = ManualClock()
    bus, _, life, projector = rig(clock, wake_on_onset=False)
    wake(bus.commands)
    run_loop(life, projector, bus.commands, 3 * PERIOD_S).join(5.0)
    assert [round(s, 6) for s in projector.times_s] == [round(k * PERIOD_S, 6) for k in range(3)]


def test_the_onset_stage_wakes_for_each_new_hit_strong_enough_to_draw():
    calls: list[int] = []
    stage = OnsetStage(AudioQueue("none"), lambda rate: None, Latest(), AudioQueue("out"), ManualClock(),
                       on_hit=lambda: calls.append(1))
    stage.publish(OnsetState(t_s=0.0))  # no hit yet
    stage.publish(OnsetState(t_s=0.01, strength=0.8, count=1))
    stage.publish(OnsetState(t_s=0.02, strength=0.8, count=1))  # the same hit, a block later
    stage.publish(OnsetState(t_s=0.03, strength=WAKE_STRENGTH / 2, count=2))  # too soft to draw
    stage.publish(OnsetState(t_s=0.04, strength=0.5, count=3))
    assert len(calls) == 2 and stage.onsets.peek().count == 3


def test_wakes_share_one_place_in_the_inbox_and_apply_until_passes_them_over():
    from installation.operators.osc_wiring import command_inbox
    inbox = command_inbox(8)
    for _ in range(5):
        wake(inbox)
    assert len(inbox) == 1 and inbox.get(0) is WAKE
    clock = ManualClock()
    control = Control(LiveState(scene="nocturne"), lambda: ["nocturne"], None, clock=clock)
    wake(inbox)
    inbox.put(Command(0.0, "/freeze", (1,), "t"))
    assert control.apply_until(inbox, 0.001) == 1 and control.refused == 0 and control.live.freeze


def test_a_frame_drawn_between_refreshes_keeps_the_recording_at_the_display_rate():
    clock, bus, _, projector, recorders = projector_rig()
    from installation.records import Frame
    for k, step_s in enumerate((0.0, 0.05, 0.1, 0.05, 0.1, 0.1)):  # ticks at 0, .05 (a hit), .15, .2, .3, .4
        clock.advance(step_s)
        bus.frames.put(Frame(t_s=clock.now_s(), rgb=solid(k)))
        projector.tick(clock.now_s())
    assert len(recorders[0].frames) == 5  # 0.4 s at 10 fps: 5 slots, the hit's frame took none
