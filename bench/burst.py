"""A storm day: ten thousand reports published at once, through a real bridge and worker process.

The bridge and the worker run as the production processes (`gridflow bridge`, `gridflow worker`, payloads
encrypted), against the benchmark's in-memory dev server and Tansu broker. The reports are published as
fast as one producer can; the figures are read off the lifecycle events topic (each `dispatched` event's
record time is when the worker published it) and the worker's SDK metrics (cache misses: each one a
replay of an incident's history). The baseline is bare `start_workflow` calls for as many incidents at
the bridge's concurrency on the same server, with no worker: how fast the server alone takes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer
from temporalio.client import Client

from bench.figures import Benchmark, Figure
from bench.stack import Stack, free_port, new_ids, percentile, progress, rss_of, sdk_counter
from events import contract
from events.cloudevents import encode_structured, make_event
from events.kafka import client_config, ensure_topics, make_producer
from events.lifecycle import step_event_type
from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings, env_name
from gridflow.domain.lifecycle import StepKind
from tests.events.samples import sample_data

REPO = Path(__file__).resolve().parent.parent
DISPATCHED = step_event_type(StepKind.DISPATCHED)
#: Bare start calls for these incident ids on this task queue; returns starts per second.
RawStarts = Callable[[Client, list[str], str], Awaitable[float]]
#: Settings the processes take from the benchmark's own (topics, group, task queue, servers).
PASSED = (
    "temporal_address",
    "temporal_namespace",
    "task_queue",
    "kafka_bootstrap_servers",
    "kafka_api_version",
    "kafka_session_timeout_ms",
    "incidents_topic",
    "events_topic",
    "dlq_topic",
    "consumer_group",
    "topic_partitions",
)


@dataclass
class Processes:
    """The bridge and worker processes of one burst, and their ports."""

    settings: Settings
    logs: Path
    keys: str = field(default_factory=lambda: f"k1:{generate_key()}")
    worker_sdk_port: int = field(default_factory=free_port)
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, command: str) -> tuple[subprocess.Popen[bytes], int]:
        """`gridflow <command>` with the benchmark's settings; returns it and its metrics port."""
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("GRIDFLOW_")}
        env.update({env_name(name): str(getattr(self.settings, name)) for name in PASSED})
        env.update(
            {
                "GRIDFLOW_CODEC_KEYS": self.keys,
                "GRIDFLOW_METRICS_PORT": str(port),
                "GRIDFLOW_SDK_METRICS_PORT": str(self.worker_sdk_port if command == "worker" else 0),
                "GRIDFLOW_LOG_FORMAT": "json",
                "GRIDFLOW_LOG_LEVEL": "warning",
            }
        )
        with (self.logs / f"{command}.log").open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "gridflow.app.cli", command],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.running.append(process)
        return process, port

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 20 s)."""
        for process in self.running:
            process.terminate()
        for process in self.running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def ready(port: int, seconds: float) -> None:
    """Wait for a process's /readyz to answer 200."""
    deadline = time.monotonic() + seconds

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    while time.monotonic() < deadline:
        if await asyncio.to_thread(answers):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the process on metrics port {port} was not ready in {seconds:.0f} s")


def publish_at_once(settings: Settings, incident_ids: list[str]) -> dict[str, float]:
    """Publish one `reported` event per incident as fast as one producer can; each one's send time."""
    events = [
        encode_structured(make_event(contract.REPORTED, sample_data(contract.REPORTED, i), source="bench"))
        for i in incident_ids
    ]
    producer = make_producer(settings)
    sent: dict[str, float] = {}
    try:
        for incident_id, (key, value, headers) in zip(incident_ids, events, strict=True):
            sent[incident_id] = time.time()
            producer.send(settings.incidents_topic, key=key, value=value, headers=headers)
        producer.flush(120)
    finally:
        producer.close(10)
    return sent


