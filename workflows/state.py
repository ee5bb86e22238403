"""The incident workflow's typed input, state, timeline and result. Pure data: no clocks, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from gridflow.incident import EscalationReason, Incident, Outcome, Priority, Rating, Status
from gridflow.rules.calendar import SlaClock
from gridflow.rules.model import RuleSnapshot


class ClockKind(StrEnum):
    """The two SLA clocks of a level."""

    ACCEPT = "accept"
    RESOLVE = "resolve"


class PlannedWarning(BaseModel):
    """A warning a clock will give at a fraction of its limit, and when."""

    fraction: float
    at: datetime


class Clock(BaseModel):
    """One SLA clock. Its limit counts working time on the level's business calendar (or wall-clock
    time); `deadline` and the warnings are real instants, planned when the clock starts or resumes."""

    kind: ClockKind
    started_at: datetime  # when the clock last started running
    limit: timedelta
    consumed: timedelta = timedelta(0)  # counted time used before `started_at` (earlier running spells)
    deadline: datetime
    warnings: list[PlannedWarning] = Field(default_factory=list)
    paused_for: timedelta = timedelta(0)  # wall-clock time spent paused, for the record
    paused_since: datetime | None = None
    warned: list[float] = Field(default_factory=list)
    breached: bool = False

    @classmethod
    def start(
        cls, kind: ClockKind, now: datetime, limit: timedelta, warn_at: list[float], sla: SlaClock
    ) -> Clock:
        """A clock running from now."""
        clock = cls(kind=kind, started_at=now, limit=limit, deadline=now)
        clock._plan(warn_at, sla)
        return clock

    def _plan(self, warn_at: list[float], sla: SlaClock) -> None:
        start, left = self.started_at, self.limit - self.consumed
        self.deadline = sla.add(start, max(left, timedelta(0)))
        self.warnings = [
            PlannedWarning(
                fraction=fraction,
                at=sla.add(start, self.limit * fraction - self.consumed)
                if self.limit * fraction > self.consumed
                else start,
            )
            for fraction in warn_at
            if fraction not in self.warned
        ]

    def pause(self, now: datetime, sla: SlaClock) -> None:
        """Stop counting; the time counted so far is kept."""
        self.consumed += sla.working_between(self.started_at, now)
        self.paused_since = now

    def resume(self, at: datetime, warn_at: list[float], sla: SlaClock) -> None:
        """Count again from `at`; the deadline and the warnings move by the time paused."""
        assert self.paused_since is not None
        self.paused_for += at - self.paused_since
        self.paused_since = None
        self.started_at = at
        self._plan(warn_at, sla)

    def warning_due(self) -> tuple[float, datetime] | None:
        """The next warning this clock has not yet given, and when it is due; None while paused."""
        if self.paused_since is not None or self.breached:
            return None
        pending = [w for w in self.warnings if w.fraction not in self.warned]
        if not pending:
            return None
        first = min(pending, key=lambda w: (w.at, w.fraction))
        return first.fraction, first.at

    def breach_due(self) -> datetime | None:
        """When the clock runs out; None while paused or once it has run out."""
        if self.paused_since is not None or self.breached:
            return None
        return self.deadline


class StepKind(StrEnum):
    """Every kind of step in an incident's life; each becomes a timeline entry and a lifecycle event."""

    REPORTED = "reported"
    DISPATCHED = "dispatched"
    NOTIFIED = "notified"  # an extra department told of the incident (the rule's whistle)
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ESCALATED = "escalated"
    OVERDUE = "overdue"
    OVERDUE_REMINDER = "overdue_reminder"
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    PAUSED = "paused"
    RESUMED = "resumed"
    RESOLVED = "resolved"
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
    within_limit: bool | None = None
    from_level: str | None = None
    to_level: str | None = None
    rating: Rating | None = None
    outcome: Outcome | None = None
    elapsed: timedelta | None = None  # accepted: since dispatch at this level; resolved: since reported
    escalations: int | None = None  # closed: how many times the incident went up a level
    event_at: datetime | None = None  # when the upstream app says it happened, if it said


class IncidentState(BaseModel):
    """Everything an incident's workflow knows: what a query returns and what continue-as-new carries."""

    incident_id: str
    category: str
    priority: Priority
    district_id: str
    reported_at: datetime
    rule: RuleSnapshot | None = None
    level: str | None = None
    level_index: int = 0
    status: Status = Status.REPORTED
    holder_unit: str | None = None
    accept_clock: Clock | None = None
    resolve_clock: Clock | None = None
    feedback_deadline: datetime | None = None
    overdue: bool = False
    next_reminder_at: datetime | None = None
    paused_total: timedelta = timedelta(0)
    reopen_count: int = 0
    escalations: int = 0
    rating: Rating | None = None
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
        return None

    @property
    def reminding(self) -> bool:
        """Whether overdue reminders are due: overdue at the top level and not yet resolved."""
        return self.overdue and self.status in (Status.DISPATCHED, Status.ACCEPTED, Status.PAUSED)

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
        if self.status is Status.RESOLVED and self.feedback_deadline is not None:
            candidates.append(self.feedback_deadline)
        if self.reminding and self.next_reminder_at is not None:
            candidates.append(self.next_reminder_at)
        return min(candidates, default=None)


class IncidentInput(BaseModel):
    """What starts an incident workflow: the report, and on continue-as-new the state so far."""

    incident: Incident
    carried: IncidentState | None = None


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
    rule_name: str | None
    rules_version: str | None


class StepBatch(IncidentContext):
    """Steps to publish, with their incident's context."""

    levels: list[str] = Field(default_factory=list)  # the rule's ladder, bottom to top
    steps: list[Step]


__all__ = [
    "Clock",
    "ClockKind",
    "EscalationReason",
    "IncidentContext",
    "IncidentInput",
    "IncidentState",
    "IncidentSummary",
    "Step",
    "StepBatch",
    "StepKind",
]
