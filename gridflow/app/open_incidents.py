"""The open-incidents and due-soon gauges, counted exactly from Temporal visibility (search attributes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Gauge
from temporalio.client import Client

from gridflow.domain.incident import DEFAULT_LEVELS, Status
from workflows import search_attributes as sa

log = structlog.get_logger(__name__)

OPEN_STATUSES = (Status.DISPATCHED, Status.ACCEPTED, Status.PAUSED, Status.VERIFYING, Status.RESOLVED)


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
        self.due_soon = Gauge(
            "gridflow_incidents_due_soon",
            "Open incidents whose running SLA clock runs out within the next hour, by district "
            "(from Temporal visibility).",
            ["district"],
            registry=registry,
        )
        self._districts: set[str] = set()

    def set(self, counts: dict[tuple[str, str], int]) -> None:
        """Set the gauge to the counts per (level, status)."""
        for (level, status), count in counts.items():
            self.open_incidents.labels(level=level, status=status).set(count)

    def set_due_soon(self, counts: dict[str, int]) -> None:
        """Set the due-soon gauge per district; a district counted before and not now goes to 0."""
        self._districts |= set(counts)
        for district in self._districts:
            self.due_soon.labels(district=district).set(counts.get(district, 0))


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


#: How far ahead the due-soon gauge looks.
DUE_SOON_WITHIN = timedelta(hours=1)


async def count_due_soon(
    client: Client, now: datetime, within: timedelta = DUE_SOON_WITHIN, *, query: str = RUNNING_INCIDENTS
) -> dict[str, int]:
    """The running incidents whose SLA clock runs out between `now` and `now + within`, per district.

    Visibility cannot group by a search attribute, so the incidents due are listed (only their search
    attributes travel) and counted here: a few hundred in a busy city hour, not the open ones all.
    """
    due = f"({query}) AND {sa.due_between(now, now + within)}"
    counts: Counter[str] = Counter()
    async for execution in client.list_workflows(due, page_size=1000):
        counts[execution.typed_search_attributes.get(sa.DISTRICT) or ""] += 1
    return dict(counts)


async def publish_open_incidents(
    client: Client,
    gauge: OpenIncidentsGauge,
    stop: asyncio.Event,
    every_seconds: float = 15.0,
    levels: Iterable[str] = DEFAULT_LEVELS,
) -> None:
    """Refresh the gauges until `stop` is set; a failed refresh keeps the last figures and is logged."""
    levels = list(levels)
    while not stop.is_set():
        try:
            gauge.set(await count_incidents(client, levels))
            gauge.set_due_soon(await count_due_soon(client, datetime.now(UTC)))
        except Exception as exc:  # visibility down: keep serving the last known figures
            log.warning("open incidents not counted", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
