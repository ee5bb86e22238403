"""Limits in working days (`7wd`) on a calendar with a country's public holidays and make-up days.

China's 2026 calendar, as the holidays library has it: Mid-Autumn Festival on Friday 25 September,
National Day from Thursday 1 to Wednesday 7 October, and make-up working days on Sunday 20 September
and Saturday 10 October.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle.timeline import StepKind
from gridflow.domain.rules import (
    BusinessCalendar,
    Limit,
    RulesFileError,
    RuleSnapshot,
    WorkingDays,
    format_limit,
    parse_limit,
    parse_rule_set,
)
from gridflow.domain.rules.explain import explain, lint
from tests.conftest import make_incident
from tests.rule_texts import CN_OFFICE_CALENDARS

SHANGHAI = ZoneInfo("Asia/Shanghai")
_CN: dict[str, Any] = yaml.safe_load(CN_OFFICE_CALENDARS)["calendars"]["cn-office"]

RULES = (
    "version: wd-1\n"
    + CN_OFFICE_CALENDARS
    + """
rules:
  - name: general
    calendar: cn-office
    ladder:
      grid:   {accept: 1wd, resolve: 7wd}
      street: {accept: 1wd, resolve: 15wd}
"""
)


def _cn(**fields: Any) -> BusinessCalendar:
    return BusinessCalendar.model_validate({**_CN, **fields}).for_years(2026, 2027)


def _local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def _reported(at: datetime) -> Incident:
    return make_incident().model_copy(update={"reported_at": at.astimezone(UTC)})


class _Level(BaseModel):
    limit: Limit


# ---------------------------------------------------------------------- writing limits


def test_a_limit_is_a_duration_or_a_number_of_working_days() -> None:
    assert parse_limit("7wd") == WorkingDays(7)
    assert parse_limit("2h") == timedelta(hours=2)
    assert parse_limit("1d12h") == timedelta(days=1, hours=12)
    assert format_limit(WorkingDays(15)) == "15wd"
    assert format_limit(timedelta(minutes=90)) == "1h30m"


@pytest.mark.parametrize("text", ["3x", "wd", "7 wd", "7WD", "1.5wd", ""])
def test_a_limit_that_is_neither_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a limit .*working days such as 7wd"):
        parse_limit(text)


@pytest.mark.parametrize(
    ("text", "message"), [("0wd", "1wd to 366wd"), ("367wd", "1wd to 366wd"), ("0s", "longer than zero")]
)
def test_a_limit_must_be_positive_and_at_most_a_year_of_working_days(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_limit(text)


def test_a_limit_field_reads_text_and_writes_it_back() -> None:
    level = _Level.model_validate({"limit": "7wd"})
    assert level.limit == WorkingDays(7)
    assert level.model_dump(mode="json") == {"limit": "7wd"}
    assert _Level.model_validate_json(level.model_dump_json()) == level
    assert _Level.model_validate({"limit": "2h"}).model_dump(mode="json") == {"limit": "2h"}
    schema = _Level.model_json_schema()["properties"]["limit"]
    assert schema["type"] == "string" and "wd" in schema["pattern"]


# ---------------------------------------------------------------------- the end of the Nth working day


def test_the_start_day_does_not_count_and_the_limit_ends_with_the_last_days_working_hours() -> None:
    # Monday 14 September, 10:00: one working day is all of Tuesday.
    assert _cn().working_day_end(_local(9, 14, 10), 1) == _local(9, 15, 18).astimezone(UTC)
    # Started before the office opens, the day still does not count.
    assert _cn().working_day_end(_local(9, 14, 6), 1) == _local(9, 15, 18).astimezone(UTC)


def test_a_make_up_sunday_counts_and_a_festival_friday_does_not() -> None:
    calendar = _cn()
    # From Friday 18 September: Sunday 20 (made up), Monday 21, Tuesday 22.
    assert calendar.working_day_end(_local(9, 18, 15), 3) == _local(9, 22, 18).astimezone(UTC)
    # From Wednesday 23: Thursday 24, then Friday 25 is the Mid-Autumn Festival, so Monday 28.
    assert calendar.working_day_end(_local(9, 23, 9), 2) == _local(9, 28, 18).astimezone(UTC)


def test_national_day_is_skipped_and_the_make_up_saturday_after_it_counts() -> None:
    calendar = _cn()
    # From Wednesday 30 September: 1-7 October off, then Thursday 8, Friday 9, Saturday 10 (made up).
    assert calendar.working_day_end(_local(9, 30, 16), 2) == _local(10, 9, 18).astimezone(UTC)
    assert calendar.working_day_end(_local(9, 30, 16), 3) == _local(10, 10, 18).astimezone(UTC)
    assert calendar.working_day_end(_local(9, 30, 16), 4) == _local(10, 12, 18).astimezone(UTC)


def test_the_library_dates_are_merged_into_the_calendar_for_the_years_asked() -> None:
    calendar = _cn()
    assert date(2026, 10, 1) in calendar.holidays and date(2027, 1, 1) in calendar.holidays
    assert date(2026, 10, 10) in calendar.extra_working_days
    assert calendar.public_holiday_years == (2026, 2027)
    assert all(2026 <= day.year <= 2027 for day in [*calendar.holidays, *calendar.extra_working_days])


def test_the_files_own_dates_win_over_the_librarys() -> None:
    # The office also takes Thursday 8 October off, and does not work the made-up Saturday 10.
    calendar = _cn(holidays=[date(2026, 10, 8), date(2026, 10, 10)])
    assert calendar.working_day_end(_local(9, 30, 16), 2) == _local(10, 12, 18).astimezone(UTC)


def test_a_calendar_without_public_holidays_is_left_as_it_is() -> None:
    plain = BusinessCalendar.model_validate({k: v for k, v in _CN.items() if k != "public_holidays"})
    assert plain.for_years(2026, 2027) is plain
    # Without the library's dates, 1 October is an ordinary Thursday.
    assert plain.working_day_end(_local(9, 30, 16), 1) == _local(10, 1, 18).astimezone(UTC)


# ---------------------------------------------------------------------- rules files


def test_working_days_without_a_calendar_name_the_rule_the_level_and_the_clock() -> None:
    text = "rules:\n  - name: general\n    ladder:\n      grid: {accept: 2h, resolve: 7wd}\n"
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set(text, "rules.yaml")
    (problem,) = caught.value.problems
    assert "rule 'general', level 'grid': the resolve limit 7wd counts working days" in problem
    assert "set `calendar:`" in problem


def test_an_unknown_country_names_the_calendar() -> None:
    text = RULES.replace("{country: CN}", "{country: XX}")
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set(text, "rules.yaml")
    assert "calendar 'cn-office': public_holidays: 'XX' is not a country" in " ".join(caught.value.problems)


def test_an_unknown_subdivision_says_which_are_known() -> None:
    text = RULES.replace("{country: CN}", "{country: DE, subdivision: XX}")
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set(text, "rules.yaml")
    assert "'XX' is not a subdivision of DE (known: " in " ".join(caught.value.problems)


def test_lint_compares_working_days_with_working_days_only() -> None:
    shrinking = RULES.replace("street: {accept: 1wd, resolve: 15wd}", "street: {accept: 1wd, resolve: 5wd}")
    (warning,) = lint(parse_rule_set(shrinking, "rules.yaml"))
    assert warning.message == "resolve limit shrinks going up: grid 7wd, street 5wd"
    mixed = RULES.replace("street: {accept: 1wd, resolve: 15wd}", "street: {accept: 1wd, resolve: 2h}")
    assert lint(parse_rule_set(mixed, "rules.yaml")) == []


# ---------------------------------------------------------------------- snapshots and the lifecycle


def test_a_snapshot_freezes_the_public_holidays_of_the_report_year_and_the_next() -> None:
    rules = parse_rule_set(RULES, "rules.yaml")
    snapshot = rules.snapshot_for(_reported(_local(9, 30, 16)))
    calendar = snapshot.calendars["cn-office"]
    assert calendar.public_holiday_years == (2026, 2027)
    assert date(2026, 10, 1) in calendar.holidays
    assert rules.snapshot_key(_reported(_local(9, 30, 16))) == ("general", 2026)


def test_a_snapshot_read_back_never_loads_the_holidays_library() -> None:
    # Workflow code reads snapshots back: it must get the frozen dates without importing the library.
    snapshot = parse_rule_set(RULES, "rules.yaml").snapshot_for(_reported(_local(9, 30, 16)))
    script = (
        "import sys\n"
        "from datetime import datetime, UTC\n"
        "from gridflow.domain.rules import RuleSnapshot, WorkingDays\n"
        f"snapshot = RuleSnapshot.model_validate_json({snapshot.model_dump_json()!r})\n"
        "start = datetime(2026, 9, 30, 8, tzinfo=UTC)\n"
        "hours = snapshot.working_time('grid', WorkingDays(2), start)\n"
        "print(hours.total_seconds(), 'holidays' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds, loaded = result.stdout.split()
    # The rest of Wednesday 30 September (16:00-18:00), then Thursday 8 and Friday 9 October.
    assert (float(seconds), loaded) == (17 * 3600.0, "False")


def test_a_working_day_limit_becomes_working_hours_when_its_clock_starts() -> None:
    snapshot = parse_rule_set(RULES, "rules.yaml").snapshot_for(_reported(_local(9, 30, 16)))
    # From Wednesday 30 September 16:00 the clock gets the working time up to the end of Thursday
    # 8 October: Wednesday's last two hours and Thursday's 7.5. Wednesday is not one of the days, but
    # its hours are on the clock, so warnings and pauses count the same time as the deadline.
    assert snapshot.working_time("grid", WorkingDays(1), _local(9, 30, 16)) == timedelta(hours=9.5)
    assert snapshot.working_time("grid", timedelta(hours=2), _local(9, 30, 16)) == timedelta(hours=2)


def test_an_unaccepted_incident_escalates_at_the_end_of_its_working_day() -> None:
    rules = parse_rule_set(RULES, "rules.yaml")
    incident = _reported(_local(9, 30, 16))
    timeline = explain(rules, incident, reminders=1).timeline
    dispatched = next(step for step in timeline if step.kind is StepKind.DISPATCHED)
    escalated = next(step for step in timeline if step.kind is StepKind.ESCALATED)
    # Accept within 1wd of Wednesday 30 September: by the end of Thursday 8 October.
    assert dispatched.deadline == _local(10, 8, 18).astimezone(UTC)
    assert escalated.at == _local(10, 8, 18).astimezone(UTC)
    # At the street, 1wd from Thursday 8 October 18:00 is Friday 9 October.
    street = [step for step in timeline if step.kind is StepKind.DISPATCHED][1]
    assert street.deadline == _local(10, 9, 18).astimezone(UTC)


def test_a_resolve_limit_of_seven_working_days_crosses_national_day() -> None:
    rules = parse_rule_set(RULES, "rules.yaml")
    incident = _reported(_local(9, 28, 10))
    snapshot = rules.snapshot_for(incident)
    now = _local(9, 28, 10).astimezone(UTC)
    state, _ = lifecycle.report(incident, now)
    lifecycle.start(state, incident, snapshot, now)
    lifecycle.apply(state, incident, lifecycle.Accept(unit_id=state.holder_unit or "", at=now), now)
    # Seven working days after Monday 28 September: 29, 30 September, 8, 9, 10 (made up), 12, 13 October.
    assert state.resolve_deadline == _local(10, 13, 18).astimezone(UTC)


def test_json_of_a_snapshot_writes_limits_as_rule_authors_do() -> None:
    snapshot = parse_rule_set(RULES, "rules.yaml").snapshot_for(_reported(_local(9, 30, 16)))
    ladder = json.loads(snapshot.model_dump_json())["rule"]["ladder"]
    assert ladder["street"] == {**ladder["street"], "accept": "1wd", "resolve": "15wd"}
    assert RuleSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_a_level_limit_may_not_be_a_number() -> None:
    with pytest.raises(ValidationError, match="is not a limit"):
        _Level.model_validate({"limit": 7})


def test_the_readmes_rules_example_is_a_valid_rules_file_with_working_days() -> None:
    readme = (Path(__file__).resolve().parents[4] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Escalation rules") :]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = parse_rule_set(example, "README.md")
    hotline = next(rule for rule in rules.rules if rule.name == "hotline-general")
    assert hotline.limits("grid").resolve == WorkingDays(7)
    assert rules.calendars["cn-12345"].public_holidays is not None
