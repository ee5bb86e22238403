"""SLA limits on a business calendar: only working time counts, in the calendar's own time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gridflow.domain.rules.calendar import WALL_CLOCK, BusinessCalendar, WallClock, clock_for

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")

_OFFICE_DAY = ["09:00-12:00", "13:00-18:00"]
_OFFICE_WEEK: dict[str, Any] = {day: _OFFICE_DAY for day in ("mon", "tue", "wed", "thu", "fri")}


def _office(timezone: str = "Europe/Berlin", **fields: Any) -> BusinessCalendar:
    """Monday to Friday, 09:00-12:00 and 13:00-18:00: eight working hours a day."""
    return BusinessCalendar.model_validate({"timezone": timezone, "working_hours": _OFFICE_WEEK, **fields})


def _at(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _hours(count: float) -> timedelta:
    return timedelta(hours=count)


# The 2026 Spring Festival as an illustrative schedule: a week off (Mon 16 to Sun 22 February), paid for
# with two working Saturdays, the 14th and the 28th.
_SPRING_FESTIVAL_YAML = """
timezone: Asia/Shanghai
working_hours:
  mon: [09:00-12:00, 13:00-18:00]
  tue: [09:00-12:00, 13:00-18:00]
  wed: [09:00-12:00, 13:00-18:00]
  thu: [09:00-12:00, 13:00-18:00]
  fri: [09:00-12:00, 13:00-18:00]
