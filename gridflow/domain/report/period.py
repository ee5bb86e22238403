"""The period a report covers: a calendar month or a run of whole days in one time zone, the period
before it to compare with, and the weeks within it for the trend."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_MONTH = re.compile(r"(\d{4})-(\d{2})")
DAY = timedelta(days=1)


class PeriodError(ValueError):
    """A period that cannot be: a malformed month or date, or one that ends before it starts."""


@dataclass(frozen=True)
class Period:
    """The days `first` to `last` (both included) in the time zone `tz`; `whole_month` when they are
    one calendar month. A step belongs to it when start <= at < end."""

    first: date
    last: date
    tz: tzinfo = UTC
    whole_month: bool = False

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise PeriodError(f"a period cannot end ({self.last}) before it starts ({self.first})")

    @classmethod
    def month(cls, text: str, tz: tzinfo = UTC) -> Period:
        """The calendar month `YYYY-MM`, e.g. `Period.month("2026-11")`."""
        found = _MONTH.fullmatch(text.strip())
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise PeriodError(f"{text!r} is not a month: write YYYY-MM, e.g. 2026-11")
        return cls.month_of(date(int(found.group(1)), int(found.group(2)), 1), tz)

    @classmethod
    def month_of(cls, day: date, tz: tzinfo = UTC) -> Period:
        """The calendar month a day is in."""
        first = day.replace(day=1)
        following = (first + 32 * DAY).replace(day=1)
        return cls(first, following - DAY, tz, whole_month=True)

    @classmethod
    def days(cls, first: date, last: date, tz: tzinfo = UTC) -> Period:
        """The days `first` to `last`, both included."""
        return cls(first, last, tz)

    @property
    def start(self) -> datetime:
        """The first instant of the period (midnight of its first day in its time zone)."""
        return datetime.combine(self.first, time(0), tzinfo=self.tz)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.last + DAY, time(0), tzinfo=self.tz)

    @property
    def day_count(self) -> int:
        """How many days the period has."""
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        """`2026-11` for a month, `2026-11-03` for a day, `2026-11-01..2026-11-15` for days."""
        if self.whole_month:
            return f"{self.first:%Y-%m}"
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    def previous(self) -> Period:
        """The period to compare with: the month before a month, else as many days just before."""
        if self.whole_month:
            return Period.month_of(self.first - DAY, self.tz)
        return Period(self.first - self.day_count * DAY, self.first - DAY, self.tz)

    def weeks(self) -> list[Period]:
        """The weeks (Monday to Sunday) within the period, the first and last cut to it."""
        weeks: list[Period] = []
        first = self.first
        while first <= self.last:
            sunday = first + (6 - first.weekday()) * DAY
            last = min(sunday, self.last)
            weeks.append(Period(first, last, self.tz))
            first = last + DAY
        return weeks

    @property
    def week_label(self) -> str:
        """The ISO week the period starts in: `2026-W45`."""
        year, week, _ = self.first.isocalendar()
        return f"{year}-W{week:02d}"

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end
