"""The incident workflow's paths, on a real worker against the time-skipping test server."""

from __future__ import annotations

from datetime import timedelta

from gridflow.incident import Outcome, Priority, Rating, Status
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents, kinds
from workflows.commands import Accept, Feedback, Resolve
from workflows.incident import IncidentWorkflow
from workflows.state import StepKind


async def test_an_incident_accepted_and_resolved_at_the_grid_closes_when_the_resident_is_satisfied(
    incidents: Incidents,
) -> None:
    incident = make_incident()
    handle = await incidents.report(incident)

    state = await incidents.state(handle)
    assert state.level == "grid"
    assert state.holder_unit == "g-nanjing-07"
    assert state.status is Status.DISPATCHED
    assert state.rule is not None and state.rule.rule.name == "default"

    await handle.execute_update(IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07", handler="Wang"))
    await incidents.advance(handle, timedelta(hours=3))
    await handle.execute_update(IncidentWorkflow.resolve, Resolve(unit_id="g-nanjing-07", resolution="bulb"))
    await handle.execute_update(IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED))

    result = await handle.result()
    assert result.outcome is Outcome.RESOLVED
    assert result.level == "grid"
    assert result.escalations == 0
    assert result.rating is Rating.SATISFIED
    steps = incidents.published(incident.incident_id)
    assert kinds(steps) == [
        StepKind.REPORTED,
        StepKind.DISPATCHED,
        StepKind.ACCEPTED,
        StepKind.RESOLVED,
        StepKind.FEEDBACK,
        StepKind.CLOSED,
    ]
    assert [s.seq for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[2].within_limit is True


async def test_an_unaccepted_incident_climbs_grid_street_district_city_then_is_overdue(
    incidents: Incidents,
) -> None:
    incident = make_incident(priority=Priority.URGENT)
    handle = await incidents.report(incident)

    state = await incidents.advance(handle, timedelta(minutes=16))
    assert (state.level, state.holder_unit) == ("street", "s-nanjing-east")
    state = await incidents.advance(handle, timedelta(minutes=15))
    assert (state.level, state.holder_unit) == ("district", "d-huangpu")
    state = await incidents.advance(handle, timedelta(minutes=30))
    assert (state.level, state.holder_unit) == ("city", "c-shanghai")
    assert not state.overdue
    state = await incidents.advance(handle, timedelta(hours=1))
    assert state.overdue
    assert state.escalations == 3
    escalations = [s for s in state.timeline if s.kind is StepKind.ESCALATED]
    assert [(s.from_level, s.to_level, s.reason) for s in escalations] == [
        ("grid", "street", "accept_timeout"),
        ("street", "district", "accept_timeout"),
        ("district", "city", "accept_timeout"),
    ]