holidays: [2026-02-16, 2026-02-17, 2026-02-18, 2026-02-19, 2026-02-20, 2026-02-21, 2026-02-22]
extra_working_days: [2026-02-14, 2026-02-28]
"""


def _spring_festival() -> BusinessCalendar:
    return BusinessCalendar.model_validate(yaml.safe_load(_SPRING_FESTIVAL_YAML))


# --- counting working time -------------------------------------------------------------------------


def test_a_two_hour_limit_started_friday_at_five_ends_monday_at_ten() -> None:
    office = _office()
    friday_five = _at(BERLIN, 2026, 3, 6, 17)
    deadline = office.add(friday_five, _hours(2))
    assert deadline == _at(BERLIN, 2026, 3, 9, 10)
    assert office.working_between(friday_five, deadline) == _hours(2)


def test_the_deadline_is_given_in_utc() -> None:
    deadline = _office().add(_at(BERLIN, 2026, 3, 6, 17), _hours(2))
    assert deadline.tzinfo is UTC
    assert deadline == _utc(2026, 3, 9, 9)


def test_a_holiday_is_skipped_as_a_whole_day() -> None:
    office = _office(holidays=["2026-03-09"])
    assert office.add(_at(BERLIN, 2026, 3, 6, 17), _hours(2)) == _at(BERLIN, 2026, 3, 10, 10)


def test_an_extra_working_saturday_counts_with_mondays_hours() -> None:
    office = _office(extra_working_days=["2026-03-07"])
    assert office.add(_at(BERLIN, 2026, 3, 6, 17), _hours(2)) == _at(BERLIN, 2026, 3, 7, 10)
    assert office.working_between(_at(BERLIN, 2026, 3, 7), _at(BERLIN, 2026, 3, 8)) == _hours(8)


def test_an_extra_working_day_can_have_its_own_hours() -> None:
    office = _office(extra_working_days=["2026-03-07"], extra_day_hours=["10:00-14:00"])
    assert office.add(_at(BERLIN, 2026, 3, 6, 17), _hours(2)) == _at(BERLIN, 2026, 3, 7, 11)
    assert office.working_between(_at(BERLIN, 2026, 3, 7), _at(BERLIN, 2026, 3, 8)) == _hours(4)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (_at(BERLIN, 2026, 3, 10, 7), _at(BERLIN, 2026, 3, 10, 10)),  # early morning: from 09:00
        (_at(BERLIN, 2026, 3, 10, 20), _at(BERLIN, 2026, 3, 11, 10)),  # evening: from tomorrow 09:00
        (_at(BERLIN, 2026, 3, 8, 12), _at(BERLIN, 2026, 3, 9, 10)),  # Sunday: from Monday 09:00
    ],
)
def test_a_limit_started_outside_working_hours_counts_from_the_next_working_minute(
    start: datetime, expected: datetime
) -> None:
    assert _office().add(start, _hours(1)) == expected


def test_a_limit_started_inside_working_hours_counts_at_once() -> None:
    assert _office().add(_at(BERLIN, 2026, 3, 10, 10, 15), timedelta(minutes=90)) == _at(
        BERLIN, 2026, 3, 10, 11, 45
    )


def test_a_limit_started_in_the_lunch_break_counts_from_one_oclock() -> None:
    office = _office()
    assert office.add(_at(BERLIN, 2026, 3, 10, 12, 30), _hours(2)) == _at(BERLIN, 2026, 3, 10, 15)
    assert office.working_between(_at(BERLIN, 2026, 3, 10, 12), _at(BERLIN, 2026, 3, 10, 13)) == timedelta(0)


def test_a_limit_crossing_the_lunch_break_pauses_over_it() -> None:
    assert _office().add(_at(BERLIN, 2026, 3, 10, 11), _hours(2)) == _at(BERLIN, 2026, 3, 10, 14)


def test_a_limit_that_runs_out_exactly_at_closing_time_ends_at_closing_time() -> None:
    assert _office().add(_at(BERLIN, 2026, 3, 10, 16), _hours(2)) == _at(BERLIN, 2026, 3, 10, 18)


def test_a_limit_started_exactly_at_closing_time_counts_from_the_next_morning() -> None:
    assert _office().add(_at(BERLIN, 2026, 3, 10, 18), _hours(1)) == _at(BERLIN, 2026, 3, 11, 10)


def test_zero_working_time_ends_where_it_starts_even_outside_working_hours() -> None:
    saturday = _at(BERLIN, 2026, 3, 7, 15)
    assert _office().add(saturday, timedelta(0)) == saturday


def test_a_limit_of_several_working_days_runs_over_the_weekend() -> None:
    office = _office()
    # Wednesday 15:00-18:00 (3h), Thursday and Friday (16h), Monday 09:00-10:00 (1h).
    assert office.add(_at(BERLIN, 2026, 3, 11, 15), _hours(20)) == _at(BERLIN, 2026, 3, 16, 10)
    # A working week is five eight-hour days, Monday morning to Friday evening.
    assert office.add(_at(BERLIN, 2026, 3, 9, 9), _hours(40)) == _at(BERLIN, 2026, 3, 13, 18)
    assert office.working_between(_at(BERLIN, 2026, 3, 9), _at(BERLIN, 2026, 3, 16)) == _hours(40)


def test_thirty_working_days_end_six_weeks_later() -> None:
    office = _office()
    assert office.add(_at(BERLIN, 2026, 6, 1, 9), _hours(30 * 8)) == _at(BERLIN, 2026, 7, 10, 18)


def test_working_time_between_an_end_before_the_start_is_zero() -> None:
    office = _office()
    assert office.working_between(_at(BERLIN, 2026, 3, 10, 11), _at(BERLIN, 2026, 3, 10, 10)) == timedelta(0)


def test_starts_in_other_zones_are_the_same_instants() -> None:
    office = _office()
    friday_five_berlin_in_utc = _utc(2026, 3, 6, 16)
    assert office.add(friday_five_berlin_in_utc, _hours(2)) == _at(BERLIN, 2026, 3, 9, 10)


# --- daylight saving time --------------------------------------------------------------------------


def test_a_limit_over_the_spring_forward_weekend_counts_only_working_hours() -> None:
    office = _office()
    friday_five_cet = _at(BERLIN, 2026, 3, 27, 17)  # clocks go forward on Sunday 29 March
    deadline = office.add(friday_five_cet, _hours(2))
    assert deadline == _utc(2026, 3, 30, 8)  # Monday 10:00 CEST
    assert deadline.astimezone(BERLIN).hour == 10


def test_a_limit_over_the_fall_back_weekend_counts_only_working_hours() -> None:
    office = _office()
    friday_five_cest = _at(BERLIN, 2026, 10, 23, 17)  # clocks go back on Sunday 25 October
    deadline = office.add(friday_five_cest, _hours(2))
    assert deadline == _utc(2026, 10, 26, 9)  # Monday 10:00 CET
    assert deadline.astimezone(BERLIN).hour == 10


def test_new_york_office_hours_follow_new_york_clocks_over_its_spring_forward() -> None:
    office = _office("America/New_York")
    friday_five_est = _at(NEW_YORK, 2026, 3, 6, 17)  # clocks go forward on Sunday 8 March
    assert office.add(friday_five_est, _hours(2)) == _utc(2026, 3, 9, 14)  # Monday 10:00 EDT
    assert office.add(_at(NEW_YORK, 2026, 10, 30, 17), _hours(2)) == _utc(2026, 11, 2, 15)  # 10:00 EST


def _sunday_nights(hours: list[str]) -> BusinessCalendar:
    return BusinessCalendar(timezone="Europe/Berlin", working_hours={"sun": hours})


def _one_day(calendar: BusinessCalendar, day: date) -> timedelta:
    midnight = datetime(day.year, day.month, day.day, tzinfo=BERLIN)
    return calendar.working_between(midnight, midnight + timedelta(days=1))


SPRING_FORWARD = date(2026, 3, 29)  # Berlin: 02:00 CET becomes 03:00 CEST
FALL_BACK = date(2026, 10, 25)  # Berlin: 03:00 CEST becomes 02:00 CET


def test_an_interval_across_the_spring_forward_gap_is_an_hour_shorter() -> None:
    assert _one_day(_sunday_nights(["01:00-04:00"]), SPRING_FORWARD) == _hours(2)


def test_an_interval_across_the_fall_back_overlap_is_an_hour_longer() -> None:
    assert _one_day(_sunday_nights(["01:00-04:00"]), FALL_BACK) == _hours(4)


def test_an_interval_starting_in_the_gap_starts_when_the_clock_jumps() -> None:
    nights = _sunday_nights(["02:30-05:00"])
    assert _one_day(nights, SPRING_FORWARD) == _hours(2)
    midnight = _at(BERLIN, 2026, 3, 29)
    assert nights.add(midnight, timedelta(minutes=1)) == _utc(2026, 3, 29, 1, 1)  # 03:01 CEST


def test_an_interval_ending_in_the_gap_ends_when_the_clock_jumps() -> None:
    assert _one_day(_sunday_nights(["00:00-02:30"]), SPRING_FORWARD) == _hours(2)


def test_an_interval_starting_in_the_overlap_starts_at_its_first_occurrence() -> None:
    nights = _sunday_nights(["02:30-04:00"])
    assert _one_day(nights, FALL_BACK) == _hours(2.5)
    midnight = _at(BERLIN, 2026, 10, 25)
    assert nights.add(midnight, timedelta(minutes=1)) == _utc(2026, 10, 25, 0, 31)  # 02:31 CEST


def test_an_interval_ending_in_the_overlap_ends_at_its_last_occurrence() -> None:
    assert _one_day(_sunday_nights(["01:00-02:30"]), FALL_BACK) == _hours(2.5)


def test_touching_intervals_in_the_overlap_do_not_count_the_overlap_twice() -> None:
    nights = _sunday_nights(["01:00-02:30", "02:30-04:00"])
    assert _one_day(nights, FALL_BACK) == _hours(4)


def test_a_break_inside_the_repeated_hour_does_not_count_the_overlap_twice() -> None:
    # 01:00 to the second 02:20, and the first 02:40 to 04:00, overlap by 40 real minutes: the night
    # from 01:00 CEST to 04:00 CET is four real hours, and no more.
    nights = _sunday_nights(["01:00-02:20", "02:40-04:00"])
    assert _one_day(nights, FALL_BACK) == _hours(4)


def test_yesterdays_last_interval_can_end_after_a_start_on_the_next_date() -> None:
    # In Havana the clock goes back from 01:00 to 00:00 on 1 November 2026, so Saturday's 22:00-24:00
    # lasts until the second midnight: a start at the first 00:30 of Sunday still has half an hour.
    saturday_nights = BusinessCalendar(timezone="America/Havana", working_hours={"sat": ["22:00-24:00"]})
    first_half_past_midnight = _utc(2026, 11, 1, 4, 30)  # 00:30 CDT, before the clock goes back
    assert saturday_nights.add(first_half_past_midnight, timedelta(minutes=30)) == _utc(2026, 11, 1, 5)


def test_a_limit_longer_than_a_short_night_carries_over_to_the_next_working_night() -> None:
    nights = _sunday_nights(["01:00-04:00"])
    # The spring-forward night has only two hours; the third is the first hour of the next Sunday.
    assert nights.add(_at(BERLIN, 2026, 3, 29), _hours(3)) == _utc(2026, 4, 5, 0)  # 02:00 CEST
    assert nights.add(_at(BERLIN, 2026, 10, 25), _hours(4)) == _utc(2026, 10, 25, 3)  # 04:00 CET


# A calendar that works every minute of every day must agree with the wall clock, DST or not; the zones
# include transitions at midnight (Havana, Santiago), half-hour DST (Lord Howe), negative DST (Dublin)
# and a day that was skipped altogether (Apia, 30 December 2011).
_ROUND_THE_CLOCK_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    "America/Havana",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Europe/Dublin",
    "Pacific/Apia",
]


def _round_the_clock(timezone: str) -> BusinessCalendar:
    return BusinessCalendar(
        timezone=timezone,
        working_hours={day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )


@pytest.mark.parametrize(
    ("timezone", "start"),
    [
        ("Europe/Berlin", _utc(2026, 3, 28, 12)),
        ("Europe/Berlin", _utc(2026, 10, 24, 12)),
        ("America/New_York", _utc(2026, 3, 7, 12)),
        ("America/New_York", _utc(2026, 10, 31, 12)),
        ("America/Havana", _utc(2026, 3, 7, 12)),  # 00:00 becomes 01:00
        ("America/Havana", _utc(2026, 10, 31, 12)),  # 01:00 becomes 00:00: midnight happens twice
        ("America/Santiago", _utc(2026, 4, 4, 12)),  # 24:00 becomes 23:00
        ("America/Santiago", _utc(2026, 9, 5, 12)),  # 24:00 becomes 01:00
        ("Australia/Lord_Howe", _utc(2026, 4, 4, 0)),  # 02:00 becomes 01:30
        ("Pacific/Apia", _utc(2011, 12, 29, 0)),  # 30 December 2011 never happened in Samoa
    ],
)
def test_a_round_the_clock_calendar_counts_real_hours_across_a_dst_change(
    timezone: str, start: datetime
) -> None:
    calendar = _round_the_clock(timezone)
    assert calendar.add(start, _hours(48)) == start + _hours(48)
    assert calendar.working_between(start, start + _hours(48)) == _hours(48)


@given(
    timezone=st.sampled_from(_ROUND_THE_CLOCK_ZONES),
    start=st.datetimes(datetime(2010, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)),
    working=st.timedeltas(timedelta(0), timedelta(days=10)),
)
def test_a_round_the_clock_calendar_is_the_wall_clock(
    timezone: str, start: datetime, working: timedelta
) -> None:
    calendar = _round_the_clock(timezone)
    assert calendar.add(start, working) == start + working
    assert calendar.working_between(start, start + working) == working


# --- the Chinese holiday schedule ------------------------------------------------------------------


def test_a_spring_festival_calendar_reads_from_yaml() -> None:
    calendar = _spring_festival()
    assert calendar.timezone == "Asia/Shanghai"
    assert calendar.holidays[0] == date(2026, 2, 16)
    assert calendar.extra_working_days == [date(2026, 2, 14), date(2026, 2, 28)]


def test_a_limit_started_friday_evening_before_the_festival_ends_on_the_working_saturday() -> None:
    deadline = _spring_festival().add(_at(SHANGHAI, 2026, 2, 13, 17), _hours(2))
    assert deadline == _at(SHANGHAI, 2026, 2, 14, 10)
    assert deadline == _utc(2026, 2, 14, 2)  # Shanghai is UTC+8 all year: no DST


def test_a_limit_started_on_the_working_saturday_waits_out_the_festival_week() -> None:
    calendar = _spring_festival()
    assert calendar.add(_at(SHANGHAI, 2026, 2, 14, 17), _hours(2)) == _at(SHANGHAI, 2026, 2, 23, 10)


def test_the_festival_fortnight_holds_only_the_working_saturday() -> None:
    calendar = _spring_festival()
    between = calendar.working_between(_at(SHANGHAI, 2026, 2, 13, 18), _at(SHANGHAI, 2026, 2, 23, 9))
    assert between == _hours(8)


def test_the_saturday_after_the_festival_is_a_working_day_too() -> None:
    calendar = _spring_festival()
    assert calendar.add(_at(SHANGHAI, 2026, 2, 27, 17), _hours(2)) == _at(SHANGHAI, 2026, 2, 28, 10)


# --- add and working_between are inverses ----------------------------------------------------------

_DST_CHANGES = [
    _utc(2026, 3, 29, 1),
    _utc(2026, 10, 25, 1),
    _utc(2026, 3, 8, 7),
    _utc(2026, 11, 1, 6),
]

# Random instants over two years, and instants within three days of a DST change, where bugs hide.
_STARTS = st.one_of(
    st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)),
    st.builds(
        lambda change, shift: change + shift,
        st.sampled_from(_DST_CHANGES),
        st.timedeltas(-timedelta(days=3), timedelta(days=3)),
    ),
)
_DURATIONS = st.timedeltas(timedelta(0), _hours(30 * 8))

_CALENDARS = [
    _office(
        holidays=["2026-03-30", "2026-10-26", "2026-12-24", "2026-12-25"], extra_working_days=["2026-03-28"]
    ),
    _office("America/New_York", holidays=["2026-11-26"]),
    _spring_festival(),
    # Working nights right across the DST hours, with intervals that touch, every day.
    BusinessCalendar(
        timezone="Europe/Berlin",
        working_hours={
            day: ["00:00-02:30", "02:30-03:30", "22:00-24:00"]
            for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
    ),
]
_CALENDAR_INDEX = st.sampled_from(range(len(_CALENDARS)))


@given(calendar=_CALENDAR_INDEX, start=_STARTS, working=_DURATIONS)
def test_working_time_up_to_the_deadline_is_the_limit(
    calendar: int, start: datetime, working: timedelta
) -> None:
    business = _CALENDARS[calendar]
    deadline = business.add(start, working)
    assert deadline >= start
    assert business.working_between(start, deadline) == working


@given(calendar=_CALENDAR_INDEX, start=_STARTS, first=_DURATIONS, second=_DURATIONS)
def test_a_longer_limit_never_ends_earlier(
    calendar: int, start: datetime, first: timedelta, second: timedelta
) -> None:
    business = _CALENDARS[calendar]
    shorter, longer = sorted((first, second))
    assert business.add(start, shorter) <= business.add(start, longer)


@given(calendar=_CALENDAR_INDEX, start=_STARTS, first=_DURATIONS, second=_DURATIONS)
def test_a_limit_in_two_parts_ends_where_the_whole_limit_ends(
    calendar: int, start: datetime, first: timedelta, second: timedelta
) -> None:
    business = _CALENDARS[calendar]
    assert business.add(business.add(start, first), second) == business.add(start, first + second)


@given(calendar=_CALENDAR_INDEX, start=_STARTS, first=_DURATIONS, second=_DURATIONS)
def test_working_time_over_two_stretches_adds_up(
    calendar: int, start: datetime, first: timedelta, second: timedelta
) -> None:
    business = _CALENDARS[calendar]
    middle, end = start + first, start + first + second
    assert business.working_between(start, end) == (
        business.working_between(start, middle) + business.working_between(middle, end)
    )


# --- validation ------------------------------------------------------------------------------------


def _errors(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        BusinessCalendar.model_validate(
            {"timezone": "Europe/Berlin", "working_hours": _OFFICE_WEEK, **fields}
        )
    return str(caught.value)


@pytest.mark.parametrize(
    "timezone", ["Mars/Olympus_Mons", "Europe/Berln", "europe/berlin", "America", "../etc"]
)
def test_an_unknown_time_zone_is_rejected(timezone: str) -> None:
    assert "is not an IANA time zone" in _errors(timezone=timezone)


def test_the_machines_own_time_zone_is_rejected() -> None:
    assert "depends on the machine" in _errors(timezone="localtime")


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("9-12", "is not a time interval"),
        ("09:00", "is not a time interval"),
        ("9:00-12:00", "is not a time interval"),
        ("09:00-25:00", "not on the clock"),
        ("09:60-10:00", "not on the clock"),
        ("24:00-24:00", "not on the clock"),
        ("12:00-09:00", "must end after it starts"),
        ("09:00-09:00", "must end after it starts"),
    ],
)
def test_a_malformed_interval_is_rejected(interval: str, message: str) -> None:
    assert message in _errors(working_hours={"mon": [interval]})


def test_the_error_points_at_the_bad_interval() -> None:
    with pytest.raises(ValidationError) as caught:
        BusinessCalendar.model_validate({"timezone": "UTC", "working_hours": {"tue": ["09:00-12:00", "9-5"]}})
    assert caught.value.errors()[0]["loc"] == ("working_hours", "tue", 1)


def test_overlapping_intervals_are_rejected() -> None:
    assert "09:00-12:00 and 11:00-13:00 overlap" in _errors(
        working_hours={"mon": ["09:00-12:00", "11:00-13:00"]}
    )


def test_intervals_out_of_order_are_rejected() -> None:
    assert "list a day's intervals in order" in _errors(working_hours={"mon": ["13:00-18:00", "09:00-12:00"]})


def test_touching_intervals_are_one_stretch_of_work() -> None:
    calendar = BusinessCalendar(timezone="UTC", working_hours={"mon": ["09:00-12:00", "12:00-13:00"]})
    assert calendar.add(_utc(2026, 3, 9, 11), _hours(2)) == _utc(2026, 3, 9, 13)


def test_an_interval_may_end_at_midnight_but_not_start_there() -> None:
    calendar = BusinessCalendar(timezone="UTC", working_hours={"mon": ["22:00-24:00"]})
    assert calendar.working_between(_utc(2026, 3, 9), _utc(2026, 3, 10)) == _hours(2)


def test_spacing_around_an_interval_is_tidied() -> None:
    calendar = BusinessCalendar(timezone="UTC", working_hours={"mon": [" 09:00 - 12:00 "]})
    assert calendar.working_hours["mon"] == ["09:00-12:00"]


def test_an_unknown_weekday_is_rejected() -> None:
    assert "working_hours.monday" in _errors(working_hours={"monday": _OFFICE_DAY})


def test_an_unknown_field_is_rejected() -> None:
    assert "Extra inputs are not permitted" in _errors(weekend=["sat", "sun"])


def test_a_day_both_holiday_and_extra_working_day_is_rejected() -> None:
    message = _errors(holidays=["2026-02-14"], extra_working_days=["2026-02-14"])
    assert "2026-02-14 cannot be both a holiday and an extra working day" in message


def test_an_extra_working_day_on_a_day_that_already_works_is_rejected() -> None:
    # 2027-02-15 is a Monday: most likely a working Saturday copied from another year's schedule.
    message = _errors(extra_working_days=["2027-02-15"])
    assert "extra working day 2027-02-15 is a mon, which already has working hours" in message


def test_extra_working_days_without_hours_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra working days need hours"):
        BusinessCalendar.model_validate(
            {"timezone": "UTC", "working_hours": {"tue": _OFFICE_DAY}, "extra_working_days": ["2026-02-14"]}
        )


def test_holidays_are_kept_in_order_once_each() -> None:
    office = _office(holidays=["2026-12-25", "2026-12-24", "2026-12-25"])
    assert office.holidays == [date(2026, 12, 24), date(2026, 12, 25)]


def test_a_calendar_survives_a_round_trip_through_json() -> None:
    calendar = _spring_festival()
    again = BusinessCalendar.model_validate_json(calendar.model_dump_json())
    assert again == calendar
    assert again.add(_at(SHANGHAI, 2026, 2, 13, 17), _hours(2)) == _at(SHANGHAI, 2026, 2, 14, 10)


def test_a_calendar_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        _office().timezone = "UTC"  # type: ignore[misc]


def test_the_json_schema_describes_an_interval() -> None:
    schema = BusinessCalendar.model_json_schema()
    interval = schema["properties"]["working_hours"]["additionalProperties"]["items"]
    assert interval["pattern"].startswith("^")


def test_a_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be an aware datetime"):
        _office().add(datetime(2026, 3, 9, 9), _hours(1))


def test_negative_working_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        _office().add(_utc(2026, 3, 9, 9), -_hours(1))


# --- calendars without working time ----------------------------------------------------------------


def test_a_calendar_without_working_hours_has_no_working_time() -> None:
    idle = BusinessCalendar(timezone="UTC", working_hours={"mon": [], "sat": []})
    assert not idle.has_working_time()
    assert _office().has_working_time()
    assert _spring_festival().has_working_time()


def test_a_limit_on_a_calendar_without_working_time_cannot_end() -> None:
    idle = BusinessCalendar(timezone="UTC", working_hours={})
    with pytest.raises(ValueError, match="the business calendar has no working time"):
        idle.add(_utc(2026, 3, 9), _hours(1))
    assert idle.working_between(_utc(2026, 3, 9), _utc(2027, 3, 9)) == timedelta(0)
    assert idle.add(_utc(2026, 3, 9), timedelta(0)) == _utc(2026, 3, 9)


def test_a_calendar_of_only_extra_days_runs_out_after_the_last_one() -> None:
    saturdays = BusinessCalendar(
        timezone="UTC", working_hours={}, extra_working_days=["2026-02-14"], extra_day_hours=_OFFICE_DAY
    )
    assert saturdays.has_working_time()
    assert saturdays.add(_utc(2026, 2, 1), _hours(8)) == _utc(2026, 2, 14, 18)
    with pytest.raises(ValueError, match="its last extra working day, 2026-02-14, is past"):
        saturdays.add(_utc(2026, 2, 1), _hours(9))


def test_a_calendar_with_years_of_holidays_gives_up_after_its_horizon() -> None:
    four_years = [date(2026, 1, 1) + timedelta(days=offset) for offset in range(4 * 366)]
    on_leave = _office(holidays=four_years)
    with pytest.raises(ValueError, match="no working time within 3 years"):
        on_leave.add(_utc(2026, 1, 1), _hours(1))


# --- the wall clock --------------------------------------------------------------------------------


def test_a_rule_without_a_calendar_runs_on_the_wall_clock() -> None:
    office = _office()
    assert clock_for(None) is WALL_CLOCK
    assert clock_for(office) is office
    assert isinstance(WALL_CLOCK, WallClock)
    assert WALL_CLOCK.has_working_time()


def test_the_wall_clock_counts_every_hour() -> None:
    friday_five = _at(BERLIN, 2026, 3, 6, 17)
    deadline = WALL_CLOCK.add(friday_five, _hours(2))
    assert deadline == _at(BERLIN, 2026, 3, 6, 19)
    assert deadline.tzinfo is UTC
    assert WALL_CLOCK.working_between(friday_five, deadline) == _hours(2)
    assert WALL_CLOCK.working_between(deadline, friday_five) == timedelta(0)


def test_the_wall_clock_counts_real_hours_across_a_dst_change() -> None:
    saturday_noon = _at(BERLIN, 2026, 3, 28, 12)
    # Aware arithmetic in Berlin would say Sunday 12:00; a day of real time later it is 13:00 CEST.
    assert WALL_CLOCK.add(saturday_noon, _hours(24)).astimezone(BERLIN).hour == 13
    sunday_noon = _at(BERLIN, 2026, 3, 29, 12)
    assert WALL_CLOCK.working_between(saturday_noon, sunday_noon) == _hours(23)


def test_the_wall_clock_rejects_naive_times_and_negative_limits() -> None:
    with pytest.raises(ValueError, match="must be an aware datetime"):
        WALL_CLOCK.add(datetime(2026, 3, 9, 9), _hours(1))
    with pytest.raises(ValueError, match="must not be negative"):
        WALL_CLOCK.add(_utc(2026, 3, 9, 9), -_hours(1))
