"""Offsets and commits: which messages of each partition are finished, and how far it can be committed.

An offset is committed only when every message before it in its partition is finished (acknowledged
by Temporal or written to the dead-letter topic): the commit is the last offset of the finished
prefix + 1, the next one to read. Messages finish out of order (different incidents run concurrently);
commits never skip one that has not.
"""

from __future__ import annotations

import threading
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

        The prefix is handed out once: call `committed` when the commit succeeded.
        """
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

    def outstanding(self) -> int:
        """Messages taken but not finished."""
        with self._lock:
            return sum(not done for offsets in self._pending.values() for done in offsets.values())


def measure_lag(
    consumer: KafkaConsumer, gauge: Gauge, committed: Callable[[TopicPartition], int | None]
) -> None:
    """Set `gauge{partition}` to the records between what this consumer committed (`committed`, which
    it knows without asking the broker; its position before the first commit) and the end of each
    partition it owns. Run it on the consumer's thread; a broker out of reach keeps the last figures."""
    owned = list(consumer.assignment())
    if not owned:
        return
    try:
        ends = consumer.end_offsets(owned)
        for tp in owned:
            done = committed(tp)
            if done is None:
                done = consumer.position(tp)
            gauge.labels(partition=str(tp.partition)).set(max(ends[tp] - done, 0))
    except Exception as exc:  # the broker is unreachable (or the partition just left): keep the figures
        log.warning(
            "consumer lag not measured", consumer_group=consumer.config.get("group_id"), error=str(exc)
        )
