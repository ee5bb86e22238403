"""JSON Schemas for every event's data and the CloudEvents envelope, and an AsyncAPI 3.0 document.

`export_schemas(directory)` writes them with sorted keys, so the output is the same byte for byte for the
same code and can be committed and diffed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from events.cloudevents import (
    CE_HEADER_PREFIX,
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    SPECVERSION,
    STRUCTURED_CONTENT_TYPE,
)
from events.contract import (
    DATA_MODELS,
    DEAD_LETTER_TOPIC,
    DLQ_ERROR_MESSAGE_HEADER,
    DLQ_ERROR_TYPE_HEADER,
    DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_PARTITION_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    INBOUND_TYPES,
    INCIDENT_EVENTS_TOPIC,
    INCIDENTS_TOPIC,
    TYPE_PREFIX,
)
from events.errors import ErrorType
from events.lifecycle import LIFECYCLE_SOURCE, StepEventData
from gridflow.domain.lifecycle import StepKind

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING_VERSION: Final = "0.5.0"
#: The version of the event contract the documents describe (1.1: lifecycle steps carry `has_note`, and
#: their `note` is null unless the operator publishes notes; 1.2: the supervision cycle's types, transfer,
#: extension and verification, and feedback's optional `solved`; steps carry from_unit, actor,
#: extension, solved and deferred).
CONTRACT_VERSION: Final = "1.2.0"

ENVELOPE_SCHEMA_FILE: Final = "cloudevent-envelope.schema.json"
STEP_SCHEMA_FILE: Final = "lifecycle-step.v1.schema.json"
ASYNCAPI_FILE: Final = "asyncapi.yaml"

Document = dict[str, Any]


def data_schema_file(event_type: str) -> str:
    """The file name of an inbound type's data schema: `<type>.schema.json`."""
    return f"{event_type}.schema.json"


def _model_schema(model: type[BaseModel], mode: JsonSchemaMode, title: str) -> Document:
    schema: Document = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(mode=mode)}
    schema["title"] = title
    return schema


def data_schema(event_type: str) -> Document:
    """The JSON Schema (2020-12) of an inbound type's data."""
    return _model_schema(DATA_MODELS[event_type], "validation", f"data of {event_type}")


def step_schema() -> Document:
    """The JSON Schema (2020-12) of the data of every outbound lifecycle event."""
    return _model_schema(StepEventData, "serialization", f"data of {TYPE_PREFIX}<step kind>.v1 (outbound)")


def _definitions(ref_template: str) -> tuple[dict[str, Document], dict[str, Document]]:
    """Every event data schema, sharing one set of definitions: (reference per model name, definitions)."""
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (model, "validation") for model in DATA_MODELS.values()
    ]
    pairs.append((StepEventData, "serialization"))
    references, top = models_json_schema(pairs, ref_template=ref_template)
    return {model.__name__: ref for (model, _), ref in references.items()}, dict(top.get("$defs", {}))


def _envelope_core(type_schema: Document) -> Document:
    """The CloudEvents 1.0 JSON format as gridflow reads it: attributes, extensions, JSON data."""
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": {"type": "string", "minLength": 1, "description": "Unique per source; a retry repeats it."},
            "source": {"type": "string", "minLength": 1, "format": "uri-reference"},
            "type": type_schema,
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with a time zone.",
            },
            "subject": {"type": "string", "minLength": 1, "description": "The incident id."},
            "datacontenttype": {
                "type": "string",
                "description": "A JSON media type (application/json, application/*+json); absent means JSON.",
            },
            "dataschema": {"type": "string", "minLength": 1, "format": "uri"},
            "data": {"type": "object"},
            "data_base64": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "Instead of data: the data's JSON, base64-encoded.",
            },
        },
        "propertyNames": {"pattern": "^([a-z0-9]+|data_base64)$"},
        "additionalProperties": {
            "type": ["string", "integer", "boolean"],
            "description": "Extension attributes.",
        },
        "anyOf": [{"required": ["data"]}, {"required": ["data_base64"]}],
        "not": {"required": ["data", "data_base64"]},
    }


def envelope_schema() -> Document:
    """The JSON Schema (2020-12) of an inbound structured-mode message value: the envelope and its data."""
    references, definitions = _definitions("#/$defs/{model}")
    schema: Document = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "gridflow inbound CloudEvent (structured mode, JSON format)",
        "description": (
            f"The value of a message on {INCIDENTS_TOPIC} with content-type {STRUCTURED_CONTENT_TYPE}. "
            "The data of each type is given by the type's schema."
        ),
        **_envelope_core({"enum": list(INBOUND_TYPES)}),
        "allOf": [
            {
                "if": {"properties": {"type": {"const": event_type}}, "required": ["type"]},
                "then": {"properties": {"data": references[model.__name__]}},
            }
            for event_type, model in DATA_MODELS.items()
        ],
        "$defs": definitions,
    }
    return schema


