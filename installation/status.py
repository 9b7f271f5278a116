"""The terminal: a live status block under the log, and a summary when the show ends.

On a terminal, the log lines and the live block go through ONE rich Console (the one
`terminal_console()` returns): rich then prints each log line above the block and redraws the
block below it, so no stale copy of the status is left behind. The block is three short lines
that fit 80 columns, the most important figures first; longer text is cut with an ellipsis,
never wrapped. With --quiet or when output is not a terminal (systemd, CI) the status becomes a
plain log line every few seconds instead.
"""
from __future__ import annotations

import logging
import sys
import time
from collections import deque
from typing import Any

log = logging.getLogger("chromesthesia.status")
PLAIN_PERIOD_S = 5.0
_console = None


def terminal_console():
    """The one rich Console (on stderr) for log lines and the live status block."""
    global _console
    if _console is None:
        from rich.console import Console
        _console = Console(stderr=True)
    return _console


def use_terminal_console(root: logging.Logger | None = None) -> int:
    """Point every rich log handler at `terminal_console()`; returns how many were changed."""
    from rich.logging import RichHandler
    changed = 0
    for handler in (root or logging.getLogger()).handlers:
        if isinstance(handler, RichHandler) and handler.console is not terminal_console():
            handler.console = terminal_console()
            changed += 1
    return changed


def _va(value) -> str:
    if not value:
        return "  -     -  "
    return f"{value[0]:+.2f} {value[1]:+.2f}"


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def total_drops(s: dict) -> int:
    """Items lost at the hand-offs since the start (every mailbox together)."""
    return int(sum(v for v in (s.get("drops") or {}).values() if isinstance(v, (int, float))))


class DropRate:
    """Drops per minute over the last `window_s`: a count since the start only ever climbs, and
    says nothing of whether the machine is keeping up now."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now_s: float, total: int) -> float:
        samples = self._samples
        if samples and total < samples[-1][1]:  # counters restarted (a restart in place)
            samples.clear()
        samples.append((now_s, total))
        while len(samples) > 2 and now_s - samples[1][0] >= self.window_s:
            samples.popleft()
        (first_s, first), span_s = samples[0], now_s - samples[0][0]
        return (total - first) * 60.0 / span_s if span_s > 0 else 0.0


def _per_minute(rate: float) -> str:
    return f"{rate:.1f}/min" if rate < 10 else f"{rate:.0f}/min"


def status_lines(s: dict, uptime_s: float | None = None, drops_per_min: float | None = None) -> list[str]:
    """Three lines, each under 80 columns for ordinary values; the caption takes what is left.
    Drops are shown as a rate when `drops_per_min` is given, else as the count since the start."""
    drops = _per_minute(drops_per_min) if drops_per_min is not None else str(total_drops(s))
    flags = "".join(f" {name}" for name, on in (("BLACKOUT", s.get("blackout")), ("FREEZE", s.get("freeze"))) if on)
    up = f"  up {_clock(uptime_s)}" if uptime_s is not None else ""
    # The projector refreshes at its own rate; a diffusion pass makes new pictures far more slowly.
    new = f" {s['diffusion_new_fps']:.1f} new/s" if s.get("diffusion_new_fps") is not None else ""
    first = f"{s.get('scene', '-')}{flags}  {s.get('fps', 0):4.1f} fps {s.get('render') or '-'}{new}{up}"
    source = s.get("tempo_source") or ""
    tempo = f"{s.get('tempo_bpm') or 0:3.0f} bpm" + (f" ({source.split(' (')[0]})" if source and source != "music" else "")
    second = (f"music {_va(s.get('music_va'))}  {tempo} {s.get('key') or '':<8} "
              f"image {_va(s.get('image_va'))}  {s.get('notes_per_s', 0):4.1f} notes/s")
    third = (f"drops {drops} restarts {s.get('restarts', 0)} faults {s.get('failures', 0)}"
             f"  \u2502 {s.get('caption') or '-'}")
    return [first, second, third]


def format_status(s: dict, drops_per_min: float | None = None) -> str:
    """One line for plain logs."""
    return " | ".join(status_lines(s, drops_per_min=drops_per_min))


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The closing lines: run time, frames, notes, faults, and the paths written."""
    lines = [f"ran {_clock(summary.get('run_s', 0))}  frames {summary.get('frames', 0)}  "
             f"notes {summary.get('notes', 0)}  faults {summary.get('faults', 0)}  "
             f"restarts {summary.get('restarts', 0)}"]
    paths = [str(p) for p in summary.get("paths", ()) if p]
    problems = {str(p): why for p, why in (summary.get("problems") or {}).items()}
    lines += [f"did not finish {p}: {problems[p]}" if p in problems else f"wrote {p}" for p in paths] \
        or ["wrote nothing (no --record, no showlog.path)"]
    return lines


def run_summary(counts: dict, notes: int, record_dir=None, show_log=None,
                since_epoch_s: float | None = None, problems: dict | None = None) -> dict[str, Any]:
    """What `StatusLine.stop` prints: counts (frames_shown, failures, main_faults, restarts), notes,
    and the files this run wrote (the record folder's files changed since `since_epoch_s`, and
    the always-on show log), each file that was not finished with why (`problems`: path -> sentence)."""
    from pathlib import Path
    paths: list[Path] = []
    if record_dir is not None and Path(record_dir).is_dir():
        paths += sorted(p for p in Path(record_dir).iterdir()
                        if p.is_file() and (since_epoch_s is None or p.stat().st_mtime >= since_epoch_s - 1))
    log_path = getattr(show_log, "path", None)
    if log_path is not None and Path(log_path) not in paths:
        paths.append(Path(log_path))
    return {"frames": counts.get("frames_shown", 0), "notes": notes, "faults": counts.get("failures", 0) + counts.get("main_faults", 0),
            "restarts": counts.get("restarts", 0), "paths": paths,
            "problems": {str(p): why for p, why in (problems or {}).items()}}


