"""Fixtures to drive real incident workflows on a real worker against the time-skipping server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.sinks import MemorySink
from gridflow.incident import Incident
from gridflow.rules.loader import RulesSource
from gridflow.worker import build_worker
from workflows.incident import IncidentWorkflow
from workflows.state import IncidentInput, IncidentState, IncidentSummary, Step, StepKind


@dataclass
class Incidents:
    """Starts incidents on a dedicated worker and lets a test move time and look at them."""

    env: WorkflowEnvironment
    task_queue: str
    sink: MemorySink
    rules: RulesSource
    handles: list[WorkflowHandle[IncidentWorkflow, IncidentSummary]] = field(default_factory=list)

    async def report(self, incident: Incident) -> WorkflowHandle[IncidentWorkflow, IncidentSummary]:
        """Start the incident's workflow and wait until it is dispatched."""
        handle = await self.env.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=incident),
            id=incident.workflow_id,
            task_queue=self.task_queue,
        )
        self.handles.append(handle)
        await self.wait_for(handle, lambda s: s.level is not None)
        return handle

    async def state(self, handle: WorkflowHandle[IncidentWorkflow, Any]) -> IncidentState:
        """The workflow's full state (query)."""
        return await handle.query(IncidentWorkflow.state)

    async def wait_for(
        self, handle: WorkflowHandle[IncidentWorkflow, Any], check: Callable[[IncidentState], bool]
    ) -> IncidentState:
        """Poll the state until `check` holds (the worker runs in the background), or fail after 10 s."""
        for _ in range(200):
            state = await self.state(handle)
            if check(state):
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition never held; last state: {state.model_dump_json(indent=1)}")

    async def advance(self, handle: WorkflowHandle[IncidentWorkflow, Any], by: timedelta) -> IncidentState:
        """Skip time forward, then wait until the workflow has caught up with every timer that fired."""
        await self.env.sleep(by)
        target = await self.env.get_current_time()
        return await self.wait_for(handle, lambda s: _caught_up(s, target))

    def published(self, incident_id: str) -> list[Step]:
        """The lifecycle steps the activities published for an incident."""
        return self.sink.steps(incident_id)


def _caught_up(state: IncidentState, now: datetime) -> bool:
    due = state.next_due()
    return due is None or due > now


def kinds(steps: list[Step]) -> list[StepKind]:
    """The kinds of a list of steps, in order."""
    return [step.kind for step in steps]


@pytest.fixture
async def incidents(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Incidents]:
    """A fresh worker with the built-in rules and an in-memory step sink."""
    task_queue = f"incidents-{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    rules = RulesSource()
    worker = build_worker(time_skipping_env.client, task_queue, rules, [sink])
    driver = Incidents(time_skipping_env, task_queue, sink, rules)
    async with worker:
        yield driver
        for handle in driver.handles:
            desc = await handle.describe()
            if desc.status is not None and desc.status.name == "RUNNING":
                await handle.terminate("test finished")
