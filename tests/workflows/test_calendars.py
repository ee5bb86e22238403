"""Limits on a business calendar: the clock counts working time only, deadlines are real instants."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from gridflow.domain.lifecycle import StepKind
from gridflow.domain.rules import parse_rule_set
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents

OFFICE_HOURS = """
version: calendar-1
calendars:
  shanghai-office:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
rules:
  - name: office
    calendar: shanghai-office
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
"""


async def test_a_calendar_incident_escalates_when_two_working_hours_have_passed(incidents: Incidents) -> None:
    rules = parse_rule_set(OFFICE_HOURS, "office.yaml")
    incidents.rules.replace(rules)
    handle = await incidents.report(make_incident())
    state = await incidents.state(handle)
    dispatched_at = state.timeline[-1].at
    deadline = state.accept_deadline
    assert deadline is not None

    office = rules.calendars["shanghai-office"]
    assert office.working_between(dispatched_at, deadline) == timedelta(hours=2)
    local = deadline.astimezone(ZoneInfo("Asia/Shanghai"))
    assert local.weekday() < 5 and (9 <= local.hour < 12 or 13 <= local.hour <= 18)
    warning = next(w for w in state.accept_clock.warnings) if state.accept_clock else None
    assert warning is not None and office.working_between(dispatched_at, warning.at) == timedelta(minutes=90)

    state = await incidents.advance(handle, deadline - dispatched_at - timedelta(minutes=1))
    assert state.level == "grid"
    assert [s.kind for s in state.timeline].count(StepKind.SLA_WARNING) == 1
    state = await incidents.advance(handle, timedelta(minutes=2))
    assert state.level == "street"
    breach = next(s for s in state.timeline if s.kind is StepKind.SLA_BREACHED)
    assert breach.deadline == deadline
    assert abs(breach.at - deadline) < timedelta(seconds=1)
