"""A command that reaches an incident together with a clock already due: the clock goes first.

When no worker runs at a deadline (a worker crash, a Temporal restart), the timer's firing and a command
sent meanwhile reach the workflow in one task, and the SDK runs update handlers before timers. The
chaos soak found incidents withdrawn then whose breach was never recorded, and an acceptance applied as
if on time. A real dev server, the demo rules (grid accept limit 10 s) and no worker at the deadline.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from gridflow.app.compose import build_worker
from gridflow.domain.incident import EscalationReason, Status
from gridflow.domain.lifecycle import Accept, ClockKind, IncidentState, StepKind
from gridflow.domain.rules.loader import DEMO_RULES, RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import make_incident
from tests.workflows.conftest import HISTORIES, kinds
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput

ACCEPT_LIMIT = timedelta(seconds=10)  # demo-default's grid accept limit


async def _state_when(handle: object, check: object) -> IncidentState:
    for _ in range(600):
        state: IncidentState = await handle.query(IncidentWorkflow.state)  # type: ignore[attr-defined]
        if check(state):  # type: ignore[operator]
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; last state: {state.model_dump_json(indent=1)}")


async def test_an_acceptance_arriving_with_the_accept_limit_already_past_comes_after_the_breach(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    task_queue = f"late-{uuid.uuid4().hex[:8]}"
    rules = RulesSource(builtin=DEMO_RULES)
    incident = make_incident()
    async with build_worker(client, task_queue, rules, [MemorySink()]):
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=incident),
            id=incident.workflow_id,
            task_queue=task_queue,
        )
        dispatched = await _state_when(handle, lambda s: s.status is Status.DISPATCHED)
    assert dispatched.level == "grid" and dispatched.rule is not None
    assert dispatched.rule.rule.name == "demo-default"

    # No worker: the accept limit passes (the timer fires on the server, nobody handles it), then the
    # grid's acceptance is sent; a worker starts only once the update waits on the server.
    await asyncio.sleep(ACCEPT_LIMIT.total_seconds() + 2)
    acceptance = asyncio.ensure_future(
        handle.execute_update(IncidentWorkflow.accept, Accept(unit_id=incident.location.grid_id))
    )
    await asyncio.sleep(1)
    assert not acceptance.done()
    async with build_worker(client, task_queue, rules, [MemorySink()]):
        with pytest.raises(WorkflowUpdateFailedError):
            await acceptance
        state = await _state_when(handle, lambda s: s.level == "street")

        steps = state.timeline
        assert StepKind.ACCEPTED not in kinds(steps)
        breach = next(s for s in steps if s.kind is StepKind.SLA_BREACHED)
        escalation = next(s for s in steps if s.kind is StepKind.ESCALATED)
        assert (breach.clock, breach.level) == (ClockKind.ACCEPT, "grid")
        assert (escalation.from_level, escalation.to_level) == ("grid", "street")
        assert escalation.reason == EscalationReason.ACCEPT_TIMEOUT.value
        assert (state.status, state.holder_unit) == (Status.DISPATCHED, incident.location.street_id)

        # The street can take it on.
        await handle.execute_update(IncidentWorkflow.accept, Accept(unit_id=incident.location.street_id))
        if os.environ.get("GRIDFLOW_RECORD_HISTORIES") == "1":
            history = await handle.fetch_history()
            name = "an_acceptance_arriving_with_the_accept_limit_already_past_comes_after_the_breach"
            (HISTORIES / f"{name}-0.json").write_text(history.to_json())
        await handle.terminate("test finished")
