"""Outbound lifecycle events: every step of an incident's timeline as a structured-mode CloudEvent.

Each step becomes `gridflow.incident.<kind>.v1` from `gridflow/incident-workflow`, keyed and subjected by
the incident id. Its id is `<incident_id>:<seq>`, so an activity that is retried publishes the same ids
(and the same bytes) again and consumers can deduplicate.
"""

from __future__ import annotations

from typing import Final

from pydantic import ConfigDict

from events.cloudevents import ExtensionValue, KafkaMessage, format_time, structured_message
from events.contract import TYPE_PREFIX
from gridflow.domain.lifecycle import IncidentContext, IncidentStep, Step, StepBatch, StepKind

LIFECYCLE_SOURCE: Final = "gridflow/incident-workflow"


class StepEventData(IncidentStep):
    """The data of an outbound lifecycle event: the step, and the incident's low-cardinality context."""

    # Every field is always present on the wire (null when unset), so the schema lists them all as required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


def step_event_type(kind: StepKind) -> str:
    """The CloudEvents type of a step of a kind: `gridflow.incident.<kind>.v1`."""
    return f"{TYPE_PREFIX}{kind.value}.v1"


def step_event_id(incident_id: str, seq: int) -> str:
    """The stable CloudEvents id of a step: `<incident_id>:<seq>`."""
    return f"{incident_id}:{seq}"


def step_event_data(batch: StepBatch, step: Step) -> StepEventData:
    """A step with its incident's context."""
    context = IncidentContext.model_validate(batch, from_attributes=True)
    return StepEventData(**step.model_dump(), **context.model_dump())


def step_events(batch: StepBatch) -> list[KafkaMessage]:
    """One structured-mode message (key, value, headers) per step of the batch, in order."""
    messages: list[KafkaMessage] = []
    for step in batch.steps:
        attributes: dict[str, ExtensionValue] = {
            "id": step_event_id(batch.incident_id, step.seq),
            "source": LIFECYCLE_SOURCE,
            "type": step_event_type(step.kind),
            "subject": batch.incident_id,
            "time": format_time(step.at),
        }
        data = step_event_data(batch, step).model_dump(mode="json")
        messages.append(structured_message(attributes, data, batch.incident_id))
    return messages


__all__ = [
    "LIFECYCLE_SOURCE",
    "StepEventData",
    "step_event_data",
    "step_event_id",
    "step_event_type",
    "step_events",
]
