"""Durations as rule authors write them: `90s`, `15m`, `2h`, `5d`, or combined like `1h30m`; and limits,
which may also be counted in working days (`7wd`) on a business calendar."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema

_PATTERN = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_JSON_PATTERN = r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"


def _not_a_duration(value: Any) -> ValueError:
    return ValueError(f"{value!r} is not a duration (write e.g. 90s, 15m, 2h, 5d or 1h30m)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as `90s`, `15m`, `2h`, `5d` or `1d12h`; raise ValueError otherwise."""
    if not isinstance(text, str):
        raise _not_a_duration(text)
    return _parse_text(text)


# A stream of a million simulated incidents spells the same few durations millions of times.
@lru_cache(maxsize=4096)
def _parse_text(text: str) -> timedelta:
    match = _PATTERN.match(text.strip())
    if match is None or not any(parts := match.groups()):
        raise _not_a_duration(text)
    days, hours, minutes, seconds = (int(part) if part else 0 for part in parts)
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is too long a duration") from exc


def format_duration(value: timedelta) -> str:
    """Write a duration the way `parse_duration` reads it, largest units first (`1h30m`)."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = (("d", days), ("h", hours), ("m", minutes), ("s", seconds))
    return "".join(f"{amount}{unit}" for unit, amount in units if amount)


def _coerce(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise _not_a_duration(value)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


#: A positive duration field of a rule: read from text, written back as text.
Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _JSON_PATTERN, "examples": ["90s", "15m", "2h", "5d"]}),
]


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a delay cannot be negative")
    return value


#: A delay that may be zero (`0s`): how long simulated people take to act.
Delay = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _JSON_PATTERN, "examples": ["0s", "90s", "15m", "2h"]}),
]


#: The most working days a limit may have: a year's worth is already far beyond any published standard.
MOST_WORKING_DAYS = 366

_WORKING_DAYS = re.compile(r"^(\d+)wd$")
_JSON_LIMIT_PATTERN = r"^((\d+d)?(\d+h)?(\d+m)?(\d+s)?|\d+wd)$"


@dataclass(frozen=True, slots=True)
class WorkingDays:
    """A limit of whole working days on a business calendar (`7wd`): it runs out at the end of the
    last working interval of the Nth working day after the day the clock starts on."""

    days: int

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MOST_WORKING_DAYS:
            raise ValueError(
                f"a limit of working days must be 1wd to {MOST_WORKING_DAYS}wd, got {self.days}wd"
            )

    def __str__(self) -> str:
        return f"{self.days}wd"


def _not_a_limit(value: Any) -> ValueError:
    return ValueError(
        f"{value!r} is not a limit (write a duration such as 90s, 15m, 2h or 5d, or working days such as 7wd)"
    )


def parse_limit(text: str) -> timedelta | WorkingDays:
    """Parse a limit: a positive duration (`2h`, `5d`) or working days (`7wd`); raise ValueError otherwise."""
    if not isinstance(text, str):
        raise _not_a_limit(text)
    match = _WORKING_DAYS.match(text.strip())
    if match is not None:
        return WorkingDays(int(match.group(1)))
    duration = _PATTERN.match(text.strip())
    if duration is None or not any(duration.groups()):
        raise _not_a_limit(text)
    return _positive(_parse_text(text))


def format_limit(value: timedelta | WorkingDays) -> str:
    """Write a limit the way `parse_limit` reads it (`1h30m`, `7wd`)."""
    return str(value) if isinstance(value, WorkingDays) else format_duration(value)


def _coerce_limit(value: Any) -> timedelta | WorkingDays:
    if isinstance(value, WorkingDays):
        return value
    if isinstance(value, timedelta):
        return _positive(value)
    return parse_limit(value)


#: The accept or resolve limit of a level: a positive duration, or whole working days (`7wd`).
Limit = Annotated[
    timedelta | WorkingDays,
    PlainValidator(_coerce_limit),
    PlainSerializer(format_limit, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": _JSON_LIMIT_PATTERN, "examples": ["15m", "2h", "5d", "7wd"]}
    ),
]
