"""Writing dead letters: what Kafka may take later is retried, what it never will is parked and passed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaConsumer
from kafka.errors import (
    BrokerNotAvailableError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)
from kafka.structs import TopicPartition
from structlog.testing import capture_logs

from events import contract
from events.dead_letter_writer import is_transient
from events.kafka import client_config
from events.settings import KafkaSettings
from gridflow.domain.incident import Status
from tests.events.conftest import Pipeline

# The largest request gridflow's producers make is 1 MiB (events.kafka.make_producer): an inbound
# record whose key alone is nearly that fits, its dead letter with the reason headers does not.
HUGE_KEY_BYTES = 1024 * 1024 - 250


@pytest.mark.parametrize(
    "error",
    [KafkaTimeoutError(), NotLeaderForPartitionError(), BrokerNotAvailableError(), KafkaConnectionError()],
    ids=lambda error: type(error).__name__,
)
def test_what_kafka_may_take_later_is_retried(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [MessageSizeTooLargeError(), TopicAuthorizationFailedError(), ValueError("not Kafka's answer")],
    ids=lambda error: type(error).__name__,
)
def test_what_kafka_will_never_take_is_parked(error: Exception) -> None:
    assert not is_transient(error)


def committed_offset(settings: KafkaSettings, consumer_group: str, partition: TopicPartition) -> int | None:
    """The consumer group's committed offset for one partition."""
    consumer = KafkaConsumer(**client_config(settings), group_id=consumer_group, enable_auto_commit=False)
    try:
        committed: int | None = consumer.committed(partition)
        return committed
    finally:
        consumer.close()


async def test_a_dead_letter_too_large_even_without_its_value_is_parked_and_committed_past(
    pipeline: Pipeline,
) -> None:
    settings = pipeline.settings
    with capture_logs() as logs:
        bridge = pipeline.start_bridge()
        huge_key = b"k" * HUGE_KEY_BYTES
        sent = pipeline.producer.send(
            settings.incidents_topic,
            key=huge_key,
            value=b"{}",
            headers=[("content-type", b"application/cloudevents+json")],
        )
        where = await asyncio.to_thread(sent.get, 30)
        marker = f"inc-{uuid.uuid4().hex[:10]}"
        pipeline.publish(pipeline.event(contract.REPORTED, marker))
        await pipeline.wait_for(marker, lambda s: s.status is Status.DISPATCHED)
        await pipeline.stop_bridges()

    registry = bridge.metrics.registry
    parked = [
        sample
        for family in registry.collect()
        if family.name == "gridflow_bridge_dead_letters_parked"
        for sample in family.samples
        if sample.name.endswith("_total")
    ]
    assert [(sample.labels, sample.value) for sample in parked] == [({"reason": "missing_attribute"}, 1.0)]
    assert pipeline.dead_letters() == []
    partition = TopicPartition(settings.incidents_topic, where.partition)
    committed = await asyncio.to_thread(committed_offset, settings, settings.consumer_group, partition)
    assert committed is not None and committed > where.offset
    entries = [entry for entry in logs if entry["event"].startswith("dead letter parked")]
    assert [(entry["log_level"], entry["offset"], entry["reason"]) for entry in entries] == [
        ("error", where.offset, "missing_attribute")
    ]
    assert not any(huge_key[:64].decode() in str(value) for value in entries[0].values())
