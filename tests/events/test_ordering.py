"""Per-incident order with backpressure: one incident's messages in order, different incidents at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from events.ordering import PerIncidentOrder, Pressure


def step(log: list[str], name: str, release: asyncio.Event | None = None) -> Callable[[], Awaitable[None]]:
    """A message's handling: note its start, wait for `release` if given, note its end."""

    async def handle() -> None:
        log.append(f"{name} started")
        if release is not None:
            await release.wait()
        log.append(f"{name} done")

    return handle


async def test_one_incidents_messages_run_in_order_while_another_incident_runs_at_once() -> None:
    order = PerIncidentOrder(limit=10)
    log: list[str] = []
    slow = asyncio.Event()
    first = order.start(b"inc-a", step(log, "a1", slow))
    second = order.start(b"inc-a", step(log, "a2"))
    other = order.start(b"inc-b", step(log, "b1"))

    await asyncio.wait([other])
    assert log == ["a1 started", "b1 started", "b1 done"]  # a2 waits for a1; b1 does not
    slow.set()
    await asyncio.wait([first, second])
    assert log[3:] == ["a1 done", "a2 started", "a2 done"]
    assert len(order) == 0


async def test_a_later_message_of_an_incident_is_abandoned_with_an_earlier_one() -> None:
    order = PerIncidentOrder(limit=10)
    log: list[str] = []
    first = order.start(b"inc-a", step(log, "a1", asyncio.Event()))
    second = order.start(b"inc-a", step(log, "a2"))
    await asyncio.sleep(0)  # a1 is running

    first.cancel()  # the bridge stops while a1 waits for Temporal: a1 will be redelivered
    await asyncio.wait([second])

    assert second.cancelled()
    assert log == ["a1 started"]  # a2 never overtook it


async def test_stopping_cancels_what_has_not_finished_within_the_grace() -> None:
    order = PerIncidentOrder(limit=10)
    log: list[str] = []
    order.start(b"inc-a", step(log, "a1"))
    stuck = order.start(b"inc-b", step(log, "b1", asyncio.Event()))
    await asyncio.sleep(0)

    assert await order.drain(grace_seconds=0.1) == 1

    assert stuck.cancelled()
    assert log == ["a1 started", "a1 done", "b1 started"]
    assert len(order) == 0


async def test_partitions_pause_at_the_in_flight_limit_and_resume_once_half_has_drained() -> None:
    order = PerIncidentOrder(limit=4)
    releases = [asyncio.Event() for _ in range(4)]
    tasks = [order.start(f"inc-{n}".encode(), step([], str(n), releases[n])) for n in range(4)]

    assert order.room(most=500) == 1  # at the limit, a poll may still return one record
    assert order.pressure() is Pressure.PAUSE
    assert order.pressure() is None  # already paused
    releases[0].set()
    await asyncio.wait([tasks[0]])
    assert order.pressure() is None  # 3 in flight: above half
    releases[1].set()
    await asyncio.wait([tasks[1]])
    assert order.pressure() is Pressure.RESUME
    assert order.room(most=500) == 2
    for release in releases:
        release.set()
    await asyncio.wait(tasks)


async def test_a_rebalance_forgets_the_pause() -> None:
    order = PerIncidentOrder(limit=1)
    release = asyncio.Event()
    task = order.start(None, step([], "x", release))
    assert order.pressure() is Pressure.PAUSE

    order.partitions_reassigned()

    assert order.pressure() is Pressure.PAUSE  # still at the limit, on the new partitions
    release.set()
    await asyncio.wait([task])


async def test_each_incident_counts_its_running_and_queued_messages_until_they_end() -> None:
    order = PerIncidentOrder(limit=10)
    log: list[str] = []
    slow = asyncio.Event()
    flood = [order.start(b"inc-a", step(log, f"a{n}", slow if n == 0 else None)) for n in range(3)]
    other = order.start(b"inc-b", step(log, "b1"))
    keyless = order.start(None, step(log, "no key"))
    assert (order.of(b"inc-a"), order.of(b"inc-b"), order.of(b"inc-c")) == (3, 1, 0)

    await asyncio.wait([other, keyless])
    assert (order.of(b"inc-a"), order.of(b"inc-b")) == (3, 0)
    slow.set()
    await asyncio.wait(flood)
    assert order.of(b"inc-a") == 0 and len(order) == 0
