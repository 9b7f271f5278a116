"""The onset stage: the audio input's own thread, hits and beats out on every block.

It owns the audio device: each block goes through the onset detector (models.listening.onsets) the moment it
arrives, the state goes on `onsets` (read by the projector at every refresh), and the block goes on
to the listener through `AudioQueue`. An input that can detect in its own process (the sounddevice
input's child, on each PortAudio block) publishes there itself; this stage then detects only while
that one does not. The listener's slower descriptors and VA keep their hop and
never hold up a hit.
"""
from __future__ import annotations

from typing import Any, Callable

from hardware.base import AudioInput
from installation.clock import Clock
from installation.mailbox import DropOldest, Latest
from installation.records import AudioBlock, OnsetState
from installation.stages.base import AudioStage

WAKE_STRENGTH = 0.05
"""A new hit at least this strong wakes the projector (`on_hit`); a softer one draws next to nothing."""
QUEUE_BLOCKS = 256
"""Blocks the listener may fall behind by (seconds of audio at any block size) before the oldest go."""


class AudioQueue:
    """An AudioInput over the blocks the onset stage passed on: what the listener reads."""

    def __init__(self, name: str, capacity: int = QUEUE_BLOCKS) -> None:
        self.name = name
        self.blocks: DropOldest[AudioBlock] = DropOldest(capacity)

    def open(self) -> None:
        """The device is the onset stage's; nothing to open here."""

    def read(self, timeout_s: float) -> AudioBlock | None:
        return self.blocks.get(timeout_s)

    def close(self) -> None:
        """Blocks already queued stay for the listener's next open."""


class OnsetStage(AudioStage):
    """Reads the audio input, detects hits per block, passes the block on to the listener."""

    READ_TIMEOUT_S = 0.01
    """A device delivers at its own block size; a file source releases what is due when asked, so
    asking often keeps its blocks short (its latency is then about one onset hop)."""

    name = "onsets"

    def __init__(self, audio: AudioInput, detector_factory, onsets: Latest[OnsetState], forward: AudioQueue,
                 clock: Clock, on_hit: Callable[[], None] | None = None) -> None:
        super().__init__(audio, clock)
        self.on_hit = on_hit
        """Called on the publishing thread for each new hit of at least WAKE_STRENGTH, after it is on
        `onsets` (display.wake_on_onset: the projector draws it now instead of at its next refresh)."""
        self._hits = 0
        self.detector_factory = detector_factory
        """(sample_rate_hz) -> models.listening.onsets.OnsetDetector; rebuilt when the input's rate changes."""
        self.detector: Any = None
        self.onsets = onsets
        self.forward = forward
        self.blocks = 0
        if hasattr(audio, "detect_onsets"):
            # The device's own process detects on each block as it arrives (hardware.sound.input_child);
            # this stage detects only while that one does not publish (stream lost, stalled).
            audio.detect_onsets(detector_factory, self.publish)

    def publish(self, state: OnsetState) -> None:
        self.onsets.put(state)
        if state.count != self._hits:
            self._hits = state.count
            if self.on_hit is not None and state.strength >= WAKE_STRENGTH:
                self.on_hit()

    def step(self) -> None:
        block = self.audio.read(timeout_s=self.READ_TIMEOUT_S)
        if block is None:
            return
        if getattr(self.audio, "onsets_live", False):
            self.detector = None  # started afresh when it is needed again: its history is stale by then
        else:
            if self.detector is None or self.detector.rate_hz != block.sample_rate_hz:
                self.detector = self.detector_factory(block.sample_rate_hz)
            state = self.detector.push(block)
            if state is not None:
                self.publish(state)
        self.forward.blocks.put(block)
        self.blocks += 1
