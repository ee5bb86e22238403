"""The open-incidents gauge, counted exactly from Temporal visibility (search attributes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog
from prometheus_client import CollectorRegistry, Gauge
from temporalio.client import Client

from gridflow.domain.incident import DEFAULT_LEVELS, Status

log = structlog.get_logger(__name__)

OPEN_STATUSES = (Status.DISPATCHED, Status.ACCEPTED, Status.PAUSED, Status.RESOLVED)


class OpenIncidentsGauge:
    """The `gridflow_open_incidents` gauge of one process, in that process's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open_incidents = Gauge(
            "gridflow_open_incidents",
            "Incidents not yet closed, by the level that holds them and their status "
            "(from Temporal visibility).",
            ["level", "status"],
            registry=registry,
        )

    def set(self, counts: dict[tuple[str, str], int]) -> None:
        """Set the gauge to the counts per (level, status)."""
        for (level, status), count in counts.items():
            self.open_incidents.labels(level=level, status=status).set(count)


async def count_open_incidents(
    client: Client, levels: Iterable[str] = DEFAULT_LEVELS
) -> dict[tuple[str, str], int]:
    """The number of running incident workflows per (level, status).

    Visibility can group only by execution status, so each pair is one count query.
    """
    pairs = [(level, status.value) for level in levels for status in OPEN_STATUSES]

    async def count(level: str, status: str) -> int:
        query = (
            "WorkflowType = 'IncidentWorkflow' AND ExecutionStatus = 'Running' "
            f"AND GridflowLevel = '{level}' AND GridflowStatus = '{status}'"
        )
        return (await client.count_workflows(query)).count

    counts = await asyncio.gather(*(count(level, status) for level, status in pairs))
    return dict(zip(pairs, counts, strict=True))


async def publish_open_incidents(
    client: Client,
    gauge: OpenIncidentsGauge,
    stop: asyncio.Event,
    every_seconds: float = 15.0,
    levels: Iterable[str] = DEFAULT_LEVELS,
) -> None:
    """Refresh the gauge until `stop` is set; a failed refresh keeps the last figures and is logged."""
    levels = list(levels)
    while not stop.is_set():
        try:
            gauge.set(await count_open_incidents(client, levels))
        except Exception as exc:  # visibility down: keep serving the last known figures
            log.warning("open incidents not counted", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
