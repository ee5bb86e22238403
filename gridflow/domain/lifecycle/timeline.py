"""The timeline of an incident: every step of its life, numbered from 1."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle.clock import ClockKind


class StepKind(StrEnum):
    """Every kind of step in an incident's life; each becomes a timeline entry and a lifecycle event."""

    REPORTED = "reported"
    DISPATCHED = "dispatched"
    NOTIFIED = "notified"  # an extra department told of the incident (the rule's whistle)
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ESCALATED = "escalated"
    TRANSFERRED = "transferred"  # moved to another unit at the same level (a dispatch corrected)
    EXTENSION_REQUESTED = "extension_requested"  # the holder asks for more time to resolve
    EXTENSION_GRANTED = "extension_granted"  # the resolve deadline moves
    EXTENSION_REFUSED = "extension_refused"  # refused, undecided in time, or lapsed
    OVERDUE = "overdue"
    OVERDUE_REMINDER = "overdue_reminder"
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    VERIFIED = "verified"  # the inspector confirms the fix
    REJECTED = "rejected"  # the inspector sends it back: rework
    FEEDBACK = "feedback"
    REOPENED = "reopened"
    CLOSED = "closed"


class Step(BaseModel):
    """One entry of the timeline. `seq` numbers the steps of an incident from 1, with no gaps."""

    seq: int
    kind: StepKind
    at: datetime
    level: str | None = None
    unit_id: str | None = None
    status: Status
    reason: str | None = None
    note: str | None = None
    clock: ClockKind | None = None
    fraction: float | None = None
    deadline: datetime | None = None
    within_limit: bool | None = None  # accepted, resolved: in time; closed: its last resolution in time
    from_level: str | None = None
    to_level: str | None = None
    from_unit: str | None = None  # transferred: the unit that held the incident before
    actor: str | None = None  # extension decided, verified, rejected: the approver or the inspector
    extension: str | None = None  # extension steps: the extra time asked for (`8h`, `2wd`)
    rating: Rating | None = None
    solved: bool | None = None  # feedback: whether the resident says the problem was solved, if asked
    outcome: Outcome | None = None
    elapsed: timedelta | None = None  # accepted: since dispatch at this level; resolved: since reported
    escalations: int | None = None  # closed: how many times the incident went up a level
    deferred: bool | None = None  # closed: whether the incident was ever paused (deferred)
    event_at: datetime | None = None  # when the upstream app says it happened, if it said
