"""CloudEvents 1.0 over Kafka, both content modes, by hand: strict parsing of inbound messages, and encoding.

Structured mode: the `content-type` header starts with `application/cloudevents+json`, the value is the JSON
envelope (attributes plus `data`, or `data_base64` holding JSON). Binary mode: the attributes are `ce_*`
headers, `content-type` is the data's media type (JSON; absent means JSON), the value is the data.

`parse_message` turns any bytes into either an `InboundEvent` or an `EventRejected` with a stable
`error_type` (see `events.errors.ErrorType`); it raises nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel

from events.contract import DATA_MODELS, EventData, validate_data
from events.errors import ErrorType, EventRejected, clip

SPECVERSION: Final = "1.0"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
JSON_CONTENT_TYPE: Final = "application/json"
CONTENT_TYPE_HEADER: Final = "content-type"
CE_HEADER_PREFIX: Final = "ce_"

#: Largest message value accepted by default (bytes).
DEFAULT_MAX_BYTES: Final = 256 * 1024
#: Deepest JSON nesting accepted (objects and arrays; the envelope itself is level 1).
MAX_JSON_DEPTH: Final = 32

Header = tuple[str, bytes]
KafkaMessage = tuple[bytes, bytes, list[Header]]
"""A message to produce: (key, value, headers)."""

ContentMode = Literal["structured", "binary"]
ExtensionValue = str | int | bool

_REQUIRED: Final = ("id", "source", "type")
_OPTIONAL: Final = ("time", "subject", "datacontenttype", "dataschema")
_EXTENSION_NAME: Final = re.compile(r"^[a-z0-9]+$", re.ASCII)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: What a CloudEvents String must not hold besides lone surrogates: controls and noncharacters.
_NOT_IN_STRING: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef"
    + "".join(chr(p << 16 | 0xFFFE) + chr(p << 16 | 0xFFFF) for p in range(17))
    + "]"
)
_INT32: Final = range(-(2**31), 2**31)
_RFC3339: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A CloudEvent of the inbound contract, its data validated."""

    id: str
    source: str
    type: str
    data: EventData
    time: datetime | None = None
    subject: str | None = None
    mode: ContentMode = "structured"  # the content mode it arrived in
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)

    @property
    def incident_id(self) -> str:
        """The incident the event is about (also its Kafka key)."""
        return self.data.incident_id


# --- time ------------------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with a zone; ValueError otherwise. Digits past microseconds are dropped."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp with a time zone")
    day, clock, fraction, zone = match.groups()
    fraction = f".{fraction[:6]}" if fraction else ""
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{day}T{clock}{fraction}{zone}")


