"""`gridflow simulate`: replay a stream of incidents through the real IncidentWorkflow in accelerated time.

Each run gets its own time-skipping test server, worker and rules: the incidents are started by
scripted handler workflows (workflows/simulated_handlers.py) at their report moments, and the server
jumps over every stretch of time in which nothing is due. The rates of the closed loop come out of the
incidents' own timelines (gridflow/rates.py), the same definitions as the Prometheus rules.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.simulation import SimulationActivities
from gridflow.binaries import find_binary
from gridflow.incidents import incident_state
from gridflow.rates import RateReport, rate_report
from gridflow.rules.loader import RulesSource
from gridflow.rules.model import RuleSet
from gridflow.simulation_model import HandlerPlan, SimulatedIncident
from gridflow.temporal import register_search_attributes
from gridflow.worker import build_worker
from workflows.simulated_handlers import SimulatedHandlers, SimulationRun

Progress = Callable[[int, int], None]
CHUNK = 500  # incidents per driver workflow, to keep its input well under the payload limit


class StreamError(ValueError):
    """A simulation stream with a bad line (the message names the file and the line)."""


def load_stream(path: Path) -> list[SimulatedIncident]:
    """Read a JSON-lines stream; every bad line is reported with its number."""
    incidents, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            incidents.append(SimulatedIncident.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problems.append(f"{path}:{number}: {where}: {first['msg']}")
    if problems:
        raise StreamError(
            "\n".join(problems[:20]) + (f"\n... and {len(problems) - 20} more" if len(problems) > 20 else "")
        )
    if not incidents:
        raise StreamError(f"{path}: no incidents")
    ids = [item.incident.incident_id for item in incidents]
    if len(set(ids)) != len(ids):
        raise StreamError(f"{path}: incident ids must be unique in a stream")
    return incidents


def plans(stream: Iterable[SimulatedIncident]) -> list[HandlerPlan]:
    """Each incident with its delay from the first report of the stream."""
    items = list(stream)
    start = min(item.incident.reported_at for item in items)
    return [
        HandlerPlan(incident=item.incident, behaviour=item.behaviour, delay=item.incident.reported_at - start)
        for item in items
    ]


@dataclass
class SimulationResult:
    """What a simulation run measured."""

    rules_version: str
    levels: list[str]
    report: RateReport
    incidents: int
    simulated: timedelta  # simulated time from the first report to the last closure
    wall_seconds: float

    @property
    def incidents_per_second(self) -> float:
        """Simulated incidents per wall-clock second."""
        return self.incidents / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def days_per_second(self) -> float:
        """Simulated days per wall-clock second."""
        return self.simulated / timedelta(days=1) / self.wall_seconds if self.wall_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "rules_version": self.rules_version,
            "incidents": self.incidents,
            "simulated_seconds": self.simulated.total_seconds(),
            "wall_seconds": round(self.wall_seconds, 3),
            "incidents_per_second": round(self.incidents_per_second, 2),
            "simulated_days_per_second": round(self.days_per_second, 2),
            **self.report.as_dict(self.levels),
        }


async def simulate(
    stream: list[SimulatedIncident],
    rules: RuleSet,
    *,
    progress: Progress | None = None,
    concurrency: int = 200,
) -> SimulationResult:
    """Run the stream on the rules; `progress(done, total)` is called as incidents close."""
    started = time.monotonic()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=find_binary("temporal-test-server")
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
            first = await env.get_current_time()
            all_plans = plans(stream)
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
                    progress(done, len(all_plans))
                    await asyncio.sleep(1)

            reporter = asyncio.create_task(report_progress())
            try:
                # The client waits on one result at a time: the test server skips time while it waits.
                for run in runs:
                    await run.result()
            finally:
                reporter.cancel()
            if progress is not None:
                progress(len(all_plans), len(all_plans))
            states = [await incident_state(env.client, item.incident.incident_id) for item in stream]
            last = max((s.closed_at for s in states if s.closed_at is not None), default=first)
    levels = sorted(
        {level for rule in rules.rules for level in rule.levels},
        key=lambda level: min(rule.levels.index(level) for rule in rules.rules if level in rule.levels),
    )
    return SimulationResult(
        rules_version=rules.version,
        levels=levels,
        report=rate_report(states),
        incidents=len(stream),
        simulated=last - first,
        wall_seconds=time.monotonic() - started,
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def format_results(results: list[tuple[str, SimulationResult]]) -> str:
    """The rates of one or more runs side by side, as a text table."""
    levels: list[str] = []
    for _, result in results:
        levels += [level for level in result.levels if level not in levels]
    rows: list[tuple[str, list[str]]] = [
        ("incidents", [str(r.incidents) for _, r in results]),
        ("closed", [str(r.report.closed) for _, r in results]),
        ("response rate", [_percent(r.report.response_rate) for _, r in results]),
        ("resolution rate", [_percent(r.report.resolution_rate) for _, r in results]),
        ("satisfaction rate", [_percent(r.report.satisfaction_rate) for _, r in results]),
        ("on-time rate", [_percent(r.report.on_time_rate) for _, r in results]),
        ("escalation rate", [_percent(r.report.escalation_rate) for _, r in results]),
        ("escalations", [str(r.report.escalations) for _, r in results]),
        ("reopens", [str(r.report.reopens) for _, r in results]),
    ]
    for level in levels:
        rows.append(
            (
                f"contained by {level}",
                [_percent(r.report.containment(r.levels).get(level)) for _, r in results],
            )
        )
    rows += [
        ("time to resolve p50", [_duration(r.report.time_to_resolve(0.5)) for _, r in results]),
        ("time to resolve p90", [_duration(r.report.time_to_resolve(0.9)) for _, r in results]),
        ("simulated days", [f"{r.simulated / timedelta(days=1):.1f}" for _, r in results]),
        ("wall seconds", [f"{r.wall_seconds:.1f}" for _, r in results]),
        ("incidents / second", [f"{r.incidents_per_second:.1f}" for _, r in results]),
        ("simulated days / second", [f"{r.days_per_second:.2f}" for _, r in results]),
    ]
    header = ["", *(name for name, _ in results)]
    widths = [max(len(row[0]) for row in rows)] + [
        max(len(header[i + 1]), *(len(row[1][i]) for row in rows)) for i in range(len(results))
    ]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(header))
    ]
    for label, cells in rows:
        lines.append(
            "  ".join([label.ljust(widths[0]), *(c.rjust(widths[i + 1]) for i, c in enumerate(cells))])
        )
    return "\n".join(lines)


def write_json(path: Path, results: list[tuple[str, SimulationResult]]) -> None:
    """Write the runs' results as JSON."""
    path.write_text(json.dumps({name: result.as_dict() for name, result in results}, indent=2) + "\n")
