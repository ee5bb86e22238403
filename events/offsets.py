"""Offsets and commits: which messages of each partition are finished, and how far it can be committed.

An offset is committed only when every message before it in its partition is finished (acknowledged
by Temporal or written to the dead-letter topic): the commit is the last offset of the finished
prefix + 1, the next one to read. Messages finish out of order (different incidents run concurrently);
commits never skip one that has not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client import Gauge

log = structlog.get_logger(__name__)


class OffsetTracker:
    """Which offsets of each partition are finished, how far each can be committed, and what was.

    Thread-safe: messages finish on the event loop, commits on revoke run on the consumer's thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPartition, dict[int, bool]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._returned: dict[TopicPartition, int] = {}  # handed out, but their commit failed

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
        """For each partition whose finished prefix grew: the next offset to read (last done + 1).

        The prefix is handed out once: call `committed` when the commit succeeded, `not_committed` when
        it failed (it is then handed out again, with whatever finished since).
        """
        result: dict[TopicPartition, int] = {}
        with self._lock:
            for partition, offsets in self._pending.items():
                if partitions is not None and partition not in partitions:
                    continue
                returned = self._returned.pop(partition, None)
                if returned is not None:
                    result[partition] = returned
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

    def not_committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Take back offsets from `committable` whose commit failed (the broker out of reach), so the next
        `committable` hands them out again; those of partitions forgotten meanwhile are dropped."""
        with self._lock:
            for partition, offset in offsets.items():
                if partition in self._pending:
                    self._returned[partition] = max(offset, self._returned.get(partition, offset))

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Note offsets the group has committed."""
        with self._lock:
            self._committed.update(offsets)

    def last_committed(self, partition: TopicPartition) -> int | None:
        """The offset this bridge last committed for a partition, if any."""
        with self._lock:
            return self._committed.get(partition)

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop partitions this bridge no longer owns."""
        with self._lock:
            for partition in partitions:
                self._pending.pop(partition, None)
                self._committed.pop(partition, None)
                self._returned.pop(partition, None)

    def outstanding(self) -> int:
        """Messages taken but not finished."""
        with self._lock:
            return sum(not done for offsets in self._pending.values() for done in offsets.values())


def measure_lag(
    consumer: KafkaConsumer,
    gauge: Gauge,
    committed: Callable[[TopicPartition], int | None],
    *,
    measured: Gauge | None = None,
    timeout_ms: int | None = None,
) -> bool | None:
    """Set `gauge{partition}` to the records between what this consumer committed (`committed`, which
    it knows without asking the broker; its position before the first commit) and the end of each
    partition it owns, and `measured{partition}` to the time of that figure. Run it on the consumer's
    thread; it waits for the broker up to `timeout_ms` (default: the consumer's request timeout).

    Whether the broker answered: None when the consumer owns no partition (nothing was asked). A broker
    out of reach keeps the last figures, and their `measured` times, as they were: stale, and marked so.
    """
    owned = list(consumer.assignment())
    if not owned:
        return None
    try:
        ends = consumer.end_offsets(owned, timeout_ms=timeout_ms)
        now = time.time()
        for tp in owned:
            done = committed(tp)
            if done is None:
                done = consumer.position(tp, timeout_ms=timeout_ms)
            gauge.labels(partition=str(tp.partition)).set(max(ends[tp] - done, 0))
            if measured is not None:
                measured.labels(partition=str(tp.partition)).set(now)
        return True
    except Exception as exc:  # the broker is unreachable (or the partition just left): keep the figures
        log.warning(
            "consumer lag not measured", consumer_group=consumer.config.get("group_id"), error=str(exc)
        )
        return False
