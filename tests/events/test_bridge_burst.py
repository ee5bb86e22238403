"""A burst far above the steady rate: the bridge holds at its in-flight limit and loses nothing."""

from __future__ import annotations

import asyncio
import uuid

from events import contract
from events.bridge import Bridge
from events.cloudevents import encode_structured
from gridflow.domain.incident import Status
from tests.events.conftest import Pipeline

BURST = 400
LIMIT = 16


async def test_a_burst_is_taken_at_the_in_flight_limit_and_every_incident_starts(pipeline: Pipeline) -> None:
    settings = pipeline.settings.with_overrides(bridge_max_in_flight=LIMIT)
    prefix = f"burst-{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}-{n:04d}" for n in range(BURST)]
    futures = []
    for incident_id in ids:  # the whole burst is in Kafka before the bridge starts
        key, value, headers = encode_structured(pipeline.event(contract.REPORTED, incident_id))
        futures.append(
            pipeline.producer.send(settings.incidents_topic, key=key, value=value, headers=headers)
        )
    await asyncio.to_thread(lambda: [future.get(30) for future in futures])

    bridge = pipeline.start_bridge(Bridge(settings, pipeline.client))
    registry = bridge.metrics.registry
    highest = 0.0
    started = 0
    for _ in range(1200):
        highest = max(highest, registry.get_sample_value("gridflow_bridge_in_flight_messages") or 0)
        started = len(
            [w async for w in pipeline.client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
        )
        if started == BURST:
            break
        await asyncio.sleep(0.05)

    assert started == BURST
    assert highest <= LIMIT, f"{highest} messages in flight with a limit of {LIMIT}"
    last = await pipeline.wait_for(ids[-1], lambda s: s.status is Status.DISPATCHED)
    assert last.level == "grid"
    assert pipeline.dead_letters() == []
