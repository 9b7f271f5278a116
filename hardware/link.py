"""Ableton Link: one tempo and beat timeline shared by every Link peer on the network.

Built on LinkPython-extern (`import link`), a synchronous binding: any thread may ask for the
beat at a time or commit a tempo, with no event loop. That fits this runtime, whose composer,
renderer and projector are plain threads (aalink, the other PyPI binding, is asyncio-only: its
`await link.sync(beat)` needs a running loop in the caller's thread).

Link keeps its own clock (CLOCK_MONOTONIC_RAW on Linux, microseconds). Every call converts from
the runtime's clock by reading both clocks at the moment of the call, so nothing drifts apart.
"""
from __future__ import annotations

import logging
import threading

from installation.errors import UserError

log = logging.getLogger(__name__)

MISSING = ("Ableton Link needs the LinkPython-extern package, which is not installed; "
           "run `pip install 'chromesthesia[link]'` or set tempo.source = \"internal\".")


def load_link_module():
    """The `link` module of LinkPython-extern, or a UserError saying how to install it."""
    try:
        import link  # LinkPython-extern
    except ImportError:
        raise UserError(MISSING) from None
    if not hasattr(link, "Link"):
        raise UserError(MISSING)
    return link


class AbletonLink:
    """One Link peer. `quantum` is the bar length in beats that phases are aligned to.

    Thread-safe: LinkPython's app-thread session calls take Link's own lock; ours only guards
    open/close.
    """

    source = "link"

    def __init__(self, clock, bpm: float = 120.0, quantum: float = 4.0) -> None:
        self._clock = clock
        self._bpm = float(bpm)
        self.quantum = float(quantum)
        self._link = None
        self._lock = threading.Lock()

    # --- lifetime -------------------------------------------------------------------------------
    def open(self) -> None:
        module = load_link_module()
        with self._lock:
            if self._link is None:
                peer = module.Link(self._bpm)
                peer.enabled = True
                self._link = peer
        log.info("Ableton Link on: %.1f bpm, quantum %g", self._bpm, self.quantum)

    def close(self) -> None:
        with self._lock:
            peer, self._link = self._link, None
        if peer is not None:
            peer.enabled = False

    @property
    def is_open(self) -> bool:
        return self._link is not None

    def peers(self) -> int:
        peer = self._link
        return int(peer.numPeers()) if peer is not None else 0

    # --- time -----------------------------------------------------------------------------------
    def _peer(self):
        peer = self._link
        if peer is None:
            raise RuntimeError("Ableton Link is not open")
        return peer

    def link_us(self, t_s: float) -> int:
        """The runtime-clock time `t_s` on Link's microsecond clock."""
        peer = self._peer()
        return int(peer.clock().micros() + (t_s - self._clock.now_s()) * 1e6)

    def runtime_s(self, link_us: int) -> float:
        """Link's microsecond time `link_us` on the runtime clock."""
        peer = self._peer()
        return self._clock.now_s() + (link_us - peer.clock().micros()) / 1e6

    def tempo_bpm(self) -> float:
        return float(self._peer().captureAppSessionState().tempo())

    def beat_at(self, t_s: float) -> float:
        peer = self._peer()
        return float(peer.captureAppSessionState().beatAtTime(self.link_us(t_s), self.quantum))

    def time_at_beat(self, beat: float) -> float:
        peer = self._peer()
        return self.runtime_s(peer.captureAppSessionState().timeAtBeat(float(beat), self.quantum))

    def set_tempo(self, bpm: float, t_s: float | None = None) -> None:
        """Propose a tempo to the whole session (it reaches the other peers within milliseconds)."""
        peer = self._peer()
        state = peer.captureAppSessionState()
        state.setTempo(float(bpm), self.link_us(self._clock.now_s() if t_s is None else t_s))
        peer.commitAppSessionState(state)
