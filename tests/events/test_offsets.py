"""Offsets and commits: a partition commits only its finished prefix, last + 1."""

from __future__ import annotations

from kafka.structs import TopicPartition

from events.offsets import OffsetTracker

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
