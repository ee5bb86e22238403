"""The archiver: lifecycle events from Kafka into the archive, for the years after Temporal and Kafka forget.

It consumes the events topic in its own consumer group (GRIDFLOW_ARCHIVER_GROUP), takes batches of up
to GRIDFLOW_ARCHIVER_BATCH records, writes each batch's steps to the archive in one transaction and
only then commits the batch's offsets (last + 1 per partition). A crash between the two redelivers the
batch, and the archive keeps each step once (its event id `<incident_id>:<seq>`): at least once from
Kafka, exactly once in the archive.

A record that is not a lifecycle event (not JSON, another type, data that does not validate, a step
the archive cannot keep) is skipped: logged with its partition, offset and reason (never its content),
counted in `gridflow_archiver_skipped_total{reason}`, and committed past. While the database is away
the batch in hand is retried with backoff (the partitions paused, the group kept) and the process
reports itself not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CorruptRecordError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from events.bridge import step_over_unreadable
from events.errors import ErrorType, EventRejected
from events.kafka import ensure_topics, make_consumer
from events.lifecycle import StepEventData, read_step_event
from events.offsets import measure_lag
from gridflow.app.compose import process_registry
from gridflow.app.metrics_server import Readiness, serve_metrics
from gridflow.app.settings import Settings, revealed
from gridflow.archive.store import Archive, ArchiveError, unstorable

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS: Final = 500
LAG_INTERVAL_SECONDS: Final = 5.0
FIRST_BACKOFF_SECONDS: Final = 0.5
MAX_BACKOFF_SECONDS: Final = 10.0


class ArchiverMetrics:
    """The archiver's counters and gauges (prefix `gridflow_archiver_`), in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.steps_written = Counter(
            "gridflow_archiver_steps_written_total",
            "Steps written to the archive (new rows; a redelivered step is not counted again).",
            registry=registry,
        )
        self.duplicates = Counter(
            "gridflow_archiver_duplicates_total",
            "Steps the archive already held (redeliveries after a restart or a rebalance, republished).",
            registry=registry,
        )
        self.skipped = Counter(
            "gridflow_archiver_skipped_total",
            "Records that are not lifecycle events the archive can keep, by reason: logged, committed past.",
            ["reason"],
            registry=registry,
        )
        self.write_failures = Counter(
            "gridflow_archiver_write_failures_total",
            "Batches the database did not take (away or refusing): retried.",
            registry=registry,
        )
        self.write_seconds = Histogram(
            "gridflow_archiver_write_seconds",
            "Time to write one batch to the archive (one transaction).",
            registry=registry,
        )
        self.last_step = Gauge(
            "gridflow_archiver_last_step_timestamp_seconds",
            "When the latest step written to the archive happened (Unix time): how far the archive reaches.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "gridflow_archiver_consumer_lag",
            "Records between the archiver group's committed offset and the partition end.",
            ["partition"],
            registry=registry,
        )


def read_archivable_step(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]], max_bytes: int
) -> StepEventData:
    """A lifecycle event's step, as the archive can keep it; EventRejected with the reason if not."""
    step = read_step_event(key, value, headers, max_bytes)
    if (problem := unstorable(step)) is not None:
        raise EventRejected(ErrorType.INVALID_DATA, problem)
    return step


@dataclass(frozen=True)
class _Skipped:
    partition: TopicPartition
    offset: int
    reason: str
    message: str


