"""The worker: runs IncidentWorkflow and its activities on the task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.incident import IncidentActivities
from activities.kafka_sink import KafkaStepSink
from activities.metrics import LIFECYCLE, LifecycleMetrics, MetricsSink
from activities.sinks import LogSink, StepSink
from events.kafka import ensure_topics, make_producer
from gridflow.rules.loader import RulesSource
from gridflow.settings import Settings
from gridflow.temporal import connect
from workflows.incident import IncidentWorkflow

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    task_queue: str,
    rules: RulesSource,
    sinks: Sequence[StepSink] | None = None,
    metrics: LifecycleMetrics | None = LIFECYCLE,
) -> Worker:
    """A worker for incident workflows, matching rules from `rules` and publishing to `sinks`.

    The metrics sink goes last, so a step is counted only once every other sink has taken it.
    """
    chosen: list[StepSink] = list(sinks) if sinks is not None else [LogSink()]
    if metrics is not None:
        chosen.append(MetricsSink(metrics))
    activities = IncidentActivities(rules, chosen)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        activities=[activities.match_rule, activities.publish_steps],
    )


async def run_worker(settings: Settings, rules: RulesSource | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM, then finish in-flight tasks and stop."""
    client = await connect(settings)
    rules = rules or RulesSource(settings.rules_file)
    await asyncio.to_thread(ensure_topics, settings, [settings.events_topic])
    producer = await asyncio.to_thread(make_producer, settings)
    worker = build_worker(
        client, settings.task_queue, rules, [LogSink(), KafkaStepSink(producer, settings.events_topic)]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        temporal=settings.temporal_address,
        namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        rules_file=str(rules.path) if rules.path else "<built-in>",
        rules_version=rules.current().version,
    )
    try:
        async with worker:
            await stop.wait()
            log.info("worker stopping")
    finally:
        await asyncio.to_thread(producer.close, 10)
