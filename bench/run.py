"""gridflow's benchmarks: `python -m bench.run [--quick] [--json bench/results.json]`.

The run starts its own Temporal dev server (in memory, and one with SQLite persistence for one figure)
and its own Tansu broker on free 127.0.0.1 ports. Every throughput or latency figure is measured
against the raw capability of the same server in the same run, and reported as a ratio, so a busy or
slow machine moves both sides alike. Progress goes to stderr, the table to stdout, the figures to JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from temporalio.client import Client
from temporalio.worker import Worker

from bench import burst as burst_benchmark
from bench import open_incidents
from bench.figures import Benchmark, Figure
from bench.open_incidents import Stage
from bench.stack import (
    Stack,
    compile_bytecode,
    cpu_count,
    new_ids,
    percentile,
    progress,
    quiet_logs,
    rss_bytes,
    sample_rss,
    stdout_to_stderr,
    tansu_broker,
    temporal_server,
)
from bench.trivial import Noop, TrivialWorkflow
from events import contract
from events.bridge import Bridge
from events.cloudevents import encode_structured, make_event
from events.kafka import client_config, ensure_topics, make_producer
from events.metrics import BridgeMetrics
from gridflow.app.compose import build_worker
from gridflow.app.settings import Settings
from gridflow.app.simulate import NamedRules, simulate_discrete, simulate_temporal
from gridflow.domain.incident import Incident, Rating, workflow_id_for
from gridflow.domain.lifecycle import Accept, Feedback, Resolve
from gridflow.domain.rules.loader import RulesSource, builtin_rule_set
from gridflow.domain.simulation.generator import generate
from gridflow.domain.simulation.results import Simulation
from gridflow.domain.simulation.stream import load_stream
from tests.events.samples import UNIT_ID, sample_data
from workflows.client import report_incident, send_command
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput

MiB = 2**20
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does, and how long it may take at most."""

    ingest: int  # reported events already in Kafka, started by a bridge (in-memory server)
    ingest_sqlite: int  # the same against the SQLite-persisting server
    lifecycle: int  # incidents driven through their whole loop
    lifecycle_concurrency: int  # incidents in their loop at once
    latency_seconds: float  # how long events are published at the steady rate
    latency_max: int  # at most this many events
    memory_stages: tuple[int, int]  # open incidents at which the worker's RSS is read
    memory_trivial: int  # open trivial workflows for the baseline
    memory_seconds: float  # time bound of each memory child process
    simulation: int  # incidents in the generated stream the discrete engine runs
    simulation_days: int  # days the stream spans
    simulation_temporal: int  # its first incidents, run on the Temporal engine too
    simulation_large: int  # incidents in the large stream (--large), run in a fresh process for its RSS
    simulation_large_days: int  # days the large stream spans
    simulation_fidelity: int  # incidents of the differential run, both engines (--large)
    simulation_seconds: float  # time bound of each simulation run (fresh process, Temporal, differential)
    stage_seconds: float  # time bound of any one waiting stage
    open_stages: tuple[Stage, ...]  # incidents held open on one worker, and the firings among them
    open_stages_large: tuple[Stage, ...]  # more, with --large
    open_seconds: float  # time bound of each wait of an open-incidents stage
    burst: int  # reports published at once

    @classmethod
    def full(cls) -> Sizes:
        """The full run: a few minutes on 2 cores (the simulation about 2); --large adds about 30 more."""
        return cls(
            ingest=2000,
            ingest_sqlite=500,
            lifecycle=300,
            lifecycle_concurrency=50,
            latency_seconds=12.0,
            latency_max=3000,
            memory_stages=(1000, 10_000),
            memory_trivial=1000,
            memory_seconds=120.0,
            simulation=20_000,
            simulation_days=30,
            simulation_temporal=200,
            simulation_large=1_000_000,
            simulation_large_days=365,  # a year of a city's reports
            simulation_fidelity=500,
            simulation_seconds=1800.0,
            stage_seconds=120.0,
            open_stages=(Stage(1000, 300, 300), Stage(10_000, 1000, 600)),
            open_stages_large=(Stage(50_000, 1000, 600),),
            open_seconds=900.0,
            burst=10_000,
        )

    @classmethod
    def quick(cls) -> Sizes:
        """The quick run: about a minute, to check that everything works (--large: small streams)."""
        return cls(
            ingest=100,
            ingest_sqlite=30,
            lifecycle=30,
            lifecycle_concurrency=10,
            latency_seconds=2.0,
            latency_max=300,
            memory_stages=(100, 500),
            memory_trivial=100,
            memory_seconds=60.0,
            simulation=2000,
            simulation_days=30,
            simulation_temporal=20,
            simulation_large=20_000,
            simulation_large_days=30,
            simulation_fidelity=50,
            simulation_seconds=300.0,
            stage_seconds=60.0,
            open_stages=(Stage(400, 60, 60), Stage(600, 60, 60)),
            open_stages_large=(Stage(800, 60, 60),),
            open_seconds=120.0,
            burst=300,
        )


# ---------------------------------------------------------------------------------------------- helpers


def incident(incident_id: str) -> Incident:
    """A realistic reported incident (every optional field filled in)."""
    return Incident.model_validate(sample_data(contract.REPORTED, incident_id))


#: Every bridge of the benchmarks counts here, so a measurement reads the figures before and after it.
BRIDGE_METRICS = BridgeMetrics(CollectorRegistry())


def counter(name: str) -> float:
    """The current value of one of the bridge's unlabelled counters."""
    return BRIDGE_METRICS.registry.get_sample_value(name) or 0.0


def dead_letters() -> float:
    """Messages the bridge has dead-lettered so far, whatever the reason."""
    total = 0.0
    for metric in BRIDGE_METRICS.registry.collect():
        if metric.name == "gridflow_bridge_dead_lettered":
            total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
    return total


STARTED = "gridflow_bridge_workflows_started_total"


