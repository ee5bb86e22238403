"""Faults: the Kafka broker frozen, or cut off, for longer than the consumer group's session timeout.

Each test starts its own Tansu broker (an OS process, so it can be frozen with SIGSTOP, or put behind
`tests.proxy.Proxy` to pull the cable), a `gridflow worker` and a `gridflow bridge` (OS processes, the
helpers of the scale-out test) on the session's Temporal dev server. An at-least-once upstream publishes
reports and acceptances before, during and after the outage: it counts what the broker acknowledged and
what the producer gave up on, and sends that again (the same CloudEvent) until it is acknowledged; it
accepts an incident only once its report was acknowledged. Then:

- every report started exactly one workflow; every acceptance was applied once; nothing dead-lettered;
- every incident's steps reached the events topic as `<incident>:<seq>`, seqs 1..n with no gap, no step
  doubled (a step sent again by a retried publish has the same id and the same content);
- the same bridge process carried on, and its group's committed offsets reached the end of the topic;
- while the broker was gone, the bridge's endpoint said so: `/readyz` 503 and
  `gridflow_bridge_broker_reachable` 0, the lag figures not refreshed (their
  `gridflow_bridge_consumer_lag_measured_timestamp_seconds` stays before the outage), and ready again
  with fresh figures after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from events import contract
from events.cloudevents import encode_structured, make_event
from events.dead_letters import read_dead_letters
from events.kafka import client_config, ensure_topics, make_producer
from events.lifecycle import step_event_type
from gridflow.app.broker import local_broker_process
from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings
from gridflow.domain.incident import workflow_id_for
from gridflow.domain.lifecycle import StepKind
from tests.conftest import free_port, isolated_settings
from tests.deploy.test_scale_out import PARTITIONS, Process, Scenario
from tests.events.samples import sample_data
from tests.faults.test_process_kills import ONCE
from tests.proxy import Proxy

SESSION_TIMEOUT_MS = 6000
#: How long the broker is gone at least: well past the session timeout (the group expires the bridge).
OUTAGE_SECONDS = 3 * SESSION_TIMEOUT_MS / 1000
REPORTS = 60
ACCEPT_LAG = 5  # an incident is accepted a few events after its report was acknowledged
PACE_SECONDS = 0.25  # the stream runs before, through and after the outage
SOURCE = "broker-stall-test"
POLL_SECONDS = 0.5  # how often the test reads the bridge's endpoint


# ---------------------------------------------------------------------- the broker, and its outages


def tansu(
    port: int, advertised: str | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A Tansu broker of this test's own on 127.0.0.1:port (its process, to freeze), until the block ends."""
    return local_broker_process(port, advertised=advertised)


@dataclass
class Outage:
    """How the broker goes away and comes back."""

    name: str
    begin: Callable[[], None]
    end: Callable[[], None]


# ---------------------------------------------------------------------- an at-least-once upstream


@dataclass
class Upstream:
    """Publishes CloudEvents and keeps every one it was not told the broker has: re-sent until it is.

    The producer's callbacks run on its I/O thread; everything they touch is under the lock.
    """

    settings: Settings
    producer: KafkaProducer = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[str] = field(default_factory=set)  # CloudEvent ids the broker acknowledged
    reports_acked: set[str] = field(default_factory=set)  # incident ids whose report was acknowledged
    failed: list[tuple[str, str, Any]] = field(default_factory=list)  # (type, incident id, event)
    sends: int = 0
    offsets: list[tuple[int, int]] = field(default_factory=list)
    give_ups: int = 0  # sends the producer gave up on (each re-sent)
    during_outage: int = 0  # events handed over while the broker was gone
    outage: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.producer = make_producer(self.settings)

    def send(self, event_type: str, incident_id: str, event: Any = None) -> None:
        """Hand one event to the producer (a fresh CloudEvent, or `event` again)."""
        if event is None:
            event = make_event(event_type, sample_data(event_type, incident_id), source=SOURCE)
        key, value, headers = encode_structured(event)
        future = self.producer.send(self.settings.incidents_topic, key=key, value=value, headers=headers)
        with self.lock:
            self.sends += 1
            if self.outage.is_set():
                self.during_outage += 1

        def acked(metadata: Any) -> None:
            with self.lock:
                self.offsets.append((metadata.partition, metadata.offset))
                self.acked.add(event.id)
                if event_type == contract.REPORTED:
                    self.reports_acked.add(incident_id)

        def failed(_: Any) -> None:
            with self.lock:
                self.give_ups += 1
                self.failed.append((event_type, incident_id, event))

        future.add_callback(acked)
        future.add_errback(failed)

    def resend_failed(self) -> None:
        """Send again what the producer gave up on."""
        with self.lock:
            again, self.failed = self.failed, []
        for event_type, incident_id, event in again:
            self.send(event_type, incident_id, event)

    def is_acked(self, incident_id: str) -> bool:
        with self.lock:
            return incident_id in self.reports_acked

    def publish(self, incident_ids: list[str], accepted: set[str], stop: threading.Event) -> None:
        """Report every incident, paced; accept the chosen ones once their report is acknowledged; then
        re-send until the broker has acknowledged everything."""
        waiting: list[str] = []  # incidents to accept, in order
        try:
            for n, incident_id in enumerate(incident_ids):
                self.send(contract.REPORTED, incident_id)
                if n >= ACCEPT_LAG and incident_ids[n - ACCEPT_LAG] in accepted:
                    waiting.append(incident_ids[n - ACCEPT_LAG])
                waiting = self._accept_known(waiting)
                self.resend_failed()
                time.sleep(PACE_SECONDS)
            waiting += [i for i in incident_ids[-ACCEPT_LAG:] if i in accepted]
            while not stop.is_set():
                self.producer.flush(30)
                self.resend_failed()
                waiting = self._accept_known(waiting)
                with self.lock:
                    done = not waiting and not self.failed and len(self.acked) == self.expected(accepted)
                if done:
                    return
                time.sleep(0.2)
        finally:
            self.producer.close(10)

    def expected(self, accepted: set[str]) -> int:
        return REPORTS + len(accepted)

    def _accept_known(self, waiting: list[str]) -> list[str]:
        still = []
        for incident_id in waiting:
            if self.is_acked(incident_id):
                self.send(contract.ACCEPTED, incident_id)
            else:
                still.append(incident_id)
        return still


