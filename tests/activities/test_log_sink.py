"""The log sink: one line per step, every field of the step in it but free text, under names that do not
collide with the log record's own."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from activities.sinks import RENAMED_STEP_FIELDS, UNLOGGED_STEP_FIELDS, LogSink
from gridflow.app.logs import configure_logging
from gridflow.domain.incident import Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import ClockKind, Step, StepBatch, StepKind

# Each test configures logging for the whole process: put it back after.
pytestmark = pytest.mark.usefixtures("restore_logging")

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def every_field_step() -> Step:
    """A step with every field set (not a real one: no step has all of them)."""
    return Step(
        seq=7,
        kind=StepKind.CLOSED,
        at=AT,
        level="street",
        unit_id="s-bund",
        status=Status.CLOSED,
        reason="accept_timeout",
        note="Zhang Min called 138 0000 0000",
        clock=ClockKind.ACCEPT,
        fraction=0.5,
        deadline=AT + timedelta(hours=1),
        within_limit=False,
        from_level="grid",
        to_level="street",
        from_unit="g-nanjing-06",
        actor="s-nanjing-east",
        extension="2wd",
        rating=Rating.SATISFIED,
        solved=True,
        outcome=Outcome.RESOLVED,
        elapsed=timedelta(minutes=5),
        escalations=1,
        deferred=False,
        event_at=AT - timedelta(seconds=3),
    )


def batch(step: Step) -> StepBatch:
    return StepBatch(
        incident_id="inc-log-0001",
        category="drain",
        priority=Priority.URGENT,
        district_id="d-huangpu",
        rule_name="urgent",
        rules_version="v1",
        levels=["grid", "street"],
        steps=[step],
    )


def logged(format: str, step: Step) -> str:
    buffer = io.StringIO()
    configure_logging(format, "info", stream=buffer)
    asyncio.run(LogSink().publish(batch(step)))
    return buffer.getvalue()


def test_every_field_of_a_step_arrives_in_its_json_log_line_but_free_text() -> None:
    step = every_field_step()
    assert all(getattr(step, name) is not None for name in Step.model_fields), "set every field"
    [line] = [json.loads(text) for text in logged("json", step).splitlines()]

    expected = step.model_dump(mode="json", exclude=UNLOGGED_STEP_FIELDS)
    assert line["event"] == f"incident {expected.pop('kind')}"
    for name, value in expected.items():
        assert line[RENAMED_STEP_FIELDS.get(name, name)] == value, name
    assert line["level"] == "info"  # the record's severity, not the step's level
    assert line["incident_level"] == "street"
    assert (line["incident_id"], line["rule"], line["category"], line["priority"], line["district_id"]) == (
        "inc-log-0001",
        "urgent",
        "drain",
        "urgent",
        "d-huangpu",
    )
    assert "note" not in line and "Zhang Min" not in json.dumps(line)


def test_the_console_line_shows_the_steps_level_beside_the_severity() -> None:
    text = logged("console", every_field_step())
    assert "incident_level=street" in text
    assert "[info" in text
