"""What an incident's lifecycle knows (its state) and the views of it others get. Pure data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Self

from pydantic import BaseModel, Field

from gridflow.domain.incident import Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle.clock import Clock
from gridflow.domain.lifecycle.timeline import Step
from gridflow.domain.rules.durations import Limit
from gridflow.domain.rules.model import RuleSnapshot


class PendingExtension(BaseModel):
    """A holder's request for more time, waiting for its approver."""

    extra: Limit
    approver: str
    requested_at: datetime
    decide_by: datetime  # undecided by then: refused


class IncidentState(BaseModel):
    """Everything an incident's workflow knows: what a query returns and what continue-as-new carries."""

    incident_id: str
    category: str
    priority: Priority
    district_id: str
    street_id: str | None = None  # None in the state of incidents reported before it was kept
    reported_at: datetime
    rule: RuleSnapshot | None = None
    level: str | None = None
    level_index: int = 0
    status: Status = Status.REPORTED
    holder_unit: str | None = None
    # Units the incident was transferred to, by level: a reopen there goes back to them.
    units: dict[str, str] = Field(default_factory=dict)
    level_since: datetime | None = None  # when the incident first reached its current level
    level_transfers: int = 0  # transfers at the current level
    transfers: int = 0
    extension: PendingExtension | None = None  # a request waiting for its approver
    extensions: int = 0  # granted
    accept_clock: Clock | None = None
    resolve_clock: Clock | None = None
    verify_clock: Clock | None = None  # the inspector's, while verifying
    inspector: str | None = None  # who verifies the resolution now
    reworks: int = 0  # resolutions the inspector sent back
    feedback_deadline: datetime | None = None
    overdue: bool = False
    next_reminder_at: datetime | None = None
    paused_total: timedelta = timedelta(0)
    reopen_count: int = 0
    escalations: int = 0
    rating: Rating | None = None
    solved: bool | None = None
    outcome: Outcome | None = None
    flagged: bool = False
    closed_at: datetime | None = None
    timeline: list[Step] = Field(default_factory=list)

    @property
    def accept_deadline(self) -> datetime | None:
        """When the holder must accept by, while it has not."""
        clock = self.accept_clock
        return clock.deadline if clock and self.status is Status.DISPATCHED else None

    @property
    def resolve_deadline(self) -> datetime | None:
        """When the holder must resolve by (None while paused: the clock is stopped)."""
        clock = self.resolve_clock
        if clock is None or self.status is not Status.ACCEPTED:
            return None
        return clock.deadline

    @property
    def verify_deadline(self) -> datetime | None:
        """When the inspector must have verified by, while verifying."""
        clock = self.verify_clock
        return clock.deadline if clock and self.status is Status.VERIFYING else None

    @property
    def sla_deadline(self) -> datetime | None:
        """When the running SLA clock runs out: the accept deadline while dispatched, the resolve
        deadline while accepted, the verify deadline while verifying; None while no SLA clock runs
        (paused, resolved, closed)."""
        return self.accept_deadline or self.resolve_deadline or self.verify_deadline

    @property
    def is_open(self) -> bool:
        """Whether the incident is not yet closed."""
        return self.status is not Status.CLOSED

    @property
    def running_clock(self) -> Clock | None:
        """The SLA clock that is running now: accept while dispatched, resolve while accepted."""
        if self.status is Status.DISPATCHED:
            return self.accept_clock
        if self.status is Status.ACCEPTED:
            return self.resolve_clock
        if self.status is Status.VERIFYING:
            return self.verify_clock
        return None

    @property
    def reminding(self) -> bool:
        """Whether overdue reminders are due: overdue at the top level and not yet resolved, or a
        verification overdue and not yet done."""
        return self.overdue and self.status in (
            Status.DISPATCHED,
            Status.ACCEPTED,
            Status.PAUSED,
            Status.VERIFYING,
        )

    def pause_cap_at(self) -> datetime | None:
        """When a running pause ends by itself, because the rule's pause allowance runs out."""
        clock = self.resolve_clock
        if (
            self.rule is None
            or self.status is not Status.PAUSED
            or clock is None
            or clock.paused_since is None
        ):
            return None
        allowance = self.rule.rule.max_pause_for(self.level or "")
        return clock.paused_since + max(allowance - self.paused_total, timedelta(0))

    def next_due(self) -> datetime | None:
        """The earliest moment at which a clock will do something (warn, breach, remind, end), if any."""
        if self.rule is None or not self.is_open:
            return None
        candidates: list[datetime] = []
        clock = self.running_clock
        if clock is not None:
            warning = clock.warning_due()
            if warning is not None:
                candidates.append(warning[1])
            breach = clock.breach_due()
            if breach is not None:
                candidates.append(breach)
        if (cap := self.pause_cap_at()) is not None:
            candidates.append(cap)
        if self.extension is not None:
            candidates.append(self.extension.decide_by)
        if self.status is Status.RESOLVED and self.feedback_deadline is not None:
            candidates.append(self.feedback_deadline)
        if self.reminding and self.next_reminder_at is not None:
            candidates.append(self.next_reminder_at)
        return min(candidates, default=None)


