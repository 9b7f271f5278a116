"""The composer stage: the latest image state in, plans of notes out to the schedulers, a phrase ahead."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

from installation.bus import LiveSnapshot
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import ImageState
from installation.stages.base import Stage, VersionWatch

LEAD_S = 1.0
"""A plan is composed this long before its phrase starts."""


class ComposerStage(Stage):
    """Plans the next phrase from the picture (models.composer) and submits it to every scheduler.

    The operators' volume is applied here, and only here (LiveSnapshot.with_volume: note
    velocities). `send_programs(programs, at_s)` sends a scene's program changes when they
    change. While `dormant` is set (closed hours) nothing is planned, and a plan composed while
    it closed is dropped. `on_plan(plan, image)` is told of each submitted plan (the show log).
    """

    name = "composer"

    def __init__(self, composer, images: Latest[ImageState], scene: Latest, live: Latest[LiveSnapshot],
                 schedulers: Sequence, clock: Clock, dormant: threading.Event | None = None,
                 send_programs: Callable[..., None] | None = None,
                 on_plan: Callable[..., None] | None = None) -> None:
        super().__init__(clock)
        self.composer = composer
        self.images = images
        self.scene = VersionWatch(scene)
        self.live = live
        self.schedulers = list(schedulers)
        self.dormant = dormant or threading.Event()
        self.send_programs = send_programs
        self.on_plan = on_plan
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
        plan = self.composer.plan(image, start_s, tempo_bpm=live.tempo_bpm)
        if plan.program_changes and plan.program_changes != self.programs:
            self.programs = plan.program_changes
            if self.send_programs is not None:
                self.send_programs(plan.program_changes, at_s=plan.start_s)
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
