"""Several installations in step: one listens, the others follow it, each drives its own projector.

No protocol of our own: tempo and bar phase come from one Ableton Link session (`tempo.source =
"link"` on every machine), and the music state travels as the analysis streams every installation
can send anyway (`/out/*`, hardware.osc.out): the listening installation names the followers in
`osc.out_targets`; a follower sets `ensemble.music_from` to the address it receives them on and
takes its music state from there instead of its own microphone.

`OscMusicIn` runs a python-osc UDP server on its own thread; each `/out/*` bundle (it ends with
`/out/tempo`) becomes one MusicState handed to `publish` (the listener's Latest in the runtime).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from installation.errors import UserError
from installation.records import MusicState

log = logging.getLogger(__name__)

STREAMS = ("/out/beat", "/out/onset", "/out/loudness", "/out/bands", "/out/va", "/out/tempo")


def parse_host_port(text: str, key: str = "ensemble.music_from") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{key} = {text!r} is not host:port; write it like \"0.0.0.0:9301\".")
    return host, int(port)


def music_from_values(values: dict[str, tuple[float, ...]], t_s: float) -> MusicState:
    """The inverse of hardware.osc.out.analysis_values: a MusicState from the plain-float streams."""
    beat = values.get("/out/beat", (0.0,))[0]
    low, mid, high = (tuple(values.get("/out/bands", ())) + (0.0, 0.0, 0.0))[:3]
    valence, arousal = (tuple(values.get("/out/va", ())) + (0.0, 0.0))[:2]
    loudness = values.get("/out/loudness", (0.0,))[0]
    tempo_bpm = values.get("/out/tempo", (0.0,))[0]
    return MusicState(t_s=t_s, valence=valence, arousal=arousal, va_confidence=1.0, head="ensemble",
                      loudness_dbfs=loudness * 60.0 - 60.0, onset_strength=values.get("/out/onset", (0.0,))[0],
                      tempo_bpm=tempo_bpm, beat_phase=(1.0 - beat) % 1.0 if tempo_bpm > 0 else 0.0,
                      beat_confidence=1.0 if tempo_bpm > 0 and beat > 0 else 0.0,
                      band_low=low, band_mid=mid, band_high=high, silent=loudness <= 0.0)


class OscMusicIn:
    """Music state from another installation's analysis streams (a python-osc server thread)."""

    name = "ensemble music in"

    def __init__(self, address: str, clock, publish: Callable[[MusicState], None]) -> None:
        self.host, self.port = parse_host_port(address)
        self._clock = clock
        self._publish = publish
        self._values: dict[str, tuple[float, ...]] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.received = 0
        self.states = 0

    def _on_stream(self, address: str, *args) -> None:
        """Server thread: keep the newest values; the bundle's last stream makes a music state."""
        try:
            self._values[address] = tuple(float(a) for a in args)
        except (TypeError, ValueError):
            return
        self.received += 1
        if address == "/out/tempo":
            try:
                self._publish(music_from_values(self._values, self._clock.now_s()))
                self.states += 1
            except Exception:
                log.exception("ensemble: a music state from %s:%d was refused", self.host, self.port)

    def open(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        dispatcher = Dispatcher()
        for stream in STREAMS:
            dispatcher.map(stream, self._on_stream)
        try:
            self._server = BlockingOSCUDPServer((self.host, self.port), dispatcher)
        except OSError as exc:
            raise UserError(f"ensemble.music_from {self.host}:{self.port} cannot be opened ({exc.strerror or exc}); "
                            f"choose a free port.") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ensemble-in", daemon=True)
        self._thread.start()
        log.info("ensemble: taking the music state from %s:%d", self.host, self.port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(2.0)
