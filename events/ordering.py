"""Per-incident order with backpressure: the messages the bridge is handling, and when to stop taking more.

Messages with the same key (the incident id) run one after another; different incidents run
concurrently, up to the in-flight limit. At the limit the bridge pauses its partitions (the consumer
keeps polling, so the group does not rebalance) and resumes them once half the calls have drained.

One incident's messages can only run one by one, so a flood of them would fill the limit and stop every
other incident with it; `IncidentHolds` caps what one incident may hold, by pausing only the partition
its messages come from (a key always maps to one partition) until it has drained to half the cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from enum import Enum
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)  # a partition (kafka's TopicPartition in the bridge)


class Pressure(Enum):
    """What to do with the partitions now."""

    PAUSE = "pause"  # the in-flight limit is reached: take nothing more
    RESUME = "resume"  # drained to half the limit: take again


class PerIncidentOrder:
    """The messages in flight: one incident's in order, different incidents at once, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._tails: dict[bytes, asyncio.Task[None]] = {}  # each incident's latest message
        self._per_key: dict[bytes, int] = {}  # each incident's messages in flight
        self._paused = False

    def __len__(self) -> int:
        """Messages in flight (running, or waiting for their incident's earlier ones)."""
        return len(self._tasks)

    def of(self, key: bytes) -> int:
        """How many of the limit one incident holds: its running message and those queued behind it.

        One incident's flood fills the limit with messages that can only run one by one, and the pause
        at the limit stops every other incident with it; this count lets the caller pause just the
        flooded incident's partition instead.
        """
        return self._per_key.get(key, 0)

    def room(self, most: int) -> int:
        """How many messages to take now: what the limit leaves room for, at least 1, at most `most`."""
        return max(1, min(most, self._limit - len(self._tasks)))

    def start(self, key: bytes | None, handle: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `handle` once the earlier messages with this key are done (at once without a key)."""
        previous = self._tails.get(key) if key is not None else None
        task = asyncio.create_task(self._after(previous, handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if key is not None:
            self._tails[key] = task
            self._per_key[key] = self._per_key.get(key, 0) + 1
            task.add_done_callback(lambda done: self._forget_tail(key, done))
        return task

    def _forget_tail(self, key: bytes, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:  # no later message of the incident came meanwhile
            del self._tails[key]
        left = self._per_key[key] - 1
        if left:
            self._per_key[key] = left
        else:
            del self._per_key[key]

    @staticmethod
    async def _after(previous: asyncio.Task[None] | None, handle: Callable[[], Awaitable[None]]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled():
                # The incident's earlier message was abandoned (the bridge is stopping) and will be
                # redelivered: this one must not overtake it.
                raise asyncio.CancelledError
        await handle()

    def pressure(self) -> Pressure | None:
        """Whether to pause or resume the partitions now (None: leave them as they are)."""
        busy = len(self._tasks)
        if not self._paused and busy >= self._limit:
            self._paused = True
            return Pressure.PAUSE
        if self._paused and busy <= self._limit // 2:
            self._paused = False
            return Pressure.RESUME
        return None

    @property
    def paused(self) -> bool:
        """Whether the in-flight limit has paused every partition (and not yet resumed them)."""
        return self._paused

    def partitions_reassigned(self) -> None:
        """A rebalance hands out partitions unpaused: nothing is paused any more."""
        self._paused = False

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to `grace_seconds` for the messages in flight, then cancel the rest; how many."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)


class IncidentHolds(Generic[P]):
    """Partitions paused because one of their incidents holds `cap` messages in flight.

    A partition is held while any incident holding it has more than half the cap in flight; the caller
    pauses what `taken` returns and resumes what `released` returns (unless the in-flight limit has
    paused everything: then the limit's own resume lets it go, minus what is still `held`).
    """

    def __init__(self, order: PerIncidentOrder, cap: int) -> None:
        self._order = order
        self._cap = cap
        self._holders: dict[bytes, P] = {}  # each incident at the cap, and the partition it holds

    def taken(self, key: bytes | None, partition: P) -> P | None:
        """After a message of `key` from `partition` is started: the partition to pause now, if any."""
        if key is None or key in self._holders or self._order.of(key) < self._cap:
            return None
        newly = partition not in self.held()
        self._holders[key] = partition
        return partition if newly else None

    def released(self) -> set[P]:
        """The partitions no incident holds any more (each has drained to half the cap): to resume."""
        drained = [key for key in self._holders if self._order.of(key) <= self._cap // 2]
        freed = {self._holders.pop(key) for key in drained}
        return freed - self.held()

    def held(self) -> set[P]:
        """The partitions held now."""
        return set(self._holders.values())

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions revoked in a rebalance: no longer ours to pause or resume."""
        gone = set(partitions)
        for key in [key for key, partition in self._holders.items() if partition in gone]:
            del self._holders[key]