async def wait_until(check: Callable[[], bool], seconds: float, every: float = 0.005) -> bool:
    """Poll `check` until it holds or `seconds` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


def publish_reports(settings: Settings, incident_ids: list[str]) -> None:
    """Put one structured `reported` event per incident on the incidents topic and wait for the acks."""
    producer = make_producer(settings)
    try:
        for incident_id in incident_ids:
            event = make_event(contract.REPORTED, sample_data(contract.REPORTED, incident_id), source="bench")
            key, value, headers = encode_structured(event)
            producer.send(settings.incidents_topic, key=key, value=value, headers=headers)
        producer.flush(60)
    finally:
        producer.close(10)


class RunningBridge:
    """A Bridge in this process, started and stopped around a measurement."""

    def __init__(self, settings: Settings, client: Client) -> None:
        self.bridge = Bridge(settings, client, metrics=BRIDGE_METRICS)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, join_seconds: float) -> float:
        """Start the bridge; return the seconds until it owns its partitions (the group join)."""
        began = time.perf_counter()
        self._task = asyncio.create_task(self.bridge.run(self._stop))
        if not await wait_until(lambda: bool(self.bridge.assigned) or self.failed(), join_seconds):
            raise RuntimeError("the bridge was not assigned any partition in time")
        if self.failed():
            await self.stop()
        return time.perf_counter() - began

    def failed(self) -> bool:
        """Whether the bridge task ended on its own (an error)."""
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        """Stop the bridge (finishing in-flight messages); re-raise what made it fail."""
        self._stop.set()
        if self._task is not None:
            await self._task


async def raw_starts(client: Client, incident_ids: list[str], task_queue: str, concurrency: int) -> float:
    """Starts per second of bare `start_workflow` calls (same workflow and input) at `concurrency`."""
    incidents = [incident(incident_id) for incident_id in incident_ids]
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Incident) -> None:
        async with semaphore:
            await client.start_workflow(
                IncidentWorkflow.run, IncidentInput(incident=item), id=item.workflow_id, task_queue=task_queue
            )

    began = time.perf_counter()
    await asyncio.gather(*(one(item) for item in incidents))
    return len(incidents) / (time.perf_counter() - began)


async def count_on_queue(client: Client, task_queue: str, expected: int, seconds: float = 10.0) -> int:
    """Workflows on a task queue, per the server's visibility (which may lag a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        count = (await client.count_workflows(f"TaskQueue = '{task_queue}'")).count
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------------------------------------- 1. ingestion


@dataclass
class Ingestion:
    """What one ingestion measurement found."""

    count: int
    bridge_rate: float
    raw_rate: float
    raw_rates: tuple[float, float]
    join_seconds: float
    bridge_seconds: float
    rss_before: int
    rss_peak: int


async def ingestion(stack: Stack, count: int, label: str, seconds: float) -> Ingestion:
    """N reported events already in Kafka: how fast a bridge starts them all vs bare start calls."""
    client = stack.temporal.client
    settings = stack.settings(f"ingest-{label}")
    concurrency = settings.bridge_max_in_flight
    await asyncio.to_thread(ensure_topics, settings)
    await asyncio.to_thread(publish_reports, settings, new_ids(f"b{label}", count))
    progress(
        f"ingestion ({label}): {count} reported events in Kafka ({settings.topic_partitions} partitions)"
    )

    before = await raw_starts(
        client, new_ids(f"r1{label}", count), f"{settings.task_queue}-raw1", concurrency
    )
    progress(f"ingestion ({label}): raw start_workflow, before: {before:.1f}/s")

    started_at = counter(STARTED)
    dead_at = dead_letters()
    samples: list[int] = []
    sampling = asyncio.Event()
    rss_before = rss_bytes()
    sampler = asyncio.create_task(sample_rss(samples, sampling))
    running = RunningBridge(settings, client)
    try:
        join = await running.start(seconds)
        began = time.perf_counter()
        done = await wait_until(
            lambda: counter(STARTED) - started_at >= count or running.failed() or dead_letters() > dead_at,
            seconds,
        )
        bridge_seconds = time.perf_counter() - began
    finally:
        await running.stop()
        sampling.set()
        await sampler
    started = int(counter(STARTED) - started_at)
    if not done or started < count:
        raise RuntimeError(
            f"the bridge started {started} of {count} workflows "
            f"({int(dead_letters() - dead_at)} dead-lettered) within {seconds:.0f} s"
        )
    visible = await count_on_queue(client, settings.task_queue, count)
    if visible != count:
        raise RuntimeError(f"the server shows {visible} workflows on the bridge's task queue, not {count}")
    bridge_rate = count / bridge_seconds
    progress(
        f"ingestion ({label}): bridge {bridge_rate:.1f}/s ({bridge_seconds:.2f} s after a {join:.1f} s join)"
    )

    after = await raw_starts(client, new_ids(f"r2{label}", count), f"{settings.task_queue}-raw2", concurrency)
    progress(f"ingestion ({label}): raw start_workflow, after: {after:.1f}/s")
    return Ingestion(
        count=count,
        bridge_rate=bridge_rate,
        raw_rate=(before + after) / 2,
        raw_rates=(before, after),
        join_seconds=join,
        bridge_seconds=bridge_seconds,
        rss_before=rss_before,
        rss_peak=max(samples),
    )


# ---------------------------------------------------------------------------------------------- 2. lifecycle


@dataclass
class Lifecycle:
    """Throughput and CPU of complete loops."""

    count: int
    per_second: float
    cpu_per_run: float
    activities: float  # per loop, mean over the first measured loops
    updates: float


async def drive(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]], seconds: float
) -> Lifecycle:
    """Run `one(i)` for i < count, `concurrency` at once, starting none after `seconds`."""
    deadline = time.monotonic() + seconds
    position = done = 0

    async def lane() -> None:
        nonlocal position, done
        while position < count and time.monotonic() < deadline:
            number = position
            position += 1
            await one(number)
            done += 1

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    if done == 0:
        raise RuntimeError("no loop finished in time")
    return Lifecycle(count=done, per_second=done / wall, cpu_per_run=cpu / done, activities=0, updates=0)


async def shape(client: Client, workflow_ids: list[str]) -> tuple[float, float]:
    """Mean activity calls and accepted updates in the histories of closed workflows."""
    activities = updates = 0
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        for event in history.events:
            activities += event.HasField("activity_task_scheduled_event_attributes")
            updates += event.HasField("workflow_execution_update_accepted_event_attributes")
    return activities / len(workflow_ids), updates / len(workflow_ids)


