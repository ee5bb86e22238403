"""Offsets and commits: a partition commits only its finished prefix, last + 1."""

from __future__ import annotations

import time
from typing import Any

from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from events.offsets import OffsetTracker, measure_lag

P0 = TopicPartition("gridflow.incidents", 0)
P1 = TopicPartition("gridflow.incidents", 1)


def tracker_with(partition: TopicPartition, offsets: range) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.add(partition, offset)
    return tracker


def test_a_partition_commits_up_to_its_first_unfinished_message_as_last_done_plus_one() -> None:
    tracker = tracker_with(P0, range(10, 14))
    tracker.finish(P0, 10)
    tracker.finish(P0, 12)  # finished out of order: waits for 11

    assert tracker.committable() == {P0: 11}
    tracker.finish(P0, 11)
    assert tracker.committable() == {P0: 13}
    assert tracker.committable() == {}  # handed out once
    assert tracker.outstanding() == 1


def test_partitions_commit_independently_and_only_those_asked_for() -> None:
    tracker = tracker_with(P0, range(3))
    for offset in range(5, 7):
        tracker.add(P1, offset)
    tracker.finish(P0, 0)
    tracker.finish(P1, 5)
    tracker.finish(P1, 6)

    assert tracker.committable([P1]) == {P1: 7}
    assert tracker.committable() == {P0: 1}


def test_a_revoked_partition_is_forgotten_with_what_was_committed() -> None:
    tracker = tracker_with(P0, range(2))
    tracker.finish(P0, 0)
    tracker.committed(tracker.committable())
    assert tracker.last_committed(P0) == 1

    tracker.forget([P0])

    assert tracker.last_committed(P0) is None
    assert tracker.outstanding() == 0
    tracker.finish(P0, 1)  # a message of a partition no longer owned finishes: nothing to commit
    assert tracker.committable() == {}


def test_offsets_whose_commit_failed_are_handed_out_again_with_what_finished_since() -> None:
    tracker = tracker_with(P0, range(4))
    tracker.finish(P0, 0)
    failed = tracker.committable()
    assert failed == {P0: 1}
    tracker.not_committed(failed)  # the broker was out of reach

    assert tracker.committable() == {P0: 1}  # again, though nothing more finished
    tracker.not_committed({P0: 1})
    tracker.finish(P0, 1)
    tracker.finish(P0, 2)
    assert tracker.committable() == {P0: 3}  # the later prefix covers the failed one
    assert tracker.committable() == {}


def test_a_failed_commit_of_a_partition_revoked_since_is_dropped() -> None:
    tracker = tracker_with(P0, range(2))
    tracker.finish(P0, 0)
    failed = tracker.committable()
    tracker.forget([P0])
    tracker.not_committed(failed)

    assert tracker.committable() == {}


class _Unreachable:
    """A consumer owning one partition whose broker does not answer (only what measure_lag calls)."""

    config = {"group_id": "g"}

    def assignment(self) -> set[TopicPartition]:
        return {P0}

    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int | None = None) -> dict[Any, int]:
        raise KafkaTimeoutError("Failed to get offsets by timestamps in 2000 ms")


class _Answering(_Unreachable):
    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int | None = None) -> dict[Any, int]:
        return {P0: 12}


def test_lag_figures_keep_the_time_they_were_measured_while_the_broker_does_not_answer() -> None:
    registry = CollectorRegistry()
    lag = Gauge("lag", "", ["partition"], registry=registry)
    measured = Gauge("measured", "", ["partition"], registry=registry)

    before = time.time()
    assert measure_lag(_Answering(), lag, lambda _: 10, measured=measured) is True
    at = registry.get_sample_value("measured", {"partition": "0"})
    assert registry.get_sample_value("lag", {"partition": "0"}) == 2
    assert at is not None and at >= before

    assert measure_lag(_Unreachable(), lag, lambda _: 12, measured=measured) is False
    assert registry.get_sample_value("lag", {"partition": "0"}) == 2  # the last figure, not a made-up 0
    assert registry.get_sample_value("measured", {"partition": "0"}) == at  # and when it was measured
