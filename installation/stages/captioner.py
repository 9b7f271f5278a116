"""The captioner stage: music state (and scene, operator prompt, the critic's view) in, captions out."""
from __future__ import annotations

from typing import Callable

from installation.bus import LiveSnapshot
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import Caption, MusicState
from installation.stages.base import Stage, VersionWatch
from models.captions import Captioner


class CaptionerStage(Stage):
    """Asks a captioner (the Director, models/captions/director.py) for a caption when the music moves.

    The operators' valence/arousal bias is applied here, and only here (LiveSnapshot.biased).
    `on_caption(caption)` is told of each new caption; with a `show_log`, each is written there.
    """

    name = "captioner"

    def __init__(self, director: Captioner, music: Latest[MusicState], scene: Latest, prompt: Latest[str],
                 projected_va: Latest[tuple[float, float]], live: Latest[LiveSnapshot],
                 captions: Latest[Caption], clock: Clock,
                 on_caption: Callable[[Caption], None] | None = None, show_log=None) -> None:
        super().__init__(clock)
        self.director = director
        self.music = music
        self.scene = VersionWatch(scene)
        self.prompt = VersionWatch(prompt)
        self.projected_va = projected_va
        self.live = live
        self.captions = captions
        self.on_caption = on_caption
        self.show_log = show_log
        self.made = 0

    def step(self) -> None:
        state = self.music.take(timeout_s=0.2)
        now_s = self.clock.now_s()
        if self.scene.changed():
            self.director.set_scene(self.scene.box.peek())
        caption = None
        if self.prompt.changed():
            text = self.prompt.box.peek()
            if text:
                caption = self.director.override_prompt(text, now_s)
        projected = self.projected_va.take(timeout_s=0)
        if projected is not None:
            self.director.critique(projected, now_s)
            if self.show_log is not None:
                for event in self.director.pop_critic_events():  # corrections and their measured effect
                    self.show_log.write("critic", **event)
        if caption is None and state is not None:
            live = self.live.peek()
            caption = self.director.update(live.biased(state) if live is not None else state, now_s)
        if caption is not None:
            self.captions.put(caption)
            self.made += 1
            if self.on_caption is not None:
                self.on_caption(caption)
            if self.show_log is not None:
                self.show_log.write("caption", prompt=caption.prompt, facets=dict(caption.facets),
                                    reasons=dict(caption.reasons), source=caption.source,
                                    music_va=[caption.valence, caption.arousal])
