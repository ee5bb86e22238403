"""The real pipeline for bridge tests: Tansu broker -> bridge -> Temporal dev server -> worker -> Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.kafka_sink import KafkaStepSink
from activities.metrics import LifecycleMetrics
from events.bridge import Bridge
from events.cloudevents import InboundEvent, encode_binary, encode_structured, load_json, make_event
from events.dead_letters import DeadLetterRecord, read_dead_letters
from events.kafka import client_config, ensure_topics, make_producer
from gridflow.app.compose import build_worker
from gridflow.app.settings import Settings
from gridflow.domain.lifecycle import IncidentState
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import isolated_settings
from tests.events.samples import sample_data
from workflows.client import incident_state


@dataclass
class Pipeline:
    """One isolated pipeline (its own topics, group and task queue) with a running worker."""

    settings: Settings
    client: Client
    sink: MemorySink
    producer: KafkaProducer
    bridges: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)

    def event(self, event_type: str, incident_id: str, **changes: Any) -> InboundEvent:
        """A valid event of a type for an incident, with some data fields changed."""
        return make_event(event_type, {**sample_data(event_type, incident_id), **changes}, source="tests")

    def publish(self, event: InboundEvent, *, mode: str = "structured") -> None:
        """Publish an event in the structured or binary Kafka binding and wait for the broker's ack."""
        key, value, headers = encode_structured(event) if mode == "structured" else encode_binary(event)
        self.publish_raw(key, value, headers)

    def publish_raw(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        """Publish arbitrary bytes, as a misbehaving upstream app might."""
        self.producer.send(self.settings.incidents_topic, key=key, value=value, headers=headers).get(10)

    def start_bridge(self, bridge: Bridge | None = None) -> Bridge:
        """Start a bridge (in this process) on the pipeline's topics."""
        bridge = bridge or Bridge(self.settings, self.client)
        stop = asyncio.Event()
        self.bridges.append((stop, asyncio.create_task(bridge.run(stop))))
        return bridge

    async def stop_bridges(self) -> None:
        """Stop every bridge cleanly (finish in flight, commit, leave the group)."""
        for stop, _ in self.bridges:
            stop.set()
        for _, task in self.bridges:
            await task
        self.bridges.clear()

    async def state(self, incident_id: str) -> IncidentState:
        """The incident's workflow state."""
        return await incident_state(self.client, incident_id)

    async def wait_for(
        self, incident_id: str, check: Callable[[IncidentState], bool], within: float = 30
    ) -> IncidentState:
        """Wait until the incident exists and `check` holds."""
        deadline = asyncio.get_running_loop().time() + within
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            try:
                state = await self.state(incident_id)
                if check(state):
                    return state
                last = state
            except Exception as exc:  # not started yet
                last = exc
            await asyncio.sleep(0.1)
        raise AssertionError(f"incident {incident_id} never reached the expected state; last: {last}")

    def dead_letters(self) -> list[DeadLetterRecord]:
        """Everything in the dead-letter topic now."""
        return list(read_dead_letters(self.settings, idle_timeout_s=1.0))

    async def wait_dead_letters(self, count: int, within: float = 30) -> list[DeadLetterRecord]:
        """Wait until the dead-letter topic holds `count` messages."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            letters = await asyncio.to_thread(self.dead_letters)
            if len(letters) >= count or asyncio.get_running_loop().time() > deadline:
                return letters
            await asyncio.sleep(0.2)

    def lifecycle_events(self, incident_id: str) -> list[dict[str, Any]]:
        """The CloudEvents published to the incident-events topic for one incident, in order."""
        consumer = KafkaConsumer(**client_config(self.settings), enable_auto_commit=False, group_id=None)
        try:
            partitions = consumer.partitions_for_topic(self.settings.events_topic) or set()
            assigned = [TopicPartition(self.settings.events_topic, p) for p in partitions]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            ends = consumer.end_offsets(assigned)
            events: list[dict[str, Any]] = []
            positions = dict.fromkeys(assigned, 0)
            while any(positions[tp] < ends[tp] for tp in assigned):
                for tp, records in consumer.poll(timeout_ms=500).items():
                    for record in records:
                        positions[tp] = record.offset + 1
                        if record.key == incident_id.encode():
                            envelope = load_json(record.value)
                            assert isinstance(envelope, dict)
                            events.append(envelope)
            return events
        finally:
            consumer.close()


@contextlib.asynccontextmanager
async def open_pipeline(
    kafka_bootstrap: str,
    env: WorkflowEnvironment,
    rules: RulesSource | None = None,
    *,
    metrics: LifecycleMetrics | None = None,
    **overrides: Any,
) -> AsyncIterator[Pipeline]:
    """A fresh pipeline with a running worker on `rules` (default: the built-in ones), counting into
    `metrics` if given; bridges are the test's to start, and are stopped at the end."""
    settings = isolated_settings(kafka_bootstrap, **overrides)
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    sink = MemorySink()
    worker = build_worker(
        env.client,
        settings.task_queue,
        rules or RulesSource(),
        [sink, KafkaStepSink(producer, settings.events_topic)],
        metrics,
    )
    pipeline = Pipeline(settings, env.client, sink, producer)
    async with worker:
        try:
            yield pipeline
        finally:
            await pipeline.stop_bridges()
            await asyncio.to_thread(producer.close, 5)


@pytest.fixture
async def pipeline(kafka_bootstrap: str, dev_server_env: WorkflowEnvironment) -> AsyncIterator[Pipeline]:
    """A fresh pipeline on the built-in rules; the test starts the bridge(s) it needs."""
    async with open_pipeline(kafka_bootstrap, dev_server_env, max_message_bytes=64 * 1024) as fresh:
        yield fresh
