"""Reading the dead-letter topic, and putting dead letters back on the incidents topic after a fix."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from events import contract
from events.kafka import client_config, make_producer
from events.settings import KafkaSettings

ERROR_HEADERS = {
    contract.DLQ_ERROR_TYPE_HEADER,
    contract.DLQ_ERROR_MESSAGE_HEADER,
    contract.DLQ_SOURCE_TOPIC_HEADER,
    contract.DLQ_SOURCE_PARTITION_HEADER,
    contract.DLQ_SOURCE_OFFSET_HEADER,
    contract.DLQ_VALUE_DROPPED_HEADER,
}


@dataclass(frozen=True)
class DeadLetterRecord:
    """One dead letter: the original message and why it was refused."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        """A header's value as text, if present."""
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def error_type(self) -> str:
        """The machine-readable reason (`malformed`, `rejected`, `unknown_incident`, ...)."""
        return self.header(contract.DLQ_ERROR_TYPE_HEADER) or "unknown"

    @property
    def error_message(self) -> str:
        """The human-readable reason."""
        return self.header(contract.DLQ_ERROR_MESSAGE_HEADER) or ""

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the message had before it was dead-lettered."""
        return [(k, v) for k, v in self.headers if k not in ERROR_HEADERS]


def read_dead_letters(settings: KafkaSettings, *, idle_timeout_s: float = 2.0) -> Iterator[DeadLetterRecord]:
    """Every dead letter currently in the topic, oldest first per partition (no group, no commits)."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(settings.dlq_topic) or set()
        assigned = [TopicPartition(settings.dlq_topic, p) for p in sorted(partitions)]
        if not assigned:
            return
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if ends[tp] > 0}
        deadline = time.monotonic() + idle_timeout_s
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                deadline = time.monotonic() + idle_timeout_s
                for record in records:
                    yield DeadLetterRecord(
                        record.partition, record.offset, record.key, record.value, list(record.headers or [])
                    )
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        consumer.close()


def replay_dead_letters(
    settings: KafkaSettings,
    *,
    select: Callable[[DeadLetterRecord], bool] = lambda letter: True,
) -> list[DeadLetterRecord]:
    """Publish the selected dead letters back to the incidents topic, as they first arrived.

    The replayed message carries the original key, value and headers plus `gridflow.replayed-from`
    (the dead letter's partition/offset) so a replay can be traced; the bridge treats it like any
    message, and idempotency keeps an already-applied event from applying twice.
    """
    letters = [letter for letter in read_dead_letters(settings) if select(letter)]
    producer = make_producer(settings)
    try:
        futures = [
            producer.send(
                settings.incidents_topic,
                key=letter.key,
                value=letter.value,
                headers=[
                    *letter.original_headers,
                    ("gridflow.replayed-from", f"{letter.partition}/{letter.offset}".encode()),
                    ("gridflow.replay-id", uuid.uuid4().hex.encode()),
                ],
            )
            for letter in letters
        ]
        for future in futures:
            future.get(30)
    finally:
        producer.close(10)
    return letters
