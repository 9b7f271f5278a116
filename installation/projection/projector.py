"""The projector: the main thread's display loop.

Each frame it takes the newest rendered frame (or holds the last one), applies freeze, the
scene cross-fade, brightness and blackout, shows it in the window (reopened with backoff when
it fails), records it, hands it to the extra frame sinks, and now and then gives a small copy to
the watcher's critic. It never waits on a stage: between frames it waits by applying operator
commands (`wait(deadline_s)`).

Extra frame sinks (NDI, a virtual camera, a dashboard preview) are added as a list: each runs
on its own thread (hardware.video.sink_thread.SinkThread), so a slow or failing sink never stalls
the projector.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hardware.base import Display, FrameSink
from hardware.video.sink_thread import SinkThread
from installation.bus import LiveSnapshot
from installation.clock import Clock
from installation.projection.compositor import Compositor
from installation.projection.flash_guard import FlashGuard
from installation.errors import UserError
from installation.mailbox import Latest
from installation.records import Frame

log = logging.getLogger("chromesthesia")



class MainFaults:
    """Main-thread side work that must never end the show: `guard(what, fn, *args)` runs it; a
    failure is counted, and the first 20 and every 1000th go to the log and `on_fault(where,
    traceback)` (the show log): a fault on every frame would flood both."""

    def __init__(self, on_fault: Callable[[str, str], None] | None = None) -> None:
        self.on_fault = on_fault
        self.count = 0

    def __call__(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - the projector loop outlives any one failure
            self.report(what)
            return None

    def report(self, what: str) -> None:
        """Call inside an except block."""
        import traceback
        self.count += 1
        if self.count <= 20 or self.count % 1000 == 0:
            log.exception("%s failed on the main thread (%d so far); the show goes on", what, self.count)
            if self.on_fault is not None:
                self.on_fault(f"main:{what}", traceback.format_exc())


def keep_previous(path: Path) -> Path:
    """`path`, after moving an earlier recording there aside as `<stem>-N<suffix>`.

    A restart in place (config edit, daily restart) records into the same folder: the part of
    the show before it must not be overwritten. The show log appends instead.
    """
    if path.exists() and path.stat().st_size > 0:
        n = 1
        while (older := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
            n += 1
        path.rename(older)
    return path


class Projector:
    """Main thread only. `open()` before the loop, `tick(now_s)` once a frame, `close()` at the end."""

    def __init__(self, frames: Latest[Frame], live: Latest[LiveSnapshot], projected_frames: Latest[np.ndarray],
                 clock: Clock, fps: float, size: tuple[int, int], display: Display | None = None, windowed: bool = False,
                 recorder_factory: Callable[[int, int], Any] | None = None, sinks: Sequence[FrameSink] = (),
                 guard: MainFaults | None = None, where: str = "the projector",
                 commands=None, scenes: Callable[[], Sequence[str]] = list, compositor: Compositor | None = None,
                 stamps: Any = None, flash_guard: bool = True) -> None:
        self.frames = frames
        self.stamps = stamps
        """Stamps each frame as it is handed to the display (`--record`: frames.csv); None: not stamped."""
        self.commands = commands
        """Where the window's operator keys (blackout, freeze, next/previous scene) go as commands."""
        self.scenes = scenes
        self.compositor = compositor
        """Draws the scene's accents from the newest hit over the picture at every refresh; None: none."""
        self.flash_guard = FlashGuard() if flash_guard else None
        """Holds back a picture that would make a 4th flash in a second (display.flash_guard); None: off."""
        self.live = live
        self.projected_frames = projected_frames
        self.clock = clock
        self.fps = fps
        self.size = size
        """(width, height) of what is shown and recorded."""
        self.display = display
        self.windowed = windowed
        self.recorder_factory = recorder_factory
        self.recorder: Any = None
        self.sinks = [s if isinstance(s, SinkThread) else SinkThread(s, stop_timeout_s=0.3) for s in sinks]
        """Each extra sink on its own thread (one that already is a SinkThread is taken as it is)."""
        self.guard = guard or MainFaults()
        self.where = where
        self.display_size: tuple[int, int] | None = None
        """(width, height) of the window the renderer scales for; None headless."""
        self.black = np.zeros((size[1], size[0], 3), np.uint8)
        self.held = self.black
        self.fade: tuple[np.ndarray, float, float] | None = None
        self.display_ok = True
        self._retry_s = 0.0
        self._backoff_s = 1.0
        self.started_s = 0.0
        self.written = 0
        self._recorded_s = -1e9
        self.shown = 0
        self.frame_rate = 0.0
        self._fps_window: list[float] = []
        self._next_critic_s = 0.0

    def open(self) -> None:
        """Open the window (a failure is a start-up error), then the recorder and sinks."""
        if self.display is not None:
            try:
                self.display.open()
            except Exception as exc:  # noqa: BLE001 - pygame.error: no X, bad screen index, no GL
                raise UserError(f"the projector window cannot open on {self.where} ({exc}); "
                                "check DISPLAY and display.screen, or run with --headless.") from None
            if self.windowed:
                self.size = self.display_size = (self.display.width, self.display.height)
                self.black = self.held = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        if self.recorder_factory is not None:
            recorder = self.recorder_factory(*self.size)
            try:
                recorder.open()
            except OSError as exc:
                raise UserError(f"cannot write {recorder.path} ({exc}); choose another --record DIR.") from None
            self.recorder = recorder
        if self.stamps is not None:
            try:
                self.stamps.open()
            except OSError as exc:
                raise UserError(f"cannot write {self.stamps.path} ({exc}); choose another --record DIR.") from None
        for sink in self.sinks:
            sink.open()
        self.started_s = self.clock.now_s()
        self._next_critic_s = self.started_s + 0.5

    def start_fade(self, fade_s: float) -> None:
        """Cross-fade from what is on the projector now (a scene change)."""
        self.fade = (self.held, self.clock.now_s(), max(fade_s, 1e-3))

    def tick(self, now_s: float) -> np.ndarray:
        """One frame: picture, window, recorder, sinks, the critic's copy. Returns what was shown."""
        shown = self.guard("picture", self.next_picture, now_s)
        if shown is None:
            shown = self.held
        if self.stamps is not None:
            self.guard("frame stamps", self.stamps.show, shown)
        self.show(shown, now_s)
        if self.recorder is not None:
            # A missed tick leaves the same picture on the projector: record it for that slot too. A
            # frame drawn between refreshes for a hit (display.wake_on_onset) takes a slot only when
            # one is due, so the recording keeps the display rate.
            due = int((now_s - self.started_s) * self.fps) + 1
            least = 1 if now_s - self._recorded_s >= 0.75 / self.fps else 0
            self._recorded_s = now_s
            for _ in range(min(max(least, due - self.written), 5)):
                self.guard("recorder", self.recorder.show, shown)
                self.written += 1
        for sink in self.sinks:
            sink.show(shown)
        self.shown += 1
        self._fps_window.append(now_s)
        while now_s - self._fps_window[0] > 2.0:
            self._fps_window.pop(0)
        span_s = now_s - self._fps_window[0]
        self.frame_rate = (len(self._fps_window) - 1) / max(span_s, 1e-6) if len(self._fps_window) > 1 else 0.0
        if now_s >= self._next_critic_s and self.held is not self.black:
            # The watcher thread rates it: the image VA head (CLIP included) never runs here.
            self._next_critic_s = now_s + 0.5
            self.projected_frames.put(np.ascontiguousarray(shown[::8, ::8]))
        return shown

    def next_picture(self, now_s: float) -> np.ndarray:
        """The latest rendered frame (or the held one) with the accents, freeze, cross-fade, brightness, blackout."""
        live = self.live.peek() or LiveSnapshot(scene="")
        frame = self.frames.take(timeout_s=0)
        fresh = frame is not None and not live.freeze
        if frame is not None and fresh:
            self.held = frame.display_rgb if frame.display_rgb is not None else frame.rgb
        if live.blackout:
            return self._guarded(self.black, now_s, exempt=True)  # the operator's blackout acts at once
        picture = self.held
        if self.compositor is not None and not live.freeze and picture is not self.black:
            room = self.flash_guard.room(now_s) if self.flash_guard is not None else None
            picture = self.compositor.compose(picture, fresh, now_s, room)
        shown = self._crossfaded(picture, now_s)
        if live.brightness < 1.0:
            import cv2
            shown = cv2.convertScaleAbs(shown, alpha=live.brightness)
        return self._guarded(shown, now_s)

    @property
    def flash_limited(self) -> int:
        """Pictures the flash guard held back so far."""
        return self.flash_guard.limited if self.flash_guard is not None else 0

    def _guarded(self, rgb: np.ndarray, now_s: float, exempt: bool = False) -> np.ndarray:
        if self.flash_guard is None:
            return rgb
        out = self.guard("flash guard", self.flash_guard.limit, rgb, now_s, exempt)
        return rgb if out is None else out

    def _crossfaded(self, rgb: np.ndarray, now_s: float) -> np.ndarray:
        if self.fade is None:
            return rgb
        start_rgb, start_s, fade_s = self.fade
        alpha = (now_s - start_s) / fade_s
        if alpha >= 1.0 or start_rgb.shape != rgb.shape:
            self.fade = None
            return rgb
        import cv2
        return cv2.addWeighted(start_rgb, 1.0 - alpha, rgb, alpha, 0.0)

    def show(self, rgb: np.ndarray, now_s: float) -> None:
        """Put the picture on the projector; a failing window is reopened with backoff."""
        display = self.display
        if display is None:
            return
        if not self.display_ok:
            if now_s < self._retry_s:
                return
            try:
                display.close()
                display.open()
                self.display_ok = True
                log.info("projector window reopened")
            except Exception as exc:  # noqa: BLE001 - X server or projector still gone
                self._backoff_s = min(30.0, self._backoff_s * 2)
                self._retry_s = now_s + self._backoff_s
                log.warning("projector window cannot be reopened (%s); trying again in %.0f s", exc, self._backoff_s)
                return
        try:
            display.show(rgb)
            self._backoff_s = 1.0
        except Exception:  # noqa: BLE001 - pygame.error after an X or projector hot-plug
            self.display_ok = False
            self._retry_s = now_s + self._backoff_s
            self.guard.report("display")

    def window_closed(self) -> bool:
        """Handle the window's events: True when it was closed; operator keys become commands."""
        if self.display is None or not self.display_ok:
            return False
        closed = bool(self.display.poll_quit())
        take = getattr(self.display, "take_actions", None)
        if take is not None and self.commands is not None:
            from installation.operators.control import key_commands
            live = self.live.peek() or LiveSnapshot(scene="")
            for command in key_commands(take(), self.clock.now_s(), live.blackout, live.freeze, live.scene, self.scenes()):
                self.commands.put(command)
        return closed

    def close(self) -> None:
        moved = self.compositor.moved if self.compositor is not None else 0
        if self.flash_limited or moved:
            log.info("flash guard: %d pictures held back; %d hits drawn as motion instead of a flash",
                     self.flash_limited, moved)
        for sink in self.sinks:
            sink.close()
        for thing in (self.recorder, self.stamps, self.display):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing one thing must not keep the rest open
                    log.exception("closing failed")

