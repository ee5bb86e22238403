"""The bridge: incident events from Kafka become Temporal workflow starts and updates.

Guarantees, and how they are kept:
- nothing lost: an offset is committed only when every message before it in its partition has been
  acknowledged by Temporal or written to the dead-letter topic (contiguous commits, last + 1:
  `events.offsets`);
- nothing doubled: starts are idempotent (workflow id per incident, conflict and reuse policies) and
  lifecycle commands carry the CloudEvent's identity as their update id, which Temporal applies once;
- per-incident order: messages with the same key (the incident id) run one after another, while
  different incidents run concurrently, up to `bridge_max_in_flight` Temporal calls at once
  (`events.ordering`);
- backpressure: when that many calls are in flight (Temporal slow or down), the partitions are paused
  (the consumer keeps polling, so the group does not rebalance) and resumed when calls drain;
- one incident's flood does not hold up the others: when one incident holds `bridge_max_per_incident`
  messages (they can only run one by one), only its partition is paused, and resumed once it holds half
  as many; the other partitions' incidents go on. A poll takes at most that many records, so one
  incident holds at most about twice the cap (memory stays bounded by the in-flight limit anyway);
- bad input: anything unusable goes to the dead-letter topic with the reason in its headers
  (`events.dead_letter_writer`); a dead letter the topic itself will not take is parked: logged,
  counted and committed past;
- a broker out of reach (stopped, frozen, cut off): the bridge waits for it, and says so. Every few
  seconds it measures its lag, which asks the broker; a commit is an answer too. Once the broker has
  not answered for a session timeout (when the group would drop a member too), the bridge is not ready
  (`/readyz` 503, `gridflow_bridge_broker_reachable` 0), and its lag figures stay as last measured,
  with the time they were measured (`gridflow_bridge_consumer_lag_measured_timestamp_seconds`). It is
  ready again at the broker's first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CorruptRecordError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry
from temporalio.client import Client

from events import contract
from events.cloudevents import EventRejected, InboundEvent, parse_message
from events.dead_letter_writer import DeadLetter, DeadLetterWriter
from events.errors import ErrorType
from events.kafka import ensure_topics, make_consumer, make_producer
from events.metrics import BridgeMetrics, MessageOutcome
from events.offsets import OffsetTracker, measure_lag
from events.ordering import IncidentHolds, PerIncidentOrder, Pressure
from events.settings import BridgeSettings
from gridflow.domain.incident import Incident
from workflows.client import (
    TEMPORAL_CALL_ERRORS,
    TemporalErrorKind,
    classify_temporal_error,
    command_was_applied,
    is_connect_failure,
    report_incident,
    send_command,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_BACKOFF_SECONDS = 30.0
COMMIT_INTERVAL_SECONDS = 0.2
LAG_INTERVAL_SECONDS = 5.0
#: How often the readiness watch looks at when the broker last answered.
WATCH_INTERVAL_SECONDS = 0.5
#: Most records taken in one poll, whatever room the in-flight limit leaves.
MAX_POLL_RECORDS = 500
#: How long a stopping bridge lets its in-flight messages finish before abandoning them (redelivered).
STOP_GRACE_SECONDS = 30.0


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


def step_over_unreadable(consumer: KafkaConsumer, error: Exception) -> UnreadableRecord:
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


def give_back_parked_records(consumer: KafkaConsumer) -> None:
    """Let kafka-python hand over the records it parked for a partition that has been resumed.

    kafka-python 3.0 keeps a paused partition's fetched records aside, fetches nothing more for it
    while they are, and gives them back after a resume only when its in-line slot is None. But a batch
    it has drained stays in that slot (falsy, not None) while other partitions are read: a partition
    paused alone, as the per-incident cap does, would then never be read again. An empty slot is
    emptied for it (private attributes of the pinned 3.0 series; without them, nothing is done).
    """
    fetcher = getattr(consumer, "_fetcher", None)
    in_line = getattr(fetcher, "_next_partition_records", None)
    if in_line is not None and not in_line and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None  # type: ignore[union-attr]


def poll_giving_back_parked(consumer: KafkaConsumer, max_records: int) -> dict[TopicPartition, list[Any]]:
    """`consumer.poll`, after `give_back_parked_records` (on the consumer's thread)."""
    give_back_parked_records(consumer)
    batches: dict[TopicPartition, list[Any]] = consumer.poll(timeout_ms=200, max_records=max_records)
    return batches


def command_id(event: InboundEvent) -> str:
    """A stable update id for a lifecycle event: CloudEvents are unique by source and id."""
    digest = hashlib.sha256(f"{event.source}\x00{event.id}".encode()).hexdigest()
    return f"ce-{digest[:40]}"


class ReadinessFlag(Protocol):
    """Where the bridge says whether it does its job (the process's `/readyz`)."""

    def set(self, ready: bool = True) -> None:
        """Ready (in the consumer group, the broker answering), or not (stopping, broker out of reach)."""


class _Unwatched:
    def set(self, ready: bool = True) -> None:
        pass


class Bridge:
    """Consumes the incidents topic and drives incident workflows; see the module docstring.

    `metrics` are the bridge's counters, in the registry of the process that serves them; without
    one, the bridge counts in a registry of its own (`bridge.metrics.registry`).
    """

    def __init__(
        self,
        settings: BridgeSettings,
        client: Client,
        readiness: ReadinessFlag | None = None,
        *,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        # Not `readiness or ...`: a readiness flag that is not yet set is falsy, and must still be kept.
        self.readiness: ReadinessFlag = readiness if readiness is not None else _Unwatched()
        self.metrics = metrics if metrics is not None else BridgeMetrics(CollectorRegistry())
        # kafka-python's consumer is not thread-safe: every call to it runs on this one thread.
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gridflow-consumer")
        self._offsets = OffsetTracker()
        self._in_flight = PerIncidentOrder(settings.bridge_max_in_flight)
        self._per_incident_cap = settings.bridge_per_incident_cap
        self._holds: IncidentHolds[TopicPartition] = IncidentHolds(self._in_flight, self._per_incident_cap)
        self._to_hold: set[TopicPartition] = set()  # reached by `_take`, paused by `_apply_backpressure`
        self._stopping = asyncio.Event()
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: DeadLetterWriter | None = None
        self.assigned: set[TopicPartition] = set()
        # Readiness is both: in the group (set by the rebalance listener), and the broker answered
        # within a session timeout (time.monotonic() of its last answer, set on the consumer's thread).
        self._in_group = False
        self._broker_answered = time.monotonic()
        self._broker_reachable: bool | None = None
        self.metrics.broker_reachable.set(1)
        session = settings.kafka_session_timeout_ms / 1000
        self._broker_silence_limit = session
        # Measured at least three times per session timeout: one slow answer does not make it unready.
        self._lag_interval = min(LAG_INTERVAL_SECONDS, session / 3)

    async def _on_kafka(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kafka_thread, lambda: call(*args, **kwargs))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight work, commit and leave the group."""
        settings = self._settings
        await asyncio.to_thread(ensure_topics, settings)
        producer = await asyncio.to_thread(make_producer, settings)
        self._dead_letters = DeadLetterWriter(producer, settings.dlq_topic, self.metrics, self._stopping)
        consumer: KafkaConsumer = await self._on_kafka(make_consumer, settings)
        self._consumer = consumer
        await self._on_kafka(consumer.subscribe, [settings.incidents_topic], listener=_Rebalance(self))
        log.info(
            "bridge started",
            topic=settings.incidents_topic,
            group=settings.consumer_group,
            dlq=settings.dlq_topic,
            max_in_flight=settings.bridge_max_in_flight,
            max_per_incident=self._per_incident_cap,
        )
        last_commit = last_lag = time.monotonic()
        watch = asyncio.create_task(self._watch_broker())
        try:
            while not stop.is_set():
                # Take no more than the in-flight limit leaves room for, so memory stays bounded; and no
                # more than one incident may hold, so a flood's records already fetched beyond the cap
                # (taken all the same: they are in memory) are at most one poll's worth.
                room = min(self._in_flight.room(MAX_POLL_RECORDS), self._per_incident_cap)
                try:
                    batches = await self._on_kafka(poll_giving_back_parked, consumer, room)
                except CorruptRecordError as exc:
                    # kafka-python cannot decode a record (a header name that is not UTF-8): step
                    # over it and leave a dead letter that says where it is.
                    unreadable = await self._on_kafka(step_over_unreadable, consumer, exc)
                    batches = {TopicPartition(unreadable.topic, unreadable.partition): [unreadable]}
                for partition, records in batches.items():
                    for record in records:
                        self._take(partition, record)
                await self._apply_backpressure()
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_SECONDS:
                    await self._commit()
                    last_commit = time.monotonic()
                if time.monotonic() - last_lag >= self._lag_interval:
                    await self._on_kafka(self._measure_lag)
                    last_lag = time.monotonic()
        finally:
            watch.cancel()
            await self._shutdown(producer)

    def _measure_lag(self) -> None:
        """Measure the lag (on the consumer's thread); an answer is news from the broker. A bridge that
        owns no partition asks for one partition's end instead, to know the broker still answers."""
        assert self._consumer is not None
        timeout_ms = int(self._lag_interval * 1000)
        answered = measure_lag(
            self._consumer,
            self.metrics.consumer_lag,
            self._offsets.last_committed,
            measured=self.metrics.consumer_lag_measured,
            timeout_ms=timeout_ms,
        )
        if answered is None:
            probe = TopicPartition(self._settings.incidents_topic, 0)
            try:
                self._consumer.end_offsets([probe], timeout_ms=timeout_ms)
                answered = True
            except Exception as exc:  # out of reach: the watch says so once it has lasted
                log.debug("broker probe unanswered", error=str(exc))
        if answered:
            self._broker_answered = time.monotonic()

    async def _watch_broker(self) -> None:
        """Keep readiness and `broker_reachable` true to when the broker last answered.

        A task of its own: while the broker is frozen, a commit can hold the consumer's thread (and so
        the poll loop) until it answers, and this must still see the silence."""
        while True:
            silent = time.monotonic() - self._broker_answered
            reachable = silent < self._broker_silence_limit
            if reachable is not self._broker_reachable:
                self._broker_reachable = reachable
                self.metrics.broker_reachable.set(1 if reachable else 0)
                if reachable:
                    log.info("Kafka broker answering again", consumer_group=self._settings.consumer_group)
                else:
                    log.warning(
                        "Kafka broker out of reach: not ready, lag figures stale",
                        consumer_group=self._settings.consumer_group,
                        silent_s=round(silent, 1),
                    )
                self._publish_readiness()
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    def _publish_readiness(self) -> None:
        if self._stopping.is_set():
            return  # stopping: not ready, whatever the broker says
        self.readiness.set(self._in_group and self._broker_reachable is not False)

    def _take(self, partition: TopicPartition, record: ConsumerRecord) -> None:
        self._offsets.add(partition, record.offset)
        self.metrics.in_flight.inc()
        task = self._in_flight.start(record.key, lambda: self._see_through(partition, record))
        task.add_done_callback(lambda _: self.metrics.in_flight.dec())
        held = self._holds.taken(record.key, partition)
        if held is not None:
            self._to_hold.add(held)
            log.info(
                "partition paused: one incident's messages at the per-incident cap",
                partition=held.partition,
                incident_id=(record.key or b"").decode(errors="replace"),
                cap=self._per_incident_cap,
            )

    async def _see_through(self, partition: TopicPartition, record: ConsumerRecord) -> None:
        """Handle one message to its end (acknowledged or dead-lettered), then mark it committable."""
        try:
            await self._handle(record)
        except Exception as exc:
            # A bug must not stall the partition or kill the bridge: dead-letter the message, to be
            # replayed once the bug is fixed.
            log.exception(
                "unexpected error handling a message", partition=record.partition, offset=record.offset
            )
            letter = DeadLetter(ErrorType.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            await self._dead_letter(record, letter, "unknown")
        # Not reached when the bridge stops mid-retry (CancelledError): not committed, so redelivered.
        self._offsets.finish(partition, record.offset)

    async def _apply_backpressure(self) -> None:
        """Pause or resume partitions: all of them at the in-flight limit, one at the per-incident cap.

        The two must not undo each other: the limit's resume leaves the partitions an incident still
        holds paused, and an incident drained to half the cap does not resume its partition while the
        limit pauses everything (the limit's resume will)."""
        assert self._consumer is not None
        pressure = self._in_flight.pressure()
        hold, self._to_hold = self._to_hold, set()
        freed = self._holds.released()
        if pressure is None and not hold and not freed:
            return  # nearly every time: no call to the consumer's thread
        held = self._holds.held()
        everything_paused = self._in_flight.paused

        def apply(consumer: KafkaConsumer) -> set[TopicPartition]:
            # Only assigned partitions: a rebalance may have taken some since they were noted.
            assigned: set[TopicPartition] = consumer.assignment()
            resumed: set[TopicPartition] = set()
            if pressure is Pressure.PAUSE:
                consumer.pause(*assigned)
            elif pressure is Pressure.RESUME:
                resumed = consumer.paused() - held
            if hold & assigned:
                consumer.pause(*(hold & assigned))
            if freed and not everything_paused:
                resumed |= freed & assigned
            if resumed:
                consumer.resume(*resumed)
            return resumed

        resumed = await self._on_kafka(apply, self._consumer)
        busy = len(self._in_flight)
        if pressure is Pressure.PAUSE:
            log.info("bridge paused: Temporal calls in flight at the limit", in_flight=busy)
        elif pressure is Pressure.RESUME:
            log.info("bridge resumed", in_flight=busy, still_held=sorted(tp.partition for tp in held))
        if freed and resumed & freed:
            log.info(
                "partition resumed: its incidents drained to half the per-incident cap",
                partitions=sorted(tp.partition for tp in resumed & freed),
            )

    async def _commit(self, partitions: list[TopicPartition] | None = None) -> None:
        offsets = self._offsets.committable(partitions)
        if offsets and self._consumer is not None:
            try:
                await self._on_kafka(self._commit_now, offsets)
            except KafkaError as exc:
                # The broker out of reach (kafka-python raises a refused connection at once, a silent
                # broker after its request timeout), or the group moved on: the bridge carries on, and
                # commits these offsets with the next ones. If it stops first, they are redelivered.
                self._offsets.not_committed(offsets)
                log.warning("commit failed; retried with the next", error=f"{type(exc).__name__}: {exc}")

    def _commit_now(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the group's offsets (on the consumer's thread)."""
        assert self._consumer is not None
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
        self._broker_answered = time.monotonic()
        self._offsets.committed(offsets)
        log.debug("offsets committed", offsets={f"{tp.topic}/{tp.partition}": o for tp, o in offsets.items()})

    async def _shutdown(self, producer: KafkaProducer) -> None:
        self._stopping.set()
        self.readiness.set(False)
        if len(self._in_flight):
            log.info("bridge stopping: finishing in-flight messages", in_flight=len(self._in_flight))
            await self._in_flight.drain(STOP_GRACE_SECONDS)
        try:
            await self._commit()
        finally:
            if self._consumer is not None:
                await self._on_kafka(self._consumer.close)  # leaves the group at once
            await asyncio.to_thread(producer.close, 10)
            self._kafka_thread.shutdown(wait=True)
            log.info("bridge stopped")

    # ------------------------------------------------------------------ one message

    async def _handle(self, record: ConsumerRecord) -> None:
        if isinstance(record, UnreadableRecord):
            await self._dead_letter(record, DeadLetter(ErrorType.UNREADABLE_RECORD, record.reason), "unknown")
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
            self.metrics.consumed.labels(type=event.type, outcome=outcome).inc()
            log.debug("event applied", type=event.type, incident_id=event.incident_id, outcome=outcome)

    async def _retrying(
        self, call: Callable[[], Awaitable[MessageOutcome | DeadLetter]], event: InboundEvent
    ) -> MessageOutcome | DeadLetter:
        """The call's answer, retried with backoff while Temporal is unavailable."""
        delay = 0.5
        while True:
            try:
                return await call()
            except (*TEMPORAL_CALL_ERRORS, RuntimeError) as exc:
                if isinstance(exc, TEMPORAL_CALL_ERRORS):
                    failure = classify_temporal_error(exc)
                    if failure.kind is not TemporalErrorKind.TRANSIENT:
                        refused = f"Temporal refused the call: {failure.detail}"
                        return DeadLetter(ErrorType.TEMPORAL_REFUSED, refused)
                    detail = failure.detail
                elif is_connect_failure(exc):
                    # A bridge started while Temporal was down: its lazy client has never connected.
                    detail = str(exc)
                else:
                    raise
                if self._stopping.is_set():
                    raise asyncio.CancelledError from exc
                self.metrics.temporal_retries.inc()
                log.warning(
                    "Temporal unavailable; retrying",
                    incident_id=event.incident_id,
                    type=event.type,
                    error=detail,
                    retry_in=round(delay, 1),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _apply(self, event: InboundEvent) -> MessageOutcome | DeadLetter:
        started = time.monotonic()
        try:
            if event.type == contract.REPORTED:
                return await self._report(event)
            return await self._apply_command(event)
        finally:
            self.metrics.temporal_latency.labels(type=event.type).observe(time.monotonic() - started)

    async def _report(self, event: InboundEvent) -> MessageOutcome | DeadLetter:
        assert isinstance(event.data, Incident)
        reported = await report_incident(self._client, self._settings.task_queue, event.data)
        if reported.started:
            self.metrics.workflows_started.inc()
            return MessageOutcome.STARTED
        if reported.conflict:
            return DeadLetter(
                ErrorType.CONFLICT,
                f"incident {event.incident_id} was already reported with different content; "
                "the running incident is unchanged",
            )
        self.metrics.duplicates.inc()
        return MessageOutcome.DUPLICATE

    async def _apply_command(self, event: InboundEvent) -> MessageOutcome | DeadLetter:
        """Send the command; what Temporal says about the incident ends here, the rest in `_retrying`."""
        command = contract.to_command(event.data)  # type: ignore[arg-type]
        identity = command_id(event)
        try:
            await send_command(self._client, event.incident_id, command, command_id=identity)
            return MessageOutcome.APPLIED
        except TEMPORAL_CALL_ERRORS as exc:
            failure = classify_temporal_error(exc)
            match failure.kind:
                case TemporalErrorKind.REFUSED:
                    return DeadLetter(ErrorType.REJECTED, failure.detail)
                case TemporalErrorKind.NO_INCIDENT:
                    missing = f"no incident {event.incident_id} has been reported"
                    return DeadLetter(ErrorType.UNKNOWN_INCIDENT, missing)
                case TemporalErrorKind.CLOSED:
                    return await self._closed(event, identity)
            raise  # transient (retried), or refused by Temporal itself

    async def _closed(self, event: InboundEvent, identity: str) -> MessageOutcome | DeadLetter:
        # A redelivered command that closed the incident itself was applied the first time.
        if await command_was_applied(self._client, event.incident_id, identity):
            self.metrics.duplicates.inc()
            return MessageOutcome.DUPLICATE
        return DeadLetter(ErrorType.INCIDENT_CLOSED, f"incident {event.incident_id} is closed")

    async def _dead_letter(self, record: ConsumerRecord, letter: DeadLetter, event_type: str) -> None:
        assert self._dead_letters is not None
        await self._dead_letters.write(record, letter, event_type)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what is finished before partitions move to another bridge (runs inside poll)."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        bridge = self._bridge
        offsets = bridge._offsets.committable(list(revoked))
        if offsets:
            try:
                bridge._commit_now(offsets)
            except Exception as exc:  # the new owner re-reads; duplicates are absorbed
                log.warning("commit on revoke failed", error=str(exc))
        bridge._offsets.forget(list(revoked))
        for tp in revoked:
            with contextlib.suppress(KeyError):  # another bridge reports this partition's lag now
                bridge.metrics.consumer_lag.remove(str(tp.partition))
            with contextlib.suppress(KeyError):
                bridge.metrics.consumer_lag_measured.remove(str(tp.partition))
        bridge.assigned -= set(revoked)
        bridge._in_flight.partitions_reassigned()
        # They come back (here or elsewhere) unpaused: what an incident held is no longer paused, and
        # its next message taken at the cap holds the partition again.
        bridge._holds.forget(revoked)
        bridge._to_hold -= set(revoked)
        log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        bridge = self._bridge
        bridge.assigned |= set(assigned)
        # In the group (possibly with no partition: an idle spare); the join was the broker answering.
        bridge._in_group = True
        bridge._broker_answered = time.monotonic()
        if bridge._broker_reachable is not False:  # else the watch says ready at its next look
            bridge._publish_readiness()
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))
