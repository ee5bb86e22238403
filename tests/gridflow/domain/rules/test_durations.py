"""Durations as rule authors write them, and as rules write them back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gridflow.domain.rules.durations import Duration, format_duration, parse_duration
from gridflow.domain.rules.model import LevelLimits, Rule


class _Holder(BaseModel):
    """The smallest model with a `Duration` field, to see the type on its own."""

    value: Duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("5d", timedelta(days=5)),
        ("1h30m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_a_duration_reads_as_the_time_it_names(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_a_duration_like_1h30m_reads_as_ninety_minutes() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)


def test_surrounding_whitespace_around_a_duration_is_ignored() -> None:
    assert parse_duration("  15m ") == timedelta(minutes=15)


@pytest.mark.parametrize("text", ["3x", "", "   ", "h", "-5m", "1.5h", "15", "m15", "30m1h", "1 h", "15M"])
def test_text_that_is_not_a_duration_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_the_rejection_quotes_the_bad_text_and_shows_examples() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("3x")
    assert str(caught.value) == "'3x' is not a duration (write e.g. 90s, 15m, 2h, 5d or 1h30m)"


@pytest.mark.parametrize("value", [5, 1.5, None, ["15m"]])
def test_a_value_that_is_not_text_is_not_a_duration(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [5, 1.5, None, ["15m"]])
def test_a_duration_field_refuses_values_that_are_not_text(value: Any) -> None:
    with pytest.raises(ValidationError, match="is not a duration"):
        _Holder.model_validate({"value": value})


def test_a_duration_field_reads_text() -> None:
    assert _Holder.model_validate({"value": "1d12h"}).value == timedelta(days=1, hours=12)


def test_a_duration_field_accepts_a_timedelta_as_it_is() -> None:
    assert _Holder(value=timedelta(minutes=7)).value == timedelta(minutes=7)


def test_zero_parses_but_is_not_a_valid_duration_field() -> None:
    assert parse_duration("0s") == timedelta(0)
    with pytest.raises(ValidationError, match="a duration must be longer than zero"):
        _Holder.model_validate({"value": "0s"})


def test_a_zero_timedelta_is_not_a_valid_duration_field_either() -> None:
    with pytest.raises(ValidationError, match="a duration must be longer than zero"):
        _Holder(value=timedelta(0))


def test_a_negative_timedelta_is_not_a_valid_duration_field() -> None:
    with pytest.raises(ValidationError, match="a duration must be longer than zero"):
        _Holder(value=timedelta(minutes=-5))


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("90s", "1m30s"),
        ("90m", "1h30m"),
        ("15m", "15m"),
        ("2h", "2h"),
        ("24h", "1d"),
        ("36h", "1d12h"),
        ("5d", "5d"),
        ("1h30m", "1h30m"),
        ("1d12h", "1d12h"),
        ("0h60m3600s", "2h"),
        ("1d1s", "1d1s"),
    ],
)
def test_a_duration_is_written_back_in_its_canonical_form(written: str, canonical: str) -> None:
    assert format_duration(parse_duration(written)) == canonical


@pytest.mark.parametrize("canonical", ["1s", "59s", "1m", "1h1s", "3d4h5m6s", "400d"])
def test_the_canonical_form_reads_back_as_the_same_duration(canonical: str) -> None:
    assert format_duration(parse_duration(canonical)) == canonical


def test_nothing_at_all_is_written_as_zero_seconds() -> None:
    assert format_duration(timedelta(0)) == "0s"


def _rule() -> Rule:
    return Rule.model_validate(
        {
            "name": "urgent",
            "match": {"priority": ["urgent"]},
            "ladder": {
                "grid": {"accept": "15m", "resolve": "90m"},
                "city": {"accept": "1h", "resolve": "36h"},
            },
            "max_pause": "12h",
            "overdue_reminder": "90s",
            "feedback": {"window": "3d"},
        }
    )


def test_a_rule_writes_its_durations_back_as_text() -> None:
    dumped = _rule().model_dump(mode="json", exclude_none=True, exclude={"ladder": {"__all__": {"notify"}}})
    assert dumped["ladder"] == {
        "grid": {"accept": "15m", "resolve": "1h30m"},
        "city": {"accept": "1h", "resolve": "1d12h"},
    }
    assert dumped["max_pause"] == "12h"
    assert dumped["overdue_reminder"] == "1m30s"
    assert dumped["feedback"]["window"] == "3d"


def test_a_rule_reads_back_the_same_from_its_own_json() -> None:
    rule = _rule()
    assert Rule.model_validate(rule.model_dump(mode="json")) == rule
    assert Rule.model_validate_json(rule.model_dump_json()) == rule


def test_default_durations_of_a_rule_are_written_as_text_too() -> None:
    rule = Rule(
        name="default", ladder={"grid": LevelLimits(accept=timedelta(hours=2), resolve=timedelta(days=1))}
    )
    dumped = rule.model_dump(mode="json")
    assert dumped["max_pause"] == "3d"
    assert dumped["overdue_reminder"] == "4h"
    assert dumped["feedback"]["window"] == "3d"
    assert Rule.model_validate(dumped) == rule


def test_the_json_schema_of_a_duration_is_a_patterned_string() -> None:
    schema = _Holder.model_json_schema()["properties"]["value"]
    assert schema["type"] == "string"
    assert "pattern" in schema
