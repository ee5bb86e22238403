"""The SLA clocks of a level: what they count, when they warn and when they run out. Pure arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from gridflow.domain.rules.calendar import SlaClock


class ClockKind(StrEnum):
    """The SLA clocks of a level: the holder's two, and the inspector's where the rule verifies."""

    ACCEPT = "accept"
    RESOLVE = "resolve"
    VERIFY = "verify"  # the inspector's, between a resolution and the resident's return visit


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
        cls,
        kind: ClockKind,
        now: datetime,
        limit: timedelta,
        warn_at: list[float],
        sla: SlaClock,
        consumed: timedelta = timedelta(0),
    ) -> Clock:
        """A clock running from now, with `consumed` of its limit already used elsewhere (a transfer
        that continues the level's clock); warnings already behind it are not given again."""
        passed = [fraction for fraction in warn_at if limit * fraction <= consumed] if consumed else []
        clock = cls(kind=kind, started_at=now, limit=limit, consumed=consumed, deadline=now, warned=passed)
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

    def extend(self, extra: timedelta, warn_at: list[float], sla: SlaClock) -> None:
        """Give the clock `extra` more counted time; the deadline and the warnings not yet given move.
        A paused clock plans them when it resumes."""
        self.limit += extra
        if self.paused_since is None:
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
