"""`gridflow rules explain` tells the truth: its timeline is what the real workflow does."""

from __future__ import annotations

from datetime import timedelta

from gridflow.domain.incident import Priority
from gridflow.domain.rules import builtin_rule_set
from gridflow.domain.rules.explain import explain
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents


async def test_explains_timeline_is_what_the_workflow_does_when_nobody_acts(incidents: Incidents) -> None:
    incident = make_incident(priority=Priority.URGENT)
    handle = await incidents.report(incident)
    state = await incidents.advance(handle, timedelta(hours=5, minutes=1))  # up the ladder and 3 reminders

    planned = explain(builtin_rule_set(), incident, start=state.timeline[0].at, reminders=3).timeline
    done = state.timeline
    assert [(p.kind, p.level, p.unit_id, p.reason) for p in planned] == [
        (s.kind, s.level, s.unit_id, s.reason) for s in done
    ]
    # Apart from the milliseconds the workflow's activities and timers take, the same instants.
    for plan, step in zip(planned, done, strict=True):
        assert abs(step.at - plan.at) < timedelta(seconds=1), (plan, step)
