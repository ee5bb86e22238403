"""The inbound event contract: CloudEvents types, the models of their data, and the commands they become.

The data of `gridflow.incident.reported.v1` is `gridflow.incident.Incident` itself; every other type is a
lifecycle event whose data names the incident and carries the fields of one command of
`gridflow.domain.lifecycle.commands`.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.errors import ErrorType, EventRejected, clip
from gridflow.domain.incident import AwareDatetime, Identifier, Incident, Rating
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    LifecycleCommand,
    Pause,
    Progress,
    RefuseExtension,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    Resume,
    Transfer,
    Verify,
    Withdraw,
)
from gridflow.domain.rules.durations import Limit

#: Default topics.
INCIDENTS_TOPIC: Final = "gridflow.incidents"
INCIDENT_EVENTS_TOPIC: Final = "gridflow.incident-events"
DEAD_LETTER_TOPIC: Final = "gridflow.incidents.dlq"

#: Headers a dead letter carries besides the original ones.
DLQ_ERROR_TYPE_HEADER: Final = "gridflow.error.type"
DLQ_ERROR_MESSAGE_HEADER: Final = "gridflow.error.message"
DLQ_SOURCE_TOPIC_HEADER: Final = "gridflow.source.topic"
DLQ_SOURCE_PARTITION_HEADER: Final = "gridflow.source.partition"
DLQ_SOURCE_OFFSET_HEADER: Final = "gridflow.source.offset"
DLQ_VALUE_DROPPED_HEADER: Final = "gridflow.value.dropped"  # the original value's size, when not kept

TYPE_PREFIX: Final = "gridflow.incident."

REPORTED: Final = "gridflow.incident.reported.v1"
ACCEPTED: Final = "gridflow.incident.accepted.v1"
PROGRESS: Final = "gridflow.incident.progress.v1"
ESCALATION_REQUESTED: Final = "gridflow.incident.escalation_requested.v1"
TRANSFERRED: Final = "gridflow.incident.transferred.v1"
EXTENSION_REQUESTED: Final = "gridflow.incident.extension_requested.v1"
EXTENSION_GRANTED: Final = "gridflow.incident.extension_granted.v1"
EXTENSION_REFUSED: Final = "gridflow.incident.extension_refused.v1"
PAUSED: Final = "gridflow.incident.paused.v1"
RESUMED: Final = "gridflow.incident.resumed.v1"
RESOLVED: Final = "gridflow.incident.resolved.v1"
VERIFIED: Final = "gridflow.incident.verified.v1"
REJECTED: Final = "gridflow.incident.rejected.v1"
FEEDBACK: Final = "gridflow.incident.feedback.v1"
WITHDRAWN: Final = "gridflow.incident.withdrawn.v1"

#: RFC 3339 `date-time`: full date, `T` (or `t`, or a space, which RFC 3339 allows), full time, a zone.
RFC3339_PATTERN: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)

#: How far ahead of gridflow's clock an event's own timestamp (`reported_at`, `at`) may be. Synchronised
#: clocks differ by far less; local time sent as UTC (`08:00Z` for 08:00 in Shanghai) is hours ahead, and
#: year 2300 is never right. Kept, such a moment would sort the incident first in every "latest" view and
#: date it wrongly in the archive and its reports.
MAX_AHEAD: Final = timedelta(minutes=15)

ReportedData = Incident
"""The data of `gridflow.incident.reported.v1`: the incident as reported."""


class _LifecycleData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Identifier
    at: AwareDatetime | None = None  # when the upstream app says it happened (RFC 3339, with a zone)


class _UnitData(_LifecycleData):
    unit_id: Identifier  # the unit that holds the incident


class AcceptedData(_UnitData):
    """The data of `gridflow.incident.accepted.v1`: the holding unit takes the incident on."""

    handler: str | None = Field(default=None, max_length=200)


class ProgressData(_UnitData):
    """The data of `gridflow.incident.progress.v1`: a note about work under way."""

    note: str | None = Field(default=None, max_length=2000)


class EscalationRequestedData(_UnitData):
    """The data of `gridflow.incident.escalation_requested.v1`: the holding unit asks to pass it up."""

    reason: EscalationRequestReason
    note: str | None = Field(default=None, max_length=2000)


class TransferredData(_LifecycleData):
    """The data of `gridflow.incident.transferred.v1`: the incident moves to another unit at the same
    level (the right department), by the holding unit (`unit_id`) or by the dispatch centre (none)."""

    unit_id: Identifier | None = None
    to_unit: Identifier
    reason: str = Field(min_length=1, max_length=500)


class ExtensionRequestedData(_UnitData):
    """The data of `gridflow.incident.extension_requested.v1`: the holding unit asks for more time to
    resolve (`extra`: a duration such as `8h`, or working days such as `2wd`)."""

    extra: Limit
    reason: str = Field(min_length=1, max_length=500)


class ExtensionGrantedData(_UnitData):
    """The data of `gridflow.incident.extension_granted.v1`: the approver (`unit_id`) grants it."""

    note: str | None = Field(default=None, max_length=2000)


class ExtensionRefusedData(_UnitData):
    """The data of `gridflow.incident.extension_refused.v1`: the approver (`unit_id`) refuses it."""

    reason: str = Field(min_length=1, max_length=500)


class PausedData(_UnitData):
    """The data of `gridflow.incident.paused.v1`: the resolve clock stops (waiting for the resident, parts,
    the weather)."""

    reason: str | None = Field(default=None, max_length=500)


class ResumedData(_UnitData):
    """The data of `gridflow.incident.resumed.v1`: the resolve clock runs again."""

    reason: str | None = Field(default=None, max_length=500)


class ResolvedData(_UnitData):
    """The data of `gridflow.incident.resolved.v1`: the holding unit reports the incident solved."""

    resolution: str = Field(min_length=1, max_length=2000)


class VerifiedData(_UnitData):
    """The data of `gridflow.incident.verified.v1`: the inspector (`unit_id`) confirms the fix."""

    note: str | None = Field(default=None, max_length=2000)


class RejectedData(_UnitData):
    """The data of `gridflow.incident.rejected.v1`: the inspector (`unit_id`) finds the fix not done
    and sends the incident back to the unit that resolved it (rework)."""

    reason: str = Field(min_length=1, max_length=500)


class FeedbackData(_LifecycleData):
    """The data of `gridflow.incident.feedback.v1`: the return visit, the resident's rating of the
    resolution and, when asked, whether the problem was solved (not solved reopens the case)."""

    rating: Rating
    solved: bool | None = None  # absent: the question was not asked (events from before it existed)
    comment: str | None = Field(default=None, max_length=2000)


class WithdrawnData(_LifecycleData):
    """The data of `gridflow.incident.withdrawn.v1`: the reporter or the hotline withdraws the incident."""

    reason: str | None = Field(default=None, max_length=500)


LifecycleData = (
    AcceptedData
    | ProgressData
    | EscalationRequestedData
    | TransferredData
    | ExtensionRequestedData
    | ExtensionGrantedData
    | ExtensionRefusedData
    | PausedData
    | ResumedData
    | ResolvedData
    | VerifiedData
    | RejectedData
    | FeedbackData
    | WithdrawnData
)
EventData = Incident | LifecycleData

#: Every inbound type and the model of its data, in the order of the product's contract table.
DATA_MODELS: Final[Mapping[str, type[EventData]]] = types.MappingProxyType(
    {
        REPORTED: Incident,
        ACCEPTED: AcceptedData,
        PROGRESS: ProgressData,
        ESCALATION_REQUESTED: EscalationRequestedData,
        TRANSFERRED: TransferredData,
        EXTENSION_REQUESTED: ExtensionRequestedData,
        EXTENSION_GRANTED: ExtensionGrantedData,
        EXTENSION_REFUSED: ExtensionRefusedData,
        PAUSED: PausedData,
        RESUMED: ResumedData,
        RESOLVED: ResolvedData,
        VERIFIED: VerifiedData,
        REJECTED: RejectedData,
        FEEDBACK: FeedbackData,
        WITHDRAWN: WithdrawnData,
    }
)

INBOUND_TYPES: Final[tuple[str, ...]] = tuple(DATA_MODELS)
LIFECYCLE_TYPES: Final[tuple[str, ...]] = tuple(t for t in INBOUND_TYPES if t != REPORTED)

_TYPE_OF: Final[Mapping[type[BaseModel], str]] = {model: name for name, model in DATA_MODELS.items()}


def event_type_of(data: EventData) -> str:
    """The inbound event type whose data `data` is."""
    return _TYPE_OF[type(data)]


def to_command(data: LifecycleData) -> LifecycleCommand:
    """The workflow command a lifecycle event asks for.

    `resumed.v1` may carry a reason, which the `Resume` command has no field for: it is not passed on.
    """
    match data:
        case AcceptedData():
            return Accept(unit_id=data.unit_id, handler=data.handler, at=data.at)
        case ProgressData():
            return Progress(unit_id=data.unit_id, note=data.note, at=data.at)
        case EscalationRequestedData():
            return RequestEscalation(unit_id=data.unit_id, reason=data.reason, note=data.note, at=data.at)
        case TransferredData():
            return Transfer(unit_id=data.unit_id, to_unit=data.to_unit, reason=data.reason, at=data.at)
        case ExtensionRequestedData():
            return RequestExtension(unit_id=data.unit_id, extra=data.extra, reason=data.reason, at=data.at)
        case ExtensionGrantedData():
            return GrantExtension(unit_id=data.unit_id, note=data.note, at=data.at)
        case ExtensionRefusedData():
            return RefuseExtension(unit_id=data.unit_id, reason=data.reason, at=data.at)
        case PausedData():
            return Pause(unit_id=data.unit_id, reason=data.reason, at=data.at)
        case ResumedData():
            return Resume(unit_id=data.unit_id, at=data.at)
        case ResolvedData():
            return Resolve(unit_id=data.unit_id, resolution=data.resolution, at=data.at)
        case VerifiedData():
            return Verify(unit_id=data.unit_id, note=data.note, at=data.at)
        case RejectedData():
            return Reject(unit_id=data.unit_id, reason=data.reason, at=data.at)
        case FeedbackData():
            return Feedback(rating=data.rating, solved=data.solved, comment=data.comment, at=data.at)
        case WithdrawnData():
            return Withdraw(reason=data.reason, at=data.at)
    raise TypeError(f"not lifecycle event data: {type(data).__name__}")  # pragma: no cover


def _is_datetime_field(annotation: object) -> bool:
    if annotation is datetime:
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_datetime_field(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_datetime_field(arg) for arg in typing.get_args(annotation))
    return False


def _timestamp_problems(model: type[BaseModel], data: Mapping[str, object]) -> dict[str, str]:
    """RFC 3339 checks for the model's top-level timestamps given as strings (pydantic is more lenient)."""
    problems: dict[str, str] = {}
    for name, info in model.model_fields.items():
        value = data.get(name)
        if (
            isinstance(value, str)
            and _is_datetime_field(info.annotation)
            and not RFC3339_PATTERN.match(value)
        ):
            problems[name] = (
                "Input should be an RFC 3339 timestamp with a time zone (e.g. 2026-11-23T08:00:00Z)"
            )
    return problems


