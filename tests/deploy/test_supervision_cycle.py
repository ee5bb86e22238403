"""The full supervision cycle, worked out by hand: one incident through every step of issue 14 on the
lifecycle core, each step and deadline checked, then its steps counted by the worker's LifecycleMetrics
and judged by a real Prometheus with the shipped recording rules.

The rules: China's public holidays (National Day, 1-7 October 2026, with Saturday 10 October a
make-up working day), office hours 09:00-12:00 and 13:30-18:00 (7.5 working hours a day), Shanghai time.

  Wed 30 Sep 16:00  reported; the grid must accept within 1wd: National Day passes, by Thu 8 Oct 18:00
  Thu  8 Oct 10:00  the dispatch centre transfers it to the right grid unit: 1wd again, by Fri 9 Oct 18:00
  Fri  9 Oct 09:30  accepted: 3wd to resolve, the make-up Saturday counting: Sat 10, Mon 12, Tue 13 18:00
  Mon 12 Oct 10:00  the holder asks for 2wd more; 11:00 the street grants it: Thu 15 Oct 18:00
  Wed 14 Oct 14:22:30  the 75% warning of the extended resolve clock (33.375 of 44.5 working hours)
  Wed 14 Oct 15:00  resolved; the inspector has 4 working hours: by Thu 15 Oct 10:00
  Wed 14 Oct 18:00  the inspector's 75% warning
  Thu 15 Oct 09:30  rejected: rework, 3wd again for the same unit: Fri 16, Mon 19, Tue 20 18:00
  Fri 16 Oct 11:00  resolved again; the inspector has until 16:30
  Fri 16 Oct 14:00  verified; the resident has 72h
  Sat 17 Oct 10:00  satisfied, but not solved: reopened at the grid, with the unit it was transferred to;
                    1wd from a Saturday that is no working day: Mon 19 Oct 18:00
  Mon 19 Oct 09:00  accepted: by Thu 22 Oct 18:00
  Mon 19 Oct 16:00  resolved; the inspector has until Tue 20 Oct 11:00
  Tue 20 Oct 09:30  verified
  Tue 20 Oct 12:00  satisfied and solved: closed, resolved, its last resolution in time, never deferred

The indicators, by hand (one incident, so each is a ratio of its own counts):
  dispatch accuracy   = (dispatches - transfers) / dispatches         = (3 - 1) / 3 = 2/3
  extension rate      = extensions granted / resolutions              = 1 / 3
  rework rate         = rejections / verifications                    = 1 / 3
  resident resolution = return visits "solved" / return visits asking = 1 / 2
  on-time closure     = closures due in time / closures due           = 1 / 1
  satisfaction        = satisfied ratings / ratings                   = 2 / 2
  response            = accepted in time / (that + accept breaches)   = 2 / 2
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from activities.metrics import LifecycleMetrics
from gridflow.app.metrics_server import serve_metrics
from gridflow.app.settings import Settings
from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident, Outcome, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    GrantExtension,
    IncidentState,
    LifecycleCommand,
    Reject,
    RequestExtension,
    Resolve,
    StepBatch,
    StepKind,
    Transfer,
    Verify,
)
from gridflow.domain.rules import parse_rule_set
from tests.conftest import free_port, make_incident
from tests.prometheus import district_rate, running_prometheus, scraping_gridflow, until_seen
from tests.rule_texts import CN_OFFICE_CALENDARS

SHANGHAI = ZoneInfo("Asia/Shanghai")

CYCLE_RULES = (
    "version: cycle-1\n"
    + CN_OFFICE_CALENDARS
    + """
rules:
  - name: cycle
    calendar: cn-office
    ladder:
      grid:   {accept: 1wd, resolve: 3wd}
      street: {accept: 1wd, resolve: 5wd}
    transfer: {clocks: restart}
    extension: {approver: above, decide_within: 4h, max_count: 1, max_extra: 2wd}
    verification: {inspector: "inspector-{grid_id}", within: 4h}
    feedback: {window: 72h, on_unsatisfied: reopen_same_level, max_reopens: 2}