async def lifecycle(stack: Stack, sizes: Sizes) -> tuple[Lifecycle, Lifecycle]:
    """Complete incident loops with one worker vs the trivial workflow's loops, same server, same driving."""
    client = stack.temporal.client
    warm_up = min(5, sizes.lifecycle)

    # The incident: report -> dispatch -> accept -> resolve -> feedback (satisfied) -> closed.
    queue = stack.settings("lifecycle").task_queue
    ids = new_ids("lc", sizes.lifecycle + warm_up)

    async def incident_loop(number: int) -> None:
        incident_id = ids[number]
        reported = await report_incident(client, queue, incident(incident_id))
        await send_command(client, incident_id, Accept(unit_id=UNIT_ID, handler="bench"))
        await send_command(client, incident_id, Resolve(unit_id=UNIT_ID, resolution="Lamp replaced."))
        await send_command(client, incident_id, Feedback(rating=Rating.SATISFIED))
        await reported.handle.result()

    async with build_worker(client, queue, RulesSource(), sinks=[], metrics=None):
        for number in range(warm_up):
            await incident_loop(number)

        async def measured_incident(number: int) -> None:
            await incident_loop(warm_up + number)

        gridflow = await drive(
            sizes.lifecycle, sizes.lifecycle_concurrency, measured_incident, sizes.stage_seconds
        )
    sample = [
        workflow_id_for(incident_id) for incident_id in ids[warm_up : warm_up + min(gridflow.count, 10)]
    ]
    activities, updates = await shape(client, sample)
    gridflow.activities, gridflow.updates = activities, updates
    progress(
        f"lifecycle: gridflow {gridflow.per_second:.1f} incidents/s "
        f"({activities:g} activity calls and {updates:g} updates per incident)"
    )

    # The trivial workflow on the same server: the same shape of activities and updates, its own worker.
    trivial_queue = stack.settings("trivial").task_queue
    trivial_ids = new_ids("tr", sizes.lifecycle + warm_up)

    async def trivial_loop(number: int) -> None:
        handle = await client.start_workflow(
            TrivialWorkflow.run, id=trivial_ids[number], task_queue=trivial_queue
        )
        await handle.execute_update(TrivialWorkflow.accept, UNIT_ID)
        await handle.execute_update(TrivialWorkflow.resolve, UNIT_ID)
        await handle.execute_update(TrivialWorkflow.feedback, Rating.SATISFIED.value)
        await handle.result()

    async def measured_trivial(number: int) -> None:
        await trivial_loop(warm_up + number)

    noop = Noop()
    async with Worker(client, task_queue=trivial_queue, workflows=[TrivialWorkflow], activities=[noop.noop]):
        for number in range(warm_up):
            await trivial_loop(number)
        trivial = await drive(
            sizes.lifecycle, sizes.lifecycle_concurrency, measured_trivial, sizes.stage_seconds
        )
    trivial_activities, trivial_updates = await shape(
        client, trivial_ids[warm_up : warm_up + min(trivial.count, 10)]
    )
    trivial.activities, trivial.updates = trivial_activities, trivial_updates
    progress(
        f"lifecycle: trivial workflow {trivial.per_second:.1f} loops/s "
        f"({trivial_activities:g} activity calls and {trivial_updates:g} updates per loop)"
    )
    return gridflow, trivial


# ---------------------------------------------------------------------------------------------- 3. latency


@dataclass
class Latency:
    """Publish (or call) -> workflow started, at a steady rate."""

    count: int
    rate: float
    p50: float
    p99: float
    max: float


def publish_paced(settings: Settings, incident_ids: list[str], rate: float) -> dict[str, float]:
    """Publish one `reported` event per incident at `rate` per second; the wall time of each publish.

    The event's CloudEvents `time` is the publish moment. The producer sends at once (no linger), as an
    upstream app that cares about latency would.
    """
    producer = KafkaProducer(**client_config(settings), acks="all", linger_ms=0)
    published: dict[str, float] = {}
    try:
        began = time.monotonic()
        for number, incident_id in enumerate(incident_ids):
            delay = began + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = datetime.now(UTC)
            event = make_event(
                contract.REPORTED, sample_data(contract.REPORTED, incident_id), source="bench", time=now
            )
            key, value, headers = encode_structured(event)
            producer.send(settings.incidents_topic, key=key, value=value, headers=headers)
            published[workflow_id_for(incident_id)] = now.timestamp()
        producer.flush(30)
    finally:
        producer.close(10)
    return published


class KafkaWatcher:
    """A plain consumer of the incidents topic with the bridge's fetch settings, noting when each arrives.

    It measures Kafka's share of the bridge's latency: publish -> a consumer has the message.
    """

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.incidents_topic
        self._consumer = KafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False)
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        assigned = [TopicPartition(self._topic, partition) for partition in partitions]
        self._consumer.assign(assigned)
        self._consumer.seek_to_end(*assigned)
        for partition in assigned:
            self._consumer.position(partition)  # resolve the end offsets now, before anything is published

    def watch(self, count: int, seconds: float) -> dict[str, float]:
        """Poll until `count` messages came (or `seconds` passed); workflow id -> wall time received."""
        received: dict[str, float] = {}
        deadline = time.monotonic() + seconds
        try:
            while len(received) < count and time.monotonic() < deadline:
                for records in self._consumer.poll(timeout_ms=200).values():
                    now = time.time()
                    for record in records:
                        received[workflow_id_for(record.key.decode())] = now
        finally:
            self._consumer.close()
        return received


async def start_times(client: Client, task_queue: str) -> dict[str, float]:
    """The server's start time of every workflow on a task queue (from visibility)."""
    return {
        execution.id: execution.start_time.timestamp()
        async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'")
    }


def latency_of(published: dict[str, float], started: dict[str, float], rate: float) -> Latency:
    """Percentiles of start - publish, in seconds."""
    delays = [started[key] - at for key, at in published.items() if key in started]
    if len(delays) < len(published):
        raise RuntimeError(f"only {len(delays)} of {len(published)} workflows were found started")
    return Latency(
        count=len(delays),
        rate=rate,
        p50=percentile(delays, 0.5),
        p99=percentile(delays, 0.99),
        max=max(delays),
    )


async def latency(stack: Stack, rate: float, sizes: Sizes) -> tuple[Latency, Latency, Latency]:
    """Through the bridge vs bare start calls, both paced at `rate`, and Kafka's share; no worker runs."""
    client = stack.temporal.client
    count = max(10, min(sizes.latency_max, int(rate * sizes.latency_seconds)))
    settings = stack.settings("latency")
    await asyncio.to_thread(ensure_topics, settings)

    # Raw: start_workflow calls fired at the same pace; latency = server start time - call time.
    raw_queue = f"{settings.task_queue}-raw"
    incidents = [incident(incident_id) for incident_id in new_ids("lr", count)]
    called: dict[str, float] = {}
    tasks: list[asyncio.Task[Any]] = []
    began = time.monotonic()
    for number, item in enumerate(incidents):
        delay = began + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        called[item.workflow_id] = time.time()
        tasks.append(
            asyncio.create_task(
                client.start_workflow(
                    IncidentWorkflow.run,
                    IncidentInput(incident=item),
                    id=item.workflow_id,
                    task_queue=raw_queue,
                )
            )
        )
    await asyncio.gather(*tasks)
    await count_on_queue(client, raw_queue, count)
    raw = latency_of(called, await start_times(client, raw_queue), rate)
    progress(f"latency: raw start_workflow p50 {raw.p50 * 1000:.1f} ms, p99 {raw.p99 * 1000:.1f} ms")

    started_at = counter(STARTED)
    running = RunningBridge(settings, client)
    try:
        await running.start(sizes.stage_seconds)
        watcher = await asyncio.to_thread(KafkaWatcher, settings)
        watching = asyncio.create_task(asyncio.to_thread(watcher.watch, count, sizes.stage_seconds))
        published = await asyncio.to_thread(publish_paced, settings, new_ids("lb", count), rate)
        await wait_until(
            lambda: counter(STARTED) - started_at >= count or running.failed(),
            sizes.stage_seconds,
            every=0.05,
        )
        received = await watching
    finally:
        await running.stop()
    await count_on_queue(client, settings.task_queue, count)
    bridged = latency_of(published, await start_times(client, settings.task_queue), rate)
    progress(f"latency: through the bridge p50 {bridged.p50 * 1000:.1f} ms, p99 {bridged.p99 * 1000:.1f} ms")
    kafka = latency_of(published, received, rate)
    progress(f"latency: Kafka alone p50 {kafka.p50 * 1000:.1f} ms, p99 {kafka.p99 * 1000:.1f} ms")
    return bridged, raw, kafka