def _short_name(event_type: str) -> str:
    """`gridflow.incident.escalation_requested.v1` -> `escalationRequested`."""
    words = event_type.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0].split("_")
    return words[0] + "".join(word.capitalize() for word in words[1:])


def _kafka_key(description: str) -> Document:
    return {
        "kafka": {
            "bindingVersion": KAFKA_BINDING_VERSION,
            "key": {"type": "string", "description": description},
        }
    }


def _inbound_messages(references: Mapping[str, Document]) -> dict[str, Document]:
    messages: dict[str, Document] = {}
    key = _kafka_key("The incident id (data.incident_id): all events of an incident keep their order.")
    for event_type, model in DATA_MODELS.items():
        name = _short_name(event_type)
        data_ref = references[model.__name__]
        messages[f"{name}Structured"] = {
            "name": f"{name}Structured",
            "title": f"{event_type} (structured mode)",
            "summary": (model.__doc__ or event_type).strip().splitlines()[0],
            "contentType": STRUCTURED_CONTENT_TYPE,
            "headers": {
                "type": "object",
                "required": [CONTENT_TYPE_HEADER],
                "properties": {
                    CONTENT_TYPE_HEADER: {
                        "type": "string",
                        "description": f"{STRUCTURED_CONTENT_TYPE}, optionally with parameters (any case).",
                    }
                },
            },
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventEnvelope"},
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"type": {"const": event_type}, "data": data_ref},
                    },
                ]
            },
            "bindings": key,
        }
        messages[f"{name}Binary"] = {
            "name": f"{name}Binary",
            "title": f"{event_type} (binary mode)",
            "summary": (model.__doc__ or event_type).strip().splitlines()[0],
            "contentType": JSON_CONTENT_TYPE,
            "headers": {
                "type": "object",
                "required": [f"{CE_HEADER_PREFIX}{name}" for name in ("specversion", "id", "source", "type")],
                "properties": {
                    f"{CE_HEADER_PREFIX}specversion": {"const": SPECVERSION},
                    f"{CE_HEADER_PREFIX}id": {"type": "string", "minLength": 1},
                    f"{CE_HEADER_PREFIX}source": {"type": "string", "minLength": 1},
                    f"{CE_HEADER_PREFIX}type": {"const": event_type},
                    f"{CE_HEADER_PREFIX}time": {"type": "string", "format": "date-time"},
                    f"{CE_HEADER_PREFIX}subject": {"type": "string", "minLength": 1},
                    CONTENT_TYPE_HEADER: {
                        "type": "string",
                        "description": "application/json (or another JSON media type); absent means JSON.",
                    },
                },
                "additionalProperties": {
                    "type": "string",
                    "description": "Extension attributes (ce_<name>).",
                },
            },
            "payload": data_ref,
            "bindings": key,
        }
    return messages