def _ahead_problems(validated: BaseModel, now: datetime) -> list[str]:
    """The validated model's top-level timestamps more than MAX_AHEAD ahead of `now` (never quoted)."""
    latest = now.astimezone(UTC) + MAX_AHEAD
    problems: list[str] = []
    for name, info in type(validated).model_fields.items():
        value = getattr(validated, name)
        # The comparison cannot overflow: AwareDatetime keeps every timestamp within years 1-9999 in UTC.
        if _is_datetime_field(info.annotation) and isinstance(value, datetime) and value > latest:
            minutes = int(MAX_AHEAD.total_seconds() // 60)
            problems.append(
                f"data.{name}: more than {minutes} minutes ahead of gridflow's clock "
                "(check the producer's clock and time zone)"
            )
    return problems


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def validation_problems(error: ValidationError, prefix: str = "data") -> list[str]:
    """One `path: problem` line per pydantic error, without the offending input (it may be personal data)."""
    lines = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        path = ".".join([prefix, *(str(part) for part in detail["loc"])])
        lines.append(f"{path}: {detail['msg']}")
    return lines


def validate_data(event_type: str, data: Mapping[str, Any], *, now: datetime | None = None) -> EventData:
    """Validate an event's data (as parsed from JSON) against its type's model, strictly.

    Strict JSON validation: no numbers for timestamps or strings for numbers; timestamps must be RFC 3339
    with a zone, and at most MAX_AHEAD ahead of `now` (default: this machine's clock). Raises
    `EventRejected` (`unknown_type`, `invalid_data`, or `malformed` for data that cannot be JSON).
    """
    model = DATA_MODELS.get(event_type)
    if model is None:
        raise EventRejected(ErrorType.UNKNOWN_TYPE, f"unknown event type {clip(event_type, 200)!r}")
    try:
        raw = json.dumps(data, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EventRejected(ErrorType.MALFORMED, f"data is not JSON: {exc}") from exc
    timestamps = _timestamp_problems(model, data)
    problems: list[str] = []
    try:
        validated = model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = validation_problems(exc)
    else:
        problems = _ahead_problems(validated, now or datetime.now(UTC))
        if not timestamps and not problems:
            return validated
    seen = {line.split(":", 1)[0] for line in problems}
    problems += [f"data.{name}: {msg}" for name, msg in timestamps.items() if f"data.{name}" not in seen]
    raise EventRejected(ErrorType.INVALID_DATA, "; ".join(problems))


__all__ = [
    "ACCEPTED",
    "DATA_MODELS",
    "DEAD_LETTER_TOPIC",
    "DLQ_ERROR_MESSAGE_HEADER",
    "DLQ_ERROR_TYPE_HEADER",
    "DLQ_SOURCE_OFFSET_HEADER",
    "DLQ_SOURCE_PARTITION_HEADER",
    "DLQ_SOURCE_TOPIC_HEADER",
    "DLQ_VALUE_DROPPED_HEADER",
    "ESCALATION_REQUESTED",
    "EXTENSION_GRANTED",
    "EXTENSION_REFUSED",
    "EXTENSION_REQUESTED",
    "FEEDBACK",
    "INBOUND_TYPES",
    "INCIDENTS_TOPIC",
    "INCIDENT_EVENTS_TOPIC",
    "LIFECYCLE_TYPES",
    "MAX_AHEAD",
    "PAUSED",
    "PROGRESS",
    "REJECTED",
    "REPORTED",
    "RESOLVED",
    "RESUMED",
    "TRANSFERRED",
    "TYPE_PREFIX",
    "VERIFIED",
    "WITHDRAWN",
    "AcceptedData",
    "EscalationRequestedData",
    "EventData",
    "ExtensionGrantedData",
    "ExtensionRefusedData",
    "ExtensionRequestedData",
    "FeedbackData",
    "LifecycleData",
    "PausedData",
    "ProgressData",
    "RejectedData",
    "ReportedData",
    "ResolvedData",
    "ResumedData",
    "TransferredData",
    "VerifiedData",
    "WithdrawnData",
    "event_type_of",
    "to_command",
    "validate_data",
    "validation_problems",
]
