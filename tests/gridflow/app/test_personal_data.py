"""Personal data, looked for the way logs are: a real worker and bridge (`run_worker`, `run_bridge`) on
a real Temporal dev server and Tansu broker take one incident from report to close, with a reporter's
name, phone and address and every kind of note people write (a handler's name, a progress note, a
resolution, a resident's comment). Then every byte gridflow put out is searched for those words: every
record (key, value, headers) of the events topic and of the dead-letter topic, every log line (JSON, at
debug), and every sample, label and help text of the worker's, the SDK's and the bridge's metrics
endpoints. The incidents topic is the upstream apps' own data and is not searched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from temporalio.testing import WorkflowEnvironment

from activities.kafka_sink import KafkaStepSink
from activities.sinks import LogSink, StepSink
from events import contract
from events.cloudevents import encode_structured, load_json, make_event
from events.kafka import client_config, ensure_topics, make_producer
from gridflow.app import compose
from gridflow.app.codec import generate_key
from gridflow.app.compose import run_bridge, run_worker
from gridflow.app.settings import Settings
from tests.conftest import free_port, isolated_settings
from tests.events.samples import reported_data, sample_data
from tests.gridflow.app.test_logs import captured_logs as captured_logs  # the fixture

# The report's personal data: in the workflow's input only (encrypted in Temporal), never published.
NAME, PHONE, ADDRESS = "Zhao Lanying", "13987654321", "88 Wulumuqi Road"
# What people write with the steps: each becomes a step's `note`.
HANDLER = "handler Qian Wei"
PROGRESS = "progress note Sun Meiling"
RESOLUTION = "resolution Zhou Jianguo"
COMMENT = "comment Wu Xiaoyan 13512340000"
NOTES = (HANDLER, PROGRESS, RESOLUTION, COMMENT)
# A command the incident refuses: its message goes to the dead-letter topic unchanged, words and all
# (it is the upstream's own message, kept so it can be replayed), but into no header, log or metric.
REFUSED = "refused resolution Ma Lihua"
PHRASES = (NAME, PHONE, ADDRESS, *NOTES, REFUSED)

WAIT_SECONDS = 90.0
IDLE_SECONDS = 3.0


@dataclass(frozen=True)
class Record:
    """One record of a topic, as a consumer gets it."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    def everything(self) -> bytes:
        """Every byte of the record: key, value, header names and values."""
        parts = [self.key or b"", self.value or b""]
        for name, value in self.headers:
            parts += [name.encode("utf-8"), value or b""]
        return b"\n".join(parts)


@dataclass(frozen=True)
class Outcome:
    """What one run put out."""

    events: list[Record]
    dead_letters: list[Record]
    logs: str
    metrics: dict[str, str]  # endpoint -> its exposition text


def every_record(settings: Settings, topic: str) -> list[Record]:
    """Every record of a topic now, read until it has been quiet for a while (Tansu's end offsets
    name the last batch's first offset, so they cannot say when everything has been read)."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[Record] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < IDLE_SECONDS:
            for batch in consumer.poll(timeout_ms=200).values():
                quiet_since = time.monotonic()
                records += [Record(r.key, r.value, list(r.headers or [])) for r in batch]
        return records
    finally:
        consumer.close()


def kinds_of(records: list[Record], incident_id: str) -> set[str]:
    """The step kinds of an incident's lifecycle events among the records."""
    kinds = set()
    for record in records:
        if record.key == incident_id.encode() and record.value:
            envelope = load_json(record.value)
            assert isinstance(envelope, dict)
            kinds.add(str(envelope["data"]["kind"]))
    return kinds


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except (urllib.error.URLError, ConnectionError) as exc:
        return getattr(exc, "code", 0) or 0, ""


