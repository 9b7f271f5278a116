"""Analysis out: what the installation hears, as plain-float OSC streams for other tools.

`AnalysisOut.publish(music)` is called once a frame and sends one bundle per new music state (the
listener makes one every `listen.hop_s`, so about 9 a second reach a receiver, not one a frame):

    /out/beat f      1 on a beat, falling to 0 just before the next (0 when no beat is heard)
    /out/onset f     onset strength 0..1
    /out/loudness f  0 (-60 dBFS or quieter) .. 1 (full scale)
    /out/bands fff   low, mid, high band energy 0..1
    /out/va ff       valence, arousal -1..1
    /out/tempo f     bpm (0 = none heard)

to every `/subscribe/out` subscriber and every `osc.out_targets` address, through the control
server's socket and within its total feedback budget. Plain floats, one value per argument:
a TouchDesigner OSC In CHOP makes channels `out/beat`, `out/va1`, `out/va2`... from them, and
Resolume's OSC input maps each address to a parameter.

Thread: whoever calls `publish` (the projector loop); it never blocks (UDP, non-blocking).
"""
from __future__ import annotations

import math
import threading
from typing import Any

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from installation.records import MusicState


def _unit(x: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, float(x)))


def _signed(x: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(-1.0, float(x)))


def analysis_values(music: MusicState) -> dict[str, tuple[float, ...]]:
    """The streams' values for one music state (all plain floats, clamped to their ranges)."""
    beat = 1.0 - _unit(music.beat_phase) if music.beat_confidence > 0 and music.tempo_bpm > 0 else 0.0
    return {
        "/out/beat": (beat,),
        "/out/onset": (_unit(music.onset_strength),),
        "/out/loudness": (_unit((music.loudness_dbfs + 60.0) / 60.0),),
        "/out/bands": (_unit(music.band_low), _unit(music.band_mid), _unit(music.band_high)),
        "/out/va": (_signed(music.valence), _signed(music.arousal)),
        "/out/tempo": (min(300.0, max(0.0, float(music.tempo_bpm))) if math.isfinite(music.tempo_bpm) else 0.0,),
    }


def analysis_bundle(values: dict[str, tuple[float, ...]]) -> bytes:
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, args in values.items():
        message = OscMessageBuilder(address=address)
        for value in args:
            message.add_arg(float(value), OscMessageBuilder.ARG_TYPE_FLOAT)
        bundle.add_content(message.build())
    return bundle.build().dgram


class AnalysisOut:
    """Sends the analysis streams through `server.send_out` (hardware.osc.server.OscControlServer)."""

    def __init__(self, server, targets: tuple[tuple[str, int], ...] = ()) -> None:
        self._server = server
        self._targets = tuple(targets)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, ...]] = {}
        self._last_t_s: float | None = None
        self.sent = 0

    def publish(self, music: MusicState | None) -> int:
        """One bundle for `music` (skipped when it is None or the same state as last time)."""
        if music is None or music.t_s == self._last_t_s:
            return 0
        self._last_t_s = music.t_s
        values = analysis_values(music)
        with self._lock:
            self._latest = values
        sent = self._server.send_out(analysis_bundle(values), self._targets)
        self.sent += sent
        return sent

    def value(self, address: str) -> Any:
        """The latest value sent on `address` (OSCQuery VALUE), or None."""
        with self._lock:
            value = self._latest.get(address)
        return list(value) if value is not None else None
