"""Opening hours, idle mode, daily restart and systemd notifications, on real datetimes."""
from __future__ import annotations

import datetime as dt
import socket

import pytest

from installation.config import ScheduleConfig
from installation.operators.control import Control, LiveState
from installation.errors import UserError
from installation.show.schedule import Schedule, SystemdNotifier, parse_open_hours

MON = dt.datetime(2025, 3, 3)  # a Monday


def at(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return MON + dt.timedelta(days=day, hours=hh, minutes=mm)


def test_open_hours_with_day_ranges_and_midnight():
    weekdays, late = parse_open_hours(["mon-fri 10:00-18:00", "sat,sun 22:00-02:00"])
    assert weekdays.is_open(at(0, 10)) and not weekdays.is_open(at(0, 18)) and not weekdays.is_open(at(5, 12))
    assert late.is_open(at(5, 23)) and late.is_open(at(6, 1, 30)) and late.is_open(at(0, 1))  # Sunday night
    assert not late.is_open(at(5, 1))  # Saturday 01:00 belongs to Friday night
    assert parse_open_hours(["fri-mon 09:00-10:00"])[0].days == {4, 5, 6, 0}
    for bad in ("monday 10:00-18:00", "10-18", "mon-fri 25:00-26:00"):
        with pytest.raises(UserError, match="open_hours"):
            parse_open_hours([bad])


def test_closing_blacks_out_and_opening_restores_through_control():
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne", "gallery"], None)
    schedule = Schedule(ScheduleConfig(open_hours=("mon-fri 10:00-18:00",)), started=at(0, 9))
    for when, blackout in ((at(0, 9, 30), True), (at(0, 9, 45), True), (at(0, 10), False), (at(0, 18, 1), True)):
        for command in schedule.tick(when, 0.0, silent=False, present=True):
            assert control.apply(command) == {"ok": True}
        assert live.blackout is blackout, when
    stop = Schedule(ScheduleConfig(open_hours=("mon 10:00-11:00",), closed_action="stop"), started=at(0, 9))
    commands = stop.tick(at(0, 12), 0.0, silent=False, present=False)
    assert [c.address for c in commands] == ["/stop"] and control.apply(commands[0]) == {"ok": True}
    assert live.stop_requested == "stop"


def test_idle_mode_after_a_silent_empty_room_and_back():
    schedule = Schedule(ScheduleConfig(idle_after_s=300, idle_scene="gallery"), started=at(0, 9))
    when = at(0, 12)
    assert schedule.tick(when, 0.0, silent=True, present=False, scene="pulse") == []
    assert schedule.tick(when, 299.0, silent=True, present=False, scene="pulse") == []
    entered = schedule.tick(when, 300.0, silent=True, present=False, scene="pulse")
    assert [(c.address, c.args) for c in entered] == [("/scene", ("gallery",))] and schedule.state == "idle"
    assert schedule.tick(when, 900.0, silent=True, present=False, scene="gallery") == []
    left = schedule.tick(when, 901.0, silent=True, present=True, scene="gallery")  # someone walked in
    assert [(c.address, c.args) for c in left] == [("/scene", ("pulse",))] and schedule.state == "open"


def test_daily_restart_once_at_its_time():
    schedule = Schedule(ScheduleConfig(daily_restart="04:00"), started=at(0, 12))
    assert schedule.tick(at(1, 3, 59), 0.0, False, True) == []
    commands = schedule.tick(at(1, 4, 0), 0.0, False, True)
    assert [(c.address, c.sender) for c in commands] == [("/restart", "schedule")]
    fresh = Schedule(ScheduleConfig(daily_restart="04:00"), started=at(1, 4, 0))  # the restarted process
    assert fresh.tick(at(1, 4, 2), 0.0, False, True) == [] and fresh.tick(at(1, 4, 30), 0.0, False, True) == []


def test_systemd_notifier_speaks_the_notify_protocol(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(1.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    notifier = SystemdNotifier()
    assert notifier.watchdog_s == 20.0
    assert notifier.ready() and notifier.watchdog()
    assert server.recv(100) == b"READY=1" and server.recv(100) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert SystemdNotifier().ready() is False
    server.close()
