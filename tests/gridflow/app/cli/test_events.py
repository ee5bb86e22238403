"""`gridflow publish`, `dlq list` and `schema export`: the event contract, on a real Kafka-API broker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from events.cloudevents import load_json
from events.kafka import client_config, ensure_topics
from gridflow.app.cli import main
from gridflow.app.settings import Settings, env_name
from tests.conftest import isolated_settings, make_incident


@pytest.fixture
def settings(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A test's own topics on the session's broker, in the environment the command reads."""
    settings = isolated_settings(kafka_bootstrap)
    for field in ("kafka_bootstrap_servers", "kafka_api_version", "incidents_topic", "dlq_topic"):
        monkeypatch.setenv(env_name(field), str(getattr(settings, field)))
    ensure_topics(settings)
    return settings


def incidents_topic(settings: Settings) -> list[dict[str, object]]:
    """Every structured-mode envelope on the incidents topic."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(settings.incidents_topic) or set()
        assigned = [TopicPartition(settings.incidents_topic, p) for p in partitions]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        positions = dict.fromkeys(assigned, 0)
        envelopes = []
        while any(positions[tp] < ends[tp] for tp in assigned):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    positions[tp] = record.offset + 1
                    envelope = load_json(record.value)
                    assert isinstance(envelope, dict)
                    envelopes.append(envelope)
        return envelopes
    finally:
        consumer.close()


def test_publish_sends_plain_data_and_cloudevents_from_json_lines_on_standard_input(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = make_incident(), make_incident()
    event = {
        "specversion": "1.0",
        "type": "gridflow.incident.reported.v1",
        "source": "hotline",
        "id": "evt-from-the-hotline",
        "data": second.model_dump(mode="json"),
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{first.model_dump_json()}\n{json.dumps(event)}\n"))

    assert main(["publish", "-", "--log-level", "warning"]) == 0

    captured = capsys.readouterr()
    assert f"gridflow.incident.reported.v1 {first.incident_id} -> {settings.incidents_topic}/" in captured.out
    assert captured.err.endswith(f"published 2 event(s) to {settings.incidents_topic}\n")
    sent = {envelope["id"]: envelope for envelope in incidents_topic(settings)}
    assert sent["evt-from-the-hotline"]["source"] == "hotline"
    plain = next(envelope for envelope in sent.values() if envelope["source"] == "gridflow-cli")
    assert plain["type"] == "gridflow.incident.reported.v1"
    assert plain["data"]["incident_id"] == first.incident_id  # type: ignore[index]


def test_publish_names_the_line_of_a_bad_event_and_sends_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.json"
    events.write_text(f'[\n{make_incident().model_dump_json()},\n{{"incident_id": "inc-1"}}\n]\n')

    assert main(["publish", str(events), "--log-level", "warning"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"{events}:3: invalid_data: ")
    assert incidents_topic(settings) == []


def test_dlq_list_on_an_empty_dead_letter_topic_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--log-level", "warning"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"0 dead letter(s) in {settings.dlq_topic}\n")


def test_schema_export_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "export", str(tmp_path / "schemas")]) == 0
    listed = capsys.readouterr().out.split()
    assert listed and all(Path(path).is_file() for path in listed)
    assert any(path.endswith("asyncapi.yaml") for path in listed)
    assert any(path.endswith(".schema.json") for path in listed)
