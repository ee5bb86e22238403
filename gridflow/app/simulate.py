"""`gridflow simulate`: what a rules file does to the rates, before it is deployed.

Two engines run the same lifecycle rules (gridflow.domain.lifecycle) and the same scripted people
(gridflow.domain.simulation.model):
- `discrete` (the default): the discrete-event engine (gridflow.domain.simulation.engine) drives the core
  directly, thousands of incidents per second, streaming the input in bounded memory;
- `temporal`: the real IncidentWorkflow on a time-skipping Temporal test server, each incident's people
  played by a workflow beside it (workflows/simulated_handlers.py). Slow, and there to prove the first:
  on the same grid of instants both give the same timelines.
The rates come out of the incidents' own timelines (gridflow/domain/rates.py), the definitions the Prometheus
rules use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.simulation import SimulationActivities
from gridflow.app.binaries import find_binary
from gridflow.app.compose import build_worker
from gridflow.app.temporal import register_search_attributes
from gridflow.domain.lifecycle import IncidentState
from gridflow.domain.lifecycle.resolution import ceil_to
from gridflow.domain.rules.loader import RulesSource
from gridflow.domain.rules.model import RuleSet
from gridflow.domain.simulation.engine import Finished, run_discrete
from gridflow.domain.simulation.model import HORIZON, HandlerPlan, SimulatedIncident
from gridflow.domain.simulation.results import (
    Breakdown,
    Fate,
    Pairing,
    Simulation,
    SimulationResult,
    ladder_levels,
)
from gridflow.domain.simulation.stream import StreamInfo, count_incidents, read_stream
from workflows.client import incident_state
from workflows.simulated_handlers import SimulatedHandlers, SimulationRun

# Told how far a run is: (simulated instant or None, incidents finished, incidents in all).
OnProgress = Callable[[datetime | None, int, int], None]
NamedRules = tuple[str, RuleSet]
CHUNK = 500  # incidents per driver workflow, to keep its input well under the payload limit
# The Temporal engine counts time in whole seconds: the test server's jitter (milliseconds per timer
# and command) vanishes on that grid. Pass the same resolution to the discrete engine to compare them.
TEMPORAL_RESOLUTION = timedelta(seconds=1)
WEEK = timedelta(days=7)


class Engine(StrEnum):
    """The simulation engines."""

    DISCRETE = "discrete"
    TEMPORAL = "temporal"


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often for a while.

    A simulation allocates millions of short-lived objects while the open cases live on: at Python's
    default thresholds the collector rescans those survivors (and whatever the process held before)
    thousands of times; the engine makes no reference cycles it needs collected promptly.
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def simulate_discrete(
    path: Path,
    rule_sets: list[NamedRules],
    *,
    progress: OnProgress | None = None,
    resolution: timedelta | None = None,
    horizon: timedelta = HORIZON,
    finished: Finished | None = None,
) -> Simulation:
    """Run a stream file on one or two rule sets with the discrete-event engine, in one pass (each
    line checked as it is read: a bad one stops the run with StreamError naming every bad line)."""
    total = count_incidents(path)
    info = StreamInfo()
    started = time.monotonic()
    breakdowns = [Breakdown() for _ in rule_sets]
    pairing = Pairing() if len(rule_sets) == 2 else None
    last_steps: list[datetime | None] = [None for _ in rule_sets]  # each rule set's latest step

    def count(lane: int, item: SimulatedIncident, state: IncidentState) -> None:
        breakdowns[lane].add(state)
        latest = last_steps[lane]
        if state.timeline and (latest is None or state.timeline[-1].at > latest):
            last_steps[lane] = state.timeline[-1].at
        if pairing is not None:
            pairing.add(lane, item.incident.incident_id, Fate.of(state))
        if finished is not None:
            finished(lane, item, state)

    def progressed(at: datetime, cases: int) -> None:
        if progress is not None:
            progress(at, cases // len(rule_sets), total)

    with fewer_collections():
        run_discrete(
            read_stream(path, info),
            [rules for _, rules in rule_sets],
            count,
            horizon=horizon,
            resolution=resolution,
            progressed=progressed,
            progress_every=max(1, min(5000, total // 100)) * len(rule_sets),
        )
    assert info.first_report is not None  # read_stream raises on a stream without incidents
    first = ceil_to(info.first_report.astimezone(UTC), resolution)
    return Simulation(
        engine=Engine.DISCRETE.value,
        incidents=info.incidents,
        wall_seconds=time.monotonic() - started,
        results=[
            SimulationResult(
                name=name,
                rules_version=rules.version,
                levels=ladder_levels(rules),
                breakdown=breakdown,
                simulated=(last - first) if last is not None else timedelta(0),
            )
            for (name, rules), breakdown, last in zip(rule_sets, breakdowns, last_steps, strict=True)
        ],
        changes=pairing.changes if pairing is not None else None,
    )


async def simulate_temporal(
    stream: list[SimulatedIncident],
    rule_sets: list[NamedRules],
    *,
    progress: OnProgress | None = None,
    resolution: timedelta | None = TEMPORAL_RESOLUTION,
    horizon: timedelta = HORIZON,
    finished: Finished | None = None,
) -> Simulation:
    """Run the stream on each rule set through the real workflow on a time-skipping test server."""
    started = time.monotonic()
    results, fates = [], []
    for lane, (name, rules) in enumerate(rule_sets):
        states, span = await _run_on_test_server(stream, rules, progress, resolution, horizon)
        breakdown = Breakdown()
        for item, state in zip(stream, states, strict=True):
            breakdown.add(state)
            if finished is not None:
                finished(lane, item, state)
        fates.append([Fate.of(state) for state in states])
        results.append(
            SimulationResult(
                name=name,
                rules_version=rules.version,
                levels=ladder_levels(rules),
                breakdown=breakdown,
                simulated=span,
            )
        )
    changes = None
    if len(rule_sets) == 2:
        pairing = Pairing()
        for lane, lane_fates in enumerate(fates):
            for item, fate in zip(stream, lane_fates, strict=True):
                pairing.add(lane, item.incident.incident_id, fate)
        changes = pairing.changes
    return Simulation(
        engine=Engine.TEMPORAL.value,
        incidents=len(stream),
        wall_seconds=time.monotonic() - started,
        results=results,
        changes=changes,
    )


def plans(
    stream: Iterable[SimulatedIncident], now: datetime, resolution: timedelta | None, horizon: timedelta
) -> list[HandlerPlan]:
    """The Temporal engine's plans: every report on the test server's clock, which starts at the real
    present and only runs forward. A stream dated in the future plays on its own instants; one in the
    past is moved ahead by whole weeks (weekdays and hours of day stay; holidays may then fall elsewhere).
    """
    items = list(stream)
    first = min(item.incident.reported_at for item in items)
    shift = timedelta(0)
    while first + shift < now:
        shift += WEEK
    result = []
    for item in items:
        incident = item.incident
        if shift:
            incident = incident.model_copy(update={"reported_at": incident.reported_at + shift})
        report_at = ceil_to(incident.reported_at.astimezone(UTC), resolution)
        result.append(
            HandlerPlan(
                incident=incident,
                behaviour=item.behaviour,
                report_at=report_at,
                horizon=horizon,
                resolution=resolution,
            )
        )
    return result


async def _run_on_test_server(
    stream: list[SimulatedIncident],
    rules: RuleSet,
    progress: OnProgress | None,
    resolution: timedelta | None,
    horizon: timedelta,
) -> tuple[list[IncidentState], timedelta]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
        # The default 5 s is too short for a loaded machine's first start of the Java server.
        test_server_startup_timeout=timedelta(seconds=60),
    )
    async with env:
        await register_search_attributes(env.client, env.client.namespace)
        source = RulesSource()
        source.replace(rules)
        queue = f"simulation-{uuid.uuid4().hex[:8]}"
        handlers = SimulationActivities(env.client)
        worker = build_worker(
            env.client,
            queue,
            source,
            sinks=[],
            metrics=None,
            extra_workflows=[SimulatedHandlers, SimulationRun],
            extra_activities=[handlers.observe, handlers.act],
        )
        async with worker:
            all_plans = plans(stream, await env.get_current_time(), resolution, horizon)
            runs = [
                await env.client.start_workflow(
                    SimulationRun.run,
                    all_plans[offset : offset + CHUNK],
                    id=f"simulation-run-{offset}",
                    task_queue=queue,
                )
                for offset in range(0, len(all_plans), CHUNK)
            ]

            async def report_progress() -> None:
                while progress is not None:
                    done = sum([await run.query(SimulationRun.done) for run in runs])
                    progress(None, done, len(all_plans))
                    await asyncio.sleep(1)

            reporter = asyncio.create_task(report_progress())
            try:
                # The client waits on one result at a time: the test server skips time while it waits.
                for run in runs:
                    await run.result()
            finally:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError, RPCError):
                    await reporter
            if progress is not None:
                progress(None, len(all_plans), len(all_plans))
            states = [await _final_state(env.client, plan) for plan in all_plans]
    first = min(plan.report_at for plan in all_plans)
    last = max(step.at for state in states for step in state.timeline)
    return states, last - first


async def _final_state(client: Client, plan: HandlerPlan) -> IncidentState:
    return await incident_state(client, plan.incident.incident_id)