def format_time(moment: datetime) -> str:
    """RFC 3339 with `Z` for UTC. A naive moment is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --- JSON ------------------------------------------------------------------------------------------------


class _BadJSON(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _BadJSON(f"duplicate key {clip(key, 100)!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _BadJSON(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJSON(f"number out of range: {clip(text, 50)}")
    return value


def _check_tree(document: object, what: str) -> None:
    """Reject nesting deeper than MAX_JSON_DEPTH and lone surrogates (which cannot be encoded again)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise EventRejected(ErrorType.MALFORMED, f"{what} holds a lone surrogate (\\ud800-\\udfff)")
            continue
        if isinstance(node, dict):
            children: list[object] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = list(node)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise EventRejected(ErrorType.MALFORMED, f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def load_json(raw: bytes, what: str = "value") -> object:
    """Decode strict JSON (UTF-8, no NaN, no duplicate keys, bounded depth); EventRejected `malformed`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected(ErrorType.MALFORMED, f"{what} is not UTF-8 (byte {exc.start})") from exc
    try:
        document: object = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError as exc:
        raise EventRejected(ErrorType.MALFORMED, f"{what} is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise EventRejected(
            ErrorType.MALFORMED, f"{what} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except ValueError as exc:  # our hooks, and integers too long to convert
        raise EventRejected(ErrorType.MALFORMED, f"{what} is not acceptable JSON: {exc}") from exc
    _check_tree(document, what)
    return document


def dump_json(document: object) -> bytes:
    """Compact, key-sorted UTF-8 JSON (the same input gives the same bytes)."""
    return json.dumps(
        document, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")


# --- parsing ---------------------------------------------------------------------------------------------


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json_media_type(content_type: str) -> bool:
    media = _media_type(content_type)
    return media == JSON_CONTENT_TYPE or (media.startswith("application/") and media.endswith("+json"))


def _decode_headers(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    """The CloudEvents-relevant headers (`content-type`, `ce_*`), names lower-cased, values decoded."""
    relevant: dict[str, str] = {}
    for name, value in headers:
        if not isinstance(name, str):
            raise EventRejected(ErrorType.MALFORMED, "a header name is not a string")
        lowered = name.lower()
        if lowered != CONTENT_TYPE_HEADER and not lowered.startswith(CE_HEADER_PREFIX):
            continue
        if lowered in relevant:
            raise EventRejected(ErrorType.MALFORMED, f"header {clip(lowered, 100)!r} appears more than once")
        raw = b"" if value is None else value
        if not isinstance(raw, bytes | bytearray):
            raise EventRejected(ErrorType.MALFORMED, f"header {clip(lowered, 100)!r} is not bytes")
        try:
            relevant[lowered] = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventRejected(ErrorType.MALFORMED, f"header {clip(lowered, 100)!r} is not UTF-8") from exc
    return relevant


def _string_attribute(attributes: Mapping[str, object], name: str) -> str | None:
    value = attributes.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventRejected(ErrorType.INVALID_ATTRIBUTE, f"attribute {name!r} must be a string")
    if not value:
        raise EventRejected(ErrorType.INVALID_ATTRIBUTE, f"attribute {name!r} must not be empty")
    if _SURROGATE.search(value):
        raise EventRejected(ErrorType.MALFORMED, f"attribute {name!r} holds a lone surrogate")
    if _NOT_IN_STRING.search(value):
        raise EventRejected(
            ErrorType.INVALID_ATTRIBUTE, f"attribute {name!r} holds a control character or a noncharacter"
        )
    return value


def _extensions(attributes: Mapping[str, object]) -> dict[str, ExtensionValue]:
    extensions: dict[str, ExtensionValue] = {}
    for name, value in attributes.items():
        if name in ("specversion", *_REQUIRED, *_OPTIONAL):
            continue
        if not _EXTENSION_NAME.match(name):
            raise EventRejected(
                ErrorType.INVALID_ATTRIBUTE,
                f"attribute name {clip(name, 100)!r} is not lower-case letters and digits",
            )
        if name == "data":
            raise EventRejected(ErrorType.INVALID_ATTRIBUTE, "attribute name 'data' is reserved")
        if value is None:
            continue
        if isinstance(value, str) and _NOT_IN_STRING.search(value):
            raise EventRejected(
                ErrorType.INVALID_ATTRIBUTE, f"extension {name!r} holds a control character or a noncharacter"
            )
        if isinstance(value, bool | str) or (isinstance(value, int) and value in _INT32):
            extensions[name] = value
        else:
            raise EventRejected(
                ErrorType.INVALID_ATTRIBUTE, f"extension {name!r} must be a string, a boolean or an integer"
            )
    return extensions


def _event(
    attributes: Mapping[str, object],
    load_data: Callable[[], object],
    key: bytes | None,
    mode: ContentMode,
    now: datetime | None,
) -> InboundEvent:
    """Check the attributes, then read and validate the data, then compare the key: both modes, in order."""
    specversion = attributes.get("specversion")
    if specversion is None or specversion == "":
        raise EventRejected(ErrorType.MISSING_ATTRIBUTE, "attribute 'specversion' is missing")
    if specversion != SPECVERSION:
        shown = clip(specversion, 50) if isinstance(specversion, str) else type(specversion).__name__
        raise EventRejected(
            ErrorType.UNSUPPORTED_SPECVERSION,
            f"specversion {shown!r} is not supported (only {SPECVERSION!r})",
        )
    missing = [name for name in _REQUIRED if attributes.get(name) in (None, "")]
    if missing:
        raise EventRejected(
            ErrorType.MISSING_ATTRIBUTE, "missing attribute(s): " + ", ".join(repr(name) for name in missing)
        )
    event_id, source, event_type = (_string_attribute(attributes, name) or "" for name in _REQUIRED)
    if event_type not in DATA_MODELS:
        raise EventRejected(ErrorType.UNKNOWN_TYPE, f"unknown event type {clip(event_type, 200)!r}")
    time_text = _string_attribute(attributes, "time")
    try:
        time = parse_time(time_text) if time_text is not None else None
    except ValueError as exc:
        raise EventRejected(ErrorType.INVALID_ATTRIBUTE, f"attribute 'time': {exc}") from exc
    subject = _string_attribute(attributes, "subject")
    _string_attribute(attributes, "dataschema")
    content_type = _string_attribute(attributes, "datacontenttype")
    if content_type is not None and not _is_json_media_type(content_type):
        raise EventRejected(ErrorType.MALFORMED, f"data content type {clip(content_type, 100)!r} is not JSON")
    extensions = _extensions(attributes)
    data = load_data()
    if data is None:
        raise EventRejected(ErrorType.MALFORMED, "the event has no data")
    if not isinstance(data, dict):
        raise EventRejected(ErrorType.MALFORMED, f"data must be a JSON object, not {_json_kind(data)}")
    validated = validate_data(event_type, data, now=now)
    if key is not None:
        try:
            key_text: str | None = key.decode("utf-8")
        except UnicodeDecodeError:
            key_text = None
        if key_text != validated.incident_id:
            shown = repr(clip(key_text, 130)) if key_text is not None else "(not UTF-8)"
            raise EventRejected(
                ErrorType.KEY_MISMATCH,
                f"Kafka key {shown} differs from data.incident_id {validated.incident_id!r}",
            )
    return InboundEvent(
        id=event_id,
        source=source,
        type=event_type,
        data=validated,
        time=time,
        subject=subject,
        mode=mode,
        extensions=extensions,
    )


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _structured(key: bytes | None, value: bytes, now: datetime | None) -> InboundEvent:
    envelope = load_json(value, "value")
    if not isinstance(envelope, dict):
        raise EventRejected(
            ErrorType.MALFORMED, f"the envelope must be a JSON object, not {_json_kind(envelope)}"
        )
    attributes = {name: item for name, item in envelope.items() if name not in ("data", "data_base64")}

    def load_data() -> object:
        data = envelope.get("data")
        encoded = envelope.get("data_base64")
        if encoded is None:
            return data
        if data is not None:
            raise EventRejected(ErrorType.MALFORMED, "the envelope has both 'data' and 'data_base64'")
        if not isinstance(encoded, str):
            raise EventRejected(ErrorType.MALFORMED, "'data_base64' must be a string")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EventRejected(ErrorType.MALFORMED, "'data_base64' is not base64") from exc
        return load_json(raw, "data_base64")

    return _event(attributes, load_data, key, "structured", now)


def _binary(
    key: bytes | None, value: bytes, headers: Mapping[str, str], now: datetime | None
) -> InboundEvent:
    attributes: dict[str, object] = {
        name[len(CE_HEADER_PREFIX) :]: text
        for name, text in headers.items()
        if name.startswith(CE_HEADER_PREFIX)
    }
    if "datacontenttype" in attributes:
        raise EventRejected(
            ErrorType.INVALID_ATTRIBUTE,
            "binary mode carries datacontenttype as 'content-type', not a ce_ header",
        )
    content_type = headers.get(CONTENT_TYPE_HEADER)
    if content_type:  # absent (or empty) means JSON, as the CloudEvents SDKs send it
        attributes["datacontenttype"] = content_type
    return _event(attributes, lambda: load_json(value, "value"), key, "binary", now)


def parse_message(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: datetime | None = None,
) -> InboundEvent:
    """Parse one Kafka message of the inbound topic into a validated event.

    The data's own timestamps may be at most `contract.MAX_AHEAD` ahead of `now` (default: this
    machine's clock); the `time` attribute is not compared, gridflow does not use it. Raises
    `EventRejected` for anything that breaks the contract, and nothing else.
    """
    try:
        return _parse(key, value, headers or [], max_bytes, now)
    except EventRejected:
        raise
    except Exception as exc:  # a bug or an input nobody foresaw: still a rejection, never a crash
        raise EventRejected(ErrorType.MALFORMED, f"unreadable message ({type(exc).__name__})") from exc


def _parse(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    max_bytes: int,
    now: datetime | None,
) -> InboundEvent:
    if value is not None and len(value) > max_bytes:
        raise EventRejected(ErrorType.OVERSIZED, f"value is {len(value)} bytes, more than {max_bytes}")
    relevant = _decode_headers(headers)
    if value is None or len(value) == 0:
        raise EventRejected(ErrorType.MALFORMED, "the message has no value")
    content_type = relevant.get(CONTENT_TYPE_HEADER, "")
    media = _media_type(content_type)
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED_CONTENT_TYPE:
            raise EventRejected(
                ErrorType.MALFORMED,
                f"content type {clip(media, 100)!r} is not supported (only {STRUCTURED_CONTENT_TYPE!r})",
            )
        return _structured(key, bytes(value), now)
    if any(name.startswith(CE_HEADER_PREFIX) for name in relevant):
        return _binary(key, bytes(value), relevant, now)
    raise EventRejected(
        ErrorType.MISSING_ATTRIBUTE,
        f"not a CloudEvent: no 'content-type: {STRUCTURED_CONTENT_TYPE}' header and no ce_specversion header",
    )


# --- encoding --------------------------------------------------------------------------------------------


def _attributes(event: InboundEvent) -> dict[str, ExtensionValue]:
    attributes: dict[str, ExtensionValue] = {
        **event.extensions,
        "specversion": SPECVERSION,
        "id": event.id,
        "source": event.source,
        "type": event.type,
    }
    if event.time is not None:
        attributes["time"] = format_time(event.time)
    if event.subject is not None:
        attributes["subject"] = event.subject
    return attributes


def _data_json(data: BaseModel) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


def structured_message(
    attributes: Mapping[str, ExtensionValue], data: Mapping[str, Any], key: str
) -> KafkaMessage:
    """A structured-mode message: the envelope (`attributes` plus `data`) as the value, JSON data."""
    envelope = {**attributes, "specversion": SPECVERSION, "datacontenttype": JSON_CONTENT_TYPE, "data": data}
    headers = [(CONTENT_TYPE_HEADER, f"{STRUCTURED_CONTENT_TYPE}; charset=utf-8".encode())]
    return key.encode("utf-8"), dump_json(envelope), headers


def encode_structured(event: InboundEvent) -> KafkaMessage:
    """The event as a structured-mode Kafka message, keyed by its incident id."""
    return structured_message(_attributes(event), _data_json(event.data), event.incident_id)


def encode_binary(event: InboundEvent) -> KafkaMessage:
    """The event as a binary-mode Kafka message (`ce_*` headers, JSON data), keyed by its incident id."""
    headers: list[Header] = [
        (
            f"{CE_HEADER_PREFIX}{name}",
            str(value).lower().encode() if isinstance(value, bool) else str(value).encode(),
        )
        for name, value in sorted(_attributes(event).items())
    ]
    headers.append((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE.encode()))
    return event.incident_id.encode("utf-8"), dump_json(_data_json(event.data)), headers


def make_event(
    type: str,
    data: EventData | Mapping[str, Any],
    source: str = "gridflow-cli",
    id: str | None = None,
    *,
    time: datetime | None = None,
    subject: str | None = None,
) -> InboundEvent:
    """An inbound event ready to encode, as `gridflow publish` sends it.

    `data` is the type's model or a mapping validated against it (EventRejected `unknown_type` /
    `invalid_data` otherwise). The id defaults to a fresh uuid4, the time to now, the subject to the
    incident id.
    """
    model = DATA_MODELS.get(type)
    if model is None:
        raise EventRejected(ErrorType.UNKNOWN_TYPE, f"unknown event type {clip(type, 200)!r}")
    if isinstance(data, BaseModel):
        if not isinstance(data, model):
            raise EventRejected(
                ErrorType.INVALID_DATA, f"{type} carries {model.__name__}, not {data.__class__.__name__}"
            )
        validated: EventData = data
    else:
        validated = validate_data(type, data)
    if not source:
        raise ValueError("source must not be empty")
    if time is not None and time.tzinfo is None:
        raise ValueError("time must carry a time zone")
    return InboundEvent(
        id=id or str(uuid.uuid4()),
        source=source,
        type=type,
        data=validated,
        time=time or datetime.now(UTC),
        subject=subject or validated.incident_id,
    )


__all__ = [
    "CE_HEADER_PREFIX",
    "CONTENT_TYPE_HEADER",
    "DEFAULT_MAX_BYTES",
    "JSON_CONTENT_TYPE",
    "MAX_JSON_DEPTH",
    "SPECVERSION",
    "STRUCTURED_CONTENT_TYPE",
    "ContentMode",
    "ErrorType",
    "EventRejected",
    "Header",
    "InboundEvent",
    "KafkaMessage",
    "dump_json",
    "encode_binary",
    "encode_structured",
    "format_time",
    "load_json",
    "make_event",
    "parse_message",
    "parse_time",
    "structured_message",
]
