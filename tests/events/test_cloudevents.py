"""CloudEvents over Kafka: both content modes in, strict rejections with stable error types, encoding out."""

from __future__ import annotations

import base64
import functools
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as upstream_kafka
from cloudevents.core.v1.event import CloudEvent as UpstreamCloudEvent

from events import contract
from events.cloudevents import (
    DEFAULT_MAX_BYTES,
    MAX_JSON_DEPTH,
    ContentMode,
    InboundEvent,
    KafkaMessage,
    encode_binary,
    encode_structured,
    make_event,
    parse_message,
    parse_time,
)
from events.errors import CONTRACT_ERRORS, ErrorType, EventRejected
from gridflow.domain.incident import Incident
from tests.events.samples import INCIDENT_ID, sample_data

Headers = list[tuple[str, bytes]]
STRUCTURED: Headers = [("content-type", b"application/cloudevents+json")]
TIME = datetime(2026, 11, 23, 9, 31, 5, 250000, tzinfo=UTC)


def envelope(event_type: str = contract.ACCEPTED, **overrides: Any) -> dict[str, Any]:
    """A valid structured-mode envelope; `overrides` replace attributes (None removes one)."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/apps/hotline",
        "type": event_type,
        "time": "2026-11-23T09:31:05.25Z",
        "subject": INCIDENT_ID,
        "datacontenttype": "application/json",
        "data": sample_data(event_type),
    }
    document.update(overrides)
    return {name: value for name, value in document.items() if value is not None}


def parse_structured(document: object, key: bytes | None = INCIDENT_ID.encode()) -> InboundEvent:
    return parse_message(key, json.dumps(document).encode(), STRUCTURED)


def binary_headers(event_type: str = contract.ACCEPTED, **overrides: str | None) -> Headers:
    attributes: dict[str, str | None] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/apps/hotline",
        "type": event_type,
        "time": "2026-11-23T17:31:05.25+08:00",
    }
    attributes.update(overrides)
    headers = [(f"ce_{name}", value.encode()) for name, value in attributes.items() if value is not None]
    return [*headers, ("content-type", b"application/json")]


def rejection(call: Callable[[], object]) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        call()
    return caught.value


# --- both bindings, every type -------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", contract.INBOUND_TYPES)
def test_every_type_parses_from_a_hand_written_structured_message(event_type: str) -> None:
    event = parse_structured(envelope(event_type))
    assert event.type == event_type
    assert event.id == "evt-1"
    assert event.source == "/apps/hotline"
    assert event.subject == INCIDENT_ID
    assert event.time == TIME
    assert event.mode == "structured"
    assert event.incident_id == INCIDENT_ID
    assert isinstance(event.data, contract.DATA_MODELS[event_type])


@pytest.mark.parametrize("event_type", contract.INBOUND_TYPES)
def test_every_type_parses_from_a_hand_written_binary_message(event_type: str) -> None:
    value = json.dumps(sample_data(event_type)).encode()
    event = parse_message(INCIDENT_ID.encode(), value, binary_headers(event_type))
    assert event.type == event_type
    assert event.id == "evt-1"
    assert event.time == TIME
    assert event.time is not None and event.time.utcoffset() == timedelta(hours=8)
    assert event.subject is None
    assert event.mode == "binary"
    assert event.data == contract.validate_data(event_type, sample_data(event_type))


@pytest.mark.parametrize("encode", [encode_structured, encode_binary])
@pytest.mark.parametrize("event_type", contract.INBOUND_TYPES)
def test_every_type_survives_encoding_and_parsing_in_both_modes(
    event_type: str, encode: Callable[[InboundEvent], KafkaMessage]
) -> None:
    event = make_event(event_type, sample_data(event_type), id="evt-7", time=TIME)
    key, value, headers = encode(event)
    assert key == INCIDENT_ID.encode()
    parsed = parse_message(key, value, headers)
    expected_mode: ContentMode = "structured" if encode is encode_structured else "binary"
    assert parsed == InboundEvent(
        id="evt-7",
        source="gridflow-cli",
        type=event_type,
        data=event.data,
        time=TIME,
        subject=INCIDENT_ID,
        mode=expected_mode,
    )


def test_extension_attributes_are_kept_and_encoded_again() -> None:
    event = parse_structured(envelope(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    assert event.extensions == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    for encode in (encode_structured, encode_binary):
        assert parse_message(*encode(event)).extensions == event.extensions


def test_structured_content_type_is_matched_case_insensitively_with_parameters() -> None:
    value = json.dumps(envelope()).encode()
    event = parse_message(None, value, [("Content-Type", b"Application/CloudEvents+JSON; charset=UTF-8")])
    assert event.type == contract.ACCEPTED


def test_binary_mode_without_content_type_means_json() -> None:
    headers = [header for header in binary_headers() if header[0] != "content-type"]
    event = parse_message(None, json.dumps(sample_data(contract.ACCEPTED)).encode(), headers)
    assert event.mode == "binary"


def test_structured_data_may_come_base64_encoded() -> None:
    raw = json.dumps(sample_data(contract.RESOLVED)).encode()
    document = envelope(contract.RESOLVED, data=None, data_base64=base64.b64encode(raw).decode())
    assert parse_structured(document).data == contract.validate_data(
        contract.RESOLVED, sample_data(contract.RESOLVED)
    )


def test_a_message_without_key_is_accepted() -> None:
    assert parse_structured(envelope(), key=None).incident_id == INCIDENT_ID


# --- an upstream app using the official CloudEvents SDK ------------------------------------------------


def _upstream_message(message: upstream_kafka.KafkaMessage) -> tuple[bytes | None, bytes, Headers]:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return key, message.value, list(message.headers.items())


def _by_incident(event: Any) -> str:
    return str(event.get_data()["incident_id"])


def test_an_upstream_sdk_structured_report_parses() -> None:
    upstream = UpstreamCloudEvent(
        {"type": contract.REPORTED, "source": "https://hotline.example/api", "subject": INCIDENT_ID},
        sample_data(contract.REPORTED),
    )
    key, value, headers = _upstream_message(
        upstream_kafka.to_structured_event(upstream, key_mapper=_by_incident)
    )
    event = parse_message(key, value, headers)
    assert event.id == upstream.get_id()
    assert event.time == upstream.get_time()
    assert isinstance(event.data, Incident)
    assert event.data.location.grid_id == "g-nanjing-07"


def test_an_upstream_sdk_binary_lifecycle_event_parses() -> None:
    upstream = UpstreamCloudEvent(
        {"type": contract.FEEDBACK, "source": "/apps/resident", "datacontenttype": "application/json"},
        sample_data(contract.FEEDBACK),
    )
    key, value, headers = _upstream_message(upstream_kafka.to_binary_event(upstream, key_mapper=_by_incident))
    assert any(name == "ce_specversion" for name, _ in headers)
    event = parse_message(key, value, headers)
    assert event.mode == "binary"
    assert event.type == contract.FEEDBACK
    assert event.id == upstream.get_id()
    assert isinstance(event.data, contract.FeedbackData)
    assert event.data.rating == "basically_satisfied"


def test_an_upstream_sdk_binary_event_with_its_default_partition_key_extension_parses() -> None:
    upstream = UpstreamCloudEvent(
        {"type": contract.WITHDRAWN, "source": "/apps/resident", "partitionkey": INCIDENT_ID},
        sample_data(contract.WITHDRAWN),
    )
    key, value, headers = _upstream_message(upstream_kafka.to_binary_event(upstream))
    event = parse_message(key, value, headers)
    assert event.extensions == {"partitionkey": INCIDENT_ID}


def test_an_upstream_sdk_structured_event_with_bytes_data_parses() -> None:
    upstream = UpstreamCloudEvent(
        {"type": contract.PROGRESS, "source": "/apps/field", "datacontenttype": "application/json"},
        json.dumps(sample_data(contract.PROGRESS)).encode(),
    )
    key, value, headers = _upstream_message(
        upstream_kafka.to_structured_event(upstream, key_mapper=lambda _: INCIDENT_ID)
    )
    assert b"data_base64" in value
    assert parse_message(key, value, headers).type == contract.PROGRESS


def test_the_upstream_sdk_reads_what_we_encode() -> None:
    event = make_event(contract.ACCEPTED, sample_data(contract.ACCEPTED), time=TIME)
    for encode, decode in (
        (encode_structured, upstream_kafka.from_structured_event),
        (encode_binary, upstream_kafka.from_binary_event),
    ):
        key, value, headers = encode(event)
        upstream = decode(upstream_kafka.KafkaMessage(headers=dict(headers), key=key, value=value))
        assert upstream.get_id() == event.id
        assert upstream.get_type() == contract.ACCEPTED
        assert upstream.get_time() == TIME
        assert upstream.get_data() == event.data.model_dump(mode="json", exclude_none=True)


# --- rejections ------------------------------------------------------------------------------------------


def _deep(levels: int) -> object:
    value: object = "bottom"
    for _ in range(levels):
        value = [value]
    return value


REJECTIONS: list[tuple[str, ErrorType, Callable[[], object]]] = [
    ("value over the maximum", ErrorType.OVERSIZED, lambda: parse_message(None, b"x" * 300_000, STRUCTURED)),
    (
        "no value (tombstone)",
        ErrorType.MALFORMED,
        lambda: parse_message(INCIDENT_ID.encode(), None, STRUCTURED),
    ),
    ("not UTF-8", ErrorType.MALFORMED, lambda: parse_message(None, b'{"id": "\xff"}', STRUCTURED)),
    ("not JSON", ErrorType.MALFORMED, lambda: parse_message(None, b'{"id": ', STRUCTURED)),
    ("envelope not an object", ErrorType.MALFORMED, lambda: parse_structured([envelope()])),
    ("data not an object", ErrorType.MALFORMED, lambda: parse_structured(envelope(data=["x"]))),
    ("no data", ErrorType.MALFORMED, lambda: parse_structured(envelope(data=None))),
    (
        "binary data not an object",
        ErrorType.MALFORMED,
        lambda: parse_message(None, b'"inc-1"', binary_headers()),
    ),
    (
        "binary data not JSON",
        ErrorType.MALFORMED,
        lambda: parse_message(None, b"incident", binary_headers()),
    ),
    (
        "binary data of a non-JSON content type",
        ErrorType.MALFORMED,
        lambda: parse_message(None, b"{}", [*binary_headers()[:-1], ("content-type", b"text/plain")]),
    ),
    (
        "a batch",
        ErrorType.MALFORMED,
        lambda: parse_message(None, b"[]", [("content-type", b"application/cloudevents-batch+json")]),
    ),
    ("NaN", ErrorType.MALFORMED, lambda: parse_message(None, b'{"id": NaN}', STRUCTURED)),
    ("infinite number", ErrorType.MALFORMED, lambda: parse_message(None, b'{"id": 1e999}', STRUCTURED)),
    (
        "duplicate keys",
        ErrorType.MALFORMED,
        lambda: parse_message(None, b'{"id": "a", "id": "b"}', STRUCTURED),
    ),
    ("lone surrogate", ErrorType.MALFORMED, lambda: parse_structured(envelope(id="\ud800"))),
    (
        "nested too deep",
        ErrorType.MALFORMED,
        lambda: parse_structured(
            envelope(data={**sample_data(contract.ACCEPTED), "x": _deep(MAX_JSON_DEPTH)})
        ),
    ),
    ("nested beyond recursion", ErrorType.MALFORMED, lambda: parse_message(None, b"[" * 200_000, STRUCTURED)),
    ("a 5000-digit number", ErrorType.MALFORMED, lambda: parse_message(None, b"1" * 5000, STRUCTURED)),
    ("duplicated ce_ header", ErrorType.MALFORMED, lambda: parse_message(None, b"{}", binary_headers() * 2)),
    (
        "specversion 0.3",
        ErrorType.UNSUPPORTED_SPECVERSION,
        lambda: parse_structured(envelope(specversion="0.3")),
    ),
    (
        "binary specversion 2.0",
        ErrorType.UNSUPPORTED_SPECVERSION,
        lambda: parse_message(None, b"{}", binary_headers(specversion="2.0")),
    ),
    ("no specversion", ErrorType.MISSING_ATTRIBUTE, lambda: parse_structured(envelope(specversion=None))),
    ("no id", ErrorType.MISSING_ATTRIBUTE, lambda: parse_structured(envelope(id=None))),
    ("empty id", ErrorType.MISSING_ATTRIBUTE, lambda: parse_structured(envelope(id=""))),
    ("no source", ErrorType.MISSING_ATTRIBUTE, lambda: parse_structured(envelope(source=None))),
    ("no type", ErrorType.MISSING_ATTRIBUTE, lambda: parse_structured(envelope(type=None))),
    (
        "binary without ce_type",
        ErrorType.MISSING_ATTRIBUTE,
        lambda: parse_message(None, b"{}", binary_headers(type=None)),
    ),
    ("not a CloudEvent at all", ErrorType.MISSING_ATTRIBUTE, lambda: parse_message(None, b"{}", [])),
    ("id not a string", ErrorType.INVALID_ATTRIBUTE, lambda: parse_structured(envelope(id=42))),
    (
        "time without zone",
        ErrorType.INVALID_ATTRIBUTE,
        lambda: parse_structured(envelope(time="2026-11-23T09:31:05")),
    ),
    ("time not a time", ErrorType.INVALID_ATTRIBUTE, lambda: parse_structured(envelope(time="yesterday"))),
    ("extension name", ErrorType.INVALID_ATTRIBUTE, lambda: parse_structured(envelope(**{"Trace-Id": "x"}))),
    ("extension object", ErrorType.INVALID_ATTRIBUTE, lambda: parse_structured(envelope(trace={"a": 1}))),
    (
        "unknown type",
        ErrorType.UNKNOWN_TYPE,
        lambda: parse_structured(envelope(type="gridflow.incident.teleported.v1")),
    ),
    (
        "binary unknown type",
        ErrorType.UNKNOWN_TYPE,
        lambda: parse_message(None, b"{}", binary_headers(type="com.example.other")),
    ),
    (
        "invalid data",
        ErrorType.INVALID_DATA,
        lambda: parse_structured(envelope(data={**sample_data(contract.ACCEPTED), "unit_id": ""})),
    ),
    ("key differs", ErrorType.KEY_MISMATCH, lambda: parse_structured(envelope(), key=b"inc-other")),
    ("key not UTF-8", ErrorType.KEY_MISMATCH, lambda: parse_structured(envelope(), key=b"\xff\xfe")),
]


@pytest.mark.parametrize(("case", "error_type", "call"), REJECTIONS, ids=[case for case, _, _ in REJECTIONS])
def test_bad_messages_are_rejected_with_a_stable_error_type(
    case: str, error_type: ErrorType, call: Callable[[], object]
) -> None:
    rejected = rejection(call)
    assert rejected.error_type == error_type.value
    assert rejected.message
    assert len(rejected.message) <= 1000


def test_every_error_type_of_the_contract_has_a_rejection_case() -> None:
    assert {error_type for _, error_type, _ in REJECTIONS} == CONTRACT_ERRORS


def test_the_size_limit_is_configurable_and_defaults_to_256_kib() -> None:
    assert DEFAULT_MAX_BYTES == 256 * 1024
    value = json.dumps(envelope()).encode()
    assert parse_message(None, value, STRUCTURED).type == contract.ACCEPTED
    rejected = rejection(lambda: parse_message(None, value, STRUCTURED, max_bytes=len(value) - 1))
    assert rejected.error_type == "oversized"


def test_nesting_up_to_the_limit_reaches_validation() -> None:
    # The envelope is level 1 and data level 2: MAX_JSON_DEPTH - 2 more levels still parse as JSON.
    data = {**sample_data(contract.ACCEPTED), "x": _deep(MAX_JSON_DEPTH - 2)}
    assert rejection(lambda: parse_structured(envelope(data=data))).error_type == "invalid_data"


def test_invalid_data_names_the_field_paths_and_problems() -> None:
    data = sample_data(contract.REPORTED)
    del data["location"]["grid_id"]
    data["priority"] = "asap"
    rejected = rejection(lambda: parse_structured(envelope(contract.REPORTED, data=data)))
    assert rejected.error_type == "invalid_data"
    assert "data.location.grid_id: Field required" in rejected.message
    assert "data.priority: Input should be 'low', 'normal', 'high' or 'urgent'" in rejected.message


def test_a_kafka_key_different_from_the_incident_id_is_rejected() -> None:
    for mode_message in (
        lambda: parse_structured(envelope(), key=b"inc-2026-000043"),
        lambda: parse_message(
            b"inc-2026-000043", json.dumps(sample_data(contract.ACCEPTED)).encode(), binary_headers()
        ),
    ):
        rejected = rejection(mode_message)
        assert rejected.error_type == "key_mismatch"
        assert "inc-2026-000043" in rejected.message
        assert INCIDENT_ID in rejected.message


def test_attribute_problems_are_reported_before_data_problems() -> None:
    rejected = rejection(lambda: parse_message(None, b"not json", binary_headers(specversion="0.3")))
    assert rejected.error_type == "unsupported_specversion"


def test_rejections_survive_pickling_for_the_dead_letter_path() -> None:
    import pickle

    rejected = rejection(lambda: parse_structured(envelope(id=None)))
    again = pickle.loads(pickle.dumps(rejected))
    assert (again.error_type, again.message) == (rejected.error_type, rejected.message)


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randrange(len(data) + 1)
        if choice < 0.4 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif choice < 0.7:
            data[position:position] = rng.choice([b"{", b"[", b'"', b"\\u", b"\xc3", b"null", b"1e999", b","])
        else:
            del data[position : position + rng.randint(1, 20)]
    return bytes(data)


def test_any_bytes_give_an_event_or_a_rejection_never_a_crash() -> None:
    rng = random.Random(20261123)
    structured_value = json.dumps(envelope(contract.REPORTED, data=sample_data(contract.REPORTED))).encode()
    binary_value = json.dumps(sample_data(contract.REPORTED)).encode()
    header_sets: list[Headers] = [STRUCTURED, binary_headers(contract.REPORTED), [], [("ce_id", b"\xff")]]
    outcomes: dict[str, int] = {}
    for _ in range(3000):
        headers = rng.choice(header_sets)
        base = structured_value if headers is STRUCTURED else binary_value
        value = _mutate(rng, base) if rng.random() < 0.9 else rng.randbytes(rng.randrange(64))
        key = rng.choice([None, INCIDENT_ID.encode(), rng.randbytes(4)])
        try:
            parse_message(key, value, headers)
            outcomes["event"] = outcomes.get("event", 0) + 1
        except EventRejected as rejected:
            assert rejected.error_type in CONTRACT_ERRORS
            outcomes[rejected.error_type] = outcomes.get(rejected.error_type, 0) + 1
    assert outcomes.get("malformed", 0) > 100


def test_odd_header_values_are_rejections_not_crashes() -> None:
    value = json.dumps(sample_data(contract.ACCEPTED)).encode()
    odd: list[Any] = [[("ce_id", None), *binary_headers()[1:]], [(None, b"x")], [("ce_id", "text")]]
    for headers in odd:
        try:
            parse_message(None, value, headers)
        except EventRejected as rejected:
            assert rejected.error_type in CONTRACT_ERRORS


# --- time ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T09:31:05Z", datetime(2026, 11, 23, 9, 31, 5, tzinfo=UTC)),
        ("2026-11-23t09:31:05z", datetime(2026, 11, 23, 9, 31, 5, tzinfo=UTC)),
        ("2026-11-23T09:31:05.123456789+08:00", datetime(2026, 11, 23, 1, 31, 5, 123456, tzinfo=UTC)),
        ("2026-11-23 09:31:05-05:30", datetime(2026, 11, 23, 15, 1, 5, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_with_a_zone_parse(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text", ["2026-11-23T09:31:05", "2026-11-23T09:31Z", "2026-11-23", "2026-13-23T09:31:05Z", "now"]
)
def test_other_times_do_not_parse(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


# --- make_event ------------------------------------------------------------------------------------------


def test_make_event_fills_in_id_source_time_and_subject() -> None:
    before = datetime.now(UTC)
    event = make_event(contract.ACCEPTED, sample_data(contract.ACCEPTED))
    assert uuid.UUID(event.id).version == 4
    assert event.source == "gridflow-cli"
    assert event.time is not None and before <= event.time <= datetime.now(UTC)
    assert event.subject == INCIDENT_ID


def test_make_event_takes_a_model_or_a_mapping() -> None:
    data = contract.WithdrawnData(incident_id=INCIDENT_ID, reason="duplicate")
    event = make_event(contract.WITHDRAWN, data, source="/apps/hotline", id="w-1")
    assert (event.data, event.source, event.id) == (data, "/apps/hotline", "w-1")
    with_times = {
        **sample_data(contract.REPORTED),
        "reported_at": datetime(2026, 11, 23, 8, tzinfo=timezone(timedelta(hours=8))),
    }
    assert isinstance(make_event(contract.REPORTED, with_times).data, Incident)


def test_make_event_refuses_what_the_parser_would_refuse() -> None:
    assert rejection(lambda: make_event("gridflow.incident.lost.v1", {})).error_type == "unknown_type"
    assert rejection(lambda: make_event(contract.ACCEPTED, {"incident_id": "x"})).error_type == "invalid_data"
    wrong = contract.WithdrawnData(incident_id=INCIDENT_ID)
    assert rejection(lambda: make_event(contract.ACCEPTED, wrong)).error_type == "invalid_data"


def test_the_data_timestamps_are_compared_with_now_and_the_time_attribute_is_not() -> None:
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    ahead = "2026-11-30T09:00:00Z"  # an hour ahead of `now`
    far = envelope(contract.ACCEPTED, time="9999-12-31T23:59:59Z")
    assert parse_message(INCIDENT_ID.encode(), json.dumps(far).encode(), STRUCTURED, now=now).time == (
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    data = {**sample_data(contract.ACCEPTED), "at": ahead}
    for message in (
        (INCIDENT_ID.encode(), json.dumps(envelope(contract.ACCEPTED, data=data)).encode(), STRUCTURED),
        (INCIDENT_ID.encode(), json.dumps(data).encode(), binary_headers()),
    ):
        rejected = rejection(functools.partial(parse_message, *message, now=now))
        assert rejected.error_type == "invalid_data"
        assert rejected.message.startswith("data.at: more than 15 minutes ahead of gridflow's clock")
        later = parse_message(*message, now=now + timedelta(hours=1)).data
        assert isinstance(later, contract.AcceptedData) and later.at == now + timedelta(hours=1)
