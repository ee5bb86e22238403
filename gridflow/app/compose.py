"""The composition root: the one place that builds gridflow's processes from settings.

`build_worker` assembles every Temporal worker (the `gridflow worker` process, the dev stack, the
Temporal simulation engine, the benchmarks and the tests); `build_bridge` every Kafka bridge;
`run_worker` and `run_bridge` are the two production processes around them. Each process makes its own
metrics registry (`process_registry`), gives it to everything that counts and serves it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from temporalio.client import Client
from temporalio.worker import Worker

from activities.incident import IncidentActivities
from activities.kafka_sink import KafkaStepSink
from activities.metrics import LifecycleMetrics, MetricsSink
from activities.sinks import LogSink, StepSink
from events.bridge import Bridge, ReadinessFlag
from events.kafka import ensure_topics, make_producer
from events.metrics import BridgeMetrics
from gridflow.app.metrics_server import Readiness, serve_metrics
from gridflow.app.open_incidents import OpenIncidentsGauge, publish_open_incidents
from gridflow.app.settings import Settings
from gridflow.app.temporal import connect, require_keys, sdk_metrics_runtime
from gridflow.app.worker_tuning import WorkerTuning
from gridflow.domain.rules.loader import RulesSource
from workflows.incident import IncidentWorkflow

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    task_queue: str,
    rules: RulesSource,
    sinks: Sequence[StepSink] | None = None,
    metrics: LifecycleMetrics | None = None,
    *,
    extra_workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    tuning: WorkerTuning | None = None,
) -> Worker:
    """A worker for incident workflows, matching rules from `rules` and publishing to `sinks`.

    `metrics` counts the steps, in its process's registry (None: nothing is counted, as in simulations,
    benchmarks and most tests). The metrics sink goes last, so a step is counted only once every other
    sink has taken it. Simulations add their scripted handlers as extra workflows and activities.
    `tuning` sizes the worker (None: the defaults of the GRIDFLOW_WORKER_* settings).
    """
    chosen: list[StepSink] = list(sinks) if sinks is not None else [LogSink()]
    if metrics is not None:
        chosen.append(MetricsSink(metrics))
    activities = IncidentActivities(rules, chosen)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, *extra_workflows],
        activities=[activities.match_rule, activities.publish_steps, *extra_activities],
        **(tuning or WorkerTuning.defaults()).worker_options(),
    )


def process_registry() -> CollectorRegistry:
    """A new registry for one process's metrics, with that process's own (CPU, memory, garbage collector).

    Nothing of gridflow's registers in prometheus_client's global registry, so what a process serves
    depends on what it was given, not on what it happened to import.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


async def run_worker(settings: Settings, stop: asyncio.Event, rules: RulesSource | None = None) -> None:
    """Run a production worker until `stop` is set: Kafka lifecycle events, metrics, open-incident gauge.

    Raises KeysRequiredError without codec keys (unless the settings allow plaintext), and raises if
    the Temporal worker fails (cannot start, or dies), once the rest is stopped.
    """
    require_keys(settings, "the worker")
    runtime = sdk_metrics_runtime(settings) if settings.sdk_metrics_port else None
    client = await connect(settings, runtime=runtime)
    rules = rules or RulesSource(settings.rules_file)
    await asyncio.to_thread(ensure_topics, settings, [settings.events_topic])
    producer = await asyncio.to_thread(make_producer, settings)
    registry = process_registry()
    metrics = LifecycleMetrics(registry)
    worker = build_worker(
        client,
        settings.task_queue,
        rules,
        step_sinks(settings, producer),
        metrics,
        tuning=WorkerTuning.of(settings),
    )
    open_incidents = OpenIncidentsGauge(registry)
    readiness = Readiness()
    levels = sorted({level for rule in rules.current().rules for level in rule.levels})
    try:
        with serve_metrics(settings, registry, readiness) as metrics_url:
            refreshing = asyncio.create_task(
                publish_open_incidents(client, open_incidents, stop, levels=levels)
            )
            log.info(
                "worker started",
                temporal=settings.temporal_address,
                namespace=settings.temporal_namespace,
                task_queue=settings.task_queue,
                rules_file=str(rules.path) if rules.path else "<built-in>",
                rules_version=rules.current().version,
                metrics=metrics_url,
            )
            try:
                async with worker:
                    readiness.set()
                    await stop.wait()
                    readiness.set(False)
                    log.info("worker stopping: finishing in-flight tasks")
            finally:
                # The gauge runs until `stop`; a worker that died without it must not wait for it forever.
                refreshing.cancel()
                await asyncio.wait([refreshing])
    finally:
        await asyncio.to_thread(producer.close, 10)
        log.info("worker stopped")


def step_sinks(settings: Settings, producer: KafkaProducer) -> list[StepSink]:
    """Where a production worker's lifecycle steps go (besides the metrics): the log and Kafka."""
    return [
        LogSink(),
        KafkaStepSink(producer, settings.events_topic, include_notes=settings.events_include_notes),
    ]


def build_bridge(
    settings: Settings,
    client: Client,
    metrics: BridgeMetrics | None = None,
    readiness: ReadinessFlag | None = None,
) -> Bridge:
    """A bridge from the incidents topic to the incident workflows of `client`, counting in `metrics`
    (made once per registry: `BridgeMetrics(process_registry())`; None: a registry of its own)."""
    return Bridge(settings, client, readiness, metrics=metrics)


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    """Run a bridge process until `stop` is set (`gridflow bridge`): its own metrics endpoint, ready once
    the bridge is in its consumer group. Raises KeysRequiredError without codec keys (unless the
    settings allow plaintext): the bridge writes reports and lifecycle commands into Temporal."""
    require_keys(settings, "the bridge")
    registry = process_registry()
    readiness = Readiness()
    with serve_metrics(settings, registry, readiness):
        client = await connect(settings, lazy=True)
        await build_bridge(settings, client, BridgeMetrics(registry), readiness).run(stop)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
