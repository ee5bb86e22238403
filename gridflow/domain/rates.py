"""The rates of PRODUCT.md section 1, computed from incident timelines (for simulations and reports).

The definitions are those of the Prometheus recording rules (deploy/prometheus/recording_rules.yml):
- response rate: dispatches accepted within the limit / (those + accept-clock breaches);
- resolution rate: closures that were resolved / all closures;
- satisfaction rate: satisfied or basically satisfied ratings / all ratings;
- resident-stated resolution: return visits where the resident says the problem was solved / return
  visits that asked (beside the resolution rate, which is the handler side's);
- containment per level: resolved closures at or below that level / resolved closures;
- on-time rate: resolutions within the resolve limit / all resolutions;
- escalation rate: closures escalated at least once / all closures;
- on-time closure: resolved closures of incidents never deferred whose last resolution was within its
  limit / resolved closures of incidents never deferred (GB/T 30428's closures due, deferrals excluded);
- rework rate: verifications that sent the fix back / verifications (verified + rejected);
- extension rate: extensions granted / resolutions (lower is better: resolved in the time first given);
- dispatch accuracy: dispatches not corrected by a transfer / dispatches (each transfer is a dispatch
  that went to the wrong unit, and makes one more dispatch to the right one);
- time to resolve: from report to (last) resolution, p50 and p90.

`add(state)` counts a whole incident (simulations); `add_step(step)` one step, so that a report over a
period counts the steps in it as Prometheus counts their increase (gridflow.domain.report).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from typing import Any

from gridflow.domain.incident import Outcome, Rating
from gridflow.domain.lifecycle import ClockKind, IncidentState, Step, StepKind


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _quantile(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class RateReport:
    """Counts and rates over a set of incidents (`add`), or of the steps of a period (`add_step`)."""

    incidents: int = 0
    closed: int = 0
    open: int = 0
    dispatches: int = 0
    transfers: int = 0
    extension_requests: int = 0
    closures_due: int = 0  # resolved closures of incidents never deferred (paused)
    closures_on_time: int = 0
    verifications: int = 0  # verified or rejected
    rejections: int = 0
    extensions_granted: int = 0
    accepted_in_time: int = 0
    accept_breaches: int = 0
    sla_breaches: int = 0  # every clock that ran out, accept or resolve
    resolutions: int = 0
    resolutions_in_time: int = 0
    ratings: int = 0
    satisfied_ratings: int = 0
    return_visits: int = 0  # feedback that answered whether the problem was solved
    solved_visits: int = 0
    resolved_closures: int = 0
    escalated_closures: int = 0
    escalations: int = 0
    reopens: int = 0
    closures_by_outcome: dict[str, int] = field(default_factory=dict)
    resolved_closures_by_level: dict[str, int] = field(default_factory=dict)
    resolve_seconds: list[float] = field(default_factory=list, repr=False)

    @property
    def response_rate(self) -> float | None:
        """Dispatches accepted within the limit, over dispatches that ended in acceptance or breach."""
        return _ratio(self.accepted_in_time, self.accepted_in_time + self.accept_breaches)

    @property
    def resolution_rate(self) -> float | None:
        """Closures that were resolved."""
        return _ratio(self.resolved_closures, self.closed)

    @property
    def satisfaction_rate(self) -> float | None:
        """Ratings that were satisfied or basically satisfied."""
        return _ratio(self.satisfied_ratings, self.ratings)

    @property
    def resident_resolution_rate(self) -> float | None:
        """Return visits where the resident says the problem was solved, over those that asked."""
        return _ratio(self.solved_visits, self.return_visits)

    @property
    def on_time_rate(self) -> float | None:
        """Resolutions within the resolve limit."""
        return _ratio(self.resolutions_in_time, self.resolutions)

    @property
    def on_time_closure_rate(self) -> float | None:
        """Closures due (resolved, never deferred) whose last resolution was within its limit."""
        return _ratio(self.closures_on_time, self.closures_due)

    @property
    def rework_rate(self) -> float | None:
        """Verifications that sent the fix back for rework."""
        return _ratio(self.rejections, self.verifications)

    @property
    def extension_rate(self) -> float | None:
        """Extensions granted, per resolution."""
        return _ratio(self.extensions_granted, self.resolutions)

    @property
    def dispatch_accuracy_rate(self) -> float | None:
        """Dispatches that went to the right unit: not corrected by a transfer."""
        return _ratio(self.dispatches - self.transfers, self.dispatches)

    @property
    def escalation_rate(self) -> float | None:
        """Closures escalated at least once."""
        return _ratio(self.escalated_closures, self.closed)

    def containment(self, levels: list[str]) -> dict[str, float | None]:
        """For each level: resolved closures at it or below, over all resolved closures."""
        result: dict[str, float | None] = {}
        running = 0
        for level in levels:
            running += self.resolved_closures_by_level.get(level, 0)
            result[level] = _ratio(running, self.resolved_closures)
        return result

    def time_to_resolve(self, q: float) -> timedelta | None:
        """A quantile of the time from report to resolution."""
        value = _quantile(self.resolve_seconds, q)
        return None if value is None else timedelta(seconds=value)

    def add_step(self, step: Step) -> None:
        """Count one step in, as the Prometheus counters count it: a report is an incident, and a
        resolution adds its time from the report (as gridflow_time_to_resolve_seconds observes it).

        A report over a period counts each step whose `at` falls in it, like a counter's increase."""
        if step.kind is StepKind.REPORTED:
            self.incidents += 1
        elif step.kind is StepKind.RESOLVED and step.elapsed is not None:
            self.resolve_seconds.append(step.elapsed.total_seconds())
        self._count(step)

    def add(self, state: IncidentState) -> None:
        """Count one incident's timeline in: each step as `add_step` counts it, except that the incident
        counts once (whatever its timeline holds) and as open while it is, and its time to resolve is its
        last resolution's, kept only when it closed resolved."""
        self.incidents += 1
        last_resolution: timedelta | None = None
        for step in state.timeline:
            self._count(step)
            if step.kind is StepKind.RESOLVED:
                last_resolution = step.elapsed
        if state.is_open:
            self.open += 1
        if last_resolution is not None and state.outcome is not None and state.outcome.is_resolved:
            self.resolve_seconds.append(last_resolution.total_seconds())

    def _count(self, step: Step) -> None:
        """The counts one step adds (all but incidents and times to resolve, which differ by the view)."""
        kind = step.kind
        if kind is StepKind.DISPATCHED:
            self.dispatches += 1
        elif kind is StepKind.TRANSFERRED:
            self.transfers += 1
        elif kind is StepKind.VERIFIED:
            self.verifications += 1
        elif kind is StepKind.REJECTED:
            self.verifications += 1
            self.rejections += 1
        elif kind is StepKind.EXTENSION_REQUESTED:
            self.extension_requests += 1
        elif kind is StepKind.EXTENSION_GRANTED:
            self.extensions_granted += 1
        elif kind is StepKind.ACCEPTED and step.within_limit:
            self.accepted_in_time += 1
        elif kind is StepKind.SLA_BREACHED:
            self.sla_breaches += 1
            self.accept_breaches += step.clock is ClockKind.ACCEPT
        elif kind is StepKind.RESOLVED:
            self.resolutions += 1
            self.resolutions_in_time += bool(step.within_limit)
        elif kind is StepKind.FEEDBACK and step.rating is not None:
            self.ratings += 1
            self.satisfied_ratings += step.rating is not Rating.UNSATISFIED
            if step.solved is not None:
                self.return_visits += 1
                self.solved_visits += step.solved
        elif kind is StepKind.ESCALATED:
            self.escalations += 1
        elif kind is StepKind.REOPENED:
            self.reopens += 1
        elif kind is StepKind.CLOSED and step.outcome is not None:
            self.closed += 1
            outcome: Outcome = step.outcome
            self.closures_by_outcome[outcome.value] = self.closures_by_outcome.get(outcome.value, 0) + 1
            self.escalated_closures += bool(step.escalations)
            if outcome.is_resolved and step.deferred is False:
                self.closures_due += 1
                self.closures_on_time += bool(step.within_limit)
            if outcome.is_resolved:
                self.resolved_closures += 1
                level = step.level or ""
                self.resolved_closures_by_level[level] = self.resolved_closures_by_level.get(level, 0) + 1

    def merge(self, other: RateReport) -> None:
        """Count another report's incidents in (a breakdown scans each timeline once, then merges it
        into the overall report and its district's, category's and rule's)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _COUNTS_BY:
            mine: dict[str, int] = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + value
        self.resolve_seconds.extend(other.resolve_seconds)

    def as_dict(self, levels: list[str]) -> dict[str, Any]:
        """Counts and rates, JSON-ready."""
        counts = {k: v for k, v in asdict(self).items() if k != "resolve_seconds"}
        p50, p90 = self.time_to_resolve(0.5), self.time_to_resolve(0.9)
        return {
            "counts": counts,
            "rates": {
                "response": self.response_rate,
                "resolution": self.resolution_rate,
                "satisfaction": self.satisfaction_rate,
                "resident_resolution": self.resident_resolution_rate,
                "on_time": self.on_time_rate,
                "escalation": self.escalation_rate,
                "dispatch_accuracy": self.dispatch_accuracy_rate,
                "extension": self.extension_rate,
                "rework": self.rework_rate,
                "on_time_closure": self.on_time_closure_rate,
                "containment": self.containment(levels),
            },
            "time_to_resolve_seconds": {
                "p50": p50.total_seconds() if p50 else None,
                "p90": p90.total_seconds() if p90 else None,
            },
        }


_COUNTS = tuple(f.name for f in fields(RateReport) if f.type == "int")
_COUNTS_BY = tuple(f.name for f in fields(RateReport) if f.type == "dict[str, int]")


def rate_report(states: Iterable[IncidentState]) -> RateReport:
    """Count every incident's timeline into a report."""
    report = RateReport()
    for state in states:
        report.add(state)
    return report
