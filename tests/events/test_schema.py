"""Exported JSON Schemas and the AsyncAPI document: valid, true to the code, and deterministic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from events import contract
from events.cloudevents import encode_structured, make_event
from events.lifecycle import step_events
from events.schema import (
    ASYNCAPI_FILE,
    ENVELOPE_SCHEMA_FILE,
    STEP_SCHEMA_FILE,
    asyncapi_document,
    data_schema_file,
    export_schemas,
)
from gridflow.domain.incident import Priority, Status
from gridflow.domain.lifecycle import Step, StepBatch, StepKind
from tests.events.samples import sample_data


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("schemas")
    return {path.name: path for path in export_schemas(directory)}


def load(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_one_file_per_inbound_type_plus_step_envelope_and_asyncapi(exported: dict[str, Path]) -> None:
    expected = {data_schema_file(t) for t in contract.INBOUND_TYPES}
    expected |= {STEP_SCHEMA_FILE, ENVELOPE_SCHEMA_FILE, ASYNCAPI_FILE}
    assert set(exported) == expected
    assert "gridflow.incident.reported.v1.schema.json" in exported
    assert all(path.exists() for path in exported.values())


def test_every_exported_json_schema_is_a_valid_2020_12_schema(exported: dict[str, Path]) -> None:
    for name, path in exported.items():
        if name.endswith(".json"):
            schema = load(path)
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            Draft202012Validator.check_schema(schema)


def test_the_reported_schema_requires_the_fields_of_the_contract(exported: dict[str, Path]) -> None:
    schema = load(exported["gridflow.incident.reported.v1.schema.json"])
    assert set(schema["required"]) == {
        "incident_id",
        "category",
        "title",
        "priority",
        "location",
        "reported_at",
    }
    assert schema["additionalProperties"] is False
    location = schema["$defs"]["Location"]
    assert set(location["required"]) == {"grid_id", "street_id", "district_id"}


@pytest.mark.parametrize("event_type", contract.INBOUND_TYPES)
def test_sample_data_validates_against_its_schema_and_bad_data_does_not(
    exported: dict[str, Path], event_type: str
) -> None:
    check = validator(load(exported[data_schema_file(event_type)]))
    check.validate(sample_data(event_type))
    with pytest.raises(ValidationError):
        check.validate({**sample_data(event_type), "unexpected": True})
    with pytest.raises(ValidationError):
        check.validate({key: value for key, value in sample_data(event_type).items() if key != "incident_id"})


def test_encoded_structured_events_validate_against_the_envelope_schema(exported: dict[str, Path]) -> None:
    check = validator(load(exported[ENVELOPE_SCHEMA_FILE]))
    for event_type in contract.INBOUND_TYPES:
        _, value, _ = encode_structured(make_event(event_type, sample_data(event_type)))
        check.validate(json.loads(value))
    _, value, _ = encode_structured(make_event(contract.ACCEPTED, sample_data(contract.ACCEPTED)))
    document = json.loads(value)
    with pytest.raises(ValidationError):  # the data of one type under another type
        check.validate({**document, "type": contract.RESOLVED})
    with pytest.raises(ValidationError):
        check.validate({**document, "specversion": "0.3"})


def _batch(steps: list[Step]) -> StepBatch:
    """Steps of one incident, in the low-cardinality context the events carry."""
    return StepBatch(
        incident_id="inc-7",
        category="street_lamp",
        priority=Priority.LOW,
        district_id="d-1",
        rule_name=None,
        rules_version=None,
        steps=steps,
    )


def test_outbound_step_data_validates_against_the_step_schema(exported: dict[str, Path]) -> None:
    from datetime import UTC, datetime

    check = validator(load(exported[STEP_SCHEMA_FILE]))
    at = datetime(2026, 11, 23, 8, tzinfo=UTC)
    steps = [Step(seq=i + 1, kind=kind, at=at, status=Status.DISPATCHED) for i, kind in enumerate(StepKind)]
    batch = _batch(steps)
    for _, value, _ in step_events(batch):
        check.validate(json.loads(value)["data"])
    assert "incident_id" in load(exported[STEP_SCHEMA_FILE])["required"]


def test_the_step_schema_takes_a_step_with_or_without_its_notes_text(exported: dict[str, Path]) -> None:
    from datetime import UTC, datetime

    schema = load(exported[STEP_SCHEMA_FILE])
    check = validator(schema)
    step = Step(
        seq=1,
        kind=StepKind.FEEDBACK,
        at=datetime(2026, 11, 23, 8, tzinfo=UTC),
        status=Status.RESOLVED,
        note="Zhao Lanying says thanks",
    )
    batch = _batch([step])
    for include_notes in (False, True):
        [(_, value, _)] = step_events(batch, include_notes=include_notes)
        data = json.loads(value)["data"]
        check.validate(data)
        assert data["has_note"] is True
    assert {"note", "has_note"} <= set(schema["required"])
    assert schema["properties"]["has_note"]["type"] == "boolean"
    assert "GRIDFLOW_EVENTS_INCLUDE_NOTES" in schema["properties"]["note"]["description"]
    with pytest.raises(ValidationError):  # has_note is always there
        check.validate({key: value for key, value in data.items() if key != "has_note"})
    lifecycle_step = asyncapi_document()["components"]["messages"]["lifecycleStep"]
    assert "GRIDFLOW_EVENTS_INCLUDE_NOTES" in lifecycle_step["description"]


def test_the_asyncapi_document_names_the_three_topics(exported: dict[str, Path]) -> None:
    text = exported[ASYNCAPI_FILE].read_text(encoding="utf-8")
    assert "&id" not in text  # plain YAML, no anchors and aliases
    document = yaml.safe_load(text)
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"gridflow.incidents", "gridflow.incident-events", "gridflow.incidents.dlq"}
    actions = {operation["action"] for operation in document["operations"].values()}
    assert actions == {"receive", "send"}


def test_the_asyncapi_document_describes_both_bindings_of_every_inbound_type() -> None:
    document = asyncapi_document()
    messages = document["components"]["messages"]
    incoming = document["channels"]["incidents"]["messages"]
    assert len(incoming) == 2 * len(contract.INBOUND_TYPES)
    content_types = {messages[name]["contentType"] for name in incoming}
    assert content_types == {"application/cloudevents+json", "application/json"}
    for name in incoming:
        assert messages[name]["bindings"]["kafka"]["key"]["type"] == "string"
    dead_letter_headers = messages["deadLetter"]["headers"]["required"]
    assert dead_letter_headers == [
        "gridflow.error.type",
        "gridflow.error.message",
        "gridflow.source.topic",
        "gridflow.source.partition",
        "gridflow.source.offset",
    ]


def test_every_local_reference_in_the_asyncapi_document_resolves() -> None:
    document = asyncapi_document()

    def resolve(pointer: str) -> object:
        node: Any = document
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def walk(node: object) -> int:
        count = 0
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                resolve(node["$ref"])
                count += 1
            count += sum(walk(value) for value in node.values())
        elif isinstance(node, list):
            count += sum(walk(value) for value in node)
        return count

    assert walk(document) > 20


def test_export_is_deterministic(tmp_path: Path, exported: dict[str, Path]) -> None:
    again = {path.name: path for path in export_schemas(tmp_path / "again")}
    for name, path in exported.items():
        assert again[name].read_bytes() == path.read_bytes(), name
    first_keys = list(load(exported[ENVELOPE_SCHEMA_FILE]))
    assert first_keys == sorted(first_keys)
