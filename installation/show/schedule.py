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


def _days(text: str | None, rule: str, key: str = "open_hours") -> set[int]:
    if not text:
        return set(range(7))
    days: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in DAYS for e in ends):
            raise UserError(f"schedule.{key}: {part!r} in {rule!r} is not a day or range; use mon..sun, e.g. \"mon-fri 10:00-18:00\".")
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


_CLOSURE = re.compile(r"^\s*(?P<first>\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(?P<last>\d{4}-\d{2}-\d{2}))?"
                      r"(?:\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<stop>\d{1,2}:\d{2}))?\s*$")


@dataclass(frozen=True)
class Closure:
    """A one-off closure: whole days `first`..`last`, or those days between two times."""
    first: _dt.date
    last: _dt.date
    start_min: int = 0
    stop_min: int = 24 * 60
    text: str = ""

    def covers(self, when: _dt.datetime) -> bool:
        minute = when.hour * 60 + when.minute
        return self.first <= when.date() <= self.last and self.start_min <= minute < self.stop_min


def parse_closures(texts: tuple[str, ...] | list[str]) -> list[Closure]:
    closures = []
    for text in texts:
        match = _CLOSURE.match(text)
        try:
            if not match:
                raise ValueError
            first = _dt.date.fromisoformat(match["first"])
            last = _dt.date.fromisoformat(match["last"]) if match["last"] else first
        except ValueError:
            raise UserError(f"schedule.closures: {text!r} is not understood; write \"2026-12-24\", "
                            f"\"2026-12-24..2026-12-26\" or \"2026-07-14 14:00-18:00\".") from None
        if last < first:
            raise UserError(f"schedule.closures: {text!r} ends before it starts; write the earlier date first.")
        start, stop = 0, 24 * 60
        if match["start"]:
            start, stop = _minutes(match["start"], text), _minutes(match["stop"], text)
            if stop <= start:
                raise UserError(f"schedule.closures: {text!r} closes until a time before it starts; "
                                f"a closure past midnight is two entries.")
        closures.append(Closure(first, last, start, stop, text))
    return closures


def public_holidays(country: str, subdiv: str = ""):
    """The holidays package's calendar for `country` (and region), or None when not configured."""
    if not country:
        if subdiv:
            raise UserError("schedule.holidays_subdiv is set without schedule.holidays_country; set the country too.")
        return None
    import holidays
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdiv or None)
    except NotImplementedError:
        known = holidays.list_supported_countries()
        if country.upper() not in known:
            raise UserError(f"schedule.holidays_country = {country!r} is not a country the holidays package knows; "
                            f"use an ISO code such as DE, FR, GB or US.") from None
        raise UserError(f"schedule.holidays_subdiv = {subdiv!r} is not a region of {country.upper()}; "
                        f"use one of {', '.join(known[country.upper()][:40])}.") from None


class Calendar:
    """When the room is open: opening hours minus closing days, public holidays and one-off
    closures. Pure: every answer depends only on the local time it is given."""

    def __init__(self, schedule_cfg) -> None:
        self.open_hours = tuple(schedule_cfg.open_hours)
        self.rules = parse_open_hours(self.open_hours)
        days = getattr(schedule_cfg, "closed_days", ())
        self.closed_days = frozenset(_days(",".join(d.lower().strip() for d in days), ",".join(days), "closed_days")) if days else frozenset()
        self.holidays = public_holidays(getattr(schedule_cfg, "holidays_country", ""),
                                        getattr(schedule_cfg, "holidays_subdiv", ""))
        self.closures = parse_closures(getattr(schedule_cfg, "closures", ()))

    def closed_reason(self, when: _dt.datetime) -> str | None:
        """None when open at `when`, else why not (one short phrase)."""
        for closure in self.closures:
            if closure.covers(when):
                return f"closure {closure.text}"
        if self.holidays is not None and when.date() in self.holidays:
            return f"public holiday: {self.holidays.get(when.date())}"
        if when.weekday() in self.closed_days:
            return f"closed on {DAYS[when.weekday()]}"
        if self.rules and not any(rule.is_open(when) for rule in self.rules):
            return "outside opening hours"
        return None

    def is_open(self, when: _dt.datetime) -> bool:
        return self.closed_reason(when) is None

    def next_change(self, when: _dt.datetime, horizon_days: int = 31) -> _dt.datetime | None:
        """The first minute after `when` at which open/closed flips, within `horizon_days`."""
        state = self.is_open(when)
        day0 = when.replace(hour=0, minute=0, second=0, microsecond=0)
        marks = {0} | {r.start_min for r in self.rules} | {r.stop_min % (24 * 60) for r in self.rules} | \
                {c.start_min for c in self.closures} | {c.stop_min % (24 * 60) for c in self.closures}
        for day in range(horizon_days + 1):
            for minute in sorted(marks):
                candidate = day0 + _dt.timedelta(days=day, minutes=minute)
                if candidate > when and self.is_open(candidate) != state:
                    return candidate
        return None

    def describe(self, when: _dt.datetime) -> dict:
        """For operators' screens: open now, why not, and when that changes."""
        reason = self.closed_reason(when)
        change = self.next_change(when)
        return {"open": reason is None, "reason": reason or "open",
                "next_change": change.isoformat(timespec="minutes") if change else None,
                "next_state": (("closed" if reason is None else "open") if change else None),
                "open_hours": list(self.open_hours) or ["always"]}


class Schedule:
    """Opening hours, idle mode and the daily restart (ScheduleConfig). Main thread only."""

    def __init__(self, schedule_cfg, started: _dt.datetime | None = None) -> None:
        self._cfg = schedule_cfg
        self.calendar = Calendar(schedule_cfg)
        self._rules = self.calendar.rules
        self._restart_min = _minutes(schedule_cfg.daily_restart, schedule_cfg.daily_restart) \
            if schedule_cfg.daily_restart else None
        self._started = started
        self._open: bool | None = None
        self._idle = False
        self._quiet_since_s: float | None = None
        self._resume_scene = ""
        self.state = "open"

    def is_open(self, when: _dt.datetime) -> bool:
        return self.calendar.is_open(when)

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
                log.info("schedule: closed (%s)", self.calendar.closed_reason(when))
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
