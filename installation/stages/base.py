"""What every stage shares: a name, the clock, a cancel event for its waits, open/close hooks."""
from __future__ import annotations

import threading

from hardware.base import AudioInput
from hardware.timeouts import call_abandoning
from installation.clock import Clock
from installation.mailbox import Latest


class Stage:
    """`step()` does one unit of work and returns, blocking at most a fraction of a second."""

    name = "stage"
    nice = 0
    """Nice steps below the other threads the stage's worker runs at (installation.workers.Worker.nice)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cancel: threading.Event | None = None
        """Set by whoever runs the stage (the worker's stop event): waits end early when it is set."""

    def open(self) -> None:
        """Worker thread, before the first step and after each failure: take devices and models."""

    def close(self) -> None:
        """Worker thread, after a failure and at the end: let go of what `open` took."""

    def step(self) -> None:
        raise NotImplementedError

    def wait_until(self, deadline_s: float) -> bool:
        """Sleep on the stage's clock until `deadline_s`; False when cancelled first."""
        return self.clock.sleep_until(deadline_s, self.cancel)


class AudioStage(Stage):
    """A stage that owns an audio input: it opens and closes with the stage, so the worker reopens it
    after a failure. A close that hangs (a driver waiting on a device that went away) is abandoned
    after CLOSE_TIMEOUT_S, so the stage goes on."""

    CLOSE_TIMEOUT_S = 1.0

    def __init__(self, audio: AudioInput, clock: Clock) -> None:
        super().__init__(clock)
        self.audio = audio

    def open(self) -> None:
        self.audio.open()

    def close(self) -> None:
        call_abandoning(self.audio.close, self.CLOSE_TIMEOUT_S, f"closing {getattr(self.audio, 'name', 'the audio input')}")


class VersionWatch:
    """Tells whether a Latest slot holds something new since the last look (scene, prompt)."""

    def __init__(self, box: Latest, seen: int | None = None) -> None:
        self.box = box
        self.seen = box.version if seen is None else seen

    def changed(self) -> bool:
        version = self.box.version
        if version == self.seen:
            return False
        self.seen = version
        return True
