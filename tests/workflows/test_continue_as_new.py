"""A long-lived incident with many events continues as new without losing state or its clocks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gridflow.app.binaries import find_binary
from gridflow.app.compose import build_worker
from gridflow.app.temporal import register_search_attributes
from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle import Accept, Feedback, Progress, Resolve, StepKind
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from workflows.client import incident_handle, incident_state, report_incident, send_command

NOTES = 300


@pytest.fixture(scope="module")
async def small_history_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 400 history events (the default is thousands)."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        dev_server_log_level="error",
        ui=False,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=400"],
    )
    await register_search_attributes(env.client, env.client.namespace)
    async with env:
        yield env


async def test_an_incident_with_hundreds_of_progress_notes_continues_as_new_and_carries_on(
    small_history_server: WorkflowEnvironment,
) -> None:
    client = small_history_server.client
    queue = f"can-{uuid.uuid4().hex[:8]}"
    incident = make_incident()
    unit = incident.location.grid_id
    sink = MemorySink()
    async with build_worker(client, queue, RulesSource(), [sink], metrics=None):
        reported = await report_incident(client, queue, incident)
        await send_command(client, incident.incident_id, Accept(unit_id=unit))
        before = await incident_state(client, incident.incident_id)
        for number in range(NOTES):
            await send_command(client, incident.incident_id, Progress(unit_id=unit, note=f"note {number}"))

        # The workflow continues as new once it is idle: after the last note is published.
        for _ in range(200):
            description = await incident_handle(client, incident.incident_id).describe()
            if description.run_id != reported.run_id:
                break
            await asyncio.sleep(0.05)
        assert description.run_id != reported.run_id, "the workflow should have continued as new"
        state = await incident_state(client, incident.incident_id)
        assert state.status is Status.ACCEPTED
        assert state.resolve_deadline == before.resolve_deadline  # the clock carried over
        notes = [step.note for step in state.timeline if step.kind is StepKind.PROGRESS]
        assert notes == [f"note {n}" for n in range(NOTES)]
        assert [step.seq for step in state.timeline] == list(range(1, len(state.timeline) + 1))

        await send_command(client, incident.incident_id, Resolve(unit_id=unit, resolution="fixed"))
        await send_command(client, incident.incident_id, Feedback(rating=Rating.SATISFIED))
        result = await incident_handle(client, incident.incident_id).result()
        assert result.outcome is Outcome.RESOLVED
        for _ in range(100):
            if len(sink.steps(incident.incident_id)) == result.last_seq:
                break
            await asyncio.sleep(0.05)
        published = sink.steps(incident.incident_id)
        assert [step.seq for step in published] == list(range(1, result.last_seq + 1))
