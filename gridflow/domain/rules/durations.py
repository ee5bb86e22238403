"""Durations as rule authors write them: `90s`, `15m`, `2h`, `5d`, or combined like `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

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
