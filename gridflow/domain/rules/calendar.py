"""Business calendars: SLA limits that count only working time (working hours, holidays, extra days).

A rule's limit such as `resolve: 8h` may run on a business calendar instead of the wall clock: eight
*working* hours, counted in the calendar's time zone, skipping evenings, weekends and holidays, and
counting the extra working days (the Saturdays some countries work to bridge a holiday).

This code runs inside Temporal workflow code, so it is pure and deterministic: no clock reads, no I/O of
its own, no randomness. Time zone rules come from `zoneinfo`, whose database is static for a process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

#: The weekday names a schedule is keyed by, Monday first (the order of `date.weekday()`).
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: How long add() looks for working time before deciding there is none (e.g. every day a holiday).
HORIZON_DAYS = 3 * 366

_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_INTERVAL = re.compile(r"^(\d\d):(\d\d)\s*-\s*(\d\d):(\d\d)$")
_JSON_INTERVAL = r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$"
_NO_WORKING_TIME = (
    "the business calendar has no working time: no weekday has working hours and there are no "
    "extra working days"
)

# One working interval of a day, as offsets from the day's local midnight (the end may be 24:00).
_Span = tuple[timedelta, timedelta]


def parse_interval(text: str) -> tuple[int, int]:
    """Minutes since midnight of the start and end of `HH:MM-HH:MM`; raise ValueError otherwise."""
    match = _INTERVAL.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a time interval (write e.g. 09:00-12:00)")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if start_h > 23 or start_m > 59 or end_h > 24 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError(f"{text!r} has a time that is not on the clock (00:00 to 23:59, or 24:00 as an end)")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start >= end:
        raise ValueError(f"{text!r} must end after it starts (write 24:00 for the end of the day)")
    return start, end


def _interval_text(value: str) -> str:
    start, end = parse_interval(value)
    # Written back in one canonical form, so `9:00 - 12:00`-style spacing never reaches a snapshot.
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _ordered_and_apart(intervals: list[str]) -> list[str]:
    # A schedule is read at a glance only if it is in order; an overlap is almost always a typo.
    for earlier, later in pairwise(intervals):
        earlier_start, earlier_end = parse_interval(earlier)
        later_start, _ = parse_interval(later)
        if later_start < earlier_start:
            raise ValueError(f"{later} comes before {earlier}: list a day's intervals in order")
        if later_start < earlier_end:
            raise ValueError(f"{earlier} and {later} overlap")
    return intervals


#: One working interval of a day, `HH:MM-HH:MM` in the calendar's local time; `24:00` may end it.
Interval = Annotated[
    str,
    AfterValidator(_interval_text),
    WithJsonSchema({"type": "string", "pattern": _JSON_INTERVAL, "examples": ["09:00-12:00"]}),
]

#: A day's working intervals, in order and not overlapping.
DaySchedule = Annotated[list[Interval], AfterValidator(_ordered_and_apart)]


def _spans(intervals: list[str]) -> tuple[_Span, ...]:
    """A day's intervals as offsets from midnight, touching ones merged (12:00-13:00 + 13:00-14:00)."""
    merged: list[list[int]] = []
    for text in intervals:
        start, end = parse_interval(text)
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return tuple((timedelta(minutes=start), timedelta(minutes=end)) for start, end in merged)


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    offset = zone.utcoffset(wall)
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def _instant(wall: datetime, zone: ZoneInfo, *, end: bool) -> datetime:
    """The instant (naive UTC) at which a working interval starts (or ends) at local wall time `wall`.

    Most wall times name exactly one instant. When the clock falls back, a wall time happens twice:
    an interval starts at its first occurrence and ends at its last, so it spans all the real time the
    clock spends inside it (01:00-04:00 on a fall-back night is four real hours). When the clock springs
    forward, a wall time in the gap never happens: the interval starts (or ends) when the clock jumps
    past it, so 01:00-04:00 on a spring-forward night is two real hours.
    """
    # Naive datetimes and the constructor rather than replace(): this runs for every interval of every
    # day add() walks, and replace() costs several times more.
    before = _offset(zone, wall)  # fold=0: the offset in force before a transition at `wall`
    after = _offset(
        zone, datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, 0, None, fold=1)
    )  # fold=1: the offset in force after it
    if before == after:
        return wall - before
    if before > after:  # fall back: `wall` happens twice
        return wall - (after if end else before)
    return _transition(wall - after, wall - before, zone, after)


