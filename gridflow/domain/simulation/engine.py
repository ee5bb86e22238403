"""The discrete-event engine of `gridflow simulate`: the lifecycle core driven by one queue of instants.

Every simulated incident is a case: its state in the lifecycle core, and the scripted people of its
stream line. One priority queue holds the instant at which each open case next changes (a clock of the
core is due, or one of its people acts). The engine pops the earliest, fires what is due at that instant,
lets the people act (clocks first, as on a Temporal worker), and pushes the case back at its next
instant, or lets it go once it is closed or its horizon has passed. Reports are read from the stream as
the simulated time reaches them, so only the cases open at one moment are in memory.

Several rule sets can run in one pass: each stream line becomes one case per rule set, in the same
queue, so a comparison reads the stream once and pairs each incident's outcomes as they close.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gridflow.domain import lifecycle
from gridflow.domain.lifecycle import IncidentState
from gridflow.domain.lifecycle.resolution import ceil_to
from gridflow.domain.rules.model import RuleSet, RuleSnapshot
from gridflow.domain.simulation.model import HORIZON, Action, SimulatedIncident, next_action

# What the engine reports as cases end: which rule set, the stream line, and the final state (closed,
# or open at its horizon).
Finished = Callable[[int, SimulatedIncident, IncidentState], None]
# (simulated instant, cases finished so far): called every `progress_every` finished cases.
Progressed = Callable[[datetime, int], None]


class SimulationError(RuntimeError):
    """The scripted people did something the incident refused: a bug in the behaviour model."""


@dataclass(slots=True)
class _Case:
    lane: int  # which rule set
    item: SimulatedIncident
    state: IncidentState
    horizon: datetime
    # What the state said when the engine last left it (nothing else changes it meanwhile): when its
    # next clock is due, and what its people do next. Kept so that a wake does not ask twice.
    due: datetime | None = None
    action: tuple[Action, datetime] | None = None


class _Snapshots:
    """One frozen snapshot per rule of a rule set and report year (whose public holidays it carries),
    shared by every incident the rule matches in that year."""

    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules
        self._by_key: dict[tuple[str, int], RuleSnapshot] = {}

    def for_incident(self, item: SimulatedIncident) -> RuleSnapshot:
        key = self._rules.snapshot_key(item.incident)
        snapshot = self._by_key.get(key)
        if snapshot is None:
            snapshot = self._by_key[key] = self._rules.snapshot_for(item.incident)
        return snapshot


def run_discrete(
    stream: Iterable[SimulatedIncident],
    rule_sets: Sequence[RuleSet],
    finished: Finished,
    *,
    horizon: timedelta = HORIZON,
    resolution: timedelta | None = None,
    progressed: Progressed | None = None,
    progress_every: int = 1000,
) -> datetime | None:
    """Run the stream (in report order) on every rule set; return the last simulated instant.

    `resolution` puts every instant on a grid (see gridflow.domain.lifecycle.resolution): only to match a
    Temporal run made on the same grid; by default instants are exact.
    """
    snapshots = [_Snapshots(rules) for rules in rule_sets]
    queue: list[tuple[datetime, int, _Case]] = []
    order = itertools.count()  # first in, first out among cases due at the same instant
    reports: Iterator[SimulatedIncident] = iter(stream)
    pending = next(reports, None)
    reported = _report_instant(pending, resolution)
    last_report: datetime | None = None
    now: datetime | None = None
    done = 0

    def settle(case: _Case, at: datetime) -> None:
        nonlocal done
        wake = _advance(case, at, resolution)
        if wake is None:
            finished(case.lane, case.item, case.state)
            done += 1
            if progressed is not None and done % progress_every == 0:
                progressed(at, done)
        else:
            heapq.heappush(queue, (wake, next(order), case))

    while pending is not None or queue:
        if pending is not None and reported is not None and (not queue or reported <= queue[0][0]):
            if last_report is not None and reported < last_report:
                raise ValueError(
                    f"incident {pending.incident.incident_id} is reported before the one above it: "
                    "a stream must be in report order"
                )
            last_report = now = reported
            for lane, source in enumerate(snapshots):
                settle(_open(lane, pending, source.for_incident(pending), reported, horizon), reported)
            pending = next(reports, None)
            reported = _report_instant(pending, resolution)
            continue
        now, _, case = heapq.heappop(queue)
        settle(case, now)
    if progressed is not None and done % progress_every:
        assert now is not None
        progressed(now, done)
    return now


def _report_instant(item: SimulatedIncident | None, resolution: timedelta | None) -> datetime | None:
    """When the engine opens the incident: its report, in UTC, on the grid."""
    return None if item is None else ceil_to(item.incident.reported_at.astimezone(UTC), resolution)


def _open(
    lane: int, item: SimulatedIncident, snapshot: RuleSnapshot, at: datetime, horizon: timedelta
) -> _Case:
    state, _ = lifecycle.report(item.incident, at)
    lifecycle.start(state, item.incident, snapshot, at)
    case = _Case(lane=lane, item=item, state=state, horizon=at + horizon)
    case.due, case.action = lifecycle.next_due(state), next_action(item.behaviour, state)
    return case


def _advance(case: _Case, now: datetime, resolution: timedelta | None) -> datetime | None:
    """Fire what is due at `now`, then let the people act; the case's next instant, or None when it is
    done (closed, or nothing happens before its horizon)."""
    state, incident, behaviour = case.state, case.item.incident, case.item.behaviour
    action, fired = case.action, case.due is not None and case.due <= now
    if fired:  # as fire_due decides: otherwise it would change nothing
        lifecycle.fire_due(state, incident, now)
        action = next_action(behaviour, state) if state.is_open else None
    changed = fired
    while action is not None and ceil_to(action[1], resolution) <= now:
        try:
            lifecycle.apply(state, incident, action[0].command(), now)
        except lifecycle.Refused as refused:  # pragma: no cover - the behaviour model only acts legally
            raise SimulationError(f"incident {incident.incident_id}: {refused.reason}") from refused
        # A command can make a clock due at once (a reopened incident's zero-length limit).
        lifecycle.fire_due(state, incident, now)
        action = next_action(behaviour, state) if state.is_open else None
        changed = True
    if not state.is_open:
        return None
    if changed:
        case.due = lifecycle.next_due(state)
    case.action = action
    candidates = [ceil_to(t, resolution) for t in (case.due, action and action[1]) if t]
    wake = min(candidates, default=None)
    if wake is None or wake > case.horizon:
        return None
    return wake
