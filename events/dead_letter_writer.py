"""Writing dead letters: the original message plus why, on the dead-letter topic, before its offset commits.

What Kafka may take later (a timeout, a leader moving, a broker away) is retried with backoff until it
is written. What it never will (a letter too large even without its value, a topic gridflow may not
write) is parked instead: logged at error level without the message's content, counted in
`gridflow_bridge_dead_letters_parked_total`, and committed past, so the incident's later messages move
on. The log line and the source headers say where the original still is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    BrokerNotAvailableError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from events import contract
from events.errors import ErrorType, clip
from events.metrics import BridgeMetrics, MessageOutcome

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 30.0
SEND_TIMEOUT_SECONDS = 30.0
#: Longest `gridflow.error.message` header, in bytes.
MAX_ERROR_MESSAGE_BYTES = 2000


@dataclass(frozen=True)
class DeadLetter:
    """Why a message cannot be used: its reason (the `gridflow.error.type` header), and for people."""

    error_type: ErrorType
    message: str


def is_transient(error: Exception) -> bool:
    """Whether Kafka may take the same dead letter later: retry it (True), or park it (False)."""
    if not isinstance(error, KafkaError):
        return False  # not Kafka's answer (a bug, a closed producer): retrying would not change it
    # kafka-python marks what is worth retrying; a broker that is not available is, too.
    return bool(error.retriable) or isinstance(error, BrokerNotAvailableError)


def _too_large(error: Exception) -> bool:
    # The client's own check (max_request_size) or the broker's (the topic's max.message.bytes).
    return isinstance(error, MessageSizeTooLargeError | RecordListTooLargeError)


class DeadLetterWriter:
    """Writes dead letters to `topic`; see the module docstring for what it does when Kafka will not."""

    def __init__(
        self, producer: KafkaProducer, topic: str, metrics: BridgeMetrics, stopping: asyncio.Event
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._stopping = stopping

    async def write(self, record: ConsumerRecord, letter: DeadLetter, event_type: str) -> None:
        """Write the record's dead letter; return once it is written or parked (either way: finished).

        Raises CancelledError when the bridge stops while Kafka is away: the message stays uncommitted
        and is redelivered.
        """
        # Kafka allows null header values (Java, librdkafka, Sarama send them); kafka-python refuses them.
        original = [(name, b"" if value is None else value) for name, value in record.headers or []]
        headers = [*original, *_error_headers(record, letter)]
        value: bytes | None = record.value
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self._send, record.key, value, headers)
                break
            except Exception as exc:
                if _too_large(exc) and value:
                    # With our headers it is too big to write whole: write the reason alone; the
                    # source topic, partition and offset headers point at the original.
                    value = b""
                    dropped = str(len(record.value or b"")).encode()
                    headers = [*_error_headers(record, letter), (contract.DLQ_VALUE_DROPPED_HEADER, dropped)]
                    continue
                if not is_transient(exc):
                    self._park(record, letter, event_type, exc)
                    return
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                log.warning("dead-letter write failed; retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        self._metrics.consumed.labels(type=event_type, outcome=MessageOutcome.DEAD_LETTERED).inc()
        self._metrics.dead_lettered.labels(reason=letter.error_type).inc()
        log.warning(
            "message dead-lettered",
            reason=letter.error_type,
            error=letter.message,
            partition=record.partition,
            offset=record.offset,
        )

    def _send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        # On a thread: `send` itself may wait for the topic's metadata.
        self._producer.send(self._topic, key=key, value=value, headers=headers).get(SEND_TIMEOUT_SECONDS)

    def _park(self, record: ConsumerRecord, letter: DeadLetter, event_type: str, error: Exception) -> None:
        self._metrics.consumed.labels(type=event_type, outcome=MessageOutcome.PARKED).inc()
        self._metrics.dead_letters_parked.labels(reason=letter.error_type).inc()
        # Where the original is and why it is not in the dead-letter topic; never its key, value or
        # headers (personal data) nor the letter's message (it may quote them).
        log.error(
            "dead letter parked: the dead-letter topic would not take it; committed past it, "
            "the original is still at its source offset",
            reason=letter.error_type,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            dlq_topic=self._topic,
            kafka_error=type(error).__name__,
            error=clip(str(error), 300),
        )


def _error_headers(record: ConsumerRecord, letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (contract.DLQ_ERROR_TYPE_HEADER, letter.error_type.encode()),
        (contract.DLQ_ERROR_MESSAGE_HEADER, letter.message.encode()[:MAX_ERROR_MESSAGE_BYTES]),
        (contract.DLQ_SOURCE_TOPIC_HEADER, record.topic.encode()),
        (contract.DLQ_SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (contract.DLQ_SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ]