def _transition(low: datetime, high: datetime, zone: ZoneInfo, after: timedelta) -> datetime:
    """The instant in (low, high] (naive UTC) at which `zone` moves to offset `after`: a gap's end.

    zoneinfo does not expose its transitions, so find it by bisection over whole seconds (every
    transition in the tz database is on a whole second); a gap is an hour or so, about a dozen steps.
    """
    low_s, high_s = 0, int((high - low) / _ONE_SECOND)
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        probe = (low + middle * _ONE_SECOND).replace(tzinfo=UTC).astimezone(zone)
        if probe.utcoffset() == after:
            high_s = middle
        else:
            low_s = middle
    return low + high_s * _ONE_SECOND


#: A calendar's lookup tables: holidays, extra working days, their hours, and each weekday's spans.
_Tables = tuple[frozenset[date], frozenset[date], tuple[_Span, ...], tuple[tuple[_Span, ...], ...]]


def _spans_of(day: date, tables: _Tables) -> tuple[_Span, ...]:
    """A local day's working intervals: none on a holiday, the extra hours on an extra working day."""
    holidays, extra_days, extra_hours, weekly = tables
    if day in holidays:
        return ()
    return extra_hours if day in extra_days else weekly[day.weekday()]


class PublicHolidays(BaseModel):
    """A country's public holidays and make-up working days, taken from the `holidays` library when a
    rule's snapshot is made (so the dates an incident runs on are frozen with it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: Annotated[str, Field(min_length=2, max_length=3, examples=["CN", "DE"])]
    subdivision: Annotated[str | None, Field(default=None, min_length=1, max_length=10, examples=["BY"])]


class BusinessCalendar(BaseModel):
    """Working time: weekly working hours in a time zone, minus holidays, plus extra working days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: Annotated[str, Field(min_length=1, examples=["Asia/Shanghai", "Europe/Berlin"])]
    working_hours: dict[Weekday, DaySchedule]
    holidays: list[date] = Field(default_factory=list)
    extra_working_days: list[date] = Field(default_factory=list)
    extra_day_hours: DaySchedule | None = None
    public_holidays: PublicHolidays | None = None
    # The years whose public holidays are merged into `holidays` and `extra_working_days` (a snapshot's
    # calendar says so; a rules file's calendar leaves it empty).
    public_holiday_years: tuple[int, int] | None = None

    # Derived once per instance so add() does no parsing: the zone, each weekday's spans, the dates.
    _zone: ZoneInfo = PrivateAttr()
    _weekly: tuple[tuple[_Span, ...], ...] = PrivateAttr()
    _extra_hours: tuple[_Span, ...] = PrivateAttr()
    _holidays: frozenset[date] = PrivateAttr()
    _extra_days: frozenset[date] = PrivateAttr()
    _by_years: dict[tuple[int, int], BusinessCalendar] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # `localtime` names the machine's own zone: two workers could disagree on a deadline.
        if value == "localtime":
            raise ValueError("'localtime' depends on the machine; name the zone (e.g. Europe/Berlin)")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(
                f"{value!r} is not an IANA time zone (write e.g. Europe/Berlin or Asia/Shanghai)"
            ) from exc
        return value

    @field_validator("holidays", "extra_working_days")
    @classmethod
    def _sorted_unique(cls, value: list[date]) -> list[date]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _extra_days_are_workable(self) -> BusinessCalendar:
        both = sorted(set(self.holidays) & set(self.extra_working_days))
        if both:
            listed = ", ".join(day.isoformat() for day in both)
            raise ValueError(f"{listed} cannot be both a holiday and an extra working day")
        for day in self.extra_working_days:
            weekday = WEEKDAYS[day.weekday()]
            # An extra working day on a day that already works is most often a date from the wrong year.
            if self.working_hours.get(weekday):
                raise ValueError(
                    f"extra working day {day.isoformat()} is a {weekday}, which already has working hours"
                )
        if self.extra_working_days and not self._extra_day_schedule():
            raise ValueError(
                "extra working days need hours: set extra_day_hours (it defaults to Monday's, which has none)"
            )
        return self

    def _extra_day_schedule(self) -> list[str]:
        if self.extra_day_hours is not None:
            return self.extra_day_hours
        return self.working_hours.get("mon", [])

    def model_post_init(self, context: Any, /) -> None:
        """Derive the lookup tables add() and working_between() use on every call."""
        self._zone = ZoneInfo(self.timezone)
        self._weekly = tuple(_spans(self.working_hours.get(day, [])) for day in WEEKDAYS)
        self._extra_hours = _spans(self._extra_day_schedule())
        self._holidays = frozenset(self.holidays)
        self._extra_days = frozenset(self.extra_working_days)

    def for_years(self, first: int, last: int) -> BusinessCalendar:
        """This calendar with its country's public holidays and make-up working days of the years
        `first` to `last` merged in; the file's own dates win where they disagree with the library's."""
        if self.public_holidays is None:
            return self
        cached = self._by_years.get((first, last))
        if cached is not None:
            return cached
        # Imported here: workflow code reads the frozen dates of a snapshot and never needs the library.
        from gridflow.domain.rules.public_holidays import public_holiday_dates

        days_off, workdays = public_holiday_dates(
            self.public_holidays.country, self.public_holidays.subdivision, first, last
        )
        own_off, own_work = set(self.holidays), set(self.extra_working_days)
        # A make-up day on a weekday that works anyway adds nothing (and the model refuses it).
        made_up = {day for day in workdays if not self.working_hours.get(WEEKDAYS[day.weekday()])}
        merged = self.model_validate(
            {
                **self.model_dump(),
                "holidays": sorted(own_off | (days_off - own_work)),
                "extra_working_days": sorted(own_work | (made_up - own_off)),
                "public_holiday_years": (first, last),
            }
        )
        self._by_years[(first, last)] = merged
        return merged

    def working_day_end(self, start: datetime, days: int) -> datetime:
        """The end (in UTC) of the last working interval of the `days`-th working day after the local
        day of `start`: the start day itself never counts, however early the clock starts on it."""
        origin = _as_utc(start, "start")
        if days < 1:
            raise ValueError(f"a number of working days must be at least 1, got {days}")
        if not self.has_working_time():
            raise ValueError(_NO_WORKING_TIME)
        day = origin.astimezone(self._zone).date()
        tables = self._tables()
        counted = idle = 0
        while True:
            if day == date.max:
                raise ValueError("working days run beyond the year 9999")
            day += _ONE_DAY
            spans = _spans_of(day, tables)
            if not spans:
                idle += 1
                if idle > HORIZON_DAYS:
                    raise ValueError(
                        f"no working day within {HORIZON_DAYS // 366} years after {origin.isoformat()} on "
                        "the business calendar: are all its days holidays?"
                    )
                continue
            idle = 0
            counted += 1
            if counted == days:
                midnight = datetime(day.year, day.month, day.day)
                end = _instant(midnight + spans[-1][1], self._zone, end=True)
                return end.replace(tzinfo=UTC)

    def _tables(self) -> _Tables:
        # Read once per walk: pydantic serves private attributes through a slow __getattr__.
        return self._holidays, self._extra_days, self._extra_hours, self._weekly

    def has_working_time(self) -> bool:
        """Whether the calendar has any working time at all (if not, no limit on it can ever end)."""
        return any(self._weekly) or bool(self._extra_days)

    def add(self, start: datetime, working: timedelta) -> datetime:
        """The instant (in UTC) at which `working` of working time has passed since `start`.

        `start` may fall inside or outside working hours; time before the next working interval does not
        count. A limit that runs out exactly at the end of an interval ends there (Friday 18:00), not at
        the start of the next one. Zero working time ends at `start` itself.
        """
        origin = _as_utc(start, "start")
        if working < _ZERO:
            raise ValueError(f"working time must not be negative, got {working}")
        if working == _ZERO:
            return origin
        if not self.has_working_time():
            raise ValueError(_NO_WORKING_TIME)
        remaining = working
        for begin, end in self._working_spans(origin, last_day=None):
            length = end - begin
            if remaining <= length:
                return (begin + remaining).replace(tzinfo=UTC)
            remaining -= length
        raise AssertionError("unreachable: without a last day the spans run on or raise")

    def working_between(self, start: datetime, end: datetime) -> timedelta:
        """The working time that passes from `start` to `end` (zero when `end` is not after `start`)."""
        origin, until = _as_utc(start, "start"), _as_utc(end, "end")
        if until <= origin:
            return _ZERO
        # The local date after `end`'s, because after a fall-back at midnight the next date's first
        # interval can begin before `end`.
        last_day = until.astimezone(self._zone).date()
        last_day = last_day if last_day == date.max else last_day + _ONE_DAY
        total = _ZERO
        until = until.replace(tzinfo=None)  # the spans are naive UTC
        for begin, finish in self._working_spans(origin, last_day=last_day):
            if begin >= until:
                break
            total += min(finish, until) - begin
        return total

    def _working_spans(self, origin: datetime, last_day: date | None) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals from `origin` on, as naive UTC: in order, disjoint, none before it.

        add() and working_between() both walk this one sequence, which is what makes them inverses.
        Without `last_day` it runs until there is no working time within the horizon, and then raises.
        """
        zone, (holidays, extra_days, extra_hours, weekly) = self._zone, self._tables()
        # Start a day early: after a fall-back at midnight, yesterday's last interval ends in today.
        day = origin.astimezone(zone).date()
        day = day if day == date.min else day - _ONE_DAY
        # Each interval starts no earlier than the previous one ended: a fall-back makes wall-clock
        # intervals that merely touch (01:00-02:30, 02:30-04:00) overlap in real time.
        cursor = origin.replace(tzinfo=None)
        idle_days = 0
        weekly_work = any(weekly)
        last_extra = self.extra_working_days[-1] if self.extra_working_days else None
        while last_day is None or day <= last_day:
            # `_spans_of`, inlined: this runs for every day of every clock a simulation starts (3% faster).
            if day in holidays:
                spans: tuple[_Span, ...] = ()
            else:
                spans = extra_hours if day in extra_days else weekly[day.weekday()]
            if spans:
                midnight = datetime(day.year, day.month, day.day)
                for offset_start, offset_end in spans:
                    begin = _instant(midnight + offset_start, zone, end=False)
                    finish = _instant(midnight + offset_end, zone, end=True)
                    begin = max(begin, cursor)
                    if begin < finish:
                        yield begin, finish
                        cursor = finish
                        idle_days = 0
            if last_day is None:
                idle_days += 1
                # No weekday works and the last extra working day is behind: none will ever come.
                if not weekly_work and (last_extra is None or day > last_extra):
                    raise ValueError(
                        f"no working time after {origin.isoformat()} on the business calendar: no weekday "
                        f"has working hours and its last extra working day, {last_extra}, is past"
                    )
                if idle_days > HORIZON_DAYS:
                    raise ValueError(
                        f"no working time within {HORIZON_DAYS // 366} years after {origin.isoformat()} on "
                        "the business calendar: are all its days holidays?"
                    )
            if day == date.max:
                raise ValueError("working time runs beyond the year 9999")
            day += _ONE_DAY


class SlaClock(Protocol):
    """How a limit's time passes: wall-clock time or a business calendar's working time."""

    def add(self, start: datetime, working: timedelta) -> datetime:
        """The instant (in UTC) at which `working` of counted time has passed since `start`."""
        ...

    def working_between(self, start: datetime, end: datetime) -> timedelta:
        """The counted time from `start` to `end` (zero when `end` is not after `start`)."""
        ...

    def has_working_time(self) -> bool:
        """Whether any time counts at all."""
        ...


class WallClock:
    """Every instant counts: the clock of a rule without a business calendar."""

    __slots__ = ()

    def add(self, start: datetime, working: timedelta) -> datetime:
        """`start + working` in real elapsed time, in UTC (never wall-clock arithmetic across DST)."""
        if working < _ZERO:
            raise ValueError(f"working time must not be negative, got {working}")
        return _as_utc(start, "start") + working

    def working_between(self, start: datetime, end: datetime) -> timedelta:
        """`end - start` in real elapsed time, or zero when `end` is not after `start`."""
        return max(_as_utc(end, "end") - _as_utc(start, "start"), _ZERO)

    def has_working_time(self) -> bool:
        """Always: every instant is working time."""
        return True


#: The one wall clock; it holds no state.
WALL_CLOCK = WallClock()


def clock_for(calendar: BusinessCalendar | None) -> SlaClock:
    """The clock a limit runs on: its business calendar, or the wall clock when it has none."""
    return WALL_CLOCK if calendar is None else calendar
