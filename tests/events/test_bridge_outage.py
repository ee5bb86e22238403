"""The bridge rides out a Temporal outage: it waits, loses nothing and dead-letters nothing."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from events import contract
from events.bridge import Bridge
from events.kafka import ensure_topics, make_producer
from gridflow.app.binaries import find_binary
from gridflow.app.compose import build_worker
from gridflow.app.temporal import register_search_attributes
from gridflow.domain.incident import Status
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import free_port, isolated_settings
from tests.events.conftest import Pipeline


class TemporalServer:
    """A dev server persisting to SQLite that a test can stop and start again on the same port."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self._db = state_dir / "temporal.db"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Popen returns at once; the server runs on beside the test.
        self._process = subprocess.Popen(  # noqa: ASYNC220
            [
                find_binary("temporal"),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--headless",
                "--db-filename",
                str(self._db),
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                await Client.connect(self.address)
                return
            except RuntimeError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the Temporal dev server did not come up")

    def stop(self) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(30)


@pytest.fixture
async def temporal(tmp_path: Path) -> AsyncIterator[TemporalServer]:
    server = TemporalServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_events_arriving_while_temporal_is_down_are_applied_once_it_is_back(
    kafka_bootstrap: str, temporal: TemporalServer
) -> None:
    name = uuid.uuid4().hex[:8]
    settings = isolated_settings(kafka_bootstrap, temporal_address=temporal.address)
    client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
    await register_search_attributes(client, "default")
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    pipeline = Pipeline(settings, client, MemorySink(), producer)
    before = [f"inc-{name}-a{i}" for i in range(5)]
    during = [f"inc-{name}-b{i}" for i in range(15)]

    async with build_worker(client, settings.task_queue, RulesSource(), [pipeline.sink]):
        bridge = pipeline.start_bridge(Bridge(settings, client))
        for incident_id in before:
            pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
        for incident_id in before:
            await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)

        temporal.stop()
        for incident_id in during:
            pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
        for incident_id in before:
            pipeline.publish(pipeline.event(contract.ACCEPTED, incident_id))
        await asyncio.sleep(5)  # the bridge keeps retrying, the worker keeps polling
        waiting = bridge.metrics.registry.get_sample_value("gridflow_bridge_in_flight_messages") or 0
        assert waiting > 0, "the bridge should be holding the events it could not yet apply"
        await temporal.start()

        for incident_id in during:
            await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED, within=60)
        for incident_id in before:
            await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED, within=60)
        await pipeline.stop_bridges()

    assert pipeline.dead_letters() == []
    started = [w.id async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}'")]
    assert sorted(started) == sorted(f"incident-{i}" for i in before + during)
    producer.close(5)


async def test_a_bridge_started_while_temporal_is_down_holds_its_events_until_it_is_up(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Its lazy client has never connected: the SDK says so with a RuntimeError, not an RPCError, and
    # that is as transient as UNAVAILABLE (the chaos soak lost events to it as internal errors).
    temporal = TemporalServer(tmp_path)
    name = uuid.uuid4().hex[:8]
    settings = isolated_settings(kafka_bootstrap, temporal_address=temporal.address)
    lazy = await Client.connect(temporal.address, data_converter=pydantic_data_converter, lazy=True)
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    pipeline = Pipeline(settings, lazy, MemorySink(), producer)
    incidents = [f"inc-{name}-{i}" for i in range(5)]
    bridge = pipeline.start_bridge(Bridge(settings, lazy))
    for incident_id in incidents:
        pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
    registry = bridge.metrics.registry
    for _ in range(300):
        if (registry.get_sample_value("gridflow_bridge_temporal_retries_total") or 0) >= 2:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the bridge never retried: did it take the events?")
    try:
        await temporal.start()
        client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
        await register_search_attributes(client, "default")
        async with build_worker(client, settings.task_queue, RulesSource(), [pipeline.sink]):
            for incident_id in incidents:
                await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED, within=60)
            await pipeline.stop_bridges()
    finally:
        temporal.stop()
    assert pipeline.dead_letters() == []
    producer.close(5)
