"""An incident's case file: where it stands as of its last archived step, moved forward step by step.

Pure: `advance` folds steps into the current state the way the archive's `incidents` row keeps it.
Every step carries the incident's level, holding unit and status after it (a `notified` step names the
department told instead of the holder), so the row needs no more than the steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gridflow.domain.incident import Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import IncidentContext, IncidentStep, StepKind


class ArchivedIncident(IncidentContext):
    """An incident as the archive keeps it: its context and where it stands as of step `last_seq`."""

    model_config = ConfigDict(frozen=True)

    priority: Priority
    reported_at: datetime | None  # None when its `reported` step was never archived
    level: str | None
    status: Status
    holder_unit: str | None
    outcome: Outcome | None
    rating: Rating | None
    solved: bool | None
    escalations: int
    reopens: int
    last_seq: int
    closed_at: datetime | None
    updated_at: datetime  # the instant of step `last_seq`


class ArchiveCounts(BaseModel):
    """How much the archive holds."""

    incidents: int
    steps: int


def advance(current: ArchivedIncident | None, steps: Iterable[IncidentStep]) -> ArchivedIncident | None:
    """The incident after `steps` (all of one incident); steps at or before `current.last_seq` are
    skipped, so an older step delivered again changes nothing. None only when there was nothing."""
    state = current
    for step in sorted(steps, key=lambda s: s.seq):
        if state is not None and step.seq <= state.last_seq:
            continue
        state = _apply(state, step)
    return state


def _apply(state: ArchivedIncident | None, step: IncidentStep) -> ArchivedIncident:
    context = step.model_dump(include=set(IncidentContext.model_fields))
    reported_at = state.reported_at if state is not None else None
    if step.kind is StepKind.REPORTED:
        reported_at = step.event_at or step.at
    holder = state.holder_unit if state is not None else None
    if step.kind is not StepKind.NOTIFIED:  # a notified step's unit is the department told
        holder = step.unit_id
    escalations = state.escalations if state is not None else 0
    if step.kind is StepKind.ESCALATED:
        escalations += 1
    if step.kind is StepKind.CLOSED and step.escalations is not None:
        escalations = step.escalations  # the workflow's own count, whatever the archive missed
    return ArchivedIncident(
        **context,
        reported_at=reported_at,
        level=step.level if step.level is not None else (state.level if state else None),
        status=step.status,
        holder_unit=holder,
        outcome=step.outcome if step.kind is StepKind.CLOSED else (state.outcome if state else None),
        rating=step.rating if step.rating is not None else (state.rating if state else None),
        solved=step.solved if step.kind is StepKind.FEEDBACK else (state.solved if state else None),
        escalations=escalations,
        reopens=(state.reopens if state else 0) + (step.kind is StepKind.REOPENED),
        last_seq=step.seq,
        closed_at=step.at if step.kind is StepKind.CLOSED else (state.closed_at if state else None),
        updated_at=step.at,
    )


__all__ = ["ArchiveCounts", "ArchivedIncident", "advance"]
