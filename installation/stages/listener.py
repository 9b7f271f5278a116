"""The listener stage: audio blocks in, a MusicState out every hop."""
from __future__ import annotations

from hardware.base import AudioInput
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import MusicState
from installation.stages.base import AudioStage
from models.listening import Listener


class ListenerStage(AudioStage):
    """Feeds each audio block to the listener model; every `hop_s` puts its state on `music`.

    `listener` is a models.listening.Listener (models.listening.va.Listener live).
    """

    name = "listener"

    def __init__(self, audio: AudioInput, listener: Listener, music: Latest[MusicState], clock: Clock,
                 hop_s: float) -> None:
        super().__init__(audio, clock)
        self.listener = listener
        self.music = music
        self.hop_s = hop_s
        self.next_hop_s = 0.0
        self.states = 0

    def step(self) -> None:
        block = self.audio.read(timeout_s=self.hop_s)
        if block is not None:
            self.listener.feed(block.samples)
        now_s = self.clock.now_s()
        if now_s >= self.next_hop_s:
            self.music.put(self.listener.state(now_s))
            self.states += 1
            self.next_hop_s = max(self.next_hop_s + self.hop_s, now_s)
