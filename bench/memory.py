"""Worker memory per open incident, measured in a fresh process of its own (`python -m bench.memory`).

A fresh process, so that what earlier benchmarks allocated (and Python keeps) does not blur the figure:
it connects to the benchmark's Temporal server, runs one worker, takes a baseline after a warm-up, then
opens incidents (or trivial workflows) stage by stage; each stage ends when every workflow has done its
start-up activities and sleeps on its clock. It prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.stack import progress, quiet_logs, rss_bytes
from bench.trivial import START_ACTIVITIES, Noop, TrivialWorkflow
from events import contract
from gridflow.app.compose import build_worker
from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle import StepBatch
from gridflow.domain.rules.loader import RulesSource
from tests.events.samples import sample_data
from workflows.client import report_incident

WARM_UP = 20
START_BATCH = 200  # workflows opened at once, well under the worker's cache of 1000
SETTLE_SECONDS = 0.5


class CountingSink:
    """A step sink that only counts batches: an incident publishes one batch once it is dispatched."""

    def __init__(self) -> None:
        self.batches = 0

    async def publish(self, batch: StepBatch) -> None:
        """Count the batch."""
        self.batches += 1


def incident(incident_id: str) -> Incident:
    """A realistic reported incident."""
    return Incident.model_validate(sample_data(contract.REPORTED, incident_id))


class Opener:
    """Opens workflows of one kind and tells how many have settled on their clocks."""

    def __init__(self, client: Client, kind: str) -> None:
        self.kind = kind
        self.client = client
        self.task_queue = f"bench-memory-{kind}-{uuid.uuid4().hex[:6]}"
        self.opened = 0
        self._sink = CountingSink()
        self._noop = Noop()
        self.worker: Worker
        if kind == "gridflow":
            self.worker = build_worker(
                client, self.task_queue, RulesSource(), sinks=[self._sink], metrics=None
            )
            self._open_one: Callable[[int], Awaitable[Any]] = self._open_incident
        else:
            self.worker = Worker(
                client,
                task_queue=self.task_queue,
                workflows=[TrivialWorkflow],
                activities=[self._noop.noop],
            )
            self._open_one = self._open_trivial

    def settled(self) -> int:
        """Workflows that finished their start-up activities."""
        if self.kind == "gridflow":
            return self._sink.batches
        return self._noop.calls // START_ACTIVITIES

    async def _open_incident(self, number: int) -> None:
        await report_incident(self.client, self.task_queue, incident(f"mem-{self.task_queue}-{number}"))

    async def _open_trivial(self, number: int) -> None:
        await self.client.start_workflow(
            TrivialWorkflow.run, id=f"{self.task_queue}-{number}", task_queue=self.task_queue
        )

    async def open_until(self, total: int, deadline: float) -> int:
        """Open workflows until `total` are open and settled (or the deadline passes); return settled.

        They are opened a batch at a time, each batch once the last has settled: more workflows needing
        work at once than the worker caches (max_cached_workflows) would make it evict and replay them
        over and over, and measure that instead.
        """
        while self.opened < total and time.monotonic() < deadline:
            batch = range(self.opened, min(total, self.opened + START_BATCH))
            await asyncio.gather(*(self._open_one(number) for number in batch))
            self.opened = batch.stop
            await wait_for_count(self.settled, self.opened, deadline)
        await asyncio.sleep(SETTLE_SECONDS)  # the last workflow tasks (setting the clocks)
        return min(self.settled(), total)


async def wait_for_count(count: Callable[[], int], total: int, deadline: float) -> None:
    """Wait until `count()` reaches `total` or the deadline passes."""
    while count() < total and time.monotonic() < deadline:  # noqa: ASYNC110 (a counter, not an event)
        await asyncio.sleep(0.1)


def measured_rss() -> int:
    """RSS after a full collection."""
    gc.collect()
    return rss_bytes()


async def measure(
    address: str, namespace: str, kind: str, stages: list[int], seconds: float
) -> dict[str, Any]:
    """Baseline after a warm-up, then RSS at each stage of open workflows."""
    quiet_logs()
    client = await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)
    opener = Opener(client, kind)
    deadline = time.monotonic() + seconds
    result: dict[str, Any] = {
        "kind": kind,
        "max_cached_workflows": opener.worker.config().get("max_cached_workflows"),
        "stages": [],
    }
    async with opener.worker:
        await opener.open_until(WARM_UP, deadline)
        baseline = measured_rss()
        result["baseline_rss_bytes"] = baseline
        for stage in stages:
            started = time.monotonic()
            settled = await opener.open_until(WARM_UP + stage, deadline) - WARM_UP
            rss = measured_rss()
            result["stages"].append(
                {
                    "target": stage,
                    "open": settled,
                    "rss_bytes": rss,
                    "delta_bytes": rss - baseline,
                    "bytes_per_open": (rss - baseline) / settled if settled > 0 else 0.0,
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
            progress(
                f"memory: {kind}: {settled} open, RSS {rss / 2**20:.1f} MiB (baseline {baseline / 2**20:.1f})"
            )
            if settled < stage:
                progress(f"memory: {kind}: time bound reached at {settled} of {stage}")
                break
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--kind", choices=["gridflow", "trivial"], required=True)
    parser.add_argument("--stages", required=True, help="open workflow counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=300.0, help="time bound for all stages")
    args = parser.parse_args(argv)
    stages = [int(part) for part in args.stages.split(",")]
    result = asyncio.run(measure(args.address, args.namespace, args.kind, stages, args.seconds))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
