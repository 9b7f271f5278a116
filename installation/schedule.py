"""Museum schedules: opening hours, an idle mode for a silent and empty room, a daily restart,
and systemd's readiness/watchdog notifications. Pure logic driven by the main thread's clock.

`Schedule.tick(now, silent, present)` returns the Commands to apply (sender "schedule"), only
when something changes, so an operator's /blackout during opening hours is not fought every frame.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import socket
from dataclasses import dataclass

from installation.errors import UserError
from installation.records import Command

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^\s*(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<stop>\d{1,2}:\d{2})\s*$")


def _minutes(text: str, rule: str) -> int:
    hours, minutes = map(int, text.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or hours * 60 + minutes > 24 * 60:
        raise UserError(f"schedule.open_hours: {text!r} in {rule!r} is not a time; use HH:MM from 00:00 to 24:00.")
    return hours * 60 + minutes


def _days(text: str | None, rule: str) -> set[int]:
    if not text:
        return set(range(7))
    days: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in DAYS for e in ends):
            raise UserError(f"schedule.open_hours: {part!r} in {rule!r} is not a day or range; use mon..sun, e.g. \"mon-fri 10:00-18:00\".")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        days.update(DAYS.index(DAYS[(first + i) % 7]) for i in range((last - first) % 7 + 1))
    return days


@dataclass(frozen=True)
class OpeningRule:
    days: frozenset[int]
    start_min: int
    stop_min: int

    def is_open(self, when: _dt.datetime) -> bool:
        minute = when.hour * 60 + when.minute
        day = when.weekday()
        if self.start_min <= self.stop_min:
            return day in self.days and self.start_min <= minute < self.stop_min
        # spans midnight: the evening belongs to `day`, the early morning to the day before
        return (day in self.days and minute >= self.start_min) or \
               ((day - 1) % 7 in self.days and minute < self.stop_min)


def parse_open_hours(rules: tuple[str, ...] | list[str]) -> list[OpeningRule]:
    parsed = []
    for rule in rules:
        match = _RULE.match(rule.lower())
        if not match:
            raise UserError(f"schedule.open_hours: {rule!r} is not understood; write e.g. \"mon-fri 10:00-18:00\" or \"22:00-02:00\".")
        parsed.append(OpeningRule(frozenset(_days(match["days"], rule)), _minutes(match["start"], rule),
                                  _minutes(match["stop"], rule)))
    return parsed


class Schedule:
    """Opening hours, idle mode and the daily restart (ScheduleConfig). Main thread only."""

    def __init__(self, schedule_cfg, started: _dt.datetime | None = None) -> None:
        self._cfg = schedule_cfg
        self._rules = parse_open_hours(schedule_cfg.open_hours)
        self._restart_min = _minutes(schedule_cfg.daily_restart, schedule_cfg.daily_restart) \
            if schedule_cfg.daily_restart else None
        self._started = started
        self._open: bool | None = None
        self._idle = False
        self._quiet_since_s: float | None = None
        self.state = "open"

    def is_open(self, when: _dt.datetime) -> bool:
        return not self._rules or any(rule.is_open(when) for rule in self._rules)

    def tick(self, when: _dt.datetime, now_s: float, silent: bool, present: bool,
             scene: str = "") -> list[Command]:
        """Commands for what changed since the last tick: open/close, idle enter/leave, restart."""
        out: list[Command] = []
        if self._started is None:
            self._started = when
        if self._restart_min is not None and when - self._started > _dt.timedelta(minutes=5):
            restart_today = when.replace(hour=0, minute=0, second=0, microsecond=0) + _dt.timedelta(minutes=self._restart_min)
            if self._started < restart_today <= when:
                return [Command(now_s, "/restart", (), "schedule")]
        is_open = self.is_open(when)
        if is_open != self._open:
            first = self._open is None
            self._open = is_open
            if not is_open:
                self.state = "closed"
                if self._cfg.closed_action == "stop":
                    return [Command(now_s, "/stop", (), "schedule")]
                return [Command(now_s, "/blackout", (1,), "schedule")]
            self.state = "open"
            if not first:
                out.append(Command(now_s, "/blackout", (0,), "schedule"))
        if not is_open or self._cfg.idle_after_s <= 0:
            return out
        quiet = silent and not present
        if not quiet:
            self._quiet_since_s = None
            if self._idle:
                self._idle = False
                self.state = "open"
                out.append(Command(now_s, "/scene", (self._resume_scene,), "schedule") if self._cfg.idle_scene
                           else Command(now_s, "/blackout", (0,), "schedule"))
            return out
        if self._quiet_since_s is None:
            self._quiet_since_s = now_s
        if not self._idle and now_s - self._quiet_since_s >= self._cfg.idle_after_s:
            self._idle = True
            self.state = "idle"
            self._resume_scene = scene
            out.append(Command(now_s, "/scene", (self._cfg.idle_scene,), "schedule") if self._cfg.idle_scene
                       else Command(now_s, "/blackout", (1,), "schedule"))
        return out


class SystemdNotifier:
    """sd_notify without libsystemd: READY=1 once started, WATCHDOG=1 from the main loop.

    A no-op outside systemd (no NOTIFY_SOCKET). With WatchdogSec= in the unit, a main loop that
    stops calling `watchdog()` gets the process restarted by systemd.
    """

    def __init__(self) -> None:
        self._address = os.environ.get("NOTIFY_SOCKET", "")
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() else None
        self._sock = None
        if self._address:
            if self._address.startswith("@"):
                self._address = "\0" + self._address[1:]
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)  # the projector loop must never wait on systemd

    def notify(self, state: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(state.encode(), self._address)
            return True
        except BlockingIOError:  # systemd's queue is full for a moment: a keep-alive can be skipped
            return False
        except OSError as exc:
            log.warning("systemd notify %r failed: %s", state, exc)
            return False

    def ready(self) -> bool:
        return self.notify("READY=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def restarting(self, grace_s: float = 300.0) -> bool:
        """Before an in-place restart (exec): RELOADING=1 keeps systemd waiting for the next
        READY=1 instead of stopping the unit, and the watchdog is widened for the start-up
        (model loading); `restore_watchdog` narrows it again once running."""
        usec = int(grace_s * 1e6)
        return self.notify(f"RELOADING=1\nEXTEND_TIMEOUT_USEC={usec}\nWATCHDOG_USEC={usec}")

    def restore_watchdog(self) -> bool:
        if self.watchdog_s is None:
            return False
        return self.notify(f"WATCHDOG_USEC={int(self.watchdog_s * 1e6)}")
