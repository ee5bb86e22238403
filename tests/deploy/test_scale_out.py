"""Scale-out on one machine: the stateless processes of the production deployment, shared and replaced.

Three `gridflow bridge` and two `gridflow worker` processes (each its own OS process, as containers or
pods would run them) share one Temporal dev server and one Kafka-API broker (Tansu) through one consumer
group on a 6-partition incidents topic and one task queue. A stream of reports is published; midway one
bridge is stopped (SIGTERM: it drains, commits and leaves the group) and one worker is killed (SIGKILL:
no goodbye), and replacements start. Then:

- every incident was started exactly once (one workflow execution per incident id, none missing, even
  with upstream re-publishing some reports) and was dispatched by the workers that remained;
- nothing went to the dead-letter topic;
- the surviving bridges took over the stopped bridge's partitions (their logs' "partitions assigned"),
  the group's committed offsets reached the end of every partition (consumer lag 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from temporalio.testing import WorkflowEnvironment

from events import contract
from events.cloudevents import encode_structured, make_event
from events.dead_letters import read_dead_letters
from events.kafka import client_config, ensure_topics, make_producer
from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings
from gridflow.domain.incident import Status, workflow_id_for
from tests.conftest import free_port
from tests.events.samples import sample_data

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6
REPORTS = 150
REPUBLISHED = 10  # upstream retries: the same reports again, which must start nothing
PACE_SECONDS = 0.03
BUDGET_SECONDS = 85.0  # the whole scenario, start to last check


@dataclass
class Process:
    """One gridflow process with its log (JSON lines on stderr, kept in a file)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def logged(self, event: str) -> bool:
        return any(record.get("event") == event for record in self.records())

    def owned(self) -> set[int]:
        """The partitions this bridge owns now: its last assignment, unless revoked since."""
        owned: set[int] = set()
        for record in self.records():
            if record.get("event") == "partitions assigned":
                owned = set(record["partitions"])
            elif record.get("event") == "partitions revoked":
                owned = set()
        return owned

    def assignments(self) -> int:
        return sum(record.get("event") == "partitions assigned" for record in self.records())

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit {self.popen.poll()}) ---\n" + "\n".join(text)


