"""count_incidents: the open-incidents gauge's counts and `incident list --count`'s, on a real dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from temporalio.client import WorkflowExecutionCount
from temporalio.testing import WorkflowEnvironment

from gridflow.app.compose import build_worker
from gridflow.app.open_incidents import (
    COUNT_CONCURRENCY,
    OPEN_STATUSES,
    RUNNING_INCIDENTS,
    OpenIncidentsGauge,
    count_due_soon,
    count_incidents,
)
from gridflow.domain.incident import DEFAULT_LEVELS, Priority, Status
from gridflow.domain.lifecycle import EscalationRequestReason, RequestEscalation, Withdraw
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from workflows.client import report_incident, send_command


@pytest.fixture
async def district(dev_server_env: WorkflowEnvironment) -> AsyncIterator[str]:
    """A district of the test's own with three incidents: one dispatched at the grid, one escalated to
    the street, one withdrawn (closed at the grid); a worker on a queue of the test's own runs them."""
    client, task_queue = dev_server_env.client, f"open-{uuid.uuid4().hex[:8]}"
    district = f"d-open-{uuid.uuid4().hex[:8]}"
    incidents = [make_incident(district=district) for _ in range(3)]
    async with build_worker(client, task_queue, RulesSource(), [MemorySink()]):
        for incident in incidents:
            await report_incident(client, task_queue, incident)
        await _until(
            client.count_workflows, f"GridflowDistrict = '{district}' AND GridflowStatus = 'dispatched'", 3
        )
        escalate = RequestEscalation(unit_id="g-nanjing-07", reason=EscalationRequestReason.REQUESTED)
        await send_command(client, incidents[1].incident_id, escalate)
        await send_command(client, incidents[2].incident_id, Withdraw(reason="duplicate"))
        yield district


async def _until(count: Any, query: str, expected: int) -> None:
    seen = -1
    for _ in range(300):  # visibility is eventually consistent
        seen = (await count(query)).count
        if seen == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility counted {seen} of {expected} for {query}")


async def test_one_count_serves_the_gauge_and_a_lists_filters(
    dev_server_env: WorkflowEnvironment, district: str
) -> None:
    client = dev_server_env.client
    running = f"{RUNNING_INCIDENTS} AND GridflowDistrict = '{district}'"
    every = f"WorkflowType = 'IncidentWorkflow' AND GridflowDistrict = '{district}'"
    await _until(client.count_workflows, f"{every} AND GridflowStatus = 'closed'", 1)
    await _until(client.count_workflows, f"{every} AND GridflowLevel = 'street'", 1)

    gauge = await count_incidents(client, DEFAULT_LEVELS, query=running)
    assert {pair: n for pair, n in gauge.items() if n} == {
        ("grid", "dispatched"): 1,
        ("street", "dispatched"): 1,
    }
    assert len(gauge) == len(DEFAULT_LEVELS) * len(OPEN_STATUSES)  # every open pair, zeros too: all set

    listed = await count_incidents(client, ["grid", "street"], list(Status), query=every)
    assert {pair: n for pair, n in listed.items() if n} == {
        ("grid", "dispatched"): 1,
        ("grid", "closed"): 1,
        ("street", "dispatched"): 1,
    }


async def test_at_most_eight_count_queries_are_in_flight_however_many_levels(
    dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dev_server_env.client
    count_workflows = client.count_workflows
    in_flight, most = 0, 0

    async def counted(query: str | None = None, **kwargs: Any) -> WorkflowExecutionCount:
        """The real count, with how many run at once noted."""
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await count_workflows(query, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(client, "count_workflows", counted)
    levels = [f"level-{i}" for i in range(10)]

    counts = await count_incidents(client, levels)

    assert len(counts) == 10 * len(OPEN_STATUSES) and set(counts.values()) == {0}
    # Every task starts its query before any answer comes back, so the bound, not the timing, sets this.
    assert most == COUNT_CONCURRENCY == 8


async def test_incidents_due_within_the_hour_are_counted_by_district_and_a_quiet_district_goes_to_zero(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client, task_queue = dev_server_env.client, f"due-{uuid.uuid4().hex[:8]}"
    district = f"d-due-{uuid.uuid4().hex[:8]}"
    # Urgent: the grid has 15 minutes to accept. Normal: two hours, beyond the hour.
    urgent, normal = (
        make_incident(district=district, priority=Priority.URGENT),
        make_incident(district=district),
    )
    mine = f"{RUNNING_INCIDENTS} AND GridflowDistrict = '{district}'"
    async with build_worker(client, task_queue, RulesSource(), [MemorySink()]):
        for incident in (urgent, normal):
            await report_incident(client, task_queue, incident)
        await _until(client.count_workflows, f"{mine} AND GridflowNextDeadline > '2026-01-01T00:00:00Z'", 2)
        now = datetime.now(UTC)

        assert await count_due_soon(client, now, query=mine) == {district: 1}
        assert await count_due_soon(client, now, timedelta(hours=3), query=mine) == {district: 2}
        assert await count_due_soon(client, now + timedelta(hours=3), query=mine) == {}

        registry = CollectorRegistry()
        gauge, series = OpenIncidentsGauge(registry), {"district": district}
        gauge.set_due_soon(await count_due_soon(client, now, query=mine))
        assert registry.get_sample_value("gridflow_incidents_due_soon", series) == 1
        gauge.set_due_soon({})  # the next refresh finds nothing due there
        assert registry.get_sample_value("gridflow_incidents_due_soon", series) == 0
        await send_command(client, urgent.incident_id, Withdraw(reason="duplicate"))
