"""Per-incident order with backpressure: one incident's messages in order, different incidents at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from pydantic import ValidationError

from events.ordering import IncidentHolds, PerIncidentOrder, Pressure
from events.settings import BridgeSettings


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


async def test_an_incident_at_the_cap_holds_its_partition_until_it_has_drained_to_half() -> None:
    order = PerIncidentOrder(limit=100)
    holds: IncidentHolds[str] = IncidentHolds(order, cap=4)
    release = [asyncio.Event() for _ in range(4)]
    flood = []
    for n in range(4):
        flood.append(order.start(b"inc-a", step([], f"a{n}", release[n])))
        paused = holds.taken(b"inc-a", "p0")
        assert paused == ("p0" if n == 3 else None)  # the fourth reaches the cap: pause p0, once
    assert holds.taken(b"inc-b", "p1") is None  # taken before its message starts: holds nothing
    order.start(b"inc-b", step([], "b1"))
    assert holds.taken(b"inc-b", "p1") is None
    extra = order.start(b"inc-a", step([], "a4"))  # fetched in the same poll: taken, p0 already held
    assert holds.taken(b"inc-a", "p0") is None
    assert holds.held() == {"p0"}

    release[0].set()
    release[1].set()
    await asyncio.wait(flood[:2])
    assert holds.released() == set()  # 3 left: above half the cap
    release[2].set()
    await asyncio.wait(flood[2:3])
    assert holds.released() == {"p0"}  # 2 left: half the cap, resume p0
    assert holds.held() == set() and holds.released() == set()
    release[3].set()
    await asyncio.wait([*flood, extra])


async def test_a_partition_two_incidents_hold_is_released_when_both_have_drained() -> None:
    order = PerIncidentOrder(limit=100)
    holds: IncidentHolds[str] = IncidentHolds(order, cap=2)
    gates = {key: asyncio.Event() for key in (b"inc-a", b"inc-b")}
    tasks = {key: [order.start(key, step([], "x", gates[key])) for _ in range(2)] for key in gates}
    assert holds.taken(b"inc-a", "p0") == "p0"
    assert holds.taken(b"inc-b", "p0") is None  # the same partition, held already

    gates[b"inc-a"].set()
    await asyncio.wait(tasks[b"inc-a"])
    assert holds.released() == set()  # inc-b still holds p0
    assert holds.held() == {"p0"}
    gates[b"inc-b"].set()
    await asyncio.wait(tasks[b"inc-b"])
    assert holds.released() == {"p0"}


async def test_a_rebalance_forgets_the_holds_on_revoked_partitions_only() -> None:
    order = PerIncidentOrder(limit=100)
    holds: IncidentHolds[str] = IncidentHolds(order, cap=1)
    gate = asyncio.Event()
    tasks = [order.start(key, step([], "x", gate)) for key in (b"inc-a", b"inc-b")]
    assert holds.taken(b"inc-a", "p0") == "p0"
    assert holds.taken(b"inc-b", "p1") == "p1"

    holds.forget(["p0"])

    assert holds.held() == {"p1"}
    gate.set()
    await asyncio.wait(tasks)
    assert holds.released() == {"p1"}  # p0 is no longer ours to resume
    again = order.start(b"inc-a", step([], "again", asyncio.Event()))
    assert holds.taken(b"inc-a", "p0") == "p0"  # reassigned and at the cap again: held again
    again.cancel()
    await asyncio.wait([again])


def test_the_per_incident_cap_is_a_quarter_of_the_in_flight_limit_unless_set() -> None:
    assert BridgeSettings().bridge_per_incident_cap == 50  # of 200
    assert BridgeSettings(bridge_max_in_flight=16).bridge_per_incident_cap == 4
    assert BridgeSettings(bridge_max_in_flight=4).bridge_per_incident_cap == 2  # half of it leaves one
    assert BridgeSettings(bridge_max_per_incident=80).bridge_per_incident_cap == 80
    assert BridgeSettings(bridge_max_in_flight=30, bridge_max_per_incident=80).bridge_per_incident_cap == 30
    with pytest.raises(ValidationError):
        BridgeSettings(bridge_max_per_incident=0)