async def poll(what: str, check_in_thread: object, within: float = WAIT_SECONDS) -> None:
    """Poll a blocking check (run in a thread) until it holds; fail after `within` seconds."""
    assert callable(check_in_thread)
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check_in_thread):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def running(worker: Settings, bridge: Settings) -> AsyncIterator[None]:
    """The production worker and bridge, in this process, until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(worker, stop)), asyncio.create_task(run_bridge(bridge, stop))]
    try:
        for settings in (worker, bridge):

            def ready(port: int = settings.metrics_port) -> bool:
                if any(task.done() for task in tasks):
                    return True  # it died: awaited below, so its error is the test's
                return scrape(port, "/readyz")[0] == 200

            await poll(f"the process on port {settings.metrics_port} to be ready", ready)
            for task in tasks:
                if task.done():
                    await task
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def settings_for(kafka_bootstrap: str, env: WorkflowEnvironment, **overrides: object) -> Settings:
    """A test's own topics, group and task queue, codec keys, and free ports for every endpoint."""
    return isolated_settings(
        kafka_bootstrap,
        temporal_address=env.client.service_client.config.target_host,
        temporal_namespace=env.client.namespace,
        codec_keys="k1:" + generate_key(),
        metrics_port=free_port(),
        sdk_metrics_port=free_port(),
        **overrides,
    )


def publish(producer: KafkaProducer, topic: str, event_type: str, data: dict[str, object]) -> None:
    key, value, headers = encode_structured(make_event(event_type, data, source="tests"))
    producer.send(topic, key=key, value=value, headers=headers).get(10)


async def one_incident_with_every_kind_of_note(
    settings: Settings, captured: io.StringIO, incident_id: str
) -> Outcome:
    """Run the worker and the bridge through one incident, from report to close; everything put out."""
    bridge = settings.with_overrides(metrics_port=free_port())
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    report = reported_data(incident_id)
    report["reporter"] = {"name": NAME, "phone": PHONE, "channel": "hotline"}
    report["location"] = {**report["location"], "address": ADDRESS}
    report["description"] = f"{NAME} says the lamp outside {ADDRESS} is dark."

    def lifecycle(event_type: str, **fields: object) -> dict[str, object]:
        return {**sample_data(event_type, incident_id), **fields}

    topic = settings.incidents_topic
    try:
        async with running(settings, bridge):
            await asyncio.to_thread(publish, producer, topic, contract.REPORTED, report)
            # Resolving what nobody accepted is refused: a dead letter.
            refused = lifecycle(contract.RESOLVED, resolution=REFUSED)
            await asyncio.to_thread(publish, producer, topic, contract.RESOLVED, refused)
            for event_type, fields in [
                (contract.ACCEPTED, {"handler": HANDLER}),
                (contract.PROGRESS, {"note": PROGRESS}),
                (contract.RESOLVED, {"resolution": RESOLUTION}),
                (contract.FEEDBACK, {"rating": "satisfied", "comment": COMMENT}),
            ]:
                await asyncio.to_thread(publish, producer, topic, event_type, lifecycle(event_type, **fields))
            await poll(
                "the incident to close",
                lambda: "closed" in kinds_of(every_record(settings, settings.events_topic), incident_id),
            )
            await poll("the dead letter", lambda: len(every_record(settings, settings.dlq_topic)) >= 1)
            metrics = {}
            for name, port in [
                ("worker", settings.metrics_port),
                ("worker's Temporal SDK", settings.sdk_metrics_port),
                ("bridge", bridge.metrics_port),
            ]:
                status, text = await asyncio.to_thread(scrape, port)
                assert status == 200, name
                metrics[name] = text
    finally:
        await asyncio.to_thread(producer.close, 5)
    return Outcome(
        events=await asyncio.to_thread(every_record, settings, settings.events_topic),
        dead_letters=await asyncio.to_thread(every_record, settings, settings.dlq_topic),
        logs=captured.getvalue(),
        metrics=metrics,
    )


