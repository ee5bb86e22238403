"""The bridge: incident events from Kafka become Temporal workflow starts and updates.

Guarantees, and how they are kept:
- nothing lost: an offset is committed only when every message before it in its partition has been
  acknowledged by Temporal or written to the dead-letter topic (contiguous commits, last + 1);
- nothing doubled: starts are idempotent (workflow id per incident, conflict and reuse policies) and
  lifecycle commands carry the CloudEvent's identity as their update id, which Temporal applies once;
- per-incident order: messages with the same key (the incident id) run one after another, while
  different incidents run concurrently, up to `bridge_max_in_flight` Temporal calls at once;
- backpressure: when that many calls are in flight (Temporal slow or down), the partitions are paused
  (the consumer keeps polling, so the group does not rebalance) and resumed when calls drain;
- bad input: anything unusable goes to the dead-letter topic with the reason in its headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CorruptRecordError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata, TopicPartition
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from events import contract
from events.cloudevents import EventRejected, InboundEvent, parse_message
from events.kafka import ensure_topics, make_consumer, make_producer
from events.metrics import BRIDGE
from events.settings import BridgeSettings
from gridflow.domain.incident import Incident
from workflows.client import command_was_applied, report_incident, send_command

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Temporal answers that mean "try again later", never "this message is bad".
TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.ABORTED,
    RPCStatusCode.INTERNAL,
    RPCStatusCode.UNKNOWN,
}
MAX_BACKOFF_SECONDS = 30.0
COMMIT_INTERVAL_SECONDS = 0.2
LAG_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class DeadLetter:
    """Why a message cannot be used."""

    error_type: str
    message: str


class Outcome:
    """How a message ended, for metrics and logs."""

    STARTED = "started"
    DUPLICATE = "duplicate"
    APPLIED = "applied"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class UnreadableRecord:
    """A record the Kafka client could not decode, standing in for it: where it is, and why."""

    topic: str
    partition: int
    offset: int
    error: str
    key: bytes | None = None
    value: bytes = b""  # the client gives none of it; the dead letter points at the original instead
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def reason(self) -> str:
        """Why it was stepped over, and how to read it after all."""
        return (
            f"the Kafka client could not decode the record at {self.topic}/{self.partition}@{self.offset} "
            f"({self.error}); it was stepped over: read it with another Kafka client"
        )


def _step_over_unreadable(consumer: KafkaConsumer, error: Exception) -> UnreadableRecord:
    """Find the partition whose next record kafka-python failed to decode, and seek past that record.

    kafka-python keeps the failing partition's records in line and raises again on every poll; it
    names neither partition nor offset. Its fetcher's in-line records do (a private attribute of the
    pinned 3.0 series): without them the error is raised as before.
    """
    in_line = getattr(getattr(consumer, "_fetcher", None), "_next_partition_records", None)
    partition = getattr(in_line, "topic_partition", None)
    if partition is None:
        raise error
    offset = consumer.position(partition)
    consumer.seek(partition, offset + 1)
    log.warning(
        "a record the Kafka client cannot decode was stepped over",
        partition=partition.partition,
        offset=offset,
        error=str(error),
    )
    return UnreadableRecord(partition.topic, partition.partition, offset, str(error))


def command_id(event: InboundEvent) -> str:
    """A stable update id for a lifecycle event: CloudEvents are unique by source and id."""
    digest = hashlib.sha256(f"{event.source}\x00{event.id}".encode()).hexdigest()
    return f"ce-{digest[:40]}"


class OffsetTracker:
    """Which offsets of each partition are finished, and how far each can be committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPartition, dict[int, bool]] = {}

    def add(self, partition: TopicPartition, offset: int) -> None:
        """Note a message taken from Kafka."""
        with self._lock:
            self._pending.setdefault(partition, {})[offset] = False

    def finish(self, partition: TopicPartition, offset: int) -> None:
        """Note a message done (acknowledged or dead-lettered)."""
        with self._lock:
            offsets = self._pending.get(partition)
            if offsets is not None and offset in offsets:
                offsets[offset] = True

    def committable(self, partitions: list[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """For each partition whose finished prefix grew: the next offset to read (last done + 1)."""
        result: dict[TopicPartition, int] = {}
        with self._lock:
            for partition, offsets in self._pending.items():
                if partitions is not None and partition not in partitions:
                    continue
                last = None
                # dicts keep insertion order, and Kafka hands offsets out in order.
                for offset, done in list(offsets.items()):
                    if not done:
                        break
                    last = offset
                    del offsets[offset]
                if last is not None:
                    result[partition] = last + 1
        return result

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop partitions this bridge no longer owns."""
        with self._lock:
            for partition in partitions:
                self._pending.pop(partition, None)

    def outstanding(self) -> int:
        """Messages taken but not finished."""
        with self._lock:
            return sum(not done for offsets in self._pending.values() for done in offsets.values())


class ReadinessFlag(Protocol):
    """Where the bridge says whether it does its job (the process's `/readyz`)."""

    def set(self, ready: bool = True) -> None:
        """Ready (in the consumer group), or not (stopping)."""


class _Unwatched:
    def set(self, ready: bool = True) -> None:
        pass


class Bridge:
    """Consumes the incidents topic and drives incident workflows; see the module docstring."""

    def __init__(
        self, settings: BridgeSettings, client: Client, readiness: ReadinessFlag | None = None
    ) -> None:
        self._settings = settings
        self._client = client
        self.readiness: ReadinessFlag = readiness or _Unwatched()
        # kafka-python's consumer is not thread-safe: every call to it runs on this one thread.
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gridflow-consumer")
        self._tracker = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tails: dict[bytes, asyncio.Task[None]] = {}
        self._paused = False
        self._stopping = asyncio.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.assigned: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}

    async def _on_kafka(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kafka_thread, lambda: call(*args, **kwargs))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight work, commit and leave the group."""
        settings = self._settings
        await asyncio.to_thread(ensure_topics, settings)
        self._producer = await asyncio.to_thread(make_producer, settings)
        consumer: KafkaConsumer = await self._on_kafka(make_consumer, settings)
        self._consumer = consumer
        await self._on_kafka(consumer.subscribe, [settings.incidents_topic], listener=_Rebalance(self))
        log.info(
            "bridge started",
            topic=settings.incidents_topic,
            group=settings.consumer_group,
            dlq=settings.dlq_topic,
            max_in_flight=settings.bridge_max_in_flight,
        )
        last_commit = last_lag = time.monotonic()
        try:
            while not stop.is_set():
                # Take no more than the in-flight limit leaves room for, so memory stays bounded.
                room = max(1, min(500, settings.bridge_max_in_flight - len(self._tasks)))
                try:
                    batches = await self._on_kafka(consumer.poll, timeout_ms=200, max_records=room)
                except CorruptRecordError as exc:
                    # kafka-python cannot decode a record (a header name that is not UTF-8): step
                    # over it and leave a dead letter that says where it is.
                    unreadable = await self._on_kafka(_step_over_unreadable, consumer, exc)
                    batches = {TopicPartition(unreadable.topic, unreadable.partition): [unreadable]}
                for partition, records in batches.items():
                    for record in records:
                        self._take(partition, record)
                await self._apply_backpressure()
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_SECONDS:
                    await self._commit()
                    last_commit = time.monotonic()
                if time.monotonic() - last_lag >= LAG_INTERVAL_SECONDS:
                    await self._on_kafka(self._measure_lag, consumer)
                    last_lag = time.monotonic()
        finally:
            await self._shutdown()

    def _take(self, partition: TopicPartition, record: ConsumerRecord) -> None:
        self._tracker.add(partition, record.offset)
        BRIDGE.in_flight.inc()
        previous = self._tails.get(record.key) if record.key is not None else None
        task = asyncio.create_task(self._after(previous, partition, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if record.key is not None:
            key = record.key
            self._tails[key] = task
            task.add_done_callback(
                lambda t: self._tails.pop(key, None) if self._tails.get(key) is t else None
            )

    async def _after(
        self, previous: asyncio.Task[None] | None, partition: TopicPartition, record: ConsumerRecord
    ) -> None:
        if previous is not None:
            # Same incident: wait for its earlier event, whatever became of it.
            await asyncio.wait([previous])
        try:
            try:
                await self._handle(record)
            except Exception as exc:
                # A bug must not stall the partition or kill the bridge: park the message where it
                # can be replayed once the bug is fixed.
                log.exception(
                    "unexpected error handling a message", partition=record.partition, offset=record.offset
                )
                await self._dead_letter(
                    record, DeadLetter("internal_error", f"{type(exc).__name__}: {exc}"), "unknown"
                )
            self._tracker.finish(partition, record.offset)
        except asyncio.CancelledError:
            pass  # shutting down mid-retry: not committed, so it is redelivered
        finally:
            BRIDGE.in_flight.dec()

    async def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        busy = len(self._tasks)
        limit = self._settings.bridge_max_in_flight
        if not self._paused and busy >= limit:
            await self._on_kafka(lambda c: c.pause(*c.assignment()), self._consumer)
            self._paused = True
            log.info("bridge paused: Temporal calls in flight at the limit", in_flight=busy)
        elif self._paused and busy <= limit // 2:
            await self._on_kafka(lambda c: c.resume(*c.paused()), self._consumer)
            self._paused = False
            log.info("bridge resumed", in_flight=busy)

    async def _commit(self, partitions: list[TopicPartition] | None = None) -> None:
        offsets = self._tracker.committable(partitions)
        if offsets and self._consumer is not None:
            await self._on_kafka(self._commit_now, offsets)

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        """Messages between the group's committed position and the end of each owned partition."""
        owned = list(consumer.assignment())
        if not owned:
            return
        try:
            ends = consumer.end_offsets(owned)
        except Exception as exc:  # the broker is unreachable: keep the last figures
            log.warning("consumer lag not measured", error=str(exc))
            return
        for tp in owned:
            done = self._committed.get(tp)
            if done is None:
                done = consumer.position(tp)
            BRIDGE.consumer_lag.labels(partition=str(tp.partition)).set(max(ends[tp] - done, 0))

    def _commit_now(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
        self._committed.update(offsets)
        log.debug("offsets committed", offsets={f"{tp.topic}/{tp.partition}": o for tp, o in offsets.items()})

    async def _shutdown(self) -> None:
        self._stopping.set()
        self.readiness.set(False)
        if self._tasks:
            log.info("bridge stopping: finishing in-flight messages", in_flight=len(self._tasks))
            _, pending = await asyncio.wait(list(self._tasks), timeout=30)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        try:
            await self._commit()
        finally:
            if self._consumer is not None:
                await self._on_kafka(self._consumer.close)  # leaves the group at once
            if self._producer is not None:
                await asyncio.to_thread(self._producer.close, 10)
            self._kafka_thread.shutdown(wait=True)
            log.info("bridge stopped")

    # ------------------------------------------------------------------ one message

    async def _handle(self, record: ConsumerRecord) -> None:
        if isinstance(record, UnreadableRecord):
            await self._dead_letter(record, DeadLetter("unreadable_record", record.reason), "unknown")
            return
        headers = list(record.headers or [])
        try:
            event = parse_message(
                record.key, record.value, headers, max_bytes=self._settings.max_message_bytes
            )
        except EventRejected as rejected:
            await self._dead_letter(record, DeadLetter(rejected.error_type, rejected.message), "unknown")
            return
        outcome = await self._retrying(lambda: self._apply(event), event)
        if isinstance(outcome, DeadLetter):
            await self._dead_letter(record, outcome, event.type)
        else:
            BRIDGE.consumed.labels(type=event.type, outcome=outcome).inc()
            log.debug("event applied", type=event.type, incident_id=event.incident_id, outcome=outcome)

    async def _retrying(
        self, call: Callable[[], Awaitable[str | DeadLetter]], event: InboundEvent
    ) -> str | DeadLetter:
        delay = 0.5
        while True:
            try:
                return await call()
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
                status = exc.status if isinstance(exc, RPCError) else RPCStatusCode.DEADLINE_EXCEEDED
                if status not in TRANSIENT:
                    return DeadLetter("temporal_refused", f"Temporal refused the call: {exc}")
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                BRIDGE.temporal_retries.inc()
                log.warning(
                    "Temporal unavailable; retrying",
                    incident_id=event.incident_id,
                    type=event.type,
                    error=str(exc),
                    retry_in=round(delay, 1),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _apply(self, event: InboundEvent) -> str | DeadLetter:
        started = time.monotonic()
        try:
            if event.type == contract.REPORTED:
                assert isinstance(event.data, Incident)
                reported = await report_incident(self._client, self._settings.task_queue, event.data)
                if reported.started:
                    BRIDGE.workflows_started.inc()
                    return Outcome.STARTED
                if reported.conflict:
                    return DeadLetter(
                        "conflict",
                        f"incident {event.incident_id} was already reported with different content; "
                        "the running incident is unchanged",
                    )
                BRIDGE.duplicates.inc()
                return Outcome.DUPLICATE
            return await self._apply_command(event)
        finally:
            BRIDGE.temporal_latency.labels(type=event.type).observe(time.monotonic() - started)

    async def _apply_command(self, event: InboundEvent) -> str | DeadLetter:
        command = contract.to_command(event.data)  # type: ignore[arg-type]
        identity = command_id(event)
        try:
            await send_command(self._client, event.incident_id, command, command_id=identity)
            return Outcome.APPLIED
        except WorkflowUpdateFailedError as refused:
            return DeadLetter("rejected", str(refused.cause or refused))
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            if "already completed" in exc.message:
                if await command_was_applied(self._client, event.incident_id, identity):
                    BRIDGE.duplicates.inc()
                    return Outcome.DUPLICATE
                return DeadLetter("incident_closed", f"incident {event.incident_id} is closed")
            return DeadLetter("unknown_incident", f"no incident {event.incident_id} has been reported")

    async def _dead_letter(self, record: ConsumerRecord, letter: DeadLetter, event_type: str) -> None:
        assert self._producer is not None
        # Kafka allows null header values (Java, librdkafka, Sarama send them); kafka-python refuses them.
        original = [(name, b"" if value is None else value) for name, value in record.headers or []]
        headers = [*original, *_error_headers(record, letter)]
        value = record.value
        delay = 0.5
        while True:
            try:
                future = self._producer.send(
                    self._settings.dlq_topic, key=record.key, value=value, headers=headers
                )
                await asyncio.to_thread(future.get, 30)
                break
            except MessageSizeTooLargeError:
                if value == b"":
                    raise  # the key alone is too big: nothing smaller to park
                # The broker took it, but with our headers it is too big to park whole: park the reason;
                # the source topic, partition and offset headers point at the original.
                value = b""
                dropped = str(len(record.value or b"")).encode()
                headers = [*_error_headers(record, letter), (contract.DLQ_VALUE_DROPPED_HEADER, dropped)]
            except Exception as exc:  # the dead letter must be written before the offset is committed
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                log.warning("dead-letter write failed; retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        BRIDGE.consumed.labels(type=event_type, outcome=Outcome.DEAD_LETTERED).inc()
        BRIDGE.dead_lettered.labels(reason=letter.error_type).inc()
        log.warning(
            "message dead-lettered",
            reason=letter.error_type,
            error=letter.message,
            partition=record.partition,
            offset=record.offset,
        )


def _error_headers(record: ConsumerRecord, letter: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (contract.DLQ_ERROR_TYPE_HEADER, letter.error_type.encode()),
        (contract.DLQ_ERROR_MESSAGE_HEADER, letter.message.encode()[:2000]),
        (contract.DLQ_SOURCE_TOPIC_HEADER, record.topic.encode()),
        (contract.DLQ_SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (contract.DLQ_SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what is finished before partitions move to another bridge (runs inside poll)."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        bridge = self._bridge
        offsets = bridge._tracker.committable(list(revoked))
        if offsets:
            try:
                bridge._commit_now(offsets)
            except Exception as exc:  # the new owner re-reads; duplicates are absorbed
                log.warning("commit on revoke failed", error=str(exc))
        bridge._tracker.forget(list(revoked))
        for tp in revoked:
            bridge._committed.pop(tp, None)
            with contextlib.suppress(KeyError):  # another bridge reports this partition's lag now
                BRIDGE.consumer_lag.remove(str(tp.partition))
        bridge.assigned -= set(revoked)
        bridge._paused = False
        log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._bridge.assigned |= set(assigned)
        self._bridge.readiness.set()  # in the group (possibly with no partition: an idle spare)
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))
