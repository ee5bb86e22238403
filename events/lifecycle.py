"""Outbound lifecycle events: every step of an incident's timeline as a structured-mode CloudEvent.

Each step becomes `gridflow.incident.<kind>.v1` from `gridflow/incident-workflow`, keyed and subjected by
the incident id. Its id is `<incident_id>:<seq>`, so an activity that is retried publishes the same ids
(and the same bytes) again and consumers can deduplicate.

A step's `note` is words people wrote (a handler's name, a resolution, a progress note, a resident's
comment): it leaves on the topic only when the operator opts in (GRIDFLOW_EVENTS_INCLUDE_NOTES);
otherwise it is null and `has_note` says that one was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Self

from pydantic import ConfigDict, Field, ValidationError, model_validator

from events.cloudevents import (
    CONTENT_TYPE_HEADER,
    SPECVERSION,
    STRUCTURED_CONTENT_TYPE,
    ExtensionValue,
    KafkaMessage,
    format_time,
    load_json,
    structured_message,
)
from events.contract import TYPE_PREFIX
from events.errors import ErrorType, EventRejected, clip
from gridflow.domain.lifecycle import IncidentStep, Step, StepBatch, StepKind

LIFECYCLE_SOURCE: Final = "gridflow/incident-workflow"


class StepEventData(IncidentStep):
    """The data of an outbound lifecycle event: the step, and the incident's low-cardinality context."""

    # Every field is always present on the wire (null when unset), so the schema lists them all as required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    note: str | None = Field(
        None,
        description="What a person wrote with the step: the handler (accepted), the resolution (resolved), "
        "the comment (feedback), the note of a progress or an escalation request. Null unless the "
        "operator publishes notes (GRIDFLOW_EVENTS_INCLUDE_NOTES): it may hold personal data.",
    )
    has_note: bool = Field(
        False,
        description="Whether the step has a note, published or not (`note` is null unless notes are "
        "published).",
    )

    @model_validator(mode="before")
    @classmethod
    def _has_note_of_older_events(cls, data: Any) -> Any:
        # Events published before `has_note` existed carried every note: a note is there or there is none.
        if isinstance(data, dict) and "has_note" not in data:
            return {**data, "has_note": data.get("note") is not None}
        return data

    @model_validator(mode="after")
    def _a_note_means_has_note(self) -> Self:
        if self.note is not None and not self.has_note:
            raise ValueError("a note is given but has_note is false")
        return self


def step_event_type(kind: StepKind) -> str:
    """The CloudEvents type of a step of a kind: `gridflow.incident.<kind>.v1`."""
    return f"{TYPE_PREFIX}{kind.value}.v1"


def step_event_id(incident_id: str, seq: int) -> str:
    """The stable CloudEvents id of a step: `<incident_id>:<seq>`."""
    return f"{incident_id}:{seq}"


def step_event_data(batch: StepBatch, step: Step, *, include_notes: bool = False) -> StepEventData:
    """A step with its incident's context; its note's text only if `include_notes` (`has_note` either way)."""
    data = StepEventData.in_context(batch, step)
    return data if include_notes else data.model_copy(update={"note": None})


#: The step kind of each lifecycle event type: `gridflow.incident.<kind>.v1`.
_KINDS: Final = {step_event_type(kind): kind for kind in StepKind}


def read_step_event(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]], max_bytes: int
) -> StepEventData:
    """A lifecycle event's data, from a record of the events topic (structured mode, as gridflow
    publishes it), with or without its note's text (`has_note` is taken as the note's presence when an
    older event lacks it). Raises EventRejected with the reason; its message names no content (the data
    may hold a person's words)."""
    if value is not None and len(value) > max_bytes:
        raise EventRejected(ErrorType.OVERSIZED, f"value is {len(value)} bytes, more than {max_bytes}")
    content_type = next(
        (bytes(v or b"").decode("utf-8", "replace") for n, v in headers if n.lower() == CONTENT_TYPE_HEADER),
        "",
    )
    if not content_type.lower().startswith(STRUCTURED_CONTENT_TYPE):
        raise EventRejected(
            ErrorType.MISSING_ATTRIBUTE,
            f"not a structured-mode CloudEvent (no 'content-type: {STRUCTURED_CONTENT_TYPE}' header)",
        )
    if not value:
        raise EventRejected(ErrorType.MALFORMED, "the record has no value")
    envelope = load_json(value, "value")
    if not isinstance(envelope, dict):
        raise EventRejected(ErrorType.MALFORMED, "the envelope is not a JSON object")
    if envelope.get("specversion") != SPECVERSION:
        raise EventRejected(ErrorType.UNSUPPORTED_SPECVERSION, f"specversion is not {SPECVERSION!r}")
    event_type, event_id, data = envelope.get("type"), envelope.get("id"), envelope.get("data")
    if not isinstance(event_type, str) or not isinstance(event_id, str):
        raise EventRejected(
            ErrorType.MISSING_ATTRIBUTE, "attribute 'type' or 'id' is missing or not a string"
        )
    kind = _KINDS.get(event_type)
    if kind is None:
        raise EventRejected(ErrorType.UNKNOWN_TYPE, f"type {clip(event_type, 100)!r} is not a lifecycle step")
    if not isinstance(data, dict):
        raise EventRejected(ErrorType.MALFORMED, "the data is not a JSON object")
    try:
        step = StepEventData.model_validate(data)
    except ValidationError as exc:
        # Field names and what was wrong with them; pydantic's own text would quote the values.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'data'}: {error['msg']}"
            for error in exc.errors()
        )
        raise EventRejected(ErrorType.INVALID_DATA, clip(problems, 500)) from None
    if step.kind is not kind:
        raise EventRejected(ErrorType.INVALID_DATA, f"a {kind.value} event carries a {step.kind.value} step")
    if event_id != step_event_id(step.incident_id, step.seq):
        raise EventRejected(ErrorType.INVALID_ATTRIBUTE, "the id is not `<incident_id>:<seq>` of its data")
    if key is not None and key != step.incident_id.encode("utf-8"):
        raise EventRejected(ErrorType.KEY_MISMATCH, "the Kafka key is not the data's incident_id")
    return step


def step_events(batch: StepBatch, *, include_notes: bool = False) -> list[KafkaMessage]:
    """One structured-mode message (key, value, headers) per step of the batch, in order; the notes'
    text only if `include_notes` (the operator's GRIDFLOW_EVENTS_INCLUDE_NOTES)."""
    messages: list[KafkaMessage] = []
    for step in batch.steps:
        attributes: dict[str, ExtensionValue] = {
            "id": step_event_id(batch.incident_id, step.seq),
            "source": LIFECYCLE_SOURCE,
            "type": step_event_type(step.kind),
            "subject": batch.incident_id,
            "time": format_time(step.at),
        }
        data = step_event_data(batch, step, include_notes=include_notes).model_dump(mode="json")
        messages.append(structured_message(attributes, data, batch.incident_id))
    return messages


__all__ = [
    "LIFECYCLE_SOURCE",
    "StepEventData",
    "read_step_event",
    "step_event_data",
    "step_event_id",
    "step_event_type",
    "step_events",
]
