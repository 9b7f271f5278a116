"""The terminal status line: fps, VA, caption, notes/s, drops, restarts.

On a terminal it is a rich live line under the log; with --quiet or when output is not a terminal
(systemd, CI) it becomes a plain log line every few seconds instead.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("chromesthesia.status")
PLAIN_PERIOD_S = 5.0


def format_status(s: dict) -> str:
    va = s.get("music_va") or [0.0, 0.0]
    iva = s.get("image_va") or [0.0, 0.0]
    drops = sum((s.get("drops") or {}).values())
    caption = (s.get("caption") or "-")[:70]
    flags = " BLACKOUT" if s.get("blackout") else ""
    flags += " FREEZE" if s.get("freeze") else ""
    return (f"{s.get('scene', '-')}{flags} | {s.get('fps', 0):4.1f} fps {s.get('render') or '-'} | "
            f"music VA {va[0]:+.2f} {va[1]:+.2f} | {s.get('tempo_bpm') or 0:5.1f} bpm {s.get('key') or ''} | "
            f"image VA {iva[0]:+.2f} {iva[1]:+.2f} | {s.get('notes_per_s', 0):4.1f} notes/s | "
            f"drops {drops} restarts {s.get('restarts', 0)} | {caption}")


class StatusLine:
    def __init__(self, quiet: bool = False) -> None:
        self.live_mode = not quiet and sys.stderr.isatty()
        self._live = None
        self._last_plain_s = 0.0

    def start(self) -> None:
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text
            self._live = Live(Text("starting..."), console=Console(stderr=True), refresh_per_second=4,
                              transient=True)
            self._live.start()

    def update(self, snapshot: dict) -> None:
        line = format_status(snapshot)
        if self._live is not None:
            from rich.text import Text
            self._live.update(Text(line, no_wrap=True, overflow="ellipsis"))
        elif time.monotonic() - self._last_plain_s >= PLAIN_PERIOD_S:
            self._last_plain_s = time.monotonic()
            log.info("%s", line)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