# ---------------------------------------------------------------------- what operators see


@dataclass
class Probe:
    """One reading of the bridge's endpoint."""

    at: float  # time.monotonic()
    ready: bool | None  # None: the endpoint did not answer
    reachable: float | None
    lag: dict[str, float]
    measured: dict[str, float]  # unix time of each partition's lag figure


def read_endpoint(base: str) -> Probe:
    """`/readyz` and `/metrics` of a process, now."""
    at = time.monotonic()
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
            ready: bool | None = response.status == 200
    except urllib.error.HTTPError as error:
        ready = False if error.code == 503 else None
    except OSError:
        return Probe(at, None, None, {}, {})
    reachable: float | None = None
    lag: dict[str, float] = {}
    measured: dict[str, float] = {}
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return Probe(at, ready, None, {}, {})
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gridflow_bridge_broker_reachable":
                reachable = sample.value
            elif sample.name == "gridflow_bridge_consumer_lag":
                lag[sample.labels["partition"]] = sample.value
            elif sample.name == "gridflow_bridge_consumer_lag_measured_timestamp_seconds":
                measured[sample.labels["partition"]] = sample.value
    return Probe(at, ready, reachable, lag, measured)


def read_all(settings: Settings, topic: str, idle_s: float = 3.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of a topic, (offset, value) by partition, read from the beginning until none has
    come for `idle_s`. Not bounded by the broker's end offsets: after a freeze, Tansu was seen to
    report ends below records it had acknowledged and served (see the test's figures)."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            for tp, records in consumer.poll(timeout_ms=200).items():
                found[tp.partition] += [(record.offset, record.value) for record in records]
                last = time.monotonic()
        return found
    finally:
        consumer.close()


def group_offsets(settings: Settings) -> tuple[dict[int, int], dict[int, int | None]]:
    """The incidents topic's end offsets as the broker reports them, and the group's committed ones."""
    consumer = KafkaConsumer(
        **client_config(settings), group_id=settings.consumer_group, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(settings.incidents_topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(partitions)
        return (
            {tp.partition: ends[tp] for tp in partitions},
            {tp.partition: consumer.committed(tp) for tp in partitions},
        )
    finally:
        consumer.close()


def metrics_base(process: Process) -> str | None:
    """The process's endpoint (scheme, host and port), from its "metrics served" log line."""
    for record in process.records():
        if record.get("event") == "metrics served":
            return str(record["url"]).removesuffix("/metrics")
    return None


async def watch(base: str, readings: list[Probe], stop: asyncio.Event) -> None:
    """Read the endpoint every POLL_SECONDS until `stop`."""
    while not stop.is_set():
        readings.append(await asyncio.to_thread(read_endpoint, base))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_SECONDS)


def owns_all(bridge: Process) -> bool:
    return bridge.owned() == set(range(PARTITIONS))


# ---------------------------------------------------------------------- the scenario


async def ride_out(
    dev_server_env: WorkflowEnvironment,
    tmp_path: Path,
    bootstrap: str,
    make_outage: Callable[[], Outage],
) -> None:
    """The whole scenario for one kind of outage; see the module docstring."""
    settings = isolated_settings(
        bootstrap, topic_partitions=PARTITIONS, kafka_session_timeout_ms=SESSION_TIMEOUT_MS
    )
    client = dev_server_env.client
    await asyncio.to_thread(ensure_topics, settings)
    scenario = Scenario(settings, client.service_client.config.target_host, client.namespace, tmp_path)
    scenario.env["GRIDFLOW_CODEC_KEYS"] = "k1:" + generate_key()
    scenario.env["GRIDFLOW_LOG_LEVEL"] = "debug"  # the bridge logs every event applied
    queue = settings.task_queue
    in_queue = f"TaskQueue = '{queue}'"
    incident_ids = [f"inc-{queue}-{n:03d}" for n in range(REPORTS)]
    accepted = set(incident_ids[::2])
    outage = make_outage()
    upstream = Upstream(settings)
    readings: list[Probe] = []
    watching = asyncio.Event()
    stop_publishing = threading.Event()
    try:
        worker = scenario.start("worker", "worker")
        bridge = scenario.start("bridge", "bridge")
        await scenario.until("the worker to start", lambda: worker.logged("worker started"), within=30)
        await scenario.until("the bridge to own every partition", lambda: owns_all(bridge), within=30)
        await scenario.until("the bridge's endpoint", lambda: metrics_base(bridge) is not None, within=10)
        base = metrics_base(bridge)
        assert base is not None
        watcher = asyncio.create_task(watch(base, readings, watching))
        await scenario.until(
            "the bridge to be ready and its lag measured",
            lambda: bool(readings) and bool(readings[-1].ready) and bool(readings[-1].measured),
            within=20,
        )

        publishing = asyncio.create_task(
            asyncio.to_thread(upstream.publish, incident_ids, accepted, stop_publishing)
        )
        await scenario.until("a quarter of the reports to be sent", lambda: upstream.sends >= REPORTS // 4)

        # The outage: it lasts OUTAGE_SECONDS, and in any case until the bridge has said it is not ready.
        outage.begin()
        upstream.outage.set()
        began, began_unix = time.monotonic(), time.time()

        def noticed() -> Probe | None:
            return next((r for r in readings if r.at > began and r.ready is False), None)

        await scenario.until(
            "the bridge to say it is not ready", lambda: noticed() is not None, within=OUTAGE_SECONDS + 30
        )
        await asyncio.sleep(max(OUTAGE_SECONDS - (time.monotonic() - began), 0))
        outage.end()
        upstream.outage.clear()
        ended = time.monotonic()
        during = [r for r in readings if began < r.at < ended]

        def recovered() -> Probe | None:
            return next((r for r in readings if r.at > ended and r.ready), None)

        await scenario.until("the bridge to be ready again", lambda: recovered() is not None, within=60)
        await scenario.until(
            "fresh lag figures",
            lambda: (
                bool(readings[-1].measured)
                and min(readings[-1].measured.values()) > began_unix + OUTAGE_SECONDS
            ),
            within=30,
        )
        await publishing

        # Everything applied and committed.
        async def counted(query: str) -> int:
            return (await client.count_workflows(query)).count

        # What is in the topic: every record acknowledged to the upstream, and no other.
        incidents = await asyncio.to_thread(read_all, settings, settings.incidents_topic)
        in_topic = {(p, offset) for p, records in incidents.items() for offset, _ in records}
        assert in_topic == set(upstream.offsets)
        last_read = {p: max((o for o, _ in records), default=-1) + 1 for p, records in incidents.items()}
        reported_ends: dict[int, int] = {}

        async def all_in() -> bool:
            nonlocal reported_ends
            reported_ends, committed = await asyncio.to_thread(group_offsets, settings)
            return await counted(in_queue) >= REPORTS and committed == last_read

        while not await all_in():
            if scenario.remaining() <= 0:
                found = await asyncio.to_thread(group_offsets, settings)
                pytest.fail(
                    f"timed out waiting for every event to be applied and committed: started "
                    f"{await counted(in_queue)}, in the topic {last_read}, "
                    f"broker's ends and committed {found}"
                )
            await asyncio.sleep(0.5)

        listed = [execution.id async for execution in client.list_workflows(in_queue)]
        assert len(listed) == len(set(listed)), sorted(i for i, n in Counter(listed).items() if n > 1)
        assert sorted(listed) == sorted(workflow_id_for(i) for i in incident_ids)
        letters = await asyncio.to_thread(lambda: list(read_dead_letters(settings, idle_timeout_s=1.0)))
        assert [(letter.error_type, letter.error_message) for letter in letters] == []

        # Every step on the events topic once (copies of one step identical), seqs 1..n, none doubled;
        # each acceptance applied once. The last steps may still be on their way: wait for them.
        accepted_type = step_event_type(StepKind.ACCEPTED)
        deadline = time.monotonic() + min(30.0, scenario.remaining())
        while True:
            events = await asyncio.to_thread(read_all, settings, settings.events_topic, 2.0)
            envelopes = [json.loads(value) for records in events.values() for _, value in records]
            acceptances = Counter(e["id"].rsplit(":", 1)[0] for e in envelopes if e["type"] == accepted_type)
            if set(acceptances) >= accepted or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        copies: dict[str, list[dict[str, Any]]] = {}
        for envelope in envelopes:
            copies.setdefault(envelope["id"], []).append(envelope)
        sent_twice = {i: found for i, found in copies.items() if len(found) > 1}
        assert all(all(f == found[0] for f in found) for found in sent_twice.values()), sent_twice
        seqs: dict[str, list[int]] = {}
        kinds: dict[str, Counter[str]] = {}
        for event_id, (envelope, *_) in copies.items():
            incident_id, seq = event_id.rsplit(":", 1)
            seqs.setdefault(incident_id, []).append(int(seq))
            kinds.setdefault(incident_id, Counter())[envelope["type"]] += 1
        assert set(seqs) == set(incident_ids)
        gaps = {i: sorted(s) for i, s in seqs.items() if sorted(s) != list(range(1, len(s) + 1))}
        assert gaps == {}
        once = {step_event_type(kind) for kind in ONCE}
        doubled = {i: [t for t, n in c.items() if t in once and n > 1] for i, c in kinds.items()}
        assert {i: d for i, d in doubled.items() if d} == {}
        assert sorted(i for i in incident_ids if kinds[i][accepted_type] != (i in accepted)) == []

        # The same bridge carried on from its committed offsets (consumer lag 0 above), and said what
        # it knew while the broker was gone.
        assert bridge.alive() and worker.alive(), scenario.diagnostics()
        watching.set()
        await watcher
        first_down, first_up = noticed(), recovered()
        assert first_down is not None and first_up is not None
        down = [r for r in during if r.ready is False]
        assert all(r.reachable == 0 for r in down), [(r.ready, r.reachable) for r in down]
        stale = [r.measured for r in down if any(t > began_unix + 1 for t in r.measured.values())]
        assert stale == [], "lag figures claimed fresh while the broker was gone"
        assert all(r.ready is not None for r in readings), "the endpoint stopped answering"
        final = readings[-1]
        assert final.ready and final.reachable == 1 and final.lag and set(final.lag.values()) == {0}
        outcomes = Counter(
            (record["type"], record["outcome"])
            for record in bridge.records()
            if record.get("event") == "event applied"
        )
        print(
            f"\n[broker {outage.name}] outage {ended - began:.1f} s (session timeout "
            f"{SESSION_TIMEOUT_MS / 1000:.0f} s); not ready {first_down.at - began:.1f} s after it began, "
            f"ready again {first_up.at - ended:.1f} s after it ended; events handed over during it "
            f"{upstream.during_outage}; sent {upstream.sends} for {upstream.expected(accepted)} events "
            f"({upstream.give_ups} given up by the producer and re-sent); bridge assignments "
            f"{bridge.assignments()}; bridge outcomes {dict(outcomes)}; steps {len(copies)}, "
            f"sent twice {len(sent_twice)}; dead letters {len(letters)}; incidents topic: records "
            f"{last_read}, the broker's end offsets {reported_ends}"
        )
    except BaseException:
        print(scenario.diagnostics())
        raise
    finally:
        stop_publishing.set()
        watching.set()
        scenario.stop_all()


@pytest.mark.timeout(150)
async def test_a_broker_frozen_past_the_session_timeout_loses_nothing_and_doubles_nothing(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = free_port()
    with tansu(port) as broker:

        def freeze() -> Outage:
            return Outage(
                "frozen",
                begin=lambda: os.kill(broker.pid, signal.SIGSTOP),
                end=lambda: os.kill(broker.pid, signal.SIGCONT),
            )

        await ride_out(dev_server_env, tmp_path, f"127.0.0.1:{port}", freeze)


@pytest.mark.timeout(150)
async def test_a_cut_connection_to_the_broker_loses_nothing_and_doubles_nothing(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = free_port()
    with Proxy(f"127.0.0.1:{port}") as proxy, tansu(port, advertised=proxy.address):

        def cable() -> Outage:
            return Outage("cut off", begin=proxy.cut, end=proxy.restore)

        await ride_out(dev_server_env, tmp_path, proxy.address, cable)
