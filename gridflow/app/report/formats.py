"""How a report's numbers read, the same in the table, the HTML page and the charts: rates and scores
as percentages with one decimal, changes in points, rank moves as places."""

from __future__ import annotations

from datetime import timedelta

NONE = "-"  # a figure without a value (no rating in the period, say): never 0


def percent(value: float | None) -> str:
    """A rate (or the score): `87.5%`."""
    return NONE if value is None else f"{value * 100:.1f}%"


def score(value: float | None) -> str:
    """The score on 0-100: `83.8`."""
    return NONE if value is None else f"{value * 100:.1f}"


def points(value: float | None) -> str:
    """A change in points: `+2.5 pt`."""
    return NONE if value is None else f"{value:+.1f} pt"


def places(moved: int | None, previous_rank: int | None) -> str:
    """A rank move: `up 2`, `down 1`, `=`, or `new` without a rank in the previous period."""
    if moved is None:
        return "new" if previous_rank is None else NONE
    if moved > 0:
        return f"up {moved}"
    if moved < 0:
        return f"down {-moved}"
    return "="


def rank(value: int | None) -> str:
    """A place in the ranking (`-` without a score)."""
    return NONE if value is None else str(value)


def duration(value: timedelta | None) -> str:
    """A time to resolve: `4h30m`, `3d2h`."""
    if value is None:
        return NONE
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    if days:
        return f"{days}d{minutes // 60}h"
    return f"{minutes // 60}h{minutes % 60:02d}m"


#: The rates' names as tables head them.
RATE_TITLES = {
    "response": "response",
    "resolution": "resolution",
    "satisfaction": "satisfaction",
    "resident_resolution": "solved (resident)",
    "on_time": "on-time",
    "escalation": "escalation",
    "dispatch_accuracy": "dispatch accuracy",
    "extension": "extension",
    "rework": "rework",
    "on_time_closure": "on-time closure",
    "grid_containment": "contained at grid",
    "street_containment": "contained at street",
    "district_containment": "contained at district",
}
