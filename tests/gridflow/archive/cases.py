"""Real incident timelines for the archive's tests, played on the lifecycle core with chosen instants.

The steps are the ones the workflow would publish (the core is the workflow's code), with their
incident's context, as every lifecycle event carries them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridflow.domain.incident import Priority, Rating
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    IncidentContext,
    IncidentState,
    IncidentStep,
    LifecycleCommand,
    Pause,
    Resolve,
    Resume,
    StepBatch,
    apply,
    fire_due,
    next_due,
    report,
    start,
)
from gridflow.domain.rules import builtin_rule_set
from tests.conftest import make_incident

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)  # make_incident's reported_at
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
GRID, STREET = "g-nanjing-07", "s-nanjing-east"
RULES = builtin_rule_set()


def batch(state: IncidentState) -> StepBatch:
    """The incident's whole timeline as one batch to publish."""
    return StepBatch.publishing(state, list(state.timeline))


def archived(state: IncidentState) -> list[IncidentStep]:
    """The incident's whole timeline as the archive takes it."""
    context = IncidentContext.of(state)
    return [IncidentStep.in_context(context, step) for step in state.timeline]


def reopened_and_closed(incident_id: str, at: datetime = T0, category: str = "street_lamp") -> IncidentState:
    """A street lamp: accepted, paused and resumed, resolved, rated unsatisfied and not solved
    (reopened), accepted again, resolved again and rated satisfied and solved: closed as resolved.
    Handlers' words on every command."""
    incident = make_incident(incident_id=incident_id, category=category).model_copy(
        update={"reported_at": at}
    )
    state, _ = report(incident, at)
    start(state, incident, RULES.snapshot_for(incident), at)
    script: list[tuple[timedelta, LifecycleCommand]] = [
        (10 * MINUTE, Accept(unit_id=GRID, handler="Zhang Min")),
        (20 * MINUTE, Pause(unit_id=GRID, reason="waiting for parts")),
        (HOUR, Resume(unit_id=GRID)),
        (2 * HOUR, Resolve(unit_id=GRID, resolution="Replaced the bulb; Mr Li at no. 12 let us in")),
        (
            3 * HOUR,
            Feedback(rating=Rating.UNSATISFIED, solved=False, comment="Dark again, call me on 138 0000 0000"),
        ),
        (4 * HOUR, Accept(unit_id=GRID, handler="Zhang Min")),
        (5 * HOUR, Resolve(unit_id=GRID, resolution="Rewired the lamp")),
        (6 * HOUR, Feedback(rating=Rating.SATISFIED, solved=True, comment="Thank you")),
    ]
    for after, command in script:
        apply(state, incident, command, at + after)
    return state


def climbed(incident_id: str, at: datetime = T0, levels: int = 2) -> IncidentState:
    """An urgent incident nobody accepts: it climbs `levels` levels on accept timeouts, still open."""
    incident = make_incident(incident_id=incident_id, priority=Priority.URGENT).model_copy(
        update={"reported_at": at}
    )
    state, _ = report(incident, at)
    start(state, incident, RULES.snapshot_for(incident), at)
    while state.escalations < levels:
        due = next_due(state)
        assert due is not None
        fire_due(state, incident, due)
    return state
