"""The composer stage: the latest image state in, plans of notes out to the schedulers, a phrase ahead."""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from hardware.base import Scheduler
from installation.bus import LiveSnapshot
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import ImageState
from installation.stages.base import Stage, VersionWatch
from models.composing import Planner

LEAD_S = 1.0
"""A plan is composed this long before its phrase starts."""


def send_programs(schedulers: Sequence[Scheduler], programs, at_s: float | None = None) -> None:
    """Program changes to every scheduler now, or at `at_s` so the notes still sounding keep
    their instrument. `programs` is a sequence of (channel, program)."""
    import mido
    messages = [mido.Message("program_change", channel=channel, program=program) for channel, program in programs]
    for scheduler in schedulers:
        if at_s is None:
            for message in messages:
                scheduler.send_now(message)
        else:
            scheduler.submit_messages([(at_s, message) for message in messages])


def plan_record(plan, image: ImageState) -> dict:
    """A plan as the show log keeps it."""
    return {"start_s": plan.start_s, "end_s": plan.end_s, "tempo_bpm": plan.tempo_bpm, "key": plan.key,
            "mode": plan.mode, "abc": plan.abc, "reasons": list(plan.reasons), "image_va": [image.valence, image.arousal]}


class ComposerStage(Stage):
    """Plans the next phrase from the picture (models.composing.composer) and submits it to every scheduler.

    The operators' volume is applied here, and only here (LiveSnapshot.with_volume: note
    velocities). A scene's program changes are sent to the schedulers when they change. While
    `dormant` is set (closed hours) nothing is planned, and a plan composed while it closed is
    dropped. `on_plan(plan, image)` is told of each submitted plan; with a `show_log`, each plan
    is written there.
    """

    name = "composer"

    def __init__(self, composer: Planner, images: Latest[ImageState], scene: Latest, live: Latest[LiveSnapshot],
                 schedulers: Sequence[Scheduler], clock: Clock, dormant: threading.Event | None = None,
                 on_plan: Callable[..., None] | None = None, show_log=None,
                 camera: Latest | None = None) -> None:
        super().__init__(clock)
        self.composer = composer
        self.images = images
        self.scene = VersionWatch(scene)
        self.live = live
        self.schedulers = list(schedulers)
        self.dormant = dormant or threading.Event()
        self.on_plan = on_plan
        self.show_log = show_log
        self.camera = camera
        """The camera's latest frame, for a composer that looks at the picture itself (`wants_frame`)."""
        self.next_start_s = 0.0
        self.programs = None
        self.last_plan = None
        self.notes_planned = 0

    def step(self) -> None:
        now_s = self.clock.now_s()
        if self.dormant.is_set():
            self.next_start_s = 0.0  # on waking, start a phrase at once
            self.wait_until(now_s + 0.25)
            return
        if self.scene.changed():
            self.composer.set_scene(self.scene.box.peek())
        if self.next_start_s - now_s > LEAD_S:
            self.wait_until(self.next_start_s - LEAD_S)
            return
        image = self.images.peek() or ImageState(t_s=now_s)
        live = self.live.peek() or LiveSnapshot(scene="")
        start_s = max(self.next_start_s, now_s + 0.1)
        if self.camera is not None and getattr(self.composer, "wants_frame", False):
            looking: Any = self.composer  # a planner that looks at the picture itself also takes the frame
            plan = looking.plan(image, start_s, tempo_bpm=live.tempo_bpm, frame=self.camera.peek())
        else:
            plan = self.composer.plan(image, start_s, tempo_bpm=live.tempo_bpm)
        if plan.program_changes and plan.program_changes != self.programs:
            self.programs = plan.program_changes
            send_programs(self.schedulers, plan.program_changes, at_s=plan.start_s)
        plan = live.with_volume(plan)
        if self.dormant.is_set():  # closed while this plan was composed: it must not play
            return
        for scheduler in self.schedulers:
            scheduler.submit_plan(plan, image.valence, image.arousal)
        self.last_plan = plan
        self.notes_planned += len(plan.events)
        self.next_start_s = plan.end_s
        if self.on_plan is not None:
            self.on_plan(plan, image)
        if self.show_log is not None:
            self.show_log.write("plan", **plan_record(plan, image))
