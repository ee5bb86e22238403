"""The archiver on real parts: lifecycle events on a real Tansu topic, a real PostgreSQL and a SQLite file.

Real incident timelines (played on the lifecycle core) are published as the worker publishes them
(`events.lifecycle.step_events`); the archiver runs in-process, or as `gridflow archiver` processes
that are killed with SIGKILL mid-stream. What the archive holds is then counted row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.engine import make_url

from events.cloudevents import KafkaMessage, encode_structured, make_event
from events.contract import REPORTED, WITHDRAWN
from events.errors import EventRejected
from events.kafka import client_config, ensure_topics, make_producer
from events.lifecycle import step_events
from gridflow.app.archiver import ArchiverMetrics, read_archivable_step, run_archiver
from gridflow.app.metrics_server import Readiness
from gridflow.app.settings import Settings, revealed
from gridflow.archive.schema import incident_steps
from gridflow.archive.store import Archive
from gridflow.domain.lifecycle import StepKind
from tests.conftest import free_port, isolated_settings, make_incident
from tests.gridflow.archive.cases import T0, batch, climbed, reopened_and_closed
from tests.postgres import Database, PostgresServer
from tests.postgres import archive_database as archive_database  # the fixture
from tests.postgres import postgresql_server as postgresql_server  # the fixture

ROOT = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 30.0


def archiver_settings(kafka_bootstrap: str, database: Database, **overrides: object) -> Settings:
    """A test's own events topic and archiver group on the session's broker, and its database."""
    settings = isolated_settings(kafka_bootstrap, archive_url=database.url, **overrides)
    settings = settings.with_overrides(
        archiver_group=f"a-{settings.consumer_group}", archive_password=database.password
    )
    ensure_topics(settings, [settings.events_topic])
    return settings


def publish(
    settings: Settings, messages: list[KafkaMessage], ends: dict[int, int] | None = None
) -> dict[int, int]:
    """Send the messages to the events topic and wait for the broker to take every one; returns (and
    adds to `ends`) the end of each partition written: its last offset + 1."""
    ends = {} if ends is None else ends
    producer: KafkaProducer = make_producer(settings)
    try:
        futures = [
            producer.send(settings.events_topic, key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        for future in futures:
            written = future.get(30)
            ends[written.partition] = max(ends.get(written.partition, 0), written.offset + 1)
    finally:
        producer.close(10)
    return ends


def lifecycle_events(prefix: str, count: int) -> list[KafkaMessage]:
    """Every step of `count` real incidents (half of them closed after a reopen, half still climbing)."""
    messages: list[KafkaMessage] = []
    for n in range(count):
        state = reopened_and_closed(f"{prefix}-{n:04}") if n % 2 else climbed(f"{prefix}-{n:04}", levels=2)
        messages += step_events(batch(state))
    return messages


def stored(archive: Archive) -> list[str]:
    """The event id of every step row, duplicates included, sorted."""
    with archive.engine.connect() as connection:
        return sorted(connection.execute(select(incident_steps.c.event_id)).scalars())


def committed_lag(settings: Settings, ends: dict[int, int]) -> int:
    """Records between the archiver group's committed offsets and the ends the producer was told.

    (Not the broker's end offsets: Tansu answers those with the last batch's first offset.)
    """
    consumer = KafkaConsumer(**client_config(settings), group_id=settings.archiver_group)
    try:
        return sum(
            end - (consumer.committed(TopicPartition(settings.events_topic, partition)) or 0)
            for partition, end in ends.items()
        )
    finally:
        consumer.close()


def eventually(what: str, check: Callable[[], bool], within: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.1)


def sample(metrics: ArchiverMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


@dataclass
class InProcess:
    """An archiver running in this process, on its own event loop thread."""

    settings: Settings
    metrics: ArchiverMetrics
    readiness: Readiness
    archive: Archive


@contextlib.asynccontextmanager
async def running_archiver(settings: Settings) -> AsyncIterator[InProcess]:
    """The archiver in-process until the block ends, then stopped cleanly (its task must end by itself)."""
    metrics, readiness = ArchiverMetrics(CollectorRegistry()), Readiness()
    stop = asyncio.Event()
    task = asyncio.create_task(run_archiver(settings, stop, metrics=metrics, readiness=readiness))
    reader = Archive.open(settings.archive_url, revealed(settings.archive_password))
    try:
        yield InProcess(settings, metrics, readiness, reader)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)
        reader.close()


async def wait_for(what: str, check: Callable[[], bool], within: float = WAIT_SECONDS) -> None:
    await asyncio.to_thread(eventually, what, check, within)


# ---------------------------------------------------------------------- in-process


async def test_every_step_on_the_topic_is_archived_once(kafka_bootstrap: str, database: Database) -> None:
    settings = archiver_settings(kafka_bootstrap, database, archiver_batch=40)
    messages = lifecycle_events("inc-all", 30)
    duplicates = messages[:25]  # a retried activity publishes the same events again
    ends = await asyncio.to_thread(publish, settings, messages + duplicates)
    async with running_archiver(settings) as archiver:
        await wait_for("every record to be committed", lambda: committed_lag(settings, ends) == 0)
        assert stored(archiver.archive) == sorted(f"{i}:{s}" for i, s in _ids(messages))
        assert sample(archiver.metrics, "gridflow_archiver_steps_written_total") == len(messages)
        assert sample(archiver.metrics, "gridflow_archiver_duplicates_total") == len(duplicates)
        assert bool(archiver.readiness)
        closed = archiver.archive.incident("inc-all-0001")
        assert closed is not None and closed.outcome is not None and closed.reopens == 1
        climbing = archiver.archive.incident("inc-all-0000")
        assert climbing is not None and (climbing.level, climbing.escalations) == ("district", 2)
        period = list(archiver.archive.steps(T0, T0.replace(year=T0.year + 1)))
        assert len(period) == len(messages)
    assert not archiver.readiness  # stopped: no longer ready


async def test_a_step_whose_note_was_withheld_or_published_is_archived_saying_it_had_one_never_its_words(
    kafka_bootstrap: str, database: Database
) -> None:
    settings = archiver_settings(kafka_bootstrap, database)
    withheld, published = reopened_and_closed("inc-notes-off"), reopened_and_closed("inc-notes-on")
    noted = {step.seq for step in withheld.timeline if step.note is not None}
    assert noted and len(noted) < len(withheld.timeline)  # handlers' and residents' words on some steps
    messages = step_events(batch(withheld)) + step_events(batch(published), include_notes=True)
    assert all(b'"note":null' in value for _, value, _ in step_events(batch(withheld)))
    ends = await asyncio.to_thread(publish, settings, messages)
    async with running_archiver(settings) as archiver:
        await wait_for("every record to be committed", lambda: committed_lag(settings, ends) == 0)
        assert sample(archiver.metrics, "gridflow_archiver_skipped_total", reason="invalid_data") == 0
        with archiver.archive.engine.connect() as connection:
            rows = connection.execute(
                select(incident_steps.c.incident_id, incident_steps.c.seq, incident_steps.c.has_note)
            ).all()
            everything = repr(connection.execute(select(incident_steps)).all())
        for incident_id in ("inc-notes-off", "inc-notes-on"):
            assert {seq for i, seq, has_note in rows if i == incident_id and has_note} == noted
            assert all(has_note is not None for i, _, has_note in rows if i == incident_id)
        assert [word for word in ("Zhang Min", "Mr Li", "Rewired", "Thank you") if word in everything] == []
        assert all(step.note is None for step in archiver.archive.timeline("inc-notes-on"))


def _ids(messages: list[KafkaMessage]) -> list[tuple[str, int]]:
    found = []
    for key, value, headers in messages:
        step = read_archivable_step(key, value, headers, 1 << 20)
        found.append((step.incident_id, step.seq))
    return found


async def test_a_hostile_record_is_skipped_counted_and_does_not_stop_it(
    kafka_bootstrap: str, database: Database
) -> None:
    settings = archiver_settings(kafka_bootstrap, database)
    good = step_events(batch(reopened_and_closed("inc-good")))
    content_type = [("content-type", b"application/cloudevents+json; charset=utf-8")]
    key, envelope, headers = good[2]
    report = encode_structured(
        make_event(REPORTED, make_incident(incident_id="inc-wrong").model_dump(mode="json"))
    )
    withdrawal = encode_structured(make_event(WITHDRAWN, {"incident_id": "inc-wrong", "reason": "duplicate"}))
    _, long_value, long_headers = step_events(batch(climbed("inc-long", levels=1)))[0]
    too_long = b"inc-" + b"x" * 130  # an id longer than any the domain makes
    long_id = (too_long, long_value.replace(b"inc-long", too_long), long_headers)
    hostile: list[KafkaMessage] = [
        (b"inc-good", b"\xff\xfe not JSON at all", content_type),  # malformed
        (b"inc-good", b'{"name": "Li Wei", "phone": "+86 138"}', []),  # no CloudEvents header
        report,  # an inbound report on the wrong topic (its type is a step's, its data is not): invalid_data
        withdrawal,  # an inbound withdrawal on the wrong topic: unknown_type
        (key, envelope.replace(b'"seq":3', b'"seq":"three"'), headers),  # invalid_data
        (b"inc-other", envelope, headers),  # key_mismatch
        (key, envelope.replace(b'"id":"inc-good:3"', b'"id":"inc-good:4"'), headers),  # invalid_attribute
        long_id,  # an incident id longer than the archive keeps: invalid_data
    ]
    ends = await asyncio.to_thread(publish, settings, good[:5] + hostile + good[5:])
    async with running_archiver(settings) as archiver:
        await wait_for("every record to be committed", lambda: committed_lag(settings, ends) == 0)
        assert stored(archiver.archive) == sorted(f"inc-good:{n}" for n in range(1, len(good) + 1))
        skipped = {
            reason: sample(archiver.metrics, "gridflow_archiver_skipped_total", reason=reason)
            for reason in ("malformed", "missing_attribute", "unknown_type", "invalid_data", "key_mismatch",
                           "invalid_attribute")
        }  # fmt: skip
        assert skipped == {
            "malformed": 1,
            "missing_attribute": 1,
            "unknown_type": 1,
            "invalid_data": 3,
            "key_mismatch": 1,
            "invalid_attribute": 1,
        }
        # It goes on: a record published after the hostile ones is archived too.
        later = step_events(batch(climbed("inc-after", levels=1)))
        await asyncio.to_thread(publish, settings, later, ends)
        await wait_for("the later incident to be committed", lambda: committed_lag(settings, ends) == 0)
        assert archiver.archive.incident("inc-after") is not None


async def test_while_the_database_is_away_nothing_is_committed_and_it_is_not_ready(
    kafka_bootstrap: str, postgresql: PostgresServer
) -> None:
    database = Database(postgresql.create_database(), postgresql.password)
    name = make_url(database.url).database
    settings = archiver_settings(kafka_bootstrap, database)
    before, during = lifecycle_events("inc-before", 3), lifecycle_events("inc-during", 3)
    ends = await asyncio.to_thread(publish, settings, before)
    async with running_archiver(settings) as archiver:
        await wait_for("the first events to be committed", lambda: committed_lag(settings, ends) == 0)
        assert bool(archiver.readiness)
        with postgresql.connect() as admin:  # the database goes away: no new connection, none left
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'.encode())
            admin.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
            )
            await asyncio.to_thread(publish, settings, during, ends)
            await wait_for("the archiver to say it is not ready", lambda: not archiver.readiness)
            assert sample(archiver.metrics, "gridflow_archiver_write_failures_total") >= 1
            assert committed_lag(settings, ends) == len(during)  # taken, not written: not committed
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())
        await wait_for("the rest to be committed", lambda: committed_lag(settings, ends) == 0)
        assert stored(archiver.archive) == sorted(f"{i}:{s}" for i, s in _ids(before + during))
        await wait_for("the archiver to be ready again", lambda: bool(archiver.readiness))


def test_reading_a_record_names_the_problem_never_the_content() -> None:
    key, envelope, headers = step_events(batch(reopened_and_closed("inc-read")))[3]
    secret = envelope.replace(b'"kind":"paused"', b'"kind":"Mr Li Wei, +86 138 0000 0000"')
    with pytest.raises(EventRejected) as rejected:
        read_archivable_step(key, secret, headers, 1 << 20)
    assert "kind" in str(rejected.value) and "Li Wei" not in str(rejected.value)
    step = read_archivable_step(key, envelope, headers, 1 << 20)
    assert (step.incident_id, step.seq, step.kind) == ("inc-read", 4, StepKind.PAUSED)


# ---------------------------------------------------------------------- killed mid-stream


@dataclass
class ArchiverProcess:
    """`gridflow archiver` as an OS process, its log in a file."""

    popen: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-15:]
        return f"--- archiver (exit {self.popen.poll()}) ---\n" + "\n".join(lines)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""


def start_archiver(settings: Settings, logs: Path, name: str) -> ArchiverProcess:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRIDFLOW_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "GRIDFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "GRIDFLOW_KAFKA_API_VERSION": "2.5",
            "GRIDFLOW_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
            "GRIDFLOW_EVENTS_TOPIC": settings.events_topic,
            "GRIDFLOW_ARCHIVER_GROUP": settings.archiver_group,
            "GRIDFLOW_ARCHIVER_BATCH": str(settings.archiver_batch),
            "GRIDFLOW_ARCHIVE_URL": settings.archive_url,
            "GRIDFLOW_METRICS_PORT": str(port),
            "GRIDFLOW_LOG_FORMAT": "json",
        }
    )
    if settings.archive_password is not None:
        env["GRIDFLOW_ARCHIVE_PASSWORD"] = settings.archive_password.get_secret_value()
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "gridflow.app.cli", "archiver"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    return ArchiverProcess(popen, log, port)


@pytest.fixture
def processes() -> Iterator[list[ArchiverProcess]]:
    started: list[ArchiverProcess] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)


def test_an_archiver_killed_mid_stream_loses_and_doubles_no_row(
    kafka_bootstrap: str, postgresql: PostgresServer, tmp_path: Path, processes: list[ArchiverProcess]
) -> None:
    database = Database(postgresql.create_database(), postgresql.password)
    # A short session: the dead archiver's membership expires soon, and the second one joins sooner.
    settings = archiver_settings(kafka_bootstrap, database, archiver_batch=50, kafka_session_timeout_ms=3000)
    messages = lifecycle_events("inc-kill", 240)  # a few thousand events
    assert len(messages) > 2500
    first, rest = messages[:800], messages[800:]
    ends = publish(settings, first)
    archive = Archive.open(database.url, database.password)
    try:
        processes.append(start_archiver(settings, tmp_path, "first"))
        # The rest is published while the archiver works, so the kill lands in a live stream.
        publishing = threading.Thread(target=publish, args=(settings, rest, ends))
        publishing.start()

        def some_written() -> bool:
            assert processes[0].popen.poll() is None, processes[0].tail()
            return archive.counts().steps >= 300

        eventually("the first archiver to write some steps", some_written)
        processes[0].popen.send_signal(signal.SIGKILL)
        processes[0].popen.wait(10)
        at_kill = archive.counts().steps
        publishing.join(60)
        assert 0 < at_kill < len(messages)

        processes.append(start_archiver(settings, tmp_path, "second"))
        eventually("every event to be archived and committed", lambda: committed_lag(settings, ends) == 0, 45)
        assert stored(archive) == sorted(f"{i}:{s}" for i, s in _ids(messages))  # none lost, none doubled
        assert archive.counts().incidents == 240
        eventually("the second archiver to be ready", lambda: processes[1].get("/readyz")[0] == 200)
        status, text = processes[1].get("/metrics")
        assert status == 200 and "gridflow_archiver_steps_written_total" in text

        processes[1].popen.send_signal(signal.SIGTERM)
        assert processes[1].popen.wait(20) == 0, processes[1].tail()
    finally:
        archive.close()
