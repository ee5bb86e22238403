"""The handlers and the resident of one simulated incident, played as a workflow beside it.

A simulation replays a stream of incidents through the real IncidentWorkflow in accelerated time:
each incident is started by one of these, which then acts as its scripted behaviour says (accept
after so long, pass it up below the level that can solve it, resolve, rate, withdraw) and watches
the incident's own clocks, so that time on the test server only jumps between moments that matter.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from gridflow.domain.lifecycle import IncidentState, IncidentSummary
    from gridflow.domain.lifecycle.resolution import ceil_to, floor_to
    from gridflow.domain.simulation.model import HandlerPlan, next_action
    from workflows.activity_names import SIMULATION_ACT, SIMULATION_OBSERVE
    from workflows.incident import IncidentWorkflow
    from workflows.input import IncidentInput

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# How long to wait for the incident to take its rule or fire a due clock: well inside a grid's step.
LOOK_AGAIN = timedelta(milliseconds=50)


@workflow.defn
class SimulatedHandlers:
    """Starts one incident at its moment and plays its people until it is closed."""

    @workflow.run
    async def run(self, plan: HandlerPlan) -> IncidentSummary:
        """Play the plan; return the incident's result."""
        if plan.report_at > workflow.now():
            await workflow.sleep(plan.report_at - workflow.now())
        incident = await workflow.start_child_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=plan.incident, clock_resolution=plan.resolution),
            id=plan.incident.workflow_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        incident_id = plan.incident.incident_id
        give_up = plan.report_at + plan.horizon
        while True:
            state = await self._observe(incident_id)
            if not state.is_open:
                break
            if state.rule is None:  # still matching its rule
                await workflow.sleep(LOOK_AGAIN)
                continue
            now = floor_to(workflow.now(), plan.resolution)
            action = next_action(plan.behaviour, state)
            acting_at = None if action is None else ceil_to(action[1], plan.resolution)
            due = state.next_due()
            due_at = None if due is None else ceil_to(due, plan.resolution)
            wake = min((t for t in (acting_at, due_at) if t is not None), default=None)
            if wake is None or wake > give_up:
                # Nothing happens before the horizon: the incident is left open, as it would be in the
                # city, and stopped where it is, so its clocks do not run on while others play.
                await workflow.get_external_workflow_handle(plan.incident.workflow_id).cancel()
                # Wait until it has stopped: returning at once now and then left the test server's
                # clock locked, and the run crawled at real time.
                with contextlib.suppress(ChildWorkflowError):
                    await incident
                return IncidentSummary.of(state)
            if wake > now:
                await workflow.sleep(wake - workflow.now())
                continue  # look again: the incident may have moved meanwhile
            if action is not None and (due_at is None or due_at > now):
                await workflow.execute_activity(
                    SIMULATION_ACT,
                    args=[incident_id, action[0]],
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RETRY,
                )
            else:
                # The incident's clock is due at this instant: it fires first (as in the discrete-event
                # engine), then the people act on what it did.
                await workflow.sleep(LOOK_AGAIN)
        return await incident

    async def _observe(self, incident_id: str) -> IncidentState:
        state: IncidentState = await workflow.execute_activity(
            SIMULATION_OBSERVE,
            incident_id,
            result_type=IncidentState,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return state


@workflow.defn
class SimulationRun:
    """Starts the scripted handlers of many incidents and waits for them all.

    The client then waits on this one result, so the test server keeps skipping time for the whole
    run instead of locking and unlocking it per incident.
    """

    def __init__(self) -> None:
        self._done = 0

    @workflow.run
    async def run(self, plans: list[HandlerPlan]) -> int:
        """Play every plan; return how many incidents were followed."""

        async def play(plan: HandlerPlan) -> None:
            await workflow.execute_child_workflow(
                SimulatedHandlers.run, plan, id=f"simulation-{plan.incident.incident_id}"
            )
            self._done += 1

        await asyncio.gather(*(play(plan) for plan in plans))
        return self._done

    @workflow.query
    def done(self) -> int:
        """How many incidents have been followed to the end so far."""
        return self._done