class Scenario:
    """The processes of one test, their environment, and a clock for the whole budget."""

    def __init__(self, settings: Settings, temporal_address: str, namespace: str, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.deadline = time.monotonic() + BUDGET_SECONDS
        self.processes: list[Process] = []
        # The processes' payload keys, as in production (they refuse to start without): a client that
        # reads or writes the incidents' payloads needs them too (`data_converter(Keyring.parse(...))`).
        self.keys = "k1:" + generate_key()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("GRIDFLOW_")}
        self.env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "GRIDFLOW_CODEC_KEYS": self.keys,
                "GRIDFLOW_TEMPORAL_ADDRESS": temporal_address,
                "GRIDFLOW_TEMPORAL_NAMESPACE": namespace,
                "GRIDFLOW_TASK_QUEUE": settings.task_queue,
                "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "GRIDFLOW_KAFKA_API_VERSION": "2.5",
                "GRIDFLOW_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
                "GRIDFLOW_INCIDENTS_TOPIC": settings.incidents_topic,
                "GRIDFLOW_EVENTS_TOPIC": settings.events_topic,
                "GRIDFLOW_DLQ_TOPIC": settings.dlq_topic,
                "GRIDFLOW_CONSUMER_GROUP": settings.consumer_group,
                "GRIDFLOW_TOPIC_PARTITIONS": str(PARTITIONS),
                "GRIDFLOW_LOG_FORMAT": "json",
                "GRIDFLOW_LOG_LEVEL": "info",
            }
        )

    def start(self, command: str, name: str) -> Process:
        """`python -m gridflow.app.cli <command>` with its own metrics port (the SDK's off for workers)."""
        env = {**self.env, "GRIDFLOW_METRICS_PORT": str(free_port())}
        if command == "worker":
            env["GRIDFLOW_SDK_METRICS_PORT"] = "0"
        log = self.logs / f"{name}.log"
        with log.open("wb") as output:
            popen = subprocess.Popen(
                [sys.executable, "-m", "gridflow.app.cli", command],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def until(self, what: str, check: Callable[[], bool], within: float | None = None) -> None:
        """Wait until `check()` holds, within `within` seconds and the scenario's budget."""
        limit = min(within if within is not None else self.remaining(), self.remaining())
        end = time.monotonic() + limit
        while not check():
            if time.monotonic() > end:
                pytest.fail(f"timed out ({limit:.0f} s) waiting for {what}\n{self.diagnostics()}")
            await asyncio.sleep(0.2)

    def diagnostics(self) -> str:
        return "\n".join(process.tail() for process in self.processes)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.alive():
                process.popen.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(10)


def settled(bridges: list[Process]) -> bool:
    """Every live bridge owns some partitions, none twice, all of them covered: a stable group."""
    live = [bridge for bridge in bridges if bridge.alive()]
    owned = [bridge.owned() for bridge in live]
    return (
        all(owned)
        and sum(len(partitions) for partitions in owned) == PARTITIONS
        and set().union(*owned) == set(range(PARTITIONS))
    )


def publish(settings: Settings, incident_ids: list[str], halfway: threading.Event) -> None:
    """Publish a reported event per incident, paced, then re-publish the first few (upstream retries)."""
    producer = make_producer(settings)
    try:
        stream = incident_ids + incident_ids[:REPUBLISHED]
        futures = []
        for number, incident_id in enumerate(stream, start=1):
            event = make_event(
                contract.REPORTED, sample_data(contract.REPORTED, incident_id), source="scale-out-test"
            )
            key, value, headers = encode_structured(event)
            futures.append(producer.send(settings.incidents_topic, key=key, value=value, headers=headers))
            if number == len(incident_ids) // 2:
                producer.flush(10)
                halfway.set()
            time.sleep(PACE_SECONDS)
        for future in futures:
            future.get(30)
    finally:
        producer.close(10)


def consumer_lag(settings: Settings) -> int:
    """Messages between the group's committed offsets and the end of the incidents topic."""
    consumer = KafkaConsumer(
        **client_config(settings), group_id=settings.consumer_group, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(settings.incidents_topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(partitions)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in partitions)
    finally:
        consumer.close()


@pytest.mark.timeout(150)
async def test_bridges_and_workers_scale_out_and_take_over_without_losing_or_repeating_incidents(
    dev_server_env: WorkflowEnvironment, kafka_bootstrap: str, tmp_path: Path
) -> None:
    name = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_api_version="2.5",
        kafka_session_timeout_ms=6000,
        incidents_topic=f"scale-{name}.incidents",
        events_topic=f"scale-{name}.incident-events",
        dlq_topic=f"scale-{name}.incidents.dlq",
        consumer_group=f"scale-{name}",
        task_queue=f"scale-{name}",
        topic_partitions=PARTITIONS,
    )
    client = dev_server_env.client
    await asyncio.to_thread(ensure_topics, settings)
    scenario = Scenario(settings, client.service_client.config.target_host, client.namespace, tmp_path)
    incident_ids = [f"inc-scale-{name}-{n:03d}" for n in range(REPORTS)]
    in_queue = f"TaskQueue = '{settings.task_queue}'"
    try:
        workers = [scenario.start("worker", f"worker-{n}") for n in range(2)]
        bridges = [scenario.start("bridge", f"bridge-{n}") for n in range(3)]
        await scenario.until("the workers to start", lambda: all(w.logged("worker started") for w in workers))
        await scenario.until("three bridges to share the partitions", lambda: settled(bridges), within=45)

        halfway = threading.Event()
        publishing = asyncio.create_task(asyncio.to_thread(publish, settings, incident_ids, halfway))
        await scenario.until("half the stream to be published", halfway.is_set, within=30)

        # Midway: one bridge stops cleanly, one worker dies; replacements start.
        stopped, killed = bridges[0], workers[0]
        handed_over = stopped.owned()
        assert handed_over, "the bridge to stop owned no partition"
        stopped.popen.send_signal(signal.SIGTERM)
        killed.popen.send_signal(signal.SIGKILL)
        workers.append(scenario.start("worker", "worker-2"))
        await scenario.until("the stopped bridge to drain and exit", lambda: not stopped.alive(), within=40)
        assert stopped.popen.returncode == 0, scenario.diagnostics()
        assert stopped.logged("bridge stopped")
        bridges.append(scenario.start("bridge", "bridge-3"))
        await publishing

        # The survivors and the replacement share every partition; the stopped bridge's moved on.
        await scenario.until("the new group to settle", lambda: settled(bridges))
        survivors = [bridge for bridge in bridges if bridge.alive()]
        assert [bridge.name for bridge in survivors] == ["bridge-1", "bridge-2", "bridge-3"]
        assert handed_over <= set().union(*(bridge.owned() for bridge in survivors))
        for bridge in survivors[:2]:
            assert bridge.assignments() >= 2, f"{bridge.name} was never rebalanced"

        # Every incident started and dispatched by the workers that remained.
        async def counted(query: str) -> int:
            return (await client.count_workflows(query)).count

        counts: dict[str, int] = {}

        dispatched = f"{in_queue} AND GridflowStatus = '{Status.DISPATCHED.value}'"

        async def count_all() -> None:
            counts["started"] = await counted(in_queue)
            counts["dispatched"] = await counted(dispatched)

        deadline = time.monotonic() + scenario.remaining()
        while True:
            await count_all()
            if counts == {"started": REPORTS, "dispatched": REPORTS} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert counts == {"started": REPORTS, "dispatched": REPORTS}, scenario.diagnostics()

        # Exactly once: one execution per incident, none missing, none extra.
        listed = [execution.id async for execution in client.list_workflows(in_queue)]
        assert len(listed) == REPORTS
        assert sorted(listed) == sorted(workflow_id_for(incident_id) for incident_id in incident_ids)

        # Nothing dead-lettered, and the group consumed and committed everything.
        assert await asyncio.to_thread(lambda: list(read_dead_letters(settings, idle_timeout_s=1.0))) == []
        lag = await asyncio.to_thread(consumer_lag, settings)
        while lag != 0 and scenario.remaining() > 0:
            await asyncio.sleep(0.5)
            lag = await asyncio.to_thread(consumer_lag, settings)
        assert lag == 0, f"consumer lag {lag}\n{scenario.diagnostics()}"
        assert all(process.alive() for process in [*survivors, *workers[1:]]), scenario.diagnostics()
        assert scenario.remaining() > 0
    finally:
        scenario.stop_all()