"""
)

GRID, RIGHT_GRID, STREET = "g-nanjing-07", "g-nanjing-08", "s-nanjing-east"
INSPECTOR = f"inspector-{GRID}"


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Shanghai wall-clock time of 2026, as the UTC instant the core works in."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


#: The script: what people do, and when.
SCRIPT: list[tuple[datetime, LifecycleCommand]] = [
    (at(10, 8, 10), Transfer(to_unit=RIGHT_GRID, reason="the lamp is on the next grid's side")),
    (at(10, 9, 9, 30), Accept(unit_id=RIGHT_GRID)),
    (at(10, 12, 10), RequestExtension(unit_id=RIGHT_GRID, extra="2wd", reason="the pole needs a crane")),
    (at(10, 12, 11), GrantExtension(unit_id=STREET, note="book the crane")),
    (at(10, 14, 15), Resolve(unit_id=RIGHT_GRID, resolution="new lamp head")),
    (at(10, 15, 9, 30), Reject(unit_id=INSPECTOR, reason="still dark at night")),
    (at(10, 16, 11), Resolve(unit_id=RIGHT_GRID, resolution="rewired the pole")),
    (at(10, 16, 14), Verify(unit_id=INSPECTOR, note="lit at dusk")),
    (at(10, 17, 10), Feedback(rating=Rating.SATISFIED, solved=False, comment="it flickers")),
    (at(10, 19, 9), Accept(unit_id=RIGHT_GRID)),
    (at(10, 19, 16), Resolve(unit_id=RIGHT_GRID, resolution="new ballast")),
    (at(10, 20, 9, 30), Verify(unit_id=INSPECTOR)),
    (at(10, 20, 12), Feedback(rating=Rating.SATISFIED, solved=True)),
]


def run_the_cycle(district: str) -> tuple[Incident, IncidentState]:
    """The incident's whole life on the lifecycle core: each command at its instant, after whatever
    falls due before it (as the workflow does)."""
    rules = parse_rule_set(CYCLE_RULES, "cycle.yaml")
    incident = make_incident(district=district).model_copy(update={"reported_at": at(9, 30, 16)})
    state, _ = lifecycle.report(incident, incident.reported_at)
    lifecycle.start(state, incident, rules.snapshot_for(incident), incident.reported_at)
    for when, command in SCRIPT:
        while (due := lifecycle.next_due(state)) is not None and due <= when:
            lifecycle.fire_due(state, incident, due)
        lifecycle.apply(state, incident, command, when)
    return incident, state


def test_every_step_and_deadline_of_the_cycle_is_the_hand_computed_one() -> None:
    _, state = run_the_cycle("d-cycle")

    steps = [(step.kind, step.at, step.unit_id, step.deadline) for step in state.timeline]
    assert steps == [
        (StepKind.REPORTED, at(9, 30, 16), None, None),
        (StepKind.DISPATCHED, at(9, 30, 16), GRID, at(10, 8, 18)),  # 1wd across National Day
        (StepKind.TRANSFERRED, at(10, 8, 10), RIGHT_GRID, None),
        (StepKind.DISPATCHED, at(10, 8, 10), RIGHT_GRID, at(10, 9, 18)),
        (StepKind.ACCEPTED, at(10, 9, 9, 30), RIGHT_GRID, at(10, 13, 18)),  # the make-up Saturday counts
        (StepKind.EXTENSION_REQUESTED, at(10, 12, 10), RIGHT_GRID, at(10, 12, 14)),  # decide within 4h
        (StepKind.EXTENSION_GRANTED, at(10, 12, 11), RIGHT_GRID, at(10, 15, 18)),  # 2wd on from Tue 13
        (StepKind.SLA_WARNING, at(10, 14, 14, 22, 30), RIGHT_GRID, at(10, 15, 18)),
        (StepKind.RESOLVED, at(10, 14, 15), RIGHT_GRID, at(10, 15, 10)),  # 4 working hours to verify
        (StepKind.SLA_WARNING, at(10, 14, 18), RIGHT_GRID, at(10, 15, 10)),
        (StepKind.REJECTED, at(10, 15, 9, 30), RIGHT_GRID, at(10, 20, 18)),  # rework: 3wd again
        (StepKind.RESOLVED, at(10, 16, 11), RIGHT_GRID, at(10, 16, 16, 30)),
        (StepKind.VERIFIED, at(10, 16, 14), RIGHT_GRID, at(10, 19, 14)),  # the resident's 72h
        (StepKind.FEEDBACK, at(10, 17, 10), RIGHT_GRID, None),
        (StepKind.REOPENED, at(10, 17, 10), RIGHT_GRID, None),
        (StepKind.DISPATCHED, at(10, 17, 10), RIGHT_GRID, at(10, 19, 18)),  # back to the unit it went to
        (StepKind.ACCEPTED, at(10, 19, 9), RIGHT_GRID, at(10, 22, 18)),
        (StepKind.RESOLVED, at(10, 19, 16), RIGHT_GRID, at(10, 20, 11)),
        (StepKind.VERIFIED, at(10, 20, 9, 30), RIGHT_GRID, at(10, 23, 9, 30)),
        (StepKind.FEEDBACK, at(10, 20, 12), RIGHT_GRID, None),
        (StepKind.CLOSED, at(10, 20, 12), RIGHT_GRID, None),
    ]
    by_kind = {step.kind: step for step in state.timeline}
    assert (by_kind[StepKind.TRANSFERRED].from_unit, by_kind[StepKind.EXTENSION_GRANTED].actor) == (
        GRID,
        STREET,
    )
    assert [s.clock.value for s in state.timeline if s.kind is StepKind.SLA_WARNING and s.clock] == [
        "resolve",
        "verify",
    ]
    assert [s.reason for s in state.timeline if s.kind is StepKind.REOPENED] == ["not_solved"]
    closed = state.timeline[-1]
    assert (closed.outcome, closed.within_limit, closed.deferred, closed.escalations) == (
        Outcome.RESOLVED,
        True,
        False,
        0,
    )
    assert (state.status, state.transfers, state.extensions, state.reworks) == (Status.CLOSED, 1, 1, 1)


async def test_each_indicator_a_real_prometheus_computes_is_the_hand_computed_one() -> None:
    district = f"d-cycle-{uuid.uuid4().hex[:6]}"
    _, state = run_the_cycle(district)
    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry)
    metrics_port = free_port()
    endpoint = serve_metrics(Settings(metrics_port=metrics_port), registry)
    with endpoint, running_prometheus(scraping_gridflow(metrics_port)) as prometheus:
        # The report creates the district's series at zero; Prometheus sees them before anything else.
        metrics.observe(StepBatch.publishing(state, state.timeline[:1]))
        await until_seen(prometheus, f'gridflow_incidents_dispatched_total{{district="{district}"}}')
        await asyncio.sleep(1.5)
        metrics.observe(StepBatch.publishing(state, state.timeline[1:]))
        await until_seen(prometheus, f'sum(gridflow_incidents_closed_total{{district="{district}"}})', 1)
        await asyncio.sleep(3)

        def rate(name: str) -> float:
            return district_rate(prometheus, name, district)

        assert rate("dispatch_accuracy") == pytest.approx(2 / 3, rel=1e-9)
        assert rate("extension") == pytest.approx(1 / 3, rel=1e-9)
        assert rate("rework") == pytest.approx(1 / 3, rel=1e-9)
        assert rate("resident_resolution") == pytest.approx(1 / 2, rel=1e-9)
        assert rate("on_time_closure") == pytest.approx(1.0, rel=1e-9)
        assert rate("satisfaction") == pytest.approx(1.0, rel=1e-9)
        assert rate("response") == pytest.approx(1.0, rel=1e-9)
