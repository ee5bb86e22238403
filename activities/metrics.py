"""Lifecycle metrics counted from published steps: exact under activity retries and workflow replays.

Steps are counted in the publishing activity, after every other sink has taken them, and each
(incident, seq) is counted once: a retried activity brings the same steps again and they are skipped,
and a replayed workflow re-runs no activity at all. Labels are low-cardinality only (no incident,
grid, unit or person).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Histogram

from gridflow.domain.incident import EscalationReason, Outcome, Rating
from gridflow.domain.lifecycle import Step, StepBatch, StepKind

_BASE = ["category", "priority", "district", "rule"]
#: How an extension request ends (gridflow_extensions_decided_total's `decision`).
EXTENSION_DECISIONS = ("granted", "refused", "undecided", "lapsed")
_TIME_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 432000, 864000, 2592000)


class LifecycleMetrics:
    """The `gridflow_*` incident metrics (README: Operating gridflow, Metrics), in one process's registry.

    The composition root creates the registry (one per process) and serves it; nothing registers at
    import, so what a process exposes does not depend on what it happened to import.
    """

    def __init__(self, registry: CollectorRegistry, remember: int = 200_000) -> None:
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._remember = remember
        self._initialised: set[tuple[str, ...]] = set()
        self.registry = registry
        self.received = Counter(
            "gridflow_incidents_received_total", "Incidents reported.", _BASE, registry=registry
        )
        self.dispatched = Counter(
            "gridflow_incidents_dispatched_total",
            "Dispatches of an incident to a unit.",
            [*_BASE, "level"],
            registry=registry,
        )
        self.accepted = Counter(
            "gridflow_incidents_accepted_total",
            "Dispatches accepted, within the accept limit or after it (within_limit).",
            [*_BASE, "level", "within_limit"],
            registry=registry,
        )
        self.escalated = Counter(
            "gridflow_incidents_escalated_total",
            "Escalations from one level to the next, by reason.",
            [*_BASE, "from_level", "to_level", "reason"],
            registry=registry,
        )
        self.transferred = Counter(
            "gridflow_incidents_transferred_total",
            "Transfers to another unit at the same level: dispatches corrected (dispatch accuracy).",
            [*_BASE, "level"],
            registry=registry,
        )
        self.extension_requests = Counter(
            "gridflow_extension_requests_total",
            "Requests for more time to resolve, by the level whose holder asked.",
            [*_BASE, "level"],
            registry=registry,
        )
        self.extensions_decided = Counter(
            "gridflow_extensions_decided_total",
            "Extension requests ended: granted, refused by the approver, undecided in time, or lapsed.",
            [*_BASE, "level", "decision"],
            registry=registry,
        )
        self.verifications = Counter(
            "gridflow_verifications_total",
            "Resolutions the inspector checked: verified, or rejected (rework).",
            [*_BASE, "level", "result"],
            registry=registry,
        )
        self.sla_warnings = Counter(
            "gridflow_sla_warnings_total",
            "SLA warnings given (at warn_at of a clock).",
            [*_BASE, "level", "clock"],
            registry=registry,
        )
        self.sla_breaches = Counter(
            "gridflow_sla_breaches_total",
            "SLA clocks that ran out.",
            [*_BASE, "level", "clock"],
            registry=registry,
        )
        self.overdue = Counter(
            "gridflow_incidents_overdue_total",
            "Incidents overdue at the top of their ladder.",
            [*_BASE, "level"],
            registry=registry,
        )
        self.resolved = Counter(
            "gridflow_incidents_resolved_total",
            "Resolutions reported, within the resolve limit or after it.",
            [*_BASE, "level", "within_limit"],
            registry=registry,
        )
        self.reopened = Counter(
            "gridflow_incidents_reopened_total",
            "Incidents reopened after an unsatisfied rating or a problem not solved.",
            [*_BASE, "level"],
            registry=registry,
        )
        self.feedback = Counter(
            "gridflow_feedback_total",
            "Ratings given by residents.",
            [*_BASE, "level", "rating"],
            registry=registry,
        )
        self.return_visits = Counter(
            "gridflow_return_visits_total",
            "Return visits that asked the resident whether the problem was solved, by the answer.",
            [*_BASE, "level", "solved"],
            registry=registry,
        )
        self.closed = Counter(
            "gridflow_incidents_closed_total",
            "Incidents closed, by outcome, the highest level they reached, and whether they were escalated.",
            [*_BASE, "level", "outcome", "escalated"],
            registry=registry,
        )
        self.closures_due = Counter(
            "gridflow_closures_due_total",
            "Resolved closures of incidents never deferred (paused), by whether the last resolution was "
            "within its limit: the on-time closure rate's closures due.",
            [*_BASE, "level", "on_time"],
            registry=registry,
        )
        self.time_to_accept = Histogram(
            "gridflow_time_to_accept_seconds",
            "Time from dispatch to acceptance at a level.",
            ["category", "priority", "level"],
            buckets=_TIME_BUCKETS,
            registry=registry,
        )
        self.time_to_resolve = Histogram(
            "gridflow_time_to_resolve_seconds",
            "Time from report to resolution, by the level that resolved it.",
            ["category", "priority", "level"],
            buckets=_TIME_BUCKETS,
            registry=registry,
        )

    def _first_time(self, incident_id: str, seq: int) -> bool:
        key = (incident_id, seq)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return True

    def observe(self, batch: StepBatch) -> None:
        """Count the steps of a batch that have not been counted before."""
        base = {
            "category": batch.category,
            "priority": batch.priority.value,
            "district": batch.district_id,
            "rule": batch.rule_name or "",
        }
        key = tuple(base.values())
        if key not in self._initialised and batch.levels:
            self._initialise(base, batch.levels)
            self._initialised.add(key)
        for step in batch.steps:
            if self._first_time(batch.incident_id, step.seq):
                self._count(step, base)

    def _initialise(self, base: dict[str, str], levels: list[str]) -> None:
        """Create every series of a label set at zero, so that rates see its first increments.

        Prometheus cannot see the increments a series had before its first scrape; series that exist
        (at zero) from the first incident of a district, category, priority and rule on are exact.
        """
        category, priority = base["category"], base["priority"]
        for level in levels:
            self.dispatched.labels(**base, level=level)
            self.transferred.labels(**base, level=level)
            self.extension_requests.labels(**base, level=level)
            for flag in ("true", "false"):
                self.closures_due.labels(**base, level=level, on_time=flag)
            for result in ("verified", "rejected"):
                self.verifications.labels(**base, level=level, result=result)
            for decision in EXTENSION_DECISIONS:
                self.extensions_decided.labels(**base, level=level, decision=decision)
            self.overdue.labels(**base, level=level)
            self.reopened.labels(**base, level=level)
            self.time_to_accept.labels(category, priority, level)
            self.time_to_resolve.labels(category, priority, level)
            for flag in ("true", "false"):
                self.accepted.labels(**base, level=level, within_limit=flag)
                self.resolved.labels(**base, level=level, within_limit=flag)
            for clock in ("accept", "resolve", "verify"):
                self.sla_warnings.labels(**base, level=level, clock=clock)
                self.sla_breaches.labels(**base, level=level, clock=clock)
            for rating in Rating:
                self.feedback.labels(**base, level=level, rating=rating.value)
            for answer in ("true", "false"):
                self.return_visits.labels(**base, level=level, solved=answer)
            for outcome in Outcome:
                for escalated in ("true", "false"):
                    self.closed.labels(**base, level=level, outcome=outcome.value, escalated=escalated)
        for lower, upper in itertools.pairwise(levels):
            for reason in EscalationReason:
                self.escalated.labels(**base, from_level=lower, to_level=upper, reason=reason.value)

    def _count(self, step: Step, base: dict[str, str]) -> None:
        level = step.level or ""
        kind = step.kind
        if kind is StepKind.REPORTED:
            self.received.labels(**base).inc()
        elif kind is StepKind.DISPATCHED:
            self.dispatched.labels(**base, level=level).inc()
        elif kind is StepKind.ACCEPTED:
            self.accepted.labels(**base, level=level, within_limit=_yes(step.within_limit)).inc()
            if step.elapsed is not None:
                self.time_to_accept.labels(base["category"], base["priority"], level).observe(
                    step.elapsed.total_seconds()
                )
        elif kind is StepKind.ESCALATED:
            self.escalated.labels(
                **base,
                from_level=step.from_level or "",
                to_level=step.to_level or "",
                reason=step.reason or "",
            ).inc()
        elif kind is StepKind.TRANSFERRED:
            self.transferred.labels(**base, level=level).inc()
        elif kind is StepKind.EXTENSION_REQUESTED:
            self.extension_requests.labels(**base, level=level).inc()
        elif kind is StepKind.EXTENSION_GRANTED:
            self.extensions_decided.labels(**base, level=level, decision="granted").inc()
        elif kind is StepKind.EXTENSION_REFUSED:
            # The approver refused (it is the actor), or nobody did: undecided in time, or lapsed.
            decision = "refused" if step.actor else step.reason or "lapsed"
            self.extensions_decided.labels(**base, level=level, decision=decision).inc()
        elif kind in (StepKind.VERIFIED, StepKind.REJECTED):
            self.verifications.labels(**base, level=level, result=kind.value).inc()
        elif kind is StepKind.SLA_WARNING:
            self.sla_warnings.labels(**base, level=level, clock=step.clock.value if step.clock else "").inc()
        elif kind is StepKind.SLA_BREACHED:
            self.sla_breaches.labels(**base, level=level, clock=step.clock.value if step.clock else "").inc()
        elif kind is StepKind.OVERDUE:
            self.overdue.labels(**base, level=level).inc()
        elif kind is StepKind.RESOLVED:
            self.resolved.labels(**base, level=level, within_limit=_yes(step.within_limit)).inc()
            if step.elapsed is not None:
                self.time_to_resolve.labels(base["category"], base["priority"], level).observe(
                    step.elapsed.total_seconds()
                )
        elif kind is StepKind.REOPENED:
            self.reopened.labels(**base, level=level).inc()
        elif kind is StepKind.FEEDBACK:
            self.feedback.labels(**base, level=level, rating=step.rating.value if step.rating else "").inc()
            if step.solved is not None:
                self.return_visits.labels(**base, level=level, solved=_yes(step.solved)).inc()
        elif kind is StepKind.CLOSED:
            outcome = step.outcome or Outcome.WITHDRAWN
            escalated = _yes(bool(step.escalations))
            self.closed.labels(**base, level=level, outcome=outcome.value, escalated=escalated).inc()
            if outcome.is_resolved and step.deferred is False:
                self.closures_due.labels(**base, level=level, on_time=_yes(step.within_limit)).inc()


def _yes(flag: bool | None) -> str:
    return "true" if flag else "false"


class MetricsSink:
    """The step sink that counts; put it last so only steps every other sink took are counted."""

    def __init__(self, metrics: LifecycleMetrics) -> None:
        self._metrics = metrics

    async def publish(self, batch: StepBatch) -> None:
        """Count the batch's new steps."""
        self._metrics.observe(batch)