def asyncapi_document() -> Document:
    """The AsyncAPI 3.0 document of gridflow's three topics."""
    references, definitions = _definitions("#/components/schemas/{model}")
    inbound = _inbound_messages(references)
    step_types = sorted(f"{TYPE_PREFIX}{kind.value}.v1" for kind in StepKind)
    error_types = ", ".join(error.value for error in ErrorType)
    schemas: dict[str, Document] = {
        **definitions,
        "CloudEventEnvelope": _envelope_core({"type": "string", "minLength": 1}),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "gridflow incident events",
            "version": CONTRACT_VERSION,
            "description": (
                "Incidents and their lifecycle events arrive as CloudEvents 1.0 on the incidents topic, in "
                "either Kafka content mode; gridflow publishes every step of an incident's life on the "
                "incident-events topic, and puts every message it cannot take on the dead-letter topic."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": JSON_CONTENT_TYPE,
        "channels": {
            "incidents": {
                "address": INCIDENTS_TOPIC,
                "title": "Inbound incidents and lifecycle events",
                "description": (
                    "Upstream apps publish here; gridflow consumes. Keyed by incident id. Every type in "
                    "structured mode (the value is the CloudEvents JSON envelope) or binary mode (ce_* "
                    "headers, the value is the data)."
                ),
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in inbound},
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION, "topic": INCIDENTS_TOPIC}},
            },
            "incidentEvents": {
                "address": INCIDENT_EVENTS_TOPIC,
                "title": "Outbound lifecycle events",
                "description": (
                    "One structured-mode CloudEvent per step of an incident's timeline, keyed by incident id,"
                    f" from {LIFECYCLE_SOURCE}, id <incident_id>:<seq> (a retry repeats it). A step's note "
                    "(people's own words) is null unless the operator publishes notes "
                    "(GRIDFLOW_EVENTS_INCLUDE_NOTES); has_note says whether there is one."
                ),
                "messages": {"lifecycleStep": {"$ref": "#/components/messages/lifecycleStep"}},
                "bindings": {
                    "kafka": {"bindingVersion": KAFKA_BINDING_VERSION, "topic": INCIDENT_EVENTS_TOPIC}
                },
            },
            "deadLetters": {
                "address": DEAD_LETTER_TOPIC,
                "title": "Dead letters",
                "description": (
                    "Every inbound message gridflow could not take, unchanged, with headers saying why."
                ),
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION, "topic": DEAD_LETTER_TOPIC}},
            },
        },
        "operations": {
            "receiveIncidents": {
                "action": "receive",
                "title": "Take in incidents and lifecycle events",
                "channel": {"$ref": "#/channels/incidents"},
                "messages": [{"$ref": f"#/channels/incidents/messages/{name}"} for name in inbound],
            },
            "sendIncidentEvents": {
                "action": "send",
                "title": "Publish lifecycle steps",
                "channel": {"$ref": "#/channels/incidentEvents"},
                "messages": [{"$ref": "#/channels/incidentEvents/messages/lifecycleStep"}],
            },
            "sendDeadLetters": {
                "action": "send",
                "title": "Dead-letter rejected messages",
                "channel": {"$ref": "#/channels/deadLetters"},
                "messages": [{"$ref": "#/channels/deadLetters/messages/deadLetter"}],
            },
        },
        "components": {
            "schemas": schemas,
            "messages": {
                **inbound,
                "lifecycleStep": {
                    "name": "lifecycleStep",
                    "title": f"{TYPE_PREFIX}<step kind>.v1",
                    "summary": "A step of an incident's life (no personal data of the reporter).",
                    "description": (
                        "data.note holds what a person wrote with the step (a handler's name, a "
                        "resolution, a progress note, a resident's comment), which may be personal data: "
                        "it is null unless the operator sets GRIDFLOW_EVENTS_INCLUDE_NOTES. data.has_note "
                        "is always there and says whether the step has a note."
                    ),
                    "contentType": STRUCTURED_CONTENT_TYPE,
                    "payload": {
                        "allOf": [
                            {"$ref": "#/components/schemas/CloudEventEnvelope"},
                            {
                                "type": "object",
                                "required": ["data", "subject", "time"],
                                "properties": {
                                    "source": {"const": LIFECYCLE_SOURCE},
                                    "type": {"enum": step_types},
                                    "data": references[StepEventData.__name__],
                                },
                            },
                        ]
                    },
                    "bindings": _kafka_key("The incident id."),
                },
                "deadLetter": {
                    "name": "deadLetter",
                    "title": "Dead letter",
                    "summary": "An inbound message gridflow rejected: the original key, value and headers.",
                    "contentType": "application/octet-stream",
                    "headers": {
                        "type": "object",
                        "required": [
                            DLQ_ERROR_TYPE_HEADER,
                            DLQ_ERROR_MESSAGE_HEADER,
                            DLQ_SOURCE_TOPIC_HEADER,
                            DLQ_SOURCE_PARTITION_HEADER,
                            DLQ_SOURCE_OFFSET_HEADER,
                        ],
                        "properties": {
                            DLQ_ERROR_TYPE_HEADER: {
                                "type": "string",
                                "description": f"Why, machine-readable: one of {error_types}.",
                            },
                            DLQ_ERROR_MESSAGE_HEADER: {"type": "string", "description": "Why, for people."},
                            DLQ_SOURCE_TOPIC_HEADER: {"type": "string"},
                            DLQ_SOURCE_PARTITION_HEADER: {"type": "string", "pattern": "^[0-9]+$"},
                            DLQ_SOURCE_OFFSET_HEADER: {"type": "string", "pattern": "^[0-9]+$"},
                        },
                        "additionalProperties": {
                            "type": "string",
                            "description": "The original message's headers, unchanged.",
                        },
                    },
                    "payload": {"description": "The original value, byte for byte (it may not be JSON)."},
                    "bindings": _kafka_key("The original key, unchanged."),
                },
            },
        },
    }


def _json_text(document: Document) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(document: Document) -> str:
    plain = json.loads(json.dumps(document))  # distinct objects everywhere: no YAML anchors and aliases
    return yaml.safe_dump(plain, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100)


def export_schemas(directory: Path) -> list[Path]:
    """Write every schema and the AsyncAPI document into `directory` (created if needed).

    Returns the paths written: the data schema of each inbound type, the lifecycle step schema, the
    envelope schema, the AsyncAPI document.
    """
    directory.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {
        data_schema_file(event_type): _json_text(data_schema(event_type)) for event_type in INBOUND_TYPES
    }
    texts[STEP_SCHEMA_FILE] = _json_text(step_schema())
    texts[ENVELOPE_SCHEMA_FILE] = _json_text(envelope_schema())
    texts[ASYNCAPI_FILE] = _yaml_text(asyncapi_document())
    written: list[Path] = []
    for name, text in texts.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = [
    "ASYNCAPI_FILE",
    "CONTRACT_VERSION",
    "ENVELOPE_SCHEMA_FILE",
    "STEP_SCHEMA_FILE",
    "asyncapi_document",
    "data_schema",
    "data_schema_file",
    "envelope_schema",
    "export_schemas",
    "step_schema",
]