def found(phrases: tuple[str, ...], text: str | bytes) -> list[str]:
    """The phrases that occur in the text."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return [phrase for phrase in phrases if phrase.encode("utf-8") in data]


def assert_the_run_was_seen(outcome: Outcome, incident_id: str) -> None:
    """What was searched holds what the run did: a search of nothing would find nothing."""
    assert kinds_of(outcome.events, incident_id) >= {
        "reported",
        "dispatched",
        "accepted",
        "progress",
        "resolved",
        "feedback",
        "closed",
    }
    assert len(outcome.dead_letters) == 1 and outcome.dead_letters[0].key == incident_id.encode()
    assert f'"incident_id": "{incident_id}"' in outcome.logs
    assert '"event": "incident accepted"' in outcome.logs
    assert "gridflow_incidents_received_total{" in outcome.metrics["worker"]
    assert "gridflow_bridge" in outcome.metrics["bridge"]
    assert "temporal_" in outcome.metrics["worker's Temporal SDK"]


def assert_never_in_logs_metrics_or_dead_letter_headers(outcome: Outcome) -> None:
    assert found(PHRASES, outcome.logs) == [], [
        line for line in outcome.logs.splitlines() if found(PHRASES, line)
    ][:3]
    for name, text in outcome.metrics.items():
        assert found(PHRASES, text) == [], name
    [letter] = outcome.dead_letters
    # The refused message itself, unchanged; the reason in its headers quotes nothing of it.
    assert found(PHRASES, letter.value or b"") == [REFUSED]
    assert found(PHRASES, Record(letter.key, None, letter.headers).everything()) == []


async def test_no_resident_or_handler_words_leave_gridflow_by_default(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment, captured_logs: io.StringIO
) -> None:
    settings = settings_for(kafka_bootstrap, dev_server_env)
    assert settings.events_include_notes is False
    incident_id = f"inc-pii-notes-{uuid.uuid4().hex[:8]}"
    outcome = await one_incident_with_every_kind_of_note(settings, captured_logs, incident_id)

    assert_the_run_was_seen(outcome, incident_id)
    assert [found(PHRASES, record.everything()) for record in outcome.events] == [[]] * len(outcome.events)
    has_note = {}
    for record in outcome.events:
        assert record.value is not None
        data = load_json(record.value)["data"]  # type: ignore[index]
        assert data["note"] is None
        has_note[data["kind"]] = data["has_note"]
    assert has_note == {
        "reported": False,
        "dispatched": False,
        "accepted": True,
        "progress": True,
        "resolved": True,
        "feedback": True,
        "closed": False,
    }
    assert_never_in_logs_metrics_or_dead_letter_headers(outcome)


@pytest.fixture
def step_sinks_with_notes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The composition root's sinks, handing the Kafka sink GRIDFLOW_EVENTS_INCLUDE_NOTES.

    gridflow.app.compose.step_sinks does not pass the setting yet; this is the change it needs (drop this
    fixture once it has it).
    """

    def step_sinks(settings: Settings, producer: KafkaProducer) -> list[StepSink]:
        return [
            LogSink(),
            KafkaStepSink(producer, settings.events_topic, include_notes=settings.events_include_notes),
        ]

    monkeypatch.setattr(compose, "step_sinks", step_sinks)
    yield


@pytest.mark.usefixtures("step_sinks_with_notes")
async def test_an_operator_who_opts_in_gets_the_notes_on_the_events_topic_and_nowhere_else(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment, captured_logs: io.StringIO
) -> None:
    settings = settings_for(kafka_bootstrap, dev_server_env, events_include_notes=True)
    incident_id = f"inc-pii-notes-{uuid.uuid4().hex[:8]}"
    outcome = await one_incident_with_every_kind_of_note(settings, captured_logs, incident_id)

    assert_the_run_was_seen(outcome, incident_id)
    notes = {}
    for record in outcome.events:
        assert record.value is not None
        data = load_json(record.value)["data"]  # type: ignore[index]
        assert data["has_note"] is (data["note"] is not None)
        notes[data["kind"]] = data["note"]
    assert {kind: note for kind, note in notes.items() if note is not None} == {
        "accepted": HANDLER,
        "progress": PROGRESS,
        "resolved": RESOLUTION,
        "feedback": COMMENT,
    }
    # The report is never published, opted in or not.
    everything = b"".join(record.everything() for record in outcome.events)
    assert found((NAME, PHONE, ADDRESS, REFUSED), everything) == []
    assert_never_in_logs_metrics_or_dead_letter_headers(outcome)
