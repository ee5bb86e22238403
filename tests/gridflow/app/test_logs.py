"""Logs: one JSON object a line about each incident, and never a reporter's name or phone."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.kafka_sink import KafkaStepSink
from activities.sinks import LogSink, StepSink
from events import contract
from events.bridge import Bridge
from events.kafka import ensure_topics, make_producer
from gridflow.app.compose import build_worker
from gridflow.app.logs import configure_logging
from gridflow.domain.incident import Status, workflow_id_for
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import isolated_settings
from tests.events.conftest import Pipeline
from tests.events.samples import sample_data

NAME, PHONE = "Li Wei", "+86 138 0000 0000"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of gridflow and of the libraries, as JSON, into a buffer."""
    buffer = io.StringIO()
    configure_logging("json", "debug", stream=buffer)
    yield buffer
    configure_logging("console", "warning")
    logging.getLogger().handlers.clear()


async def test_no_log_line_carries_the_reporters_name_or_phone(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment, captured_logs: io.StringIO
) -> None:
    settings = isolated_settings(kafka_bootstrap)
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    sinks: list[StepSink] = [LogSink(), KafkaStepSink(producer, settings.events_topic)]
    pipeline = Pipeline(settings, dev_server_env.client, MemorySink(), producer)
    incident_id = "inc-pii-check-0001"
    async with build_worker(dev_server_env.client, settings.task_queue, RulesSource(), sinks):
        pipeline.start_bridge(Bridge(settings, dev_server_env.client))
        report = sample_data(contract.REPORTED, incident_id)
        assert report["reporter"] == {"name": NAME, "phone": PHONE, "channel": "app"}
        pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
        # A refused command and a bad report carrying the phone in a wrong place: both are logged.
        pipeline.publish(pipeline.event(contract.RESOLVED, incident_id))
        bad = dict(report, incident_id="inc-pii-check-0002", priority=PHONE)
        pipeline.publish_raw(
            b"inc-pii-check-0002",
            json.dumps(
                {"specversion": "1.0", "id": "x", "source": "t", "type": contract.REPORTED, "data": bad}
            ).encode(),
            [("content-type", b"application/cloudevents+json")],
        )
        pipeline.publish(pipeline.event(contract.ACCEPTED, incident_id))
        await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED)
        await pipeline.wait_dead_letters(2)
        await pipeline.stop_bridges()
    await asyncio.to_thread(producer.close, 5)

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.strip()]
    about_incident = [line for line in lines if line.get("incident_id") == incident_id]
    assert {line["event"] for line in about_incident} >= {"incident dispatched", "incident accepted"}
    assert all("incident_level" in line and "rule" in line for line in about_incident if "seq" in line)
    assert any(line.get("reason") == "rejected" for line in lines)  # the dead letter was logged
    # The workflow's own lines read as written, its ids as fields rather than a dict in the message.
    [matched] = [line for line in lines if line["event"].startswith("incident matched rule")]
    assert "{" not in matched["event"]
    assert matched["temporal_workflow"]["workflow_id"] == workflow_id_for(incident_id)
    text = captured_logs.getvalue()
    leaks = [line for line in text.splitlines() if NAME in line or PHONE in line]
    assert leaks == [], leaks[:3]
    assert NAME not in text
    assert PHONE not in text and PHONE.replace(" ", "") not in text


def test_the_libraries_info_chatter_is_held_back_unless_debug() -> None:
    buffer = io.StringIO()
    configure_logging("json", "info", stream=buffer)
    for name in ("kafka.conn", "temporalio.worker._worker"):
        logging.getLogger(name).info("chatter from %s", name)
        logging.getLogger(name).warning("trouble in %s", name)
    logging.getLogger("temporalio.workflow").info("a workflow's own line")
    events = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert events == [
        "trouble in kafka.conn",
        "trouble in temporalio.worker._worker",
        "a workflow's own line",
    ]

    buffer = io.StringIO()
    configure_logging("json", "debug", stream=buffer)
    logging.getLogger("kafka.conn").info("chatter")
    logging.getLogger("kafka.conn").debug("a whole message, personal data and all")
    events = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert events == ["chatter"]  # kafka-python's debug lines print messages: never logged
    configure_logging("console", "warning")


def test_a_file_gets_every_line_as_json_while_the_stream_keeps_only_problems(tmp_path: Path) -> None:
    buffer, path = io.StringIO(), tmp_path / "state" / "gridflow.log"
    configure_logging("console", "info", stream=buffer, stream_level="warning", file=path)
    log = logging.getLogger("gridflow.test")
    log.info("all is well")
    log.warning("something is wrong")
    configure_logging("console", "warning")  # closes the file
    assert "all is well" not in buffer.getvalue() and "something is wrong" in buffer.getvalue()
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["all is well", "something is wrong"]


def test_a_live_view_keeps_the_libraries_warnings_off_the_terminal_but_in_the_file(tmp_path: Path) -> None:
    buffer, path = io.StringIO(), tmp_path / "gridflow.log"
    configure_logging(
        "json", "info", stream=buffer, stream_level="warning", libraries_on_stream="error", file=path
    )
    logging.getLogger("kafka.net.connection").warning("connection reset")
    logging.getLogger("kafka.net.connection").error("cannot reach the broker")
    logging.getLogger("temporalio.workflow").warning("a workflow's own warning")
    logging.getLogger("gridflow.test").warning("gridflow's own warning")
    configure_logging("console", "warning")  # closes the file
    on_terminal = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert on_terminal == ["cannot reach the broker", "a workflow's own warning", "gridflow's own warning"]
    in_file = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert in_file == ["connection reset", *on_terminal]
