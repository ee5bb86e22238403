"""Lifecycle metrics are exact: an activity retry or a workflow replay never counts a step twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from temporalio.testing import WorkflowEnvironment

from activities.metrics import LifecycleMetrics
from gridflow.app.compose import build_worker
from gridflow.domain.incident import Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import Accept, Feedback, Resolve, Step, StepBatch, StepKind
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from workflows.client import report_incident, send_command


class FlakySink(MemorySink):
    """Fails the first delivery of every batch, so every publishing activity is retried once."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self._failed: set[tuple[str, int]] = set()

    async def publish(self, batch: StepBatch) -> None:
        key = (batch.incident_id, batch.steps[0].seq)
        if key not in self._failed:
            self._failed.add(key)
            self.failures += 1
            raise RuntimeError("broker hiccup")
        await super().publish(batch)


def value(metrics: LifecycleMetrics, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def wait_until(check: Callable[[], bool], within: float = 20) -> None:
    """Poll `check` until it holds; fail the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("never happened")
        await asyncio.sleep(0.05)


async def test_retried_activities_and_a_replay_on_a_new_worker_count_every_step_exactly_once(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    metrics = LifecycleMetrics(registry=CollectorRegistry())
    sink = FlakySink()
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    incident = make_incident()
    unit = incident.location.grid_id

    async with build_worker(client, queue, RulesSource(), [sink], metrics=metrics):
        await report_incident(client, queue, incident)
        await send_command(client, incident.incident_id, Accept(unit_id=unit))
        await wait_until(lambda: len(sink.steps(incident.incident_id)) == 3)

    # A new worker has no cached workflow: it replays the history before handling the next command.
    async with build_worker(client, queue, RulesSource(), [sink], metrics=metrics):
        await send_command(client, incident.incident_id, Resolve(unit_id=unit, resolution="lamp replaced"))
        await send_command(client, incident.incident_id, Feedback(rating=Rating.SATISFIED))
        await wait_until(lambda: len(sink.steps(incident.incident_id)) == 6)

    assert sink.failures >= 4  # every batch failed once and was retried
    base = {"category": "street_lamp", "district": "d-huangpu", "rule": "default"}
    assert value(metrics, "gridflow_incidents_received_total", **base) == 1
    assert value(metrics, "gridflow_incidents_dispatched_total", level="grid", **base) == 1
    assert value(metrics, "gridflow_incidents_accepted_total", level="grid", within_limit="true", **base) == 1
    assert value(metrics, "gridflow_incidents_resolved_total", level="grid", **base) == 1
    assert value(metrics, "gridflow_feedback_total", rating="satisfied", **base) == 1
    assert value(metrics, "gridflow_incidents_closed_total", outcome="resolved", level="grid", **base) == 1
    assert value(metrics, "gridflow_time_to_resolve_seconds_count", level="grid") == 1


def drain_batch(steps: list[Step], levels: list[str] | None = None) -> StepBatch:
    """Steps of one drain incident in district d-1, on the default rule."""
    return StepBatch(
        incident_id="inc-1",
        category="drain",
        priority=Priority.NORMAL,
        district_id="d-1",
        rule_name="default",
        rules_version="1",
        levels=levels or [],
        steps=steps,
    )


def test_a_batch_delivered_twice_is_counted_once() -> None:
    metrics = LifecycleMetrics(registry=CollectorRegistry())
    state_steps = [
        Step(seq=1, kind=StepKind.REPORTED, at=datetime(2026, 11, 23, tzinfo=UTC), status=Status.REPORTED),
        Step(
            seq=2,
            kind=StepKind.DISPATCHED,
            at=datetime(2026, 11, 23, tzinfo=UTC),
            status=Status.DISPATCHED,
            level="grid",
        ),
    ]
    batch = drain_batch(state_steps)
    metrics.observe(batch)
    metrics.observe(batch)  # a retry that reached the metrics sink after all
    metrics.observe(batch.model_copy(update={"steps": state_steps[1:]}))

    assert value(metrics, "gridflow_incidents_received_total") == 1
    assert value(metrics, "gridflow_incidents_dispatched_total", level="grid") == 1


def test_return_visits_are_counted_by_the_residents_answer_and_unasked_ones_not_at_all() -> None:
    metrics = LifecycleMetrics(registry=CollectorRegistry())
    at = datetime(2026, 11, 23, tzinfo=UTC)

    def feedback(seq: int, solved: bool | None) -> Step:
        return Step(
            seq=seq,
            kind=StepKind.FEEDBACK,
            at=at,
            status=Status.RESOLVED,
            level="grid",
            rating=Rating.SATISFIED,
            solved=solved,
        )

    batch = drain_batch(
        [feedback(5, False), feedback(9, True), feedback(13, None)], levels=["grid", "street"]
    )
    metrics.observe(batch)

    assert value(metrics, "gridflow_feedback_total", rating="satisfied") == 3
    assert value(metrics, "gridflow_return_visits_total", solved="false", level="grid") == 1
    assert value(metrics, "gridflow_return_visits_total", solved="true", level="grid") == 1
    assert value(metrics, "gridflow_return_visits_total") == 2
    # Created at zero for every level with the first incident, so rates see their first increment.
    samples = {
        tuple(sorted(sample.labels.items()))
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "gridflow_return_visits_total"
    }
    assert len(samples) == 4  # two levels, two answers


def test_closures_due_leave_out_deferred_and_unresolved_incidents() -> None:
    metrics = LifecycleMetrics(registry=CollectorRegistry())
    at = datetime(2026, 11, 23, tzinfo=UTC)

    def closed(seq: int, outcome: Outcome, on_time: bool | None, deferred: bool) -> Step:
        return Step(
            seq=seq,
            kind=StepKind.CLOSED,
            at=at,
            status=Status.CLOSED,
            level="grid",
            outcome=outcome,
            within_limit=on_time,
            deferred=deferred,
            escalations=0,
        )

    steps = [
        closed(5, Outcome.RESOLVED, True, False),  # due, on time
        closed(6, Outcome.RESOLVED_UNRATED, False, False),  # due, late
        closed(7, Outcome.RESOLVED, True, True),  # deferred: not due
        closed(8, Outcome.WITHDRAWN, None, False),  # not resolved: not due
    ]
    metrics.observe(drain_batch(steps, levels=["grid"]))

    assert value(metrics, "gridflow_closures_due_total", on_time="true") == 1
    assert value(metrics, "gridflow_closures_due_total", on_time="false") == 1
