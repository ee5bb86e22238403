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


#: The incident workflows still running: what the gauge counts.
RUNNING_INCIDENTS = "WorkflowType = 'IncidentWorkflow' AND ExecutionStatus = 'Running'"

#: At most this many count queries in flight at once: a rules file of many levels must not fire
#: hundreds of visibility queries together.
COUNT_CONCURRENCY = 8


def _literal(value: str) -> str:
    # Levels come from rules files (validated names) or the command line; a quote would change the query.
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r}: quotes and backslashes are not allowed in a level or status")
    return f"'{value}'"


async def count_incidents(
    client: Client,
    levels: Iterable[str] = DEFAULT_LEVELS,
    statuses: Iterable[Status] = OPEN_STATUSES,
    *,
    query: str = RUNNING_INCIDENTS,
    concurrency: int = COUNT_CONCURRENCY,
) -> dict[tuple[str, str], int]:
    """The number of incident workflows matching `query` per (level, status), from visibility counts.

    Visibility can group only by execution status, so each pair is one count query (never a listing),
    at most `concurrency` of them at once. The gauge counts the running ones (the defaults);
    `gridflow incident list --count` passes the list's filters as `query`.
    """
    pairs = [(level, Status(status).value) for level in levels for status in statuses]
    limit = asyncio.Semaphore(concurrency)

    async def count(level: str, status: str) -> int:
        pair_query = (
            f"({query}) AND GridflowLevel = {_literal(level)} AND GridflowStatus = {_literal(status)}"
        )
        async with limit:
            return (await client.count_workflows(pair_query)).count

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
            gauge.set(await count_incidents(client, levels))
        except Exception as exc:  # visibility down: keep serving the last known figures
            log.warning("open incidents not counted", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