def dispatched_times(settings: Settings, expected: set[str], seconds: float) -> dict[str, float]:
    """Each incident's first `dispatched` event on the events topic, by its record time (seconds)."""
    consumer = KafkaConsumer(
        settings.events_topic,
        **client_config(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    found: dict[str, float] = {}
    deadline = time.monotonic() + seconds
    try:
        while len(found) < len(expected) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for record in records:
                    event = json.loads(record.value)
                    incident_id = event.get("data", {}).get("incident_id")
                    if event.get("type") == DISPATCHED and incident_id in expected:
                        found.setdefault(incident_id, record.timestamp / 1000)
    finally:
        consumer.close()
    return found


@dataclass
class Burst:
    """What one burst measured."""

    count: int
    publish_seconds: float
    all_dispatched_seconds: float
    p50_seconds: float
    p99_seconds: float
    misses: float
    forced_evictions: float
    cache_size: int
    worker_rss_bytes: int
    raw_seconds: float


async def burst(stack: Stack, count: int, seconds: float, raw: RawStarts) -> Burst:
    """Publish `count` reports at once to a running bridge and worker; time their dispatch."""
    settings = stack.settings("burst")
    await asyncio.to_thread(ensure_topics, settings, [settings.incidents_topic, settings.events_topic])
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-burst-") as folder:
        processes = Processes(settings, Path(folder))
        try:
            worker, worker_port = processes.start("worker")
            _, bridge_port = processes.start("bridge")
            await ready(worker_port, 60)
            await ready(bridge_port, 60)
            await asyncio.sleep(5)  # the bridge's group join (readiness comes with its assignment)
            ids = new_ids("burst", count)
            progress(f"burst: publishing {count:,} reports at once to a bridge and a worker (processes)")
            sent = await asyncio.to_thread(publish_at_once, settings, ids)
            publish_seconds = max(sent.values()) - min(sent.values())
            found = await asyncio.to_thread(dispatched_times, settings, set(ids), seconds)
            if len(found) < count:
                raise RuntimeError(
                    f"only {len(found)} of {count} incidents were dispatched in {seconds:.0f} s"
                )
            delays = [found[i] - sent[i] for i in ids]
            misses = sdk_counter(processes.worker_sdk_port, "temporal_sticky_cache_miss_total")
            evictions = sdk_counter(
                processes.worker_sdk_port, "temporal_sticky_cache_total_forced_eviction_total"
            )
            worker_rss = rss_of(worker.pid)
        finally:
            processes.stop()
    all_seconds = max(found.values()) - min(sent.values())
    progress(
        f"burst: all {count:,} dispatched {all_seconds:.1f} s after the first report; "
        f"p99 {percentile(delays, 0.99):.1f} s; {misses / count:.2f} cache misses per incident"
    )
    raw_rate = await raw(stack.temporal.client, new_ids("burst-raw", count), f"{settings.task_queue}-raw")
    return Burst(
        count=count,
        publish_seconds=publish_seconds,
        all_dispatched_seconds=all_seconds,
        p50_seconds=percentile(delays, 0.5),
        p99_seconds=percentile(delays, 0.99),
        misses=misses,
        forced_evictions=evictions,
        cache_size=Settings.model_construct().worker_max_cached_workflows,
        worker_rss_bytes=worker_rss,
        raw_seconds=count / raw_rate,
    )


def benchmark(run: Burst, concurrency: int) -> Benchmark:
    """The burst's figures."""
    result = Benchmark(
        name="burst",
        params={
            "reports": run.count,
            "publish_seconds": round(run.publish_seconds, 2),
            "processes": "one `gridflow bridge`, one `gridflow worker` (payloads encrypted)",
            "server": "Temporal dev server in memory",
            "raw_concurrency": concurrency,
            "forced_evictions": run.forced_evictions,
        },
    )
    result.add(
        Figure(
            "all_dispatched_seconds",
            run.all_dispatched_seconds,
            "s",
            f"from the first of {run.count:,} reports published at once to the last one dispatched (its "
            "lifecycle event out); baseline: bare start_workflow calls for as many, no worker",
            baseline=run.raw_seconds,
        )
    )
    result.add(
        Figure(
            "dispatched_per_second",
            run.count / run.all_dispatched_seconds,
            "incidents/s",
            "incidents reported, started, matched and dispatched per second through the burst",
        )
    )
    result.add(
        Figure("publish_to_dispatch_p50_seconds", run.p50_seconds, "s", "report sent to dispatched out")
    )
    result.add(
        Figure("publish_to_dispatch_p99_seconds", run.p99_seconds, "s", "report sent to dispatched out")
    )
    # Every incident enters the cache once, and the last `cache` stay: any eviction beyond count - cache
    # is an incident that came back after it was evicted, which is a replay of its history. (The SDK's
    # sticky-miss counter misses the tasks the server sends to the normal queue.)
    replays = max(0.0, run.forced_evictions - (run.count - run.cache_size)) + run.misses
    result.add(
        Figure(
            "replays_per_incident",
            replays / run.count,
            "replays",
            "incidents evicted from the worker's cache and loaded again during the burst (each replays its "
            "history): forced evictions beyond count - cache size, plus sticky-cache misses",
        )
    )
    result.add(
        Figure("worker_rss_mib", run.worker_rss_bytes / 2**20, "MiB", "the worker's RSS after the burst")
    )
    return result