class Archiver:
    """Consumes the events topic into `archive`; see the module docstring. One consumer thread."""

    def __init__(
        self, settings: Settings, archive: Archive, metrics: ArchiverMetrics, readiness: Readiness
    ) -> None:
        self._settings = settings
        self._archive = archive
        self.metrics = metrics
        self.readiness = readiness
        self._stopping = threading.Event()
        self._assigned: set[TopicPartition] = set()
        self._written_ok = True
        self._committed: dict[TopicPartition, int] = {}  # what this archiver committed, for the lag

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished (written and committed) first."""
        consuming = asyncio.ensure_future(asyncio.to_thread(self._consume))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([consuming, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping.set()  # also when cancelled: the thread ends after its batch
            stopped.cancel()
            await asyncio.shield(consuming)

    # ------------------------------------------------------------------ the consumer thread

    def _consume(self) -> None:
        settings = self._settings
        ensure_topics(settings, [settings.events_topic])  # subscribing to a missing topic would wait
        # The archiver's own group: it reads every event whatever the bridges' group has done.
        consumer = make_consumer(settings.model_copy(update={"consumer_group": settings.archiver_group}))
        try:
            consumer.subscribe([settings.events_topic], listener=_Rebalance(self))
            log.info(
                "archiver started",
                topic=settings.events_topic,
                group=settings.archiver_group,
                batch=settings.archiver_batch,
                archive=self._archive.url,
                schema=self._archive.schema_version(),
                schema_before=self._archive.migrated_from or "none (a new archive)",
            )
            last_lag = 0.0
            while not self._stopping.is_set():
                try:
                    batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=settings.archiver_batch)
                except CorruptRecordError as exc:
                    self._step_over(consumer, exc)
                    continue
                if batches:
                    self._archive_batch(consumer, batches)
                if time.monotonic() - last_lag >= LAG_INTERVAL_SECONDS:
                    measure_lag(consumer, self.metrics.consumer_lag, self._committed.get)
                    last_lag = time.monotonic()
        finally:
            self.readiness.set(False)
            consumer.close()  # leaves the group at once
            log.info("archiver stopped")

    def _archive_batch(
        self, consumer: KafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        steps: list[StepEventData] = []
        skipped: list[_Skipped] = []
        ends: dict[TopicPartition, int] = {}
        for partition, records in batches.items():
            for record in records:
                ends[partition] = record.offset + 1
                try:
                    steps.append(
                        read_archivable_step(
                            record.key, record.value, record.headers or [], self._settings.max_message_bytes
                        )
                    )
                except EventRejected as rejected:
                    skipped.append(
                        _Skipped(partition, record.offset, rejected.error_type.value, rejected.message)
                    )
        if not self._write(consumer, steps):
            return  # stopping while the database is away: not committed, so delivered again
        for skip in skipped:
            self.metrics.skipped.labels(reason=skip.reason).inc()
            log.warning(
                "record skipped: not a lifecycle event the archive can keep",
                topic=skip.partition.topic,
                partition=skip.partition.partition,
                offset=skip.offset,
                reason=skip.reason,
                error=skip.message,
            )
        self._commit(consumer, ends)

    def _write(self, consumer: KafkaConsumer, steps: list[StepEventData]) -> bool:
        """Write the steps, retrying while the database is away; False if told to stop meanwhile."""
        delay = FIRST_BACKOFF_SECONDS
        while True:
            started = time.monotonic()
            try:
                new = self._archive.write(steps)
            except ArchiveError as exc:
                self.metrics.write_failures.inc()
                self._written_ok = False
                self.readiness.set(False)
                # Never skipped for the database's sake, not even when it refuses (a missing grant, a
                # full disk): the archiver waits, not ready, until the cause is fixed; nothing is lost.
                (log.warning if exc.transient else log.error)(
                    "archive write failed; retrying", error=str(exc), steps=len(steps), retry_in=delay
                )
                if not self._wait(consumer, delay):
                    return False
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            self.metrics.write_seconds.observe(time.monotonic() - started)
            break
        if not self._written_ok:
            log.info("archive writes again", steps=len(steps))
            self._written_ok = True
        if self._assigned:
            self.readiness.set()
        self.metrics.steps_written.inc(new)
        self.metrics.duplicates.inc(len(steps) - new)
        if steps:
            self.metrics.last_step.set(max(step.at for step in steps).timestamp())
        log.debug("batch archived", steps=len(steps), new=new)
        return True

    def _wait(self, consumer: KafkaConsumer, seconds: float) -> bool:
        """Wait while keeping the group: poll with the partitions paused (nothing is taken). False when
        stopping. A rebalance meanwhile is harmless: what is written twice is kept once."""
        assigned = list(consumer.assignment())
        consumer.pause(*assigned)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not self._stopping.is_set():
                consumer.poll(timeout_ms=min(POLL_TIMEOUT_MS, int((deadline - time.monotonic()) * 1000) + 1))
        finally:
            consumer.resume(*[tp for tp in assigned if tp in consumer.assignment()])
        return not self._stopping.is_set()

    def _commit(self, consumer: KafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        try:
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
            self._committed.update(ends)
        except KafkaError as exc:  # a rebalance took the partitions: their new owner re-reads, idempotently
            log.warning("offsets not committed", error=str(exc))

    def _step_over(self, consumer: KafkaConsumer, error: CorruptRecordError) -> None:
        """A record kafka-python cannot decode: skipped like any other unusable record."""
        unreadable = step_over_unreadable(consumer, error)
        self.metrics.skipped.labels(reason=ErrorType.UNREADABLE_RECORD.value).inc()
        self._commit(
            consumer, {TopicPartition(unreadable.topic, unreadable.partition): unreadable.offset + 1}
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Ready once in the group; each batch is committed before the next poll, so a revoke has nothing
    left to commit."""

    def __init__(self, archiver: Archiver) -> None:
        self._archiver = archiver

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._archiver._assigned -= set(revoked)
        for tp in revoked:
            with contextlib.suppress(KeyError):  # another archiver reports this partition's lag now
                self._archiver.metrics.consumer_lag.remove(str(tp.partition))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._archiver._assigned |= set(assigned)
        if self._archiver._written_ok:
            self._archiver.readiness.set()
        log.info("archiver partitions assigned", partitions=sorted(tp.partition for tp in assigned))


def open_archive(settings: Settings) -> Archive:
    """The archive of the settings (GRIDFLOW_ARCHIVE_URL and _PASSWORD), migrated to the newest schema."""
    return Archive.open(settings.archive_url, revealed(settings.archive_password))


async def run_archiver(
    settings: Settings,
    stop: asyncio.Event,
    *,
    archive: Archive | None = None,
    metrics: ArchiverMetrics | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Run the archiver until `stop` is set (`gridflow archiver`): the archive opened and migrated
    (unless given, open), then the events topic consumed into it; the archive is closed at the end.

    On its own it serves its metrics and probes (GRIDFLOW_METRICS_PORT), ready once in its consumer
    group with the database writable; given `metrics` (the dev stack's registry), it serves nothing of
    its own. Raises ArchiveError when the database cannot be opened.
    """
    opened = archive if archive is not None else await asyncio.to_thread(open_archive, settings)
    # Not `readiness or ...`: a Readiness not yet ready is falsy.
    readiness = readiness if readiness is not None else Readiness()
    try:
        if metrics is not None:
            await Archiver(settings, opened, metrics, readiness).run(stop)
            return
        registry = process_registry()
        with serve_metrics(settings, registry, readiness):
            await Archiver(settings, opened, ArchiverMetrics(registry), readiness).run(stop)
    finally:
        opened.close()


__all__ = ["Archiver", "ArchiverMetrics", "open_archive", "read_archivable_step", "run_archiver"]
