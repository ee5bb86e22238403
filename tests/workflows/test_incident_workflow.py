"""The incident workflow's paths, on a real worker against the time-skipping test server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from gridflow.domain.incident import Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    ClockKind,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    IncidentSummary,
    Pause,
    Progress,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    Resume,
    StepKind,
    Transfer,
    Verify,
    Withdraw,
)
from gridflow.domain.rules import LevelLimits, Rule, builtin_rule_set, parse_rule_set
from tests.conftest import make_incident
from tests.rule_texts import VERIFYING
from tests.workflows.conftest import Incidents, close_to, kinds, refusal
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow


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

    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07", handler="Wang"))
    await incidents.advance(handle, timedelta(hours=3))
    await incidents.command(
        handle, IncidentWorkflow.resolve, Resolve(unit_id="g-nanjing-07", resolution="bulb")
    )
    await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED))

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


async def test_an_accepted_incident_not_resolved_in_time_escalates_with_resolve_timeout(
    incidents: Incidents,
) -> None:
    handle = await incidents.report(make_incident())
    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))

    state = await incidents.advance(handle, timedelta(hours=23))
    assert (state.level, state.status) == ("grid", Status.ACCEPTED)
    state = await incidents.advance(handle, timedelta(hours=1, minutes=1))

    assert (state.level, state.status, state.holder_unit) == ("street", Status.DISPATCHED, "s-nanjing-east")
    breach, escalation = [s for s in state.timeline if s.kind in (StepKind.SLA_BREACHED, StepKind.ESCALATED)]
    assert breach.clock is ClockKind.RESOLVE
    assert escalation.reason == "resolve_timeout"


async def test_a_warning_is_published_at_warn_at_before_the_accept_limit_breaches(
    incidents: Incidents,
) -> None:
    incident = make_incident()
    handle = await incidents.report(incident)
    dispatched_at = (await incidents.state(handle)).timeline[-1].at

    state = await incidents.advance(handle, timedelta(minutes=89))
    assert StepKind.SLA_WARNING not in kinds(state.timeline)
    state = await incidents.advance(handle, timedelta(minutes=2))

    warning = state.timeline[-1]
    assert warning.kind is StepKind.SLA_WARNING
    assert (warning.clock, warning.fraction) == (ClockKind.ACCEPT, 0.75)
    assert close_to(warning.at - dispatched_at, timedelta(minutes=90))
    assert warning.deadline == dispatched_at + timedelta(hours=2)
    assert state.level == "grid"
    await incidents.wait_for(handle, lambda s: len(incidents.published(incident.incident_id)) == 3)
    assert incidents.published(incident.incident_id)[-1].kind is StepKind.SLA_WARNING


async def test_a_handler_can_pass_the_incident_up_as_requested_or_not_responsible(
    incidents: Incidents,
) -> None:
    handle = await incidents.report(make_incident())
    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))

    summary = await incidents.command(
        handle,
        IncidentWorkflow.request_escalation,
        RequestEscalation(unit_id="g-nanjing-07", reason=EscalationRequestReason.REQUESTED),
    )
    assert (summary.level, summary.status, summary.holder_unit) == (
        "street",
        Status.DISPATCHED,
        "s-nanjing-east",
    )
    summary = await incidents.command(
        handle,
        IncidentWorkflow.request_escalation,
        RequestEscalation(unit_id="s-nanjing-east", reason=EscalationRequestReason.NOT_RESPONSIBLE),
    )
    assert summary.level == "district"

    state = await incidents.state(handle)
    reasons = [s.reason for s in state.timeline if s.kind is StepKind.ESCALATED]
    assert reasons == ["requested", "not_responsible"]
    assert state.escalations == 2


async def test_a_pause_stops_the_resolve_clock_and_its_allowance_is_capped(incidents: Incidents) -> None:
    handle = await incidents.report(make_incident())
    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))
    deadline = (await incidents.state(handle)).resolve_deadline
    assert deadline is not None

    await incidents.command(
        handle, IncidentWorkflow.pause, Pause(unit_id="g-nanjing-07", reason="waiting for parts")
    )
    state = await incidents.advance(handle, timedelta(hours=30))
    assert state.status is Status.PAUSED  # 30 h paused: past the 24 h limit, but the clock is stopped
    assert state.level == "grid"
    await incidents.command(handle, IncidentWorkflow.resume, Resume(unit_id="g-nanjing-07"))
    state = await incidents.state(handle)
    assert close_to(state.paused_total, timedelta(hours=30))
    assert state.resolve_deadline is not None
    assert close_to(state.resolve_deadline - deadline, timedelta(hours=30))

    # The default rule allows 72 h of pause in all: a second pause ends by itself after the 42 h left.
    await incidents.command(
        handle, IncidentWorkflow.pause, Pause(unit_id="g-nanjing-07", reason="resident away")
    )
    state = await incidents.advance(handle, timedelta(hours=43))
    assert state.status is Status.ACCEPTED
    assert state.paused_total == timedelta(hours=72)
    assert state.timeline[-1].kind is StepKind.RESUMED
    assert state.timeline[-1].reason == "pause_cap_reached"
    reason = await refusal(handle.execute_update(IncidentWorkflow.pause, Pause(unit_id="g-nanjing-07")))
    assert "whole pause allowance" in reason


async def test_an_unsatisfied_resident_reopens_the_incident_until_a_satisfied_rating_closes_it(
    incidents: Incidents,
) -> None:
    handle = await incidents.report(make_incident())
    await _accept_and_resolve(incidents, handle, "g-nanjing-07")
    summary = await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.UNSATISFIED))
    assert (summary.status, summary.level, summary.reopen_count) == (Status.DISPATCHED, "grid", 1)

    await _accept_and_resolve(incidents, handle, "g-nanjing-07")
    await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.BASICALLY_SATISFIED))

    result = await handle.result()
    assert (result.outcome, result.rating, result.reopen_count, result.flagged) == (
        Outcome.RESOLVED,
        Rating.BASICALLY_SATISFIED,
        1,
        False,
    )
    state = await incidents.state(handle)
    assert kinds(state.timeline).count(StepKind.REOPENED) == 1


async def test_a_resident_who_says_the_problem_is_not_solved_reopens_the_incident_however_kindly_rated(
    incidents: Incidents,
) -> None:
    handle = await incidents.report(make_incident())
    await _accept_and_resolve(incidents, handle, "g-nanjing-07")
    summary = await incidents.command(
        handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED, solved=False)
    )
    assert (summary.status, summary.reopen_count, summary.solved) == (Status.DISPATCHED, 1, False)

    await _accept_and_resolve(incidents, handle, "g-nanjing-07")
    await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED, solved=True))

    result = await handle.result()
    assert (result.outcome, result.solved, result.reopen_count) == (Outcome.RESOLVED, True, 1)
    state = await incidents.state(handle)
    reopened = [step for step in state.timeline if step.kind is StepKind.REOPENED]
    assert [step.reason for step in reopened] == ["not_solved"]
    answers = [step.solved for step in state.timeline if step.kind is StepKind.FEEDBACK]
    assert answers == [False, True]


async def test_reaching_max_reopens_closes_the_incident_unsatisfied_and_flagged(incidents: Incidents) -> None:
    handle = await incidents.report(make_incident())
    for _ in range(3):  # the default rule allows two reopens
        await _accept_and_resolve(incidents, handle, "g-nanjing-07")
        await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.UNSATISFIED))

    result = await handle.result()
    assert (result.outcome, result.flagged, result.reopen_count) == (Outcome.RESOLVED_UNSATISFIED, True, 2)


async def test_an_incident_with_no_feedback_closes_unrated_when_the_window_ends(incidents: Incidents) -> None:
    handle = await incidents.report(make_incident())
    await _accept_and_resolve(incidents, handle, "g-nanjing-07")

    state = await incidents.advance(handle, timedelta(hours=71))
    assert state.status is Status.RESOLVED
    await incidents.advance(handle, timedelta(hours=2))

    result = await handle.result()
    assert (result.outcome, result.rating) == (Outcome.RESOLVED_UNRATED, None)


async def test_an_incident_withdrawn_while_held_by_the_street_closes_as_withdrawn(
    incidents: Incidents,
) -> None:
    handle = await incidents.report(make_incident())
    await incidents.advance(handle, timedelta(hours=2, minutes=1))
    assert (await incidents.state(handle)).level == "street"

    await incidents.command(handle, IncidentWorkflow.withdraw, Withdraw(reason="fixed by a neighbour"))

    result = await handle.result()
    assert (result.outcome, result.level) == (Outcome.WITHDRAWN, "street")
    closed = (await incidents.state(handle)).timeline[-1]
    assert (closed.kind, closed.reason) == (StepKind.CLOSED, "fixed by a neighbour")


async def test_an_overdue_incident_at_the_top_level_is_reminded_until_resolved(incidents: Incidents) -> None:
    handle = await incidents.report(make_incident(priority=Priority.URGENT))
    for unit in ("g-nanjing-07", "s-nanjing-east", "d-huangpu"):
        await incidents.command(
            handle,
            IncidentWorkflow.request_escalation,
            RequestEscalation(unit_id=unit, reason=EscalationRequestReason.REQUESTED),
        )
    reason = await refusal(
        handle.execute_update(
            IncidentWorkflow.request_escalation,
            RequestEscalation(unit_id="c-shanghai", reason=EscalationRequestReason.REQUESTED),
        )
    )
    assert "at the top level (city): nothing is above" in reason

    state = await incidents.advance(handle, timedelta(hours=1, minutes=1))  # city accepts within 1 h
    assert state.overdue
    state = await incidents.advance(handle, timedelta(hours=3))  # reminders every hour
    assert kinds(state.timeline).count(StepKind.OVERDUE_REMINDER) == 3

    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="c-shanghai"))
    assert (await incidents.state(handle)).timeline[-1].within_limit is False
    await incidents.command(
        handle, IncidentWorkflow.resolve, Resolve(unit_id="c-shanghai", resolution="done")
    )
    state = await incidents.advance(handle, timedelta(hours=5))
    assert kinds(state.timeline).count(StepKind.OVERDUE_REMINDER) == 3  # none after resolution


async def test_illegal_commands_are_rejected_with_a_reason_and_change_nothing(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    handle = await incidents.report(make_incident())
    before = await incidents.state(handle)

    illegal: list[tuple[Any, Any, str]] = [
        (IncidentWorkflow.resolve, Resolve(unit_id="g-nanjing-07", resolution="x"), "not accepted or paused"),
        (IncidentWorkflow.accept, Accept(unit_id="s-nanjing-east"), "does not hold"),
        (IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED), "not resolved"),
        (IncidentWorkflow.pause, Pause(unit_id="g-nanjing-07"), "is dispatched, not accepted"),
        (IncidentWorkflow.resume, Resume(unit_id="g-nanjing-07"), "not paused"),
        (IncidentWorkflow.progress, Progress(unit_id="g-nanjing-07", note="x"), "cannot note progress"),
    ]
    for update, command, expected in illegal:
        assert expected in await refusal(handle.execute_update(update, command))
    assert await incidents.state(handle) == before

    await incidents.command(handle, IncidentWorkflow.withdraw, Withdraw())
    closed = await incidents.state(handle)
    # A closed incident's workflow has completed: the server itself refuses anything more.
    with pytest.raises(RPCError, match="workflow execution already completed"):
        await handle.execute_update(IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))
    assert await incidents.state(handle) == closed
    # Rejected updates never reach the history: validators refused them.
    history = await handle.fetch_history()
    accepted_updates = [
        e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted_updates) == 1


async def test_urgent_incidents_follow_the_urgent_ladder(incidents: Incidents) -> None:
    handle = await incidents.report(make_incident(priority=Priority.URGENT))
    state = await incidents.state(handle)
    assert state.rule is not None and state.rule.rule.name == "urgent"
    assert state.accept_deadline is not None
    assert state.accept_deadline - state.timeline[-1].at == timedelta(minutes=15)

    state = await incidents.advance(handle, timedelta(minutes=16))
    assert state.level == "street"


async def test_a_running_incident_keeps_its_rule_snapshot_when_the_rules_change(incidents: Incidents) -> None:
    first = await incidents.report(make_incident())
    stricter = builtin_rule_set().model_copy(
        update={
            "version": "2",
            "rules": [
                Rule(
                    name="strict",
                    ladder={"grid": LevelLimits(accept=timedelta(minutes=10), resolve=timedelta(hours=1))},
                )
            ],
        }
    )
    incidents.rules.replace(stricter)
    second = await incidents.report(make_incident())

    state = await incidents.advance(first, timedelta(minutes=30))
    assert state.rule is not None and (state.rule.rule.name, state.rule.rules_version) == (
        "default",
        "2026-11-1",
    )
    assert state.level == "grid"  # still on the 2 h accept limit of its snapshot
    second_state = await incidents.state(second)
    assert second_state.rule is not None and second_state.rule.rule.name == "strict"
    assert second_state.overdue  # a one-level ladder: nothing above the grid


async def test_search_attributes_let_operators_find_incidents_without_personal_data(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    incident = make_incident()
    handle = await incidents.report(incident)
    await incidents.command(
        handle,
        IncidentWorkflow.request_escalation,
        RequestEscalation(unit_id="g-nanjing-07", reason=EscalationRequestReason.NOT_RESPONSIBLE),
    )

    found = (await handle.describe()).typed_search_attributes
    values = {pair.key.name: pair.value for pair in found if pair.key.name.startswith("Gridflow")}
    assert values.pop("GridflowNextDeadline") == (await incidents.state(handle)).accept_deadline
    assert values == {
        "GridflowCategory": "street_lamp",
        "GridflowPriority": "normal",
        "GridflowDistrict": "d-huangpu",
        "GridflowLevel": "street",
        "GridflowStatus": "dispatched",
        "GridflowRule": "default",
    }
    query = f"GridflowLevel = 'street' AND GridflowDistrict = 'd-huangpu' AND WorkflowId = '{handle.id}'"
    for _ in range(100):  # visibility is eventually consistent
        listed = [w.id async for w in incidents.env.client.list_workflows(query)]
        if listed:
            break
        await asyncio.sleep(0.1)
    assert listed == [handle.id]


async def test_an_open_incidents_next_deadline_is_a_search_attribute_and_only_a_running_clock_is_due(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    handle = await incidents.report(make_incident())

    async def next_deadline() -> datetime | None:
        return (await handle.describe()).typed_search_attributes.get(sa.NEXT_DEADLINE)

    dispatched = await incidents.state(handle)
    assert dispatched.accept_deadline is not None
    assert await next_deadline() == dispatched.accept_deadline
    accepted = await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))
    assert accepted.status is Status.ACCEPTED
    assert await next_deadline() == (await incidents.state(handle)).resolve_deadline
    client = incidents.env.client

    async def due_by(moment: datetime, expected: list[str]) -> None:
        query = f"WorkflowId = '{handle.id}' AND {sa.due_between(None, moment)}"
        listed: list[str] = []
        for _ in range(100):  # visibility is eventually consistent
            listed = [w.id async for w in client.list_workflows(query)]
            if listed == expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"listed {listed}, not {expected}")

    await incidents.command(handle, IncidentWorkflow.pause, Pause(unit_id="g-nanjing-07", reason="parts"))
    paused_at = await next_deadline()
    assert paused_at is not None
    await due_by(paused_at + timedelta(days=30), [])  # a paused clock does not run out
    await incidents.command(handle, IncidentWorkflow.resume, Resume(unit_id="g-nanjing-07"))
    resumed = (await incidents.state(handle)).resolve_deadline
    assert resumed is not None and await next_deadline() == resumed

    # Supervisors list what runs out soon: by the deadline and a minute, not a minute before it.
    await due_by(resumed + timedelta(minutes=1), [handle.id])
    await due_by(resumed - timedelta(minutes=1), [])

    await incidents.command(
        handle, IncidentWorkflow.resolve, Resolve(unit_id="g-nanjing-07", resolution="new bulb")
    )
    await due_by(resumed + timedelta(minutes=1), [])  # waiting for the resident: no SLA clock


async def test_a_misdispatched_incident_is_transferred_to_the_right_unit_which_accepts_it(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    handle = await incidents.report(make_incident())
    transfer = Transfer(unit_id="g-nanjing-07", to_unit="g-nanjing-08", reason="the next grid's lamp")

    summary = await incidents.command(handle, IncidentWorkflow.transfer, transfer)

    assert (summary.status, summary.level, summary.holder_unit) == (Status.DISPATCHED, "grid", "g-nanjing-08")
    problem = await refusal(
        incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))
    )
    assert "unit g-nanjing-07 does not hold incident" in problem
    await _accept_and_resolve(incidents, handle, "g-nanjing-08")
    await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED))
    state = await incidents.state(handle)
    moved = next(step for step in state.timeline if step.kind is StepKind.TRANSFERRED)
    assert (moved.from_unit, moved.unit_id, moved.reason) == ("g-nanjing-07", "g-nanjing-08", transfer.reason)
    assert (state.outcome, state.transfers, state.escalations) == (Outcome.RESOLVED, 1, 0)


async def test_the_level_above_grants_an_extension_and_the_resolve_deadline_moves(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    handle = await incidents.report(make_incident())
    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id="g-nanjing-07"))
    before = (await incidents.state(handle)).resolve_deadline
    assert before is not None

    ask = RequestExtension(unit_id="g-nanjing-07", extra="8h", reason="the pole needs a crane")
    await incidents.command(handle, IncidentWorkflow.request_extension, ask)
    problem = await refusal(
        incidents.command(handle, IncidentWorkflow.grant_extension, GrantExtension(unit_id="g-nanjing-07"))
    )
    assert "unit g-nanjing-07 does not decide extensions" in problem and "(s-nanjing-east does)" in problem
    grant = GrantExtension(unit_id="s-nanjing-east", note="book it today")
    summary = await incidents.command(handle, IncidentWorkflow.grant_extension, grant)

    state = await incidents.state(handle)
    assert (summary.status, state.extensions, state.extension) == (Status.ACCEPTED, 1, None)
    assert state.resolve_deadline == before + timedelta(hours=8)
    assert (await handle.describe()).typed_search_attributes.get(sa.NEXT_DEADLINE) == state.resolve_deadline
    granted = next(step for step in state.timeline if step.kind is StepKind.EXTENSION_GRANTED)
    assert (granted.actor, granted.extension, granted.deadline) == (
        "s-nanjing-east",
        "8h",
        state.resolve_deadline,
    )


async def test_an_inspector_rejects_a_fix_then_verifies_the_rework_before_the_resident_is_asked(
    live_incidents: Incidents,
) -> None:
    incidents = live_incidents
    incidents.rules.replace(parse_rule_set(VERIFYING, "verify.yaml"))
    handle = await incidents.report(make_incident())
    await _accept_and_resolve(incidents, handle, "g-nanjing-07")
    summary = await incidents.command(
        handle, IncidentWorkflow.reject, Reject(unit_id="inspector-g-nanjing-07", reason="still dark")
    )
    assert (summary.status, summary.holder_unit) == (Status.ACCEPTED, "g-nanjing-07")
    problem = await refusal(
        incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED))
    )
    assert "it is accepted, not resolved" in problem

    await incidents.command(
        handle, IncidentWorkflow.resolve, Resolve(unit_id="g-nanjing-07", resolution="rewired")
    )
    state = await incidents.state(handle)
    assert state.status is Status.VERIFYING
    assert (await handle.describe()).typed_search_attributes.get(sa.NEXT_DEADLINE) == state.verify_deadline
    await incidents.command(handle, IncidentWorkflow.verify, Verify(unit_id="inspector-g-nanjing-07"))
    await incidents.command(handle, IncidentWorkflow.feedback, Feedback(rating=Rating.SATISFIED, solved=True))

    result = await handle.result()
    state = await incidents.state(handle)
    assert (result.outcome, state.reworks) == (Outcome.RESOLVED, 1)
    assert [s.kind for s in state.timeline if s.kind in (StepKind.REJECTED, StepKind.VERIFIED)] == [
        StepKind.REJECTED,
        StepKind.VERIFIED,
    ]


async def _accept_and_resolve(
    incidents: Incidents, handle: WorkflowHandle[IncidentWorkflow, IncidentSummary], unit: str
) -> None:
    await incidents.command(handle, IncidentWorkflow.accept, Accept(unit_id=unit))
    await incidents.command(handle, IncidentWorkflow.resolve, Resolve(unit_id=unit, resolution="fixed"))
