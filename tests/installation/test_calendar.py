"""The calendar: closing days, public holidays (holidays package) and one-off closures on top of
opening hours, and when the next change comes, on real dates."""
from __future__ import annotations

import datetime as dt

import pytest

from installation.config import ScheduleConfig, load_config
from installation.operators.control import Control, LiveState
from installation.errors import UserError
from installation.show.schedule import Calendar, Schedule

pytest.importorskip("holidays")


def test_closing_days_win_over_opening_hours():
    calendar = Calendar(ScheduleConfig(open_hours=("10:00-18:00",), closed_days=("mon",)))
    monday, tuesday = dt.datetime(2026, 11, 30, 12), dt.datetime(2026, 12, 1, 12)
    assert calendar.closed_reason(monday) == "closed on mon"
    assert calendar.is_open(tuesday)
    assert calendar.closed_reason(tuesday.replace(hour=9)) == "outside opening hours"
    assert calendar.next_change(monday) == dt.datetime(2026, 12, 1, 10, 0)


def test_public_holidays_of_the_configured_country_and_region():
    calendar = Calendar(ScheduleConfig(holidays_country="DE", holidays_subdiv="BY"))
    assert calendar.closed_reason(dt.datetime(2026, 12, 25, 12)).startswith("public holiday: ")
    assert not calendar.is_open(dt.datetime(2026, 1, 6, 12))  # Epiphany: Bavaria, not all of Germany
    assert Calendar(ScheduleConfig(holidays_country="DE", holidays_subdiv="BE")).is_open(dt.datetime(2026, 1, 6, 12))
    assert calendar.is_open(dt.datetime(2026, 12, 28, 12))
    christmas_eve = dt.datetime(2026, 12, 24, 20)
    assert calendar.next_change(christmas_eve) == dt.datetime(2026, 12, 25, 0, 0)


def test_one_off_closures_whole_days_ranges_and_hours():
    calendar = Calendar(ScheduleConfig(open_hours=("09:00-21:00",),
                                       closures=("2026-12-31", "2027-01-02..2027-01-03", "2026-07-14 14:00-18:00")))
    assert calendar.closed_reason(dt.datetime(2026, 12, 31, 12)) == "closure 2026-12-31"
    assert not calendar.is_open(dt.datetime(2027, 1, 3, 10)) and calendar.is_open(dt.datetime(2027, 1, 4, 10))
    assert calendar.is_open(dt.datetime(2026, 7, 14, 13, 59)) and not calendar.is_open(dt.datetime(2026, 7, 14, 14))
    assert calendar.next_change(dt.datetime(2026, 7, 14, 15)) == dt.datetime(2026, 7, 14, 18, 0)
    described = calendar.describe(dt.datetime(2026, 7, 14, 15))
    assert described["open"] is False and described["next_state"] == "open"
    assert described["next_change"] == "2026-07-14T18:00"


def test_a_holiday_blacks_out_through_the_schedule_and_the_next_day_opens():
    live = LiveState(scene="nocturne")
    control = Control(live, lambda: ["nocturne"], None)
    schedule = Schedule(ScheduleConfig(open_hours=("10:00-18:00",), holidays_country="FR"),
                        started=dt.datetime(2026, 7, 13, 9))
    for when, blackout in ((dt.datetime(2026, 7, 13, 12), False), (dt.datetime(2026, 7, 14, 12), True),
                           (dt.datetime(2026, 7, 15, 12), False)):
        for command in schedule.tick(when, 0.0, silent=False, present=True):
            assert control.apply(command) == {"ok": True}
        assert live.blackout is blackout, when


@pytest.mark.parametrize("cfg, match", [
    (ScheduleConfig(holidays_country="XX"), "holidays_country"),
    (ScheduleConfig(holidays_country="DE", holidays_subdiv="ZZ"), "holidays_subdiv"),
    (ScheduleConfig(holidays_subdiv="BY"), "holidays_country"),
    (ScheduleConfig(closures=("24.12.2026",)), "closures"),
    (ScheduleConfig(closures=("2026-12-26..2026-12-24",)), "closures"),
    (ScheduleConfig(closed_days=("monday",)), "closed_days"),
])
def test_bad_calendar_settings_are_one_sentence(cfg, match):
    with pytest.raises(UserError, match=match):
        Calendar(cfg)


def test_calendar_keys_load_from_config():
    cfg = load_config(None, ['schedule.closed_days=["mon","tue"]', 'schedule.holidays_country="AT"',
                             'schedule.closures=["2026-12-24"]'])
    assert Calendar(cfg.schedule).closed_days == {0, 1}