class IncidentSummary(BaseModel):
    """A compact view of an incident: what a lifecycle command returns, and the workflow's result."""

    incident_id: str
    rule_name: str | None
    level: str | None
    status: Status
    holder_unit: str | None
    overdue: bool
    reopen_count: int
    escalations: int
    paused_total: timedelta
    rating: Rating | None
    outcome: Outcome | None
    flagged: bool
    solved: bool | None = None  # last: summaries returned before it existed lack it
    closed_at: datetime | None
    last_seq: int

    @classmethod
    def of(cls, state: IncidentState) -> IncidentSummary:
        """Summarise a state."""
        return cls(
            incident_id=state.incident_id,
            rule_name=state.rule.rule.name if state.rule else None,
            level=state.level,
            status=state.status,
            holder_unit=state.holder_unit,
            overdue=state.overdue,
            reopen_count=state.reopen_count,
            escalations=state.escalations,
            paused_total=state.paused_total,
            rating=state.rating,
            solved=state.solved,
            outcome=state.outcome,
            flagged=state.flagged,
            closed_at=state.closed_at,
            last_seq=state.timeline[-1].seq if state.timeline else 0,
        )


class IncidentContext(BaseModel):
    """What every published step says about its incident: low-cardinality facts, no personal data."""

    incident_id: str
    category: str
    priority: Priority
    district_id: str
    street_id: str | None = None  # the street (town) the incident is in: reports rank streets
    rule_name: str | None
    rules_version: str | None

    @classmethod
    def of(cls, state: IncidentState) -> IncidentContext:
        """The context of an incident's state (its rule's name and version once matched)."""
        return IncidentContext(
            incident_id=state.incident_id,
            category=state.category,
            priority=state.priority,
            district_id=state.district_id,
            street_id=state.street_id,
            rule_name=state.rule.rule.name if state.rule else None,
            rules_version=state.rule.rules_version if state.rule else None,
        )


class IncidentStep(Step, IncidentContext):
    """One step with its incident's context: what a lifecycle event carries and the archive keeps."""

    @classmethod
    def in_context(cls, context: IncidentContext, step: Step) -> Self:
        """The step with the context (in a subclass, the subclass: a lifecycle event's data)."""
        plain = IncidentContext.model_validate(context, from_attributes=True)  # a batch is a context too
        return cls(**step.model_dump(), **plain.model_dump())


class StepBatch(IncidentContext):
    """Steps to publish, with their incident's context."""

    levels: list[str] = Field(default_factory=list)  # the rule's ladder, bottom to top
    steps: list[Step]

    @classmethod
    def publishing(cls, state: IncidentState, steps: list[Step]) -> StepBatch:
        """The steps of an incident's state, with its context and its rule's ladder."""
        return StepBatch(
            **IncidentContext.of(state).model_dump(),
            levels=state.rule.rule.levels if state.rule else [],
            steps=steps,
        )
