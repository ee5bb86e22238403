"""Instants on a grid of a given resolution (whole seconds, whole minutes), counted from the Unix epoch.

The workflow normally gives the core exact instants. A simulation on Temporal's time-skipping server can
ask it to count on a grid instead: the server adds a few real milliseconds to every timer and command, and
on a grid those vanish, so the real workflow and the discrete-event engine see the very same instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to(instant: datetime, resolution: timedelta | None) -> datetime:
    """The grid instant at or before `instant` (the instant itself without a resolution)."""
    if resolution is None:
        return instant
    return EPOCH + ((instant - EPOCH) // resolution) * resolution


def ceil_to(instant: datetime, resolution: timedelta | None) -> datetime:
    """The grid instant at or after `instant` (the instant itself without a resolution)."""
    if resolution is None:
        return instant
    floor = floor_to(instant, resolution)
    return floor if floor == instant else floor + resolution
