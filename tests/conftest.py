"""Shared fixtures: one time-skipping Temporal test server per session, a real worker per test."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gridflow.app.binaries import find_binary
from gridflow.app.broker import local_broker
from gridflow.app.settings import Settings
from gridflow.app.temporal import register_search_attributes
from gridflow.domain.incident import Incident, Location, Priority, Reporter


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server: long SLA timers pass in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client, env.client.namespace)
    async with env:
        yield env


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the `temporal` CLI of the servers extra), in memory."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        dev_server_log_level="error",
        ui=False,
    )
    await register_search_attributes(env.client, env.client.namespace)
    async with env:
        yield env


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-API broker (Tansu, in memory) for the session; yields its bootstrap address."""
    with local_broker(free_port()) as bootstrap:
        yield bootstrap


def isolated_settings(kafka_bootstrap: str, **overrides: Any) -> Settings:
    """Settings for one test's own pipeline on the shared broker: its own topics, group and task queue."""
    name = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_api_version="2.5",
        kafka_session_timeout_ms=6000,
        incidents_topic=f"t-{name}.incidents",
        events_topic=f"t-{name}.incident-events",
        dlq_topic=f"t-{name}.incidents.dlq",
        consumer_group=f"g-{name}",
        task_queue=f"q-{name}",
        topic_partitions=3,
    ).with_overrides(**overrides)


def make_incident(
    *,
    priority: Priority = Priority.NORMAL,
    category: str = "street_lamp",
    district: str = "d-huangpu",
    city: str | None = "c-shanghai",
    incident_id: str | None = None,
) -> Incident:
    """A realistic reported incident with a fresh id."""
    return Incident(
        incident_id=incident_id or f"inc-{uuid.uuid4().hex[:12]}",
        category=category,
        title="Street lamp dark at the corner of Nanjing Road",
        description="The lamp has been out for three nights.",
        priority=priority,
        location=Location(
            grid_id="g-nanjing-07",
            street_id="s-nanjing-east",
            district_id=district,
            city_id=city,
            address="Nanjing East Road 100",
        ),
        reported_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        reporter=Reporter(name="Li Wei", phone="+86 138 0000 0000", channel="app"),
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging back as it was after a test that configures it (main() and configure_logging set up
    the whole process): the root's handlers and level, and structlog's configuration."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
