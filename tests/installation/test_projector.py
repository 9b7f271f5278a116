"""The projector on a manual clock: held frame, freeze, blackout, brightness, cross-fade, window
reopen, recorder slots, the critic's copy, and extra sinks that never stall it."""
from __future__ import annotations

import threading

import numpy as np

from installation.bus import Bus, LiveSnapshot
from installation.clock import ManualClock
from installation.projection.projector import MainFaults, Projector
from installation.records import Frame
from tests.fakes import RecordingDisplay
from tests.waiting import wait_for


def solid(value: int, w: int = 8, h: int = 6) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


class ListRecorder:
    path = "memory"

    def __init__(self, width: int, height: int) -> None:
        self.size, self.frames = (width, height), []

    def open(self) -> None: ...

    def show(self, rgb) -> None:
        self.frames.append(int(rgb[0, 0, 0]))

    def close(self) -> None: ...


def rig(**kw):
    clock, bus = ManualClock(), Bus("nocturne")
    display = RecordingDisplay(8, 6)
    recorders: list[ListRecorder] = []

    def make_recorder(w, h):
        recorders.append(ListRecorder(w, h))
        return recorders[-1]

    projector = Projector(bus.frames, bus.live, bus.projected_frames, clock, 10.0, (8, 6), display=display,
                          recorder_factory=make_recorder, **kw)
    projector.open()
    return clock, bus, display, projector, recorders


def test_held_frame_freeze_blackout_and_brightness():
    clock, bus, display, projector, _ = rig()
    assert projector.tick(clock.now_s()).max() == 0  # nothing rendered yet: black
    bus.frames.put(Frame(0.0, solid(200)))
    assert projector.tick(clock.now_s())[0, 0, 0] == 200
    assert projector.tick(clock.now_s())[0, 0, 0] == 200  # no new frame: the held one
    bus.live.put(LiveSnapshot(scene="nocturne", freeze=True))
    bus.frames.put(Frame(0.1, solid(50)))
    assert projector.tick(clock.now_s())[0, 0, 0] == 200  # frozen
    bus.live.put(LiveSnapshot(scene="nocturne", params={"brightness": 0.5}))
    bus.frames.put(Frame(0.2, solid(100)))
    assert projector.tick(clock.now_s())[0, 0, 0] == 50
    bus.live.put(LiveSnapshot(scene="nocturne", blackout=True))
    assert projector.tick(clock.now_s()).max() == 0
    assert len(display.shown) == 6 and projector.shown == 6


def test_scene_cross_fade_runs_from_the_picture_on_the_projector():
    clock, bus, _, projector, _ = rig()
    bus.frames.put(Frame(0.0, solid(0)))
    projector.tick(clock.now_s())
    projector.start_fade(2.0)
    bus.frames.put(Frame(0.0, solid(200)))
    clock.advance(1.0)
    assert 90 <= projector.tick(clock.now_s())[0, 0, 0] <= 110  # half way
    clock.advance(1.5)
    assert projector.tick(clock.now_s())[0, 0, 0] == 200 and projector.fade is None


def test_a_failing_window_is_reopened_with_backoff_and_counted():
    faults: list[str] = []
    clock, bus, display, projector, _ = rig(guard=MainFaults(lambda where, text: faults.append(where)))
    bus.frames.put(Frame(0.0, solid(9)))
    display.fail_next = 1
    projector.tick(clock.now_s())
    assert not projector.display_ok and faults == ["main:display"]
    projector.tick(clock.now_s() + 0.5)  # before the retry time: not even tried
    assert display.opens == 1
    clock.advance(1.1)
    projector.tick(clock.now_s())
    assert projector.display_ok and display.opens == 2 and display.shown[-1][0, 0, 0] == 9


def test_the_recorder_fills_the_slots_a_slow_frame_missed():
    clock, bus, _, projector, recorders = rig()
    projector.tick(clock.now_s())
    clock.advance(0.35)  # three frame slots at 10 fps went by
    bus.frames.put(Frame(0.0, solid(7)))
    projector.tick(clock.now_s())
    assert recorders[0].frames == [0, 7, 7, 7]


def test_the_critic_gets_a_small_copy_twice_a_second_once_something_is_shown():
    clock, bus, _, projector, _ = rig()
    clock.advance(0.6)
    projector.tick(clock.now_s())
    assert bus.projected_frames.peek() is None  # black: nothing to rate
    bus.frames.put(Frame(0.0, np.full((64, 64, 3), 5, np.uint8)))
    projector.tick(clock.now_s())
    assert bus.projected_frames.peek().shape == (8, 8, 3)


class StuckSink:
    """A frame sink whose show hangs until released (a stalled network peer)."""

    name = "stuck"

    def __init__(self) -> None:
        self.release, self.shown = threading.Event(), []

    def open(self) -> None: ...

    def show(self, rgb) -> None:
        self.release.wait(10)
        self.shown.append(rgb)

    def close(self) -> None:
        self.release.set()


def test_an_extra_sink_that_hangs_never_stalls_the_projector():
    stuck = StuckSink()
    clock, bus, display, projector, _ = rig(sinks=[stuck])
    for value in range(1, 60):
        bus.frames.put(Frame(0.0, solid(value)))
        projector.tick(clock.now_s())
        clock.advance(0.1)
    assert len(display.shown) == 59  # every frame reached the window while the sink hung
    stuck.release.set()
    assert wait_for(lambda: stuck.shown and stuck.shown[-1][0, 0, 0] == 59, 5)
    assert projector.sinks[0].dropped > 0  # it skipped to the newest frame
    projector.close()
