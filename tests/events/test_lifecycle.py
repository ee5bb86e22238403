"""Outbound lifecycle events: one structured CloudEvent per step, with ids a retry repeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.cloudevents import load_json, parse_time
from events.errors import ErrorType, EventRejected
from events.lifecycle import (
    LIFECYCLE_SOURCE,
    StepEventData,
    read_step_event,
    step_event_id,
    step_event_type,
    step_events,
)
from gridflow.domain.incident import Outcome, Priority, Status
from gridflow.domain.lifecycle import ClockKind, Step, StepBatch, StepKind

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def batch(*steps: Step, incident_id: str = "inc-7") -> StepBatch:
    return StepBatch(
        incident_id=incident_id,
        category="street_lamp",
        priority=Priority.HIGH,
        district_id="d-huangpu",
        street_id="s-nanjing-east",
        rule_name="street-lamps-high",
        rules_version="sha256:0f3a",
        steps=list(steps),
    )


STEPS = [
    Step(seq=1, kind=StepKind.REPORTED, at=T0, status=Status.REPORTED),
    Step(
        seq=2,
        kind=StepKind.DISPATCHED,
        at=T0,
        level="grid",
        unit_id="g-nanjing-07",
        status=Status.DISPATCHED,
        clock=ClockKind.ACCEPT,
        deadline=T0 + timedelta(hours=2),
    ),
    Step(
        seq=3,
        kind=StepKind.SLA_WARNING,
        at=T0 + timedelta(minutes=90),
        status=Status.DISPATCHED,
        clock=ClockKind.ACCEPT,
        fraction=0.75,
    ),
    Step(
        seq=4,
        kind=StepKind.ESCALATED,
        at=T0 + timedelta(hours=2),
        status=Status.DISPATCHED,
        reason="accept_timeout",
        from_level="grid",
        to_level="street",
    ),
    Step(
        seq=5,
        kind=StepKind.CLOSED,
        at=T0 + timedelta(days=3),
        status=Status.CLOSED,
        outcome=Outcome.WITHDRAWN,
    ),
]


def envelope(value: bytes) -> dict[str, Any]:
    document = load_json(value)
    assert isinstance(document, dict)
    return document


def test_one_structured_event_per_step_keyed_by_incident_id() -> None:
    messages = step_events(batch(*STEPS))
    assert len(messages) == len(STEPS)
    for key, _, headers in messages:
        assert key == b"inc-7"
        assert headers == [("content-type", b"application/cloudevents+json; charset=utf-8")]


def test_types_follow_the_step_kind() -> None:
    types = [envelope(value)["type"] for _, value, _ in step_events(batch(*STEPS))]
    assert types == [
        "gridflow.incident.reported.v1",
        "gridflow.incident.dispatched.v1",
        "gridflow.incident.sla_warning.v1",
        "gridflow.incident.escalated.v1",
        "gridflow.incident.closed.v1",
    ]
    assert all(step_event_type(kind) == f"gridflow.incident.{kind.value}.v1" for kind in StepKind)


def test_ids_are_incident_and_seq_so_a_retry_publishes_the_same_events() -> None:
    first = step_events(batch(*STEPS))
    retried = step_events(batch(*STEPS))
    assert [envelope(value)["id"] for _, value, _ in first] == [f"inc-7:{seq}" for seq in range(1, 6)]
    assert first == retried  # same ids, same bytes
    assert step_event_id("inc-7", 12) == "inc-7:12"
    later = step_events(batch(*STEPS[3:]))
    assert [envelope(value)["id"] for _, value, _ in later] == ["inc-7:4", "inc-7:5"]


def test_envelope_attributes() -> None:
    _, value, _ = step_events(batch(STEPS[2]))[0]
    document = envelope(value)
    assert document["specversion"] == "1.0"
    assert document["source"] == LIFECYCLE_SOURCE == "gridflow/incident-workflow"
    assert document["subject"] == "inc-7"
    assert document["datacontenttype"] == "application/json"
    assert document["time"] == "2026-11-23T09:30:00Z"
    assert parse_time(document["time"]) == STEPS[2].at


def test_data_is_the_step_with_its_incident_context() -> None:
    _, value, _ = step_events(batch(STEPS[1]))[0]
    data = envelope(value)["data"]
    assert data == {
        "seq": 2,
        "kind": "dispatched",
        "at": "2026-11-23T08:00:00Z",
        "level": "grid",
        "unit_id": "g-nanjing-07",
        "status": "dispatched",
        "reason": None,
        "note": None,
        "clock": "accept",
        "fraction": None,
        "deadline": "2026-11-23T10:00:00Z",
        "within_limit": None,
        "from_level": None,
        "to_level": None,
        "from_unit": None,
        "actor": None,
        "extension": None,
        "rating": None,
        "solved": None,
        "outcome": None,
        "elapsed": None,
        "escalations": None,
        "deferred": None,
        "event_at": None,
        "incident_id": "inc-7",
        "category": "street_lamp",
        "priority": "high",
        "district_id": "d-huangpu",
        "street_id": "s-nanjing-east",
        "rule_name": "street-lamps-high",
        "rules_version": "sha256:0f3a",
        "has_note": False,
    }
    assert StepEventData.model_validate(data).kind is StepKind.DISPATCHED


def test_every_step_field_is_published() -> None:
    assert set(Step.model_fields) < set(StepEventData.model_fields)


def test_the_report_itself_is_not_published() -> None:
    report_fields = {"reporter", "title", "description", "location", "reported_at"}
    assert not report_fields & set(StepEventData.model_fields)
    for _, value, _ in step_events(batch(*STEPS)):
        assert not report_fields & set(envelope(value)["data"])


def test_an_empty_batch_publishes_nothing() -> None:
    assert step_events(batch()) == []


def test_a_published_lifecycle_event_reads_back_as_its_step_and_a_wrong_one_says_why() -> None:
    for key, value, headers in step_events(batch(*STEPS)):
        step = read_step_event(key, value, headers, 1 << 20)
        assert step.incident_id == "inc-7" and step == StepEventData(**step.model_dump())
    key, value, headers = step_events(batch(STEPS[1]))[0]
    with pytest.raises(EventRejected) as wrong_key:
        read_step_event(b"inc-8", value, headers, 1 << 20)
    assert wrong_key.value.error_type is ErrorType.KEY_MISMATCH
    with pytest.raises(EventRejected) as too_big:
        read_step_event(key, value, headers, 10)
    assert too_big.value.error_type is ErrorType.OVERSIZED


ACCEPTED = Step(
    seq=3,
    kind=StepKind.ACCEPTED,
    at=T0 + timedelta(minutes=20),
    level="grid",
    unit_id="g-nanjing-07",
    status=Status.ACCEPTED,
    note="handler Qian Wei, 139 8765 4321",
)


def test_a_note_stays_off_the_topic_by_default_and_has_note_says_one_was_written() -> None:
    [(_, value, _), (_, plain, _)] = step_events(batch(ACCEPTED, STEPS[1]))
    assert b"Qian Wei" not in value and b"4321" not in value
    data = envelope(value)["data"]
    assert (data["note"], data["has_note"]) == (None, True)
    assert (envelope(plain)["data"]["note"], envelope(plain)["data"]["has_note"]) == (None, False)


def test_with_notes_included_the_note_is_published_word_for_word() -> None:
    [(_, value, _), (_, plain, _)] = step_events(batch(ACCEPTED, STEPS[1]), include_notes=True)
    data = envelope(value)["data"]
    assert (data["note"], data["has_note"]) == ("handler Qian Wei, 139 8765 4321", True)
    assert (envelope(plain)["data"]["note"], envelope(plain)["data"]["has_note"]) == (None, False)
    # Everything else is the same either way.
    without = envelope(step_events(batch(ACCEPTED))[0][1])
    assert {**without, "data": {**without["data"], "note": data["note"]}} == envelope(value)


def test_both_forms_and_an_event_older_than_has_note_read_back() -> None:
    for include_notes in (False, True):
        [(key, value, headers)] = step_events(batch(ACCEPTED), include_notes=include_notes)
        step = read_step_event(key, value, headers, 1 << 20)
        assert step.has_note is True
        assert step.note == (ACCEPTED.note if include_notes else None)
    # Published before `has_note` existed: every note was there, so its presence is the note's.
    [(key, value, headers)] = step_events(batch(ACCEPTED), include_notes=True)
    older = envelope(value)
    del older["data"]["has_note"]
    step = read_step_event(key, json.dumps(older).encode(), headers, 1 << 20)
    assert (step.note, step.has_note) == (ACCEPTED.note, True)
    [(key, value, headers)] = step_events(batch(STEPS[1]))
    older = envelope(value)
    del older["data"]["has_note"]
    assert read_step_event(key, json.dumps(older).encode(), headers, 1 << 20).has_note is False


def test_a_note_with_has_note_false_is_rejected_without_quoting_it() -> None:
    [(key, value, headers)] = step_events(batch(ACCEPTED), include_notes=True)
    wrong = envelope(value)
    wrong["data"]["has_note"] = False
    with pytest.raises(EventRejected) as rejected:
        read_step_event(key, json.dumps(wrong).encode(), headers, 1 << 20)
    assert rejected.value.error_type is ErrorType.INVALID_DATA
    assert "has_note" in rejected.value.message and "Qian Wei" not in rejected.value.message
