"""Fixtures to drive real incident workflows on a real worker against the time-skipping server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from gridflow.app.compose import build_worker
from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle import IncidentState, IncidentSummary, Step, StepKind
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput


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
        await self.quiet(handle)
        return handle

    async def command(
        self, handle: WorkflowHandle[IncidentWorkflow, Any], update: Any, command: Any
    ) -> IncidentSummary:
        """Send a lifecycle command (an update) and wait until its steps are published.

        Waiting for quiet keeps the Java test server, whose update support is fragile while a workflow
        task is in flight, from losing the next update.
        """
        summary: IncidentSummary = await handle.execute_update(update, command)
        await self.quiet(handle)
        return summary

    async def quiet(self, handle: WorkflowHandle[IncidentWorkflow, Any]) -> IncidentState:
        """Wait until every step of the incident so far has been published."""
        state = await self.state(handle)
        last = state.timeline[-1].seq if state.timeline else 0
        for _ in range(200):
            published = self.published(state.incident_id)
            if published and published[-1].seq >= last:
                return state
            await asyncio.sleep(0.02)
        raise AssertionError(f"steps up to {last} were never published")

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
        await self.wait_for(handle, lambda s: _caught_up(s, target))
        return await self.quiet(handle)

    def published(self, incident_id: str) -> list[Step]:
        """The lifecycle steps the activities published for an incident."""
        return self.sink.steps(incident_id)


def _caught_up(state: IncidentState, now: datetime) -> bool:
    due = state.next_due()
    return due is None or due > now


async def refusal(call: Awaitable[Any]) -> str:
    """The reason a lifecycle command was refused (fails the test if it was not)."""
    try:
        await call
    except WorkflowUpdateFailedError as failure:
        return str(failure.cause)
    raise AssertionError("the command was accepted")


def close_to(actual: timedelta, expected: timedelta) -> bool:
    """Equal but for the milliseconds that real time adds between a test's calls."""
    return abs(actual - expected) < timedelta(seconds=1)


def kinds(steps: list[Step]) -> list[StepKind]:
    """The kinds of a list of steps, in order."""
    return [step.kind for step in steps]


HISTORIES = Path(__file__).parent / "histories"


@pytest.fixture
async def incidents(
    time_skipping_env: WorkflowEnvironment, request: pytest.FixtureRequest
) -> AsyncIterator[Incidents]:
    """Incidents in accelerated time: a fresh worker with the built-in rules and an in-memory sink."""
    async for driver in _incidents_on(time_skipping_env, request.node.name):
        yield driver


@pytest.fixture
async def live_incidents(
    dev_server_env: WorkflowEnvironment, request: pytest.FixtureRequest
) -> AsyncIterator[Incidents]:
    """Incidents on a real dev server in real time, for what the time-skipping server does badly
    (rejected updates: https://github.com/temporalio/sdk-python/issues/826) and for visibility."""
    async for driver in _incidents_on(dev_server_env, request.node.name):
        yield driver


async def _record_histories(driver: Incidents, test_name: str) -> None:
    """Keep each incident's history as a replay fixture (GRIDFLOW_RECORD_HISTORIES=1 to refresh)."""
    HISTORIES.mkdir(exist_ok=True)
    name = test_name.removeprefix("test_")
    for index, handle in enumerate(driver.handles):
        history = await handle.fetch_history()
        (HISTORIES / f"{name}-{index}.json").write_text(history.to_json())


async def _incidents_on(env: WorkflowEnvironment, test_name: str) -> AsyncIterator[Incidents]:
    task_queue = f"incidents-{uuid.uuid4().hex[:8]}"
    sink = MemorySink()
    rules = RulesSource()
    worker = build_worker(env.client, task_queue, rules, [sink])
    driver = Incidents(env, task_queue, sink, rules)
    async with worker:
        yield driver
        if os.environ.get("GRIDFLOW_RECORD_HISTORIES") == "1":
            await _record_histories(driver, test_name)
        for handle in driver.handles:
            desc = await handle.describe()
            if desc.status is not None and desc.status.name == "RUNNING":
                await handle.terminate("test finished")
