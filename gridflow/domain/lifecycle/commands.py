"""The lifecycle commands handlers and residents send to an incident (in Temporal: updates)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from gridflow.domain.incident import Identifier, Rating
from gridflow.domain.rules.durations import Limit


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime | None = None  # when the upstream app says it happened; the workflow keeps its own time


class _UnitCommand(_Command):
    unit_id: Identifier  # must be the unit that holds the incident


class Accept(_UnitCommand):
    """The holding unit takes the incident on; starts its resolve clock."""

    handler: str | None = Field(default=None, max_length=200)


class Progress(_UnitCommand):
    """A note from the holding unit about work under way."""

    note: str | None = Field(default=None, max_length=2000)


class EscalationRequestReason(StrEnum):
    """Why a handler asks to pass the incident up."""

    REQUESTED = "requested"  # beyond this level's authority or means
    NOT_RESPONSIBLE = "not_responsible"  # not this unit's matter


class RequestEscalation(_UnitCommand):
    """The holding unit asks to pass the incident to the next level."""

    reason: EscalationRequestReason
    note: str | None = Field(default=None, max_length=2000)


class Pause(_UnitCommand):
    """Stop the resolve clock (waiting for the resident, for parts, for the weather)."""

    reason: str | None = Field(default=None, max_length=500)


class Resume(_UnitCommand):
    """Restart a paused resolve clock."""


class Transfer(_Command):
    """Move the incident to another unit at the same level (the right department): by the holding
    unit (`unit_id`), or by the dispatch centre (no `unit_id`). Counted against dispatch accuracy."""

    unit_id: Identifier | None = None  # the holding unit; None: the dispatch centre
    to_unit: Identifier
    reason: str = Field(min_length=1, max_length=500)


class RequestExtension(_UnitCommand):
    """The holding unit asks for more time to resolve (`extra`: a duration or working days)."""

    extra: Limit
    reason: str = Field(min_length=1, max_length=500)


class GrantExtension(_UnitCommand):
    """The approver (`unit_id`) grants the pending extension: the resolve deadline moves."""

    note: str | None = Field(default=None, max_length=2000)


class RefuseExtension(_UnitCommand):
    """The approver (`unit_id`) refuses the pending extension: the resolve deadline stays."""

    reason: str = Field(min_length=1, max_length=500)


class Verify(_UnitCommand):
    """The inspector (`unit_id`) confirms the reported fix: the resident is asked next."""

    note: str | None = Field(default=None, max_length=2000)


class Reject(_UnitCommand):
    """The inspector (`unit_id`) finds the fix not done: rework, back to the unit that resolved it."""

    reason: str = Field(min_length=1, max_length=500)


class Resolve(_UnitCommand):
    """The holding unit reports the incident solved; the resident is asked for feedback."""

    resolution: str = Field(min_length=1, max_length=2000)


class Feedback(_Command):
    """The return visit: the resident's rating of a resolved incident and, when asked, whether the
    problem was solved (12345's second question). Not solved reopens the case as unsatisfied does."""

    rating: Rating
    solved: bool | None = None  # None: the question was not asked (events from before it existed)
    comment: str | None = Field(default=None, max_length=2000)


class Withdraw(_Command):
    """The reporter (or the hotline) withdraws the incident; it closes from any open state."""

    reason: str | None = Field(default=None, max_length=500)


LifecycleCommand = (
    Accept
    | Progress
    | RequestEscalation
    | Transfer
    | RequestExtension
    | GrantExtension
    | RefuseExtension
    | Pause
    | Resume
    | Resolve
    | Verify
    | Reject
    | Feedback
    | Withdraw
)
