"""The listener stage: audio blocks in, a MusicState out every hop."""
from __future__ import annotations

from hardware.base import AudioInput
from hardware.timeouts import call_abandoning
from installation.clock import Clock
from installation.mailbox import Latest
from installation.records import MusicState
from installation.stages.base import Stage
from models.listening import Listener


class ListenerStage(Stage):
    """Feeds each audio block to the listener model; every `hop_s` puts its state on `music`.

    `listener` is a models.listening.Listener (models.listening.va.Listener live).
    The audio input opens and closes with the stage, so the worker reopens it after a failure.
    A close that hangs (a driver waiting on a device that went away) is abandoned after
    CLOSE_TIMEOUT_S, so the stage goes on.
    """

    CLOSE_TIMEOUT_S = 1.0

    name = "listener"

    def __init__(self, audio: AudioInput, listener: Listener, music: Latest[MusicState], clock: Clock,
                 hop_s: float) -> None:
        super().__init__(clock)
        self.audio = audio
        self.listener = listener
        self.music = music
        self.hop_s = hop_s
        self.next_hop_s = 0.0
        self.states = 0

    def open(self) -> None:
        self.audio.open()

    def close(self) -> None:
        call_abandoning(self.audio.close, self.CLOSE_TIMEOUT_S, f"closing {getattr(self.audio, 'name', 'the audio input')}")

    def step(self) -> None:
        block = self.audio.read(timeout_s=self.hop_s)
        if block is not None:
            self.listener.feed(block.samples)
        now_s = self.clock.now_s()
        if now_s >= self.next_hop_s:
            self.music.put(self.listener.state(now_s))
            self.states += 1
            self.next_hop_s = max(self.next_hop_s + self.hop_s, now_s)