def unfinished_files(recorder, show_log) -> dict:
    """path -> why, for each file this run did not finish whole: a recording cut short, torn show-log records."""
    problems = {recorder.path: recorder.failure} if getattr(recorder, "failure", None) else {}
    if show_log is not None and show_log.torn:
        problems[show_log.path] = (f"{show_log.torn} record(s) cut short by a failed write "
                                   f"(each skipped by readers; every other record is whole)")
    return problems


class StatusLine:
    def __init__(self, quiet: bool = False, stream=None, silence: "SilenceWatch | None" = None) -> None:
        self._silence = silence
        self._stream = stream or sys.stderr
        self._running = False
        """Set by `start`: a start that failed before it ends with its error, not a summary."""
        self.live_mode = not quiet and self._stream.isatty()
        self._live: Any = None
        self._last_plain_s = 0.0
        self._started_s = time.monotonic()
        self.started_epoch_s = time.time()
        self._last: dict = {}
        self._drop_rate = DropRate()
        self._drops_per_min = 0.0

    def starting(self, text: str) -> None:
        """A first line at once, before models and devices load (they can take a while)."""
        if self.live_mode:
            terminal_console().print(f"[bold]{text}[/bold]", highlight=False)
        else:  # logging may not be set up yet: a plain line, at once
            print(text, file=self._stream, flush=True)

    def start(self) -> None:
        self._running = True
        self._started_s = time.monotonic()
        self.started_epoch_s = time.time()
        if self.live_mode:
            from rich.live import Live
            from rich.text import Text
            use_terminal_console()
            self._live = Live(Text("starting..."), console=terminal_console(), refresh_per_second=4,
                              transient=True, redirect_stdout=True, redirect_stderr=True)
            self._live.start()

    def renderable(self, snapshot: dict):
        from rich.console import Group
        from rich.text import Text
        lines = status_lines(snapshot, time.monotonic() - self._started_s, self._drops_per_min)
        styles = ("bold", "", "dim" if not snapshot.get("failures") else "yellow")
        return Group(*(Text(line, style=style, no_wrap=True, overflow="ellipsis") for line, style in zip(lines, styles)))

    def update(self, snapshot: dict) -> None:
        self._last = snapshot
        self._drops_per_min = self._drop_rate.update(time.monotonic(), total_drops(snapshot))
        if self._silence is not None:
            self._silence.poll(time.monotonic())
        if self._live is not None:
            self._live.update(self.renderable(snapshot))
        elif time.monotonic() - self._last_plain_s >= PLAIN_PERIOD_S:
            self._last_plain_s = time.monotonic()
            log.info("%s", format_status(snapshot, self._drops_per_min))

    def stop(self, summary: dict[str, Any] | None = None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if summary is None or not self._running:
            return
        self._running = False
        summary = {"run_s": time.monotonic() - self._started_s, "faults": self._last.get("failures", 0),
                   "restarts": self._last.get("restarts", 0), **summary}
        lines = format_summary(summary)
        if self.live_mode:
            for line in lines:
                terminal_console().print(line, highlight=False, soft_wrap=True)
        else:
            for line in lines:
                log.info("%s", line)


class SilenceWatch:
    """Says so when a live input has been silent for `after_s` (a muted mixer, a dead cable, or
    `auto` having picked a device nobody plays into), and again when sound comes back.
    Called with each status tick (main thread)."""

    def __init__(self, device: str, after_s: float = 30.0, silent=None) -> None:
        self.device = device
        self._silent = silent
        """() -> bool: whether the input is silent now (for `poll`)."""
        self.after_s = after_s
        self._since_s: float | None = None
        self.warned = False

    def update(self, silent: bool, now_s: float) -> str | None:
        """The warning or all-clear to log now, if any (also logged here)."""
        if not silent:
            self._since_s = None
            if self.warned:
                self.warned = False
                message = f"audio: {self.device} has sound again"
                log.info("%s", message)
                return message
            return None
        if self._since_s is None:
            self._since_s = now_s
        if not self.warned and now_s - self._since_s >= self.after_s:
            self.warned = True
            message = (f"audio: {self.device} has been silent for {self.after_s:.0f} s; check the cable, the mixer "
                       f"and audio.device (`python run.py devices` lists the inputs)")
            log.warning("%s", message)
            return message
        return None

    def poll(self, now_s: float) -> str | None:
        return self.update(bool(self._silent()), now_s) if self._silent is not None else None


def input_silence_watch(cfg, sources, music_box, after_s: float = 30.0) -> SilenceWatch | None:
    """A watch over the live audio input (None when listening to a file or the built-in synth):
    `music_box` is the Latest[MusicState] the listener fills."""
    if getattr(sources, "audio", None) != "device":
        return None
    from installation.sources import describe_input

    def silent() -> bool:
        music = music_box.peek()
        return music is None or bool(music.silent)
    return SilenceWatch(describe_input(cfg.audio.device), after_s, silent)