# ---------------------------------------------------------------------------------------------- 4. memory


async def memory_child(stack: Stack, kind: str, stages: list[int], seconds: float) -> dict[str, Any]:
    """Run `python -m bench.memory` (a fresh worker process) against this run's server."""
    target = stack.temporal.client.service_client.config.target_host
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.memory",
        "--address",
        target,
        "--namespace",
        stack.temporal.client.namespace,
        "--kind",
        kind,
        "--stages",
        ",".join(str(stage) for stage in stages),
        "--seconds",
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        out, _ = await asyncio.wait_for(child.communicate(), seconds + 60)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"the memory child ({kind}) did not finish in time") from None
    if child.returncode != 0:
        raise RuntimeError(f"the memory child ({kind}) failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------- 5. simulation


SHANGHAI = timezone(timedelta(hours=8))
SIMULATION_START = datetime(2026, 11, 23, tzinfo=SHANGHAI)
SIMULATION_SEED = 1
# The differential stream's seed: one checked free of ties between people and clocks
# (tests/gridflow/app/test_simulation_fidelity.py).
FIDELITY_SEED = 11
GENERATE_AT_ONCE = 20_000  # incidents one `generate` call holds in memory while a stream is written
TARGET_INCIDENTS_PER_SECOND = 2000.0
TARGET_OVER_TEMPORAL = 1000.0
TARGET_LARGE_PEAK_RSS_MIB = 1024.0
FIDELITY_MODULE = "tests.simulation_fidelity"
WARM_UP_INCIDENTS = 100  # run untimed first, so that the timed run does not pay for first calls


def write_stream(path: Path, count: int, days: int, seed: int, start: datetime) -> None:
    """Write `count` generated incidents over `days` days from `start` as JSON lines, in report order.

    Up to GENERATE_AT_ONCE incidents it is one `generate` call, what `gridflow generate-stream` writes.
    `generate` holds all its incidents at once (a million would take gigabytes), so a larger stream is
    generated in consecutive spans of whole days, each its own call with its share of the incidents and
    its own seed (`seed` + the span's number), which gives it its own incident ids.
    """
    span = days if count <= GENERATE_AT_ONCE else max(1, days * GENERATE_AT_ONCE // count)
    with path.open("w", encoding="utf-8") as out:
        for number, first_day in enumerate(range(0, days, span)):
            last_day = min(days, first_day + span)
            share = count * last_day // days - count * first_day // days
            if share == 0:
                continue
            items = generate(
                share, days=last_day - first_day, seed=seed + number, start=start + timedelta(days=first_day)
            )
            out.writelines(item.model_dump_json() + "\n" for item in items)


def head(source: Path, target: Path, lines: int) -> None:
    """Copy the first `lines` lines of a stream."""
    with source.open(encoding="utf-8") as read, target.open("w", encoding="utf-8") as write:
        write.writelines(itertools.islice(read, lines))


@dataclass
class EngineRun:
    """One engine on one stream file, timed from the file to the results."""

    simulation: Simulation
    wall_seconds: float  # the whole call: reading and checking the file included

    @property
    def per_second(self) -> float:
        """Simulated incidents (one per stream line and rule set) per wall-clock second."""
        cases = self.simulation.incidents * len(self.simulation.results)
        return cases / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def simulated(self) -> timedelta:
        """The longest simulated span (first report to the last thing that happened)."""
        return max((result.simulated for result in self.simulation.results), default=timedelta(0))


def run_discrete(stream: Path, rule_sets: list[NamedRules]) -> EngineRun:
    """The discrete engine on a stream file, in this process."""
    gc.collect()
    began = time.perf_counter()
    simulated = simulate_discrete(stream, rule_sets)
    return EngineRun(simulated, time.perf_counter() - began)


async def run_temporal(stream: Path, rule_sets: list[NamedRules]) -> EngineRun:
    """The Temporal engine on a stream file, its time-skipping test server's start included."""
    began = time.perf_counter()
    with stdout_to_stderr():  # the test server's start-up lines
        simulated = await simulate_temporal(load_stream(stream), rule_sets)
    return EngineRun(simulated, time.perf_counter() - began)


@dataclass
class FreshRun:
    """`gridflow simulate` (the discrete engine) on a stream file in a fresh process."""

    incidents: int
    peak_rss: int  # bytes: the higher of the command's ru_maxrss and its VmHWM last read
    vmhwm: int | None  # bytes: its VmHWM as last read before it exited
    wall_seconds: float  # the command's whole run, interpreter start-up included
    engine_per_second: float  # what the command itself reports (its simulation only)


async def simulate_in_child(stream: Path, out: Path, seconds: float) -> FreshRun:
    """Run `gridflow simulate --incidents STREAM --no-progress --json OUT` (built-in rules) in a fresh
    process, under `python -m bench.simulation_memory`, which reads its peak RSS (see there why a
    process in between)."""
    errors = out.with_suffix(".stderr")
    with errors.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.simulation_memory",
            "--incidents",
            str(stream),
            "--json",
            str(out),
            "--seconds",
            str(seconds),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
        )
        began = time.monotonic()
        talking = asyncio.ensure_future(child.communicate())
        while not (await asyncio.wait({talking}, timeout=60))[0]:
            waited = time.monotonic() - began
            if waited > seconds + 60:
                child.kill()
                await talking
                raise RuntimeError(f"bench.simulation_memory did not finish on {stream.name} in time")
            progress(f"simulation: gridflow simulate on {stream.name} still running ({waited:.0f} s)")
        report, _ = talking.result()
    measured: dict[str, Any] = json.loads(report.decode().strip().splitlines()[-1]) if report.strip() else {}
    if child.returncode != 0 or measured.get("exit_code") != 0:
        tail = errors.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(
            f"gridflow simulate failed on {stream.name} ({measured or child.returncode}):\n{tail}"
        )
    document: dict[str, Any] = json.loads(await asyncio.to_thread(out.read_text, encoding="utf-8"))
    vmhwm: int | None = measured["vmhwm_bytes_last_seen"]
    return FreshRun(
        incidents=int(document["incidents"]),
        # Both are lower bounds in practice: the kernel updates the high-water mark lazily.
        peak_rss=max(int(measured["peak_rss_bytes"]), vmhwm or 0),
        vmhwm=vmhwm,
        wall_seconds=float(measured["wall_seconds"]),
        engine_per_second=float(document["incidents_per_second"]),
    )


@dataclass
class Fidelity:
    """The differential run of tests.simulation_fidelity: both engines on one stream, step by step."""

    rules: list[str]
    incidents: int
    steps: int
    differing: int  # incident timelines (one per incident and rule set) that differ
    rate_differences: int
    rates_equal: bool
    ties: int
    off_grid: int
    paths_missing: list[str]
    discrete_seconds: float
    temporal_seconds: float
    examples: list[str]


def fidelity_module() -> Any | None:
    """tests.simulation_fidelity, or None where it is not there."""
    try:
        return importlib.import_module(FIDELITY_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != FIDELITY_MODULE:
            raise
        return None


async def fidelity(module: Any, count: int, folder: Path) -> Fidelity:
    """Both engines on `count` incidents of the fidelity stream (dated in the future, as the comparison
    needs), on the fidelity rules and the built-in ones, compared incident by incident, step by step."""
    start = module.fidelity_start()
    stream = module.fidelity_stream(count, FIDELITY_SEED, start, open_at_horizon=True)
    rule_sets = [("fidelity", module.fidelity_rules(start)), ("built-in", builtin_rule_set())]
    with stdout_to_stderr():  # the test server's start-up lines
        report = await module.compare_engines(stream, rule_sets, folder)
    differences = [str(difference) for difference in report.differences]
    missing = report.missing() if hasattr(report, "missing") else []
    return Fidelity(
        rules=[name for name, _ in rule_sets],
        incidents=int(report.incidents),
        steps=int(report.steps),
        differing=len(differences),
        rate_differences=len(getattr(report, "rate_differences", [])),
        rates_equal=bool(report.rates_equal),
        ties=len(getattr(report, "ties", [])),
        off_grid=len(getattr(report, "rounded", [])),
        paths_missing=[str(path) for path in missing],
        discrete_seconds=float(report.discrete_seconds),
        temporal_seconds=float(report.temporal_seconds),
        examples=[difference[:1000] for difference in differences[:3]],
    )


@dataclass
class SimulationRuns:
    """Everything the simulation benchmark measured."""

    discrete: EngineRun
    fresh: FreshRun
    temporal: EngineRun
    large: FreshRun | None = None
    fidelity: Fidelity | None = None
    fidelity_timed_out: bool = False
    notes: list[str] = field(default_factory=list)


async def simulation(sizes: Sizes, large: bool) -> SimulationRuns:
    """The discrete engine on a generated stream (in this process, then in a fresh one for its RSS), the
    Temporal engine on its first incidents, and with `large` a large stream's peak RSS and the
    differential run."""
    rule_sets = [("built-in", builtin_rule_set())]
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-simulation-") as name:
        folder = Path(name)
        stream = folder / "stream.jsonl"
        write_stream(stream, sizes.simulation, sizes.simulation_days, SIMULATION_SEED, SIMULATION_START)
        progress(
            f"simulation: discrete engine, {sizes.simulation} incidents over {sizes.simulation_days} days"
        )
        warm_up = folder / "warm-up.jsonl"
        head(stream, warm_up, WARM_UP_INCIDENTS)
        run_discrete(warm_up, rule_sets)
        discrete = run_discrete(stream, rule_sets)
        progress(
            f"simulation: discrete {discrete.per_second:,.0f} incidents/s ({discrete.wall_seconds:.1f} s)"
        )
        fresh = await simulate_in_child(stream, folder / "stream.json", sizes.simulation_seconds)
        progress(f"simulation: gridflow simulate in a fresh process, peak RSS {fresh.peak_rss / MiB:.0f} MiB")
        sample = folder / "sample.jsonl"
        head(stream, sample, sizes.simulation_temporal)
        progress(f"simulation: Temporal engine, the first {sizes.simulation_temporal} incidents")
        try:
            temporal = await asyncio.wait_for(run_temporal(sample, rule_sets), sizes.simulation_seconds)
        except TimeoutError:
            raise RuntimeError(
                f"the Temporal engine did not finish {sizes.simulation_temporal} incidents "
                f"in {sizes.simulation_seconds:.0f} s"
            ) from None
        progress(
            f"simulation: Temporal {temporal.per_second:.2f} incidents/s ({temporal.wall_seconds:.1f} s)"
        )
        runs = SimulationRuns(discrete=discrete, fresh=fresh, temporal=temporal)
        if not large:
            runs.notes.append("the large stream's peak RSS and the differential run need --large")
            return runs

        stream.unlink()
        big = folder / "large.jsonl"
        days = sizes.simulation_large_days
        progress(f"simulation: writing {sizes.simulation_large:,} incidents over {days} days")
        began = time.perf_counter()
        write_stream(
            big, sizes.simulation_large, sizes.simulation_large_days, SIMULATION_SEED, SIMULATION_START
        )
        progress(f"simulation: written in {time.perf_counter() - began:.0f} s; gridflow simulate on it")
        runs.large = await simulate_in_child(big, folder / "large.json", sizes.simulation_seconds)
        big.unlink()
        progress(
            f"simulation: large stream in {runs.large.wall_seconds:.0f} s, "
            f"peak RSS {runs.large.peak_rss / MiB:.0f} MiB"
        )
        module = fidelity_module()
        if module is None:
            runs.notes.append(f"differential run skipped: {FIDELITY_MODULE} is not there")
            progress(f"simulation: no {FIDELITY_MODULE}, no differential run")
            return runs
        progress(f"simulation: differential run, both engines on {sizes.simulation_fidelity} incidents")
        scratch = Path(tempfile.mkdtemp(prefix="fidelity-", dir=folder))
        try:
            runs.fidelity = await asyncio.wait_for(
                fidelity(module, sizes.simulation_fidelity, scratch), sizes.simulation_seconds
            )
        except TimeoutError:
            # Seen: the time-skipping test server stops skipping, and the run goes on at real speed.
            runs.fidelity_timed_out = True
            runs.notes.append(
                f"differential run stopped: not finished in {sizes.simulation_seconds:.0f} s "
                "(its Temporal side on the time-skipping test server)"
            )
            progress(
                f"simulation: differential run not finished in {sizes.simulation_seconds:.0f} s, stopped"
            )
            return runs
        progress(
            f"simulation: {runs.fidelity.differing} timelines differ, {runs.fidelity.incidents} incidents, "
            f"{runs.fidelity.steps} steps compared ({runs.fidelity.temporal_seconds:.0f} s on Temporal)"
        )
    return runs


# ---------------------------------------------------------------------------------------------- the run


SERVER_BENCHMARKS = ("ingestion", "lifecycle", "latency", "memory")
BENCHMARKS = (*SERVER_BENCHMARKS, "open_incidents", "burst", "simulation")


async def run(sizes: Sizes, quick: bool, only: set[str], large: bool) -> list[Benchmark]:
    """The benchmarks asked for, in order."""
    benchmarks: list[Benchmark] = []
    if only & set(SERVER_BENCHMARKS):
        benchmarks += await server_benchmarks(sizes, quick)
    if "burst" in only:
        benchmarks.append(await burst(sizes))
    if "open_incidents" in only:
        stages = [*sizes.open_stages, *(sizes.open_stages_large if large else ())]
        results, failed = [], []
        for stage in stages:
            try:
                results.append(await open_incidents.run_stage(stage, sizes.open_seconds))
            except Exception as exc:  # a large stage that fails keeps the smaller stages' figures
                if not results:
                    raise
                failed.append(f"the stage of {stage.open:,} open failed: {exc}")
                progress(f"open incidents: {failed[-1]}")
        benchmarks.append(open_incidents.benchmark(results))
        benchmarks[-1].notes.extend(failed)
    if "simulation" in only:
        benchmarks.append(simulation_benchmark(await simulation(sizes, large), sizes))
    return benchmarks


async def server_benchmarks(sizes: Sizes, quick: bool) -> list[Benchmark]:
    """The benchmarks against the servers, started here and stopped at the end; they run together (the
    latency and memory benchmarks build on the ingestion figures)."""
    progress(f"starting Tansu and a Temporal dev server in memory ({'quick' if quick else 'full'} run)")
    with tansu_broker() as bootstrap:
        async with temporal_server() as env:
            stack = Stack(env, bootstrap)
            progress(f"Temporal at {env.client.service_client.config.target_host}, Kafka at {bootstrap}")

            # 1. Ingestion, in memory.
            memory_run = await ingestion(stack, sizes.ingest, "mem", sizes.stage_seconds)

            # 2. Lifecycle.
            gridflow_loop, trivial_loop = await lifecycle(stack, sizes)

            # 3. Latency at half the measured ingestion capacity.
            bridged, raw, kafka = await latency(stack, memory_run.bridge_rate / 2, sizes)

            # 4. Memory, in fresh worker processes.
            progress("memory: gridflow worker in a fresh process")
            grid_memory = await memory_child(
                stack, "gridflow", list(sizes.memory_stages), sizes.memory_seconds
            )
            progress("memory: trivial worker in a fresh process")
            trivial_memory = await memory_child(
                stack, "trivial", [sizes.memory_trivial], sizes.memory_seconds
            )

        # 1b. Ingestion against a server persisting to SQLite.
        with tempfile.TemporaryDirectory(prefix="gridflow-bench-") as folder:
            progress("starting a Temporal dev server with SQLite persistence")
            async with temporal_server(Path(folder) / "temporal.db") as env:
                sqlite_run = await ingestion(
                    Stack(env, bootstrap), sizes.ingest_sqlite, "sqlite", sizes.stage_seconds
                )

    return [
        ingestion_benchmark(memory_run, sqlite_run),
        lifecycle_benchmark(gridflow_loop, trivial_loop, sizes),
        latency_benchmark(bridged, raw, kafka, memory_run.bridge_rate, sizes),
        memory_benchmark(grid_memory, trivial_memory, memory_run),
    ]


async def burst(sizes: Sizes) -> Benchmark:
    """The burst on its own servers (in memory), against bare starts on the same server."""
    concurrency = Settings.model_construct().bridge_max_in_flight
    with tansu_broker() as bootstrap:
        async with temporal_server() as env:

            async def raw(client: Client, incident_ids: list[str], task_queue: str) -> float:
                return await raw_starts(client, incident_ids, task_queue, concurrency)

            run = await burst_benchmark.burst(Stack(env, bootstrap), sizes.burst, sizes.open_seconds, raw)
    return burst_benchmark.benchmark(run, concurrency)


def ingestion_benchmark(memory_run: Ingestion, sqlite_run: Ingestion) -> Benchmark:
    """Figures of the ingestion runs."""
    benchmark = Benchmark(
        "ingestion",
        params={
            "events": memory_run.count,
            "events_sqlite": sqlite_run.count,
            "partitions": 6,
            "max_in_flight": Settings().bridge_max_in_flight,
            "workers_running": False,
            "raw_starts_per_second_before_after": [round(rate, 2) for rate in memory_run.raw_rates],
            "raw_starts_per_second_before_after_sqlite": [round(rate, 2) for rate in sqlite_run.raw_rates],
            "group_join_seconds": round(memory_run.join_seconds, 3),
        },
        notes=[
            "no worker polls any of these task queues: both sides measure workflow starts only",
            "the bridge is timed from partition assignment to its last start; the raw rate is the mean of "
            "a run before and a run after the bridge",
        ],
    )
    benchmark.add(
        Figure(
            "starts_per_second",
            memory_run.bridge_rate,
            "starts/s",
            "workflows a Bridge starts per second from reported events already in Kafka (in-memory "
            "server); raw: bare start_workflow calls, same input and concurrency",
            memory_run.raw_rate,
        )
    )
    benchmark.add(
        Figure(
            "starts_per_second_sqlite",
            sqlite_run.bridge_rate,
            "starts/s",
            "the same against a dev server persisting to SQLite (--db-filename)",
            sqlite_run.raw_rate,
        )
    )
    benchmark.add(
        Figure(
            "seconds_with_group_join",
            memory_run.bridge_seconds + memory_run.join_seconds,
            "s",
            f"wall time for the bridge to start all {memory_run.count} (in memory), "
            "consumer-group join included",
        )
    )
    return benchmark


def lifecycle_benchmark(gridflow: Lifecycle, trivial: Lifecycle, sizes: Sizes) -> Benchmark:
    """Figures of the lifecycle runs."""
    benchmark = Benchmark(
        "lifecycle",
        params={
            "incidents": gridflow.count,
            "trivial_runs": trivial.count,
            "concurrency": sizes.lifecycle_concurrency,
            "activities_per_incident_mean": gridflow.activities,
            "updates_per_incident": gridflow.updates,
            "activities_per_trivial_run_mean": trivial.activities,
            "updates_per_trivial_run": trivial.updates,
            "workers": 1,
            "sinks": "none (sinks=[], metrics=None)",
        },
        notes=[
            "the worker and the client driving the commands share this process, so CPU covers both",
        ],
    )
    benchmark.add(
        Figure(
            "incidents_per_second",
            gridflow.per_second,
            "incidents/s",
            "incidents per second through report -> dispatch -> accept -> resolve -> feedback -> closed "
            "(one worker); raw: a trivial workflow with as many activities and updates",
            trivial.per_second,
        )
    )
    benchmark.add(
        Figure(
            "cpu_ms_per_incident",
            gridflow.cpu_per_run * 1000,
            "ms",
            "CPU time of this process (worker + driving client) per incident loop; raw: per trivial loop",
            trivial.cpu_per_run * 1000,
        )
    )
    return benchmark


def latency_benchmark(
    bridged: Latency, raw: Latency, kafka: Latency, capacity: float, sizes: Sizes
) -> Benchmark:
    """Figures of the latency runs."""
    benchmark = Benchmark(
        "latency",
        params={
            "events": bridged.count,
            "rate_per_second": round(bridged.rate, 2),
            "ingestion_capacity_per_second": round(capacity, 2),
            "seconds": sizes.latency_seconds,
            "workers_running": False,
        },
        notes=[
            "rate: half the bridge's measured ingestion capacity; start time from the server's visibility "
            "record; the publish time is the event's CloudEvents time",
        ],
    )
    benchmark.add(
        Figure(
            "p50_ms",
            bridged.p50 * 1000,
            "ms",
            "median time from publishing a reported event to its workflow's start on the server; raw: "
            "from a start_workflow call to the start, at the same rate",
            raw.p50 * 1000,
        )
    )
    benchmark.add(Figure("p99_ms", bridged.p99 * 1000, "ms", "99th percentile of the same", raw.p99 * 1000))
    benchmark.add(Figure("max_ms", bridged.max * 1000, "ms", "slowest of the same", raw.max * 1000))
    benchmark.add(
        Figure(
            "kafka_p50_ms",
            kafka.p50 * 1000,
            "ms",
            "Kafka's share: publish -> a plain consumer with the bridge's fetch settings has it (median)",
        )
    )
    benchmark.add(Figure("kafka_p99_ms", kafka.p99 * 1000, "ms", "99th percentile of Kafka's share"))
    return benchmark


def memory_benchmark(grid: dict[str, Any], trivial: dict[str, Any], ingest: Ingestion) -> Benchmark:
    """Figures of the memory runs."""
    stages: list[dict[str, Any]] = grid["stages"]
    trivial_stage: dict[str, Any] = trivial["stages"][0]
    benchmark = Benchmark(
        "memory",
        params={
            "open_incidents": [stage["open"] for stage in stages],
            "open_trivial": trivial_stage["open"],
            "max_cached_workflows": grid["max_cached_workflows"],
            "worker_baseline_rss_mib": round(grid["baseline_rss_bytes"] / MiB, 2),
            "bridge_burst_events": ingest.count,
        },
        notes=[
            "each worker runs in a fresh process (python -m bench.memory); RSS from /proc/self/status",
            "open workflows beyond max_cached_workflows are evicted from the worker's cache "
            "and cost it nothing",
        ],
    )
    first = stages[0]
    benchmark.add(
        Figure(
            "kib_per_open_incident",
            first["bytes_per_open"] / 1024,
            "KiB",
            f"worker RSS growth per open incident waiting on its clock, at {first['open']} open; "
            "raw: per open trivial workflow waiting on a timer",
            trivial_stage["bytes_per_open"] / 1024,
        )
    )
    benchmark.add(
        Figure(
            "worker_rss_growth_mib",
            first["delta_bytes"] / MiB,
            "MiB",
            f"worker RSS growth over its baseline with {first['open']} open incidents",
        )
    )
    for stage in stages[1:]:
        benchmark.add(
            Figure(
                "kib_per_open_incident_large",
                stage["bytes_per_open"] / 1024,
                "KiB",
                f"the same at {stage['open']} open incidents "
                f"({stage['target']} wanted; fewer if the time bound came first)",
            )
        )
        benchmark.add(
            Figure(
                "worker_rss_growth_mib_large",
                stage["delta_bytes"] / MiB,
                "MiB",
                f"worker RSS growth with {stage['open']} open incidents",
            )
        )
    benchmark.add(
        Figure(
            "bridge_burst_rss_growth_mib",
            (ingest.rss_peak - ingest.rss_before) / MiB,
            "MiB",
            f"peak RSS growth of the process running the bridge while it starts a burst of "
            f"{ingest.count} events",
        )
    )
    return benchmark


def simulation_benchmark(runs: SimulationRuns, sizes: Sizes) -> Benchmark:
    """Figures of the simulation runs."""
    discrete, temporal, fresh = runs.discrete, runs.temporal, runs.fresh
    params: dict[str, Any] = {
        "incidents": discrete.simulation.incidents,
        "days": sizes.simulation_days,
        "seed": SIMULATION_SEED,
        "start": SIMULATION_START.isoformat(),
        "rules": "built-in",
        "discrete_seconds": round(discrete.wall_seconds, 3),
        "temporal_incidents": temporal.simulation.incidents,
        "temporal_seconds": round(temporal.wall_seconds, 3),
        "fresh_process_seconds": round(fresh.wall_seconds, 3),
    }
    benchmark = Benchmark(
        "simulation",
        params=params,
        notes=[
            "a stream from gridflow.domain.simulation.generator.generate (what generate-stream "
            "writes), built-in rules, one process; each engine timed from the stream file to its "
            "results (reading and checking the file included; the Temporal engine's test server start too)",
            "targets are recorded, not enforced",
            "peak RSS: of `gridflow simulate` started by python -m bench.simulation_memory, so that the "
            "benchmark's own peak does not count; the higher of its ru_maxrss and its VmHWM as last read "
            "before it exited (peak_rss_vmhwm_mib)",
            *runs.notes,
        ],
    )
    benchmark.add(
        Figure(
            "incidents_per_second",
            discrete.per_second,
            "incidents/s",
            f"simulated incidents per wall-clock second, discrete engine, on a {sizes.simulation_days}-day "
            f"stream of {discrete.simulation.incidents:,} incidents",
            target=TARGET_INCIDENTS_PER_SECOND,
        )
    )
    benchmark.add(
        Figure(
            "simulated_days_per_second",
            discrete.simulated / timedelta(days=1) / discrete.wall_seconds,
            "days/s",
            "simulated days (first report to the last thing that happened) per wall-clock second, "
            "discrete engine",
        )
    )
    benchmark.add(
        Figure(
            "speed_up",
            discrete.simulated.total_seconds() / discrete.wall_seconds,
            "x",
            "how many times faster than real time the discrete engine ran the stream",
        )
    )
    benchmark.add(
        Figure(
            "temporal_incidents_per_second",
            temporal.per_second,
            "incidents/s",
            f"the same for the Temporal engine (the real workflow on a time-skipping test server) on the "
            f"stream's first {temporal.simulation.incidents} incidents",
        )
    )
    benchmark.add(
        Figure(
            "speed_up_over_temporal",
            discrete.per_second / temporal.per_second if temporal.per_second else 0.0,
            "x",
            "discrete engine incidents/s over the Temporal engine's",
            target=TARGET_OVER_TEMPORAL,
        )
    )
    benchmark.add(
        Figure(
            "peak_rss_mib",
            fresh.peak_rss / MiB,
            "MiB",
            f"peak RSS of `gridflow simulate` on the {fresh.incidents:,}-incident stream in a fresh process",
        )
    )
    if fresh.vmhwm is not None:
        params["peak_rss_vmhwm_mib"] = round(fresh.vmhwm / MiB, 2)
    benchmark.add(
        Figure(
            "fresh_process_incidents_per_second",
            fresh.engine_per_second,
            "incidents/s",
            "incidents/s that `gridflow simulate` itself reports in that process (its one pass over the "
            "stream, reading and checking included; no interpreter start-up)",
        )
    )
    if runs.large is not None:
        large = runs.large
        params.update(
            large_incidents=large.incidents,
            large_days=sizes.simulation_large_days,
            large_seconds=round(large.wall_seconds, 3),
            large_engine_incidents_per_second=round(large.engine_per_second, 1),
        )
        if large.vmhwm is not None:
            params["peak_rss_vmhwm_mib_large"] = round(large.vmhwm / MiB, 2)
        benchmark.add(
            Figure(
                "peak_rss_mib_large",
                large.peak_rss / MiB,
                "MiB",
                f"peak RSS of `gridflow simulate` on a {large.incidents:,}-incident stream over "
                f"{sizes.simulation_large_days} days, in a fresh process",
                target=TARGET_LARGE_PEAK_RSS_MIB,
                at_most=True,
            )
        )
        benchmark.add(
            Figure(
                "incidents_per_second_large",
                large.incidents / large.wall_seconds,
                "incidents/s",
                "incidents per wall-clock second of that whole command (start-up and file check included)",
            )
        )
    if runs.fidelity is not None or runs.fidelity_timed_out:
        benchmark.add(
            Figure(
                "fidelity_completed",
                1 if runs.fidelity is not None else 0,
                "bool",
                f"1 when the differential run finished within its bound ({sizes.simulation_seconds:.0f} s)",
            )
        )
    if runs.fidelity is not None:
        check = runs.fidelity
        params.update(
            fidelity_rule_sets=check.rules,
            fidelity_seed=FIDELITY_SEED,
            fidelity_paths_missing=check.paths_missing,
        )
        benchmark.notes += [f"fidelity difference: {example}" for example in check.examples]
        per = f"per incident and rule set ({', '.join(check.rules)})"
        for name, value, unit, meaning in (
            (
                "fidelity_incidents",
                check.incidents,
                "incidents",
                f"incidents of {FIDELITY_MODULE}.fidelity_stream run on both engines (differential run)",
            ),
            ("fidelity_steps_compared", check.steps, "steps", f"timeline steps compared, {per}"),
            (
                "fidelity_differing_timelines",
                check.differing,
                "timelines",
                f"timelines that differ between the engines, {per} (0: they agree)",
            ),
            (
                "fidelity_rate_differences",
                check.rate_differences,
                "values",
                "rates, counts and spans of the two simulations' JSON that differ (0: they agree)",
            ),
            ("fidelity_rates_equal", 1 if check.rates_equal else 0, "bool", "1 when all of them are equal"),
            (
                "fidelity_clock_ties",
                check.ties,
                "instants",
                "instants at which a person acted just as a clock fired (0: the comparison is sound)",
            ),
            (
                "fidelity_off_grid_changes",
                check.off_grid,
                "timelines",
                "timelines the one-second grid changes (discrete engine, on the grid and off it)",
            ),
            (
                "fidelity_paths_missing",
                len(check.paths_missing),
                "paths",
                "required behaviour paths no incident took",
            ),
            ("fidelity_discrete_seconds", check.discrete_seconds, "s", "the discrete engine's time in it"),
            ("fidelity_temporal_seconds", check.temporal_seconds, "s", "the Temporal engine's time in it"),
        ):
            benchmark.add(Figure(name, value, unit, meaning))
    return benchmark


# ---------------------------------------------------------------------------------------------- output


def table(benchmarks: list[Benchmark]) -> str:
    """The figures as a plain-text table, each followed by what it means."""

    def number(value: float | None) -> str:
        if value is None:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"

    header = f"{'benchmark':<11} {'figure':<32} {'gridflow':>10} {'raw':>10} {'ratio':>7}  unit"
    lines = [header, "-" * len(header)]
    for benchmark in benchmarks:
        for figure in benchmark.figures:
            lines.append(
                f"{benchmark.name:<11} {figure.name:<32} {number(figure.value):>10} "
                f"{number(figure.baseline):>10} {number(figure.ratio):>7}  {figure.unit}"
            )
            lines.append(f"{'':<11}   {figure.meaning}")
            if figure.target is not None:
                bound = "<=" if figure.at_most else ">="
                verdict = "met" if figure.target_met else "NOT met"
                lines.append(f"{'':<11}   target {bound} {number(figure.target)} {figure.unit}: {verdict}")
    lines.append(
        "ratio = gridflow / raw: for rates, 1.0 is the raw capability; for times and memory, lower is better"
    )
    return "\n".join(lines)


def meta(quick: bool, wall: float, only: list[str], large: bool) -> dict[str, Any]:
    """Where and how the figures were measured."""
    return {
        "mode": "quick" if quick else "full",
        "benchmarks": only,
        "large": large,
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_seconds": round(wall, 1),
        "cpus": cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "python": platform.python_version(),
        "python_dont_write_bytecode": sys.dont_write_bytecode,
        "platform": platform.platform(),
    }


def updated(earlier: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """`document`'s benchmarks in place of the same ones of `earlier`, the others kept; each keeps the
    meta of the run it came from."""
    benchmarks = dict(document["benchmarks"])
    for name, kept in earlier.get("benchmarks", {}).items():
        if name not in benchmarks:
            benchmarks[name] = {**kept, "run": kept.get("run", earlier.get("meta", {}))}
    ordered = {name: benchmarks[name] for name in BENCHMARKS if name in benchmarks}
    meta = {**document["meta"], "updated": list(document["benchmarks"])}
    return {**document, "meta": meta, "benchmarks": ordered}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table; write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute: checks it works")
    parser.add_argument(
        "--json", type=Path, default=None, help="write the figures here (e.g. bench/results.json)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable; one of {', '.join(BENCHMARKS)}); "
        f"{', '.join(SERVER_BENCHMARKS)} share their servers and figures and always run together",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --json and --only: replace only these benchmarks' figures in the existing file, keeping "
        "the others (each benchmark records the run it came from)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="simulation: also the peak RSS on a 1,000,000-incident stream and the differential run of "
        "both engines (about 15 minutes more; with --quick, on small streams); open_incidents: also "
        "50,000 open (about 40 minutes more)",
    )
    args = parser.parse_args(argv)
    quiet_logs()
    compile_bytecode()
    sizes = Sizes.quick() if args.quick else Sizes.full()
    only = set(args.only or BENCHMARKS)
    if only & set(SERVER_BENCHMARKS):
        only |= set(SERVER_BENCHMARKS)
    names = [name for name in BENCHMARKS if name in only]
    began = time.monotonic()
    benchmarks = asyncio.run(run(sizes, args.quick, only, args.large))
    wall = time.monotonic() - began
    print(table(benchmarks))
    # Without .pyc files the workflow sandbox compiles the workflow module for every new instance.
    bytecode = ", PYTHONDONTWRITEBYTECODE set" if sys.dont_write_bytecode else ""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    large = ", --large" if args.large else ""
    print(
        f"({'quick' if args.quick else 'full'} run{large}, {wall:.0f} s, {cpu_count()} CPUs, "
        f"load {load}{bytecode})"
    )
    if args.json is not None:
        run_meta = meta(args.quick, wall, names, args.large)
        figures = {benchmark.name: {**benchmark.as_dict(), "run": run_meta} for benchmark in benchmarks}
        document = {"meta": run_meta, "sizes": asdict(sizes), "benchmarks": figures}
        if args.update and args.json.exists():
            document = updated(json.loads(args.json.read_text(encoding="utf-8")), document)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        progress(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    code = main()
    # Out without the interpreter's teardown, which the Temporal SDK's native threads can abort
    # ("Fatal Python error: PyGILState_Release", temporalio/sdk-python#300), as the gridflow command does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
