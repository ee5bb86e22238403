"""Public holidays and make-up working days of a country, from the `holidays` library.

Only rule loading and snapshotting (activities, the CLI, the simulator) call this: a snapshot carries the
dates it needs, so workflow code never imports the library. The import is lazy for the same reason.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache


def check_country(country: str, subdivision: str | None) -> None:
    """Raise ValueError, naming what is known, unless the library has calendars for the country."""
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(
            f"{country!r} is not a country the holidays library knows (use an ISO 3166-1 code such as CN)"
        )
    subdivisions = supported[country]
    if subdivision is not None and subdivision not in subdivisions:
        known = ", ".join(subdivisions) or "none"
        raise ValueError(f"{subdivision!r} is not a subdivision of {country} (known: {known})")


@lru_cache(maxsize=256)
def public_holiday_dates(
    country: str, subdivision: str | None, first_year: int, last_year: int
) -> tuple[frozenset[date], frozenset[date]]:
    """The country's days off and its make-up working days (weekend days worked to bridge a holiday)
    from `first_year` to `last_year`, both included."""
    import holidays

    years = range(first_year, last_year + 1)
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=years)
    days_off = frozenset(calendar)
    # Only some countries' calendars know make-up working days (China's does); others have none.
    workdays = frozenset(
        day for day in getattr(calendar, "weekend_workdays", ()) if first_year <= day.year <= last_year
    )
    return days_off, workdays - days_off
