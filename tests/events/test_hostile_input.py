"""Hostile input: a corpus of bad messages, property-based fuzzing of parse_message, and the real pipeline.

Whatever arrives, parse_message returns an InboundEvent or raises EventRejected with a stable error type, and
the bridge dead-letters every rejection with its original bytes and keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, given, settings
from hypothesis import event as note_outcome
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from events import contract
from events.bridge import Bridge
from events.cloudevents import (
    ContentMode,
    ExtensionValue,
    InboundEvent,
    KafkaMessage,
    encode_binary,
    encode_structured,
    make_event,
    parse_message,
)
from events.errors import CONTRACT_ERRORS, ErrorType, EventRejected
from gridflow.domain.incident import Incident, Location, Priority, Rating, Status
from gridflow.domain.lifecycle import EscalationRequestReason, IncidentState
from tests.events.conftest import Pipeline
from tests.events.hostile import (
    CORPUS,
    MAX_BYTES,
    ODDITIES,
    STRUCTURED,
    Hostile,
    Oddity,
    build_corpus,
    build_oddities,
    envelope,
    reported,
)
from tests.events.hostile import encode as hostile_encode
from tests.events.samples import sample_data

Headers = list[tuple[str, bytes]]
Message = tuple[bytes | None, bytes, Headers]

#: The message parse_message's last-resort handler gives an exception nobody foresaw.
UNFORESEEN = "unreadable message ("
ERROR_TYPES = {error_type.value for error_type in CONTRACT_ERRORS}
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def new_id() -> str:
    return f"inc-{uuid.uuid4().hex[:10]}"


def canonical(value: ExtensionValue) -> str:
    """An extension value as binary mode carries it (CloudEvents canonical string encoding)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assert_round_trips(event: InboundEvent) -> None:
    """An accepted event encodes in both modes and parses back to itself."""
    assert parse_message(*encode_structured(event)) == replace(event, mode="structured")
    as_strings = {name: canonical(value) for name, value in event.extensions.items()}
    assert parse_message(*encode_binary(event)) == replace(event, mode="binary", extensions=as_strings)


def outcome(key: bytes | None, value: bytes | None, headers: Headers | None) -> InboundEvent | EventRejected:
    """parse_message's answer, checked: a stable rejection that was foreseen, or an event that round-trips."""
    try:
        event = parse_message(key, value, headers, max_bytes=MAX_BYTES)
    except EventRejected as rejected:
        assert rejected.error_type in ERROR_TYPES
        assert 0 < len(rejected.message) <= 1000
        assert not rejected.message.startswith(UNFORESEEN), repr(rejected.__cause__)
        if currently_in_test_context():
            note_outcome(rejected.error_type)  # shown by --hypothesis-show-statistics
        return rejected
    assert isinstance(event, InboundEvent)
    assert_round_trips(event)
    if currently_in_test_context():
        note_outcome("accepted")
    return event


# --- the corpus ------------------------------------------------------------------------------------------


def _corpus_params() -> list[Any]:
    return [
        pytest.param(entry, id=entry.name, marks=[pytest.mark.xfail(strict=True, reason=entry.gap)])
        if entry.gap
        else pytest.param(entry, id=entry.name)
        for entry in CORPUS
    ]


@pytest.mark.parametrize("entry", _corpus_params())
def test_every_hostile_message_is_rejected_with_its_error_type(entry: Hostile) -> None:
    with pytest.raises(EventRejected) as caught:  # any other exception fails the test
        parse_message(entry.key, entry.value, entry.headers, max_bytes=MAX_BYTES)
    assert caught.value.error_type == entry.error_type.value, caught.value.message
    assert not caught.value.message.startswith(UNFORESEEN)
    assert 0 < len(caught.value.message) <= 1000


def test_the_corpus_covers_every_error_type_with_distinct_messages_sized_for_the_limit() -> None:
    assert {entry.error_type for entry in CORPUS} == CONTRACT_ERRORS
    assert len({(entry.key, entry.value) for entry in CORPUS}) == len(CORPUS)
    for entry in CORPUS:
        if entry.error_type is not ErrorType.OVERSIZED:
            assert len(entry.value or b"") <= MAX_BYTES, entry.name


@pytest.mark.parametrize("oddity", ODDITIES, ids=[oddity.name for oddity in ODDITIES])
def test_hostile_looking_messages_within_the_contract_are_accepted(oddity: Oddity) -> None:
    event = outcome(oddity.key, oddity.value, oddity.headers)
    assert isinstance(event, InboundEvent), oddity.why


def test_a_report_ten_minutes_ahead_is_accepted_with_its_reported_at_as_given() -> None:
    oddity = next(o for o in ODDITIES if o.name.startswith("reported_at ten minutes ahead"))
    event = parse_message(oddity.key, oddity.value, oddity.headers)
    assert isinstance(event.data, Incident)
    assert event.data.reported_at > datetime.now(UTC)


NAMED = [entry for entry in CORPUS if entry.names is not None]


@pytest.mark.parametrize("entry", NAMED, ids=[entry.name for entry in NAMED])
def test_a_bad_timestamp_or_id_is_refused_naming_its_field_without_quoting_the_value(entry: Hostile) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_message(entry.key, entry.value, entry.headers, max_bytes=MAX_BYTES)
    message = caught.value.message
    assert entry.names is not None and f"{entry.names}:" in message, message
    quoted = ("\x00", "\\x00", "\x1b", "\\x1b", "\n", "caf", "nanjing", "shanghai", "2300-", "9999-", "uuuuu")
    for value in (*quoted, "\uff11", "\u0441"):
        assert value not in message, message


def test_no_rejection_carries_a_control_character_or_the_reporters_data() -> None:
    # The message becomes a Kafka header of the dead letter and a log field: it must print safely.
    for entry in CORPUS:
        if entry.gap is not None:
            continue
        with pytest.raises(EventRejected) as caught:
            parse_message(entry.key, entry.value, entry.headers, max_bytes=MAX_BYTES)
        message = caught.value.message
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in message), (entry.name, message)
        assert "Li Wei" not in message and "138 0000" not in message, entry.name


def test_an_id_in_nfc_and_in_nfd_is_refused_either_way_so_it_can_never_be_two_incidents() -> None:
    forms = [entry for entry in CORPUS if entry.name.startswith("incident_id 'café' in")]
    assert [entry.name[-3:] for entry in forms] == ["NFC", "NFD"]
    assert forms[0].key != forms[1].key  # two byte strings that print the same
    for entry in forms:
        with pytest.raises(EventRejected) as caught:
            parse_message(entry.key, entry.value, entry.headers)
        assert caught.value.error_type is ErrorType.INVALID_DATA
        assert caught.value.message.startswith("data.incident_id: String should match pattern")


def test_the_clock_limit_is_the_contracts_on_both_sides() -> None:
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    for minutes, accepted in ((15, True), (16, False)):
        # In Shanghai time: the limit is on the instant, whatever zone it is written in.
        moment = (now + timedelta(minutes=minutes)).astimezone(timezone(timedelta(hours=8)))
        data = reported("inc-clock", reported_at=moment.isoformat())
        message = (b"inc-clock", hostile_encode(envelope("inc-clock", "e-clock", data=data)), STRUCTURED)
        if accepted:
            event = parse_message(*message, now=now)
            assert isinstance(event.data, Incident) and event.data.reported_at == moment
        else:
            with pytest.raises(EventRejected) as caught:
                parse_message(*message, now=now)
            assert caught.value.message.startswith("data.reported_at: more than 15 minutes ahead")


# --- strategies ------------------------------------------------------------------------------------------

# Attribute strings as the CloudEvents type system allows them: no controls, surrogates or noncharacters.
attribute_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn")), max_size=30)
identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True)
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
# Within the contract: representable in UTC and not ahead of the clock (contract.MAX_AHEAD).
moments = st.datetimes(datetime(1, 1, 2), datetime(2026, 1, 1), timezones=offsets)


def text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(min_size=min_size, max_size=max_size)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def reported_data(incident_id: st.SearchStrategy[str] = identifiers) -> st.SearchStrategy[dict[str, Any]]:
    latitudes = st.floats(-90, 90, allow_nan=False)
    longitudes = st.floats(-180, 180, allow_nan=False)
    location = st.fixed_dictionaries(
        {"grid_id": identifiers, "street_id": identifiers, "district_id": identifiers},
        optional={
            "city_id": optional(identifiers),
            "lat": optional(latitudes),
            "lon": optional(longitudes),
            "address": optional(text(500)),
        },
    )
    reporter = st.fixed_dictionaries(
        {}, optional={"name": optional(text(200)), "phone": optional(text(50)), "channel": optional(text(50))}
    )
    return st.fixed_dictionaries(
        {
            "incident_id": incident_id,
            "category": st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,30}", fullmatch=True),
            "title": text(200, 1),
            "priority": st.sampled_from([p.value for p in Priority]),
            "location": location,
            "reported_at": moments,
        },
        optional={"description": optional(text(4000)), "reporter": optional(reporter)},
    )


def _lifecycle(required: dict[str, Any], **fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"incident_id": identifiers, **required}, optional={"at": optional(moments), **fields}
    )


DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    contract.REPORTED: reported_data(),
    contract.ACCEPTED: _lifecycle({"unit_id": identifiers}, handler=optional(text(200))),
    contract.PROGRESS: _lifecycle({"unit_id": identifiers}, note=optional(text(2000))),
    contract.ESCALATION_REQUESTED: _lifecycle(
        {"unit_id": identifiers, "reason": st.sampled_from([r.value for r in EscalationRequestReason])},
        note=optional(text(2000)),
    ),
    contract.TRANSFERRED: _lifecycle(
        {"to_unit": identifiers, "reason": text(500, 1)}, unit_id=optional(identifiers)
    ),
    contract.EXTENSION_REQUESTED: _lifecycle(
        {
            "unit_id": identifiers,
            "extra": st.sampled_from(["90s", "15m", "8h", "2d", "1h30m", "1wd", "7wd"]),
            "reason": text(500, 1),
        }
    ),
    contract.EXTENSION_GRANTED: _lifecycle({"unit_id": identifiers}, note=optional(text(2000))),
    contract.EXTENSION_REFUSED: _lifecycle({"unit_id": identifiers, "reason": text(500, 1)}),
    contract.PAUSED: _lifecycle({"unit_id": identifiers}, reason=optional(text(500))),
    contract.RESUMED: _lifecycle({"unit_id": identifiers}, reason=optional(text(500))),
    contract.RESOLVED: _lifecycle({"unit_id": identifiers, "resolution": text(2000, 1)}),
    contract.VERIFIED: _lifecycle({"unit_id": identifiers}, note=optional(text(2000))),
    contract.REJECTED: _lifecycle({"unit_id": identifiers, "reason": text(500, 1)}),
    contract.FEEDBACK: _lifecycle(
        {"rating": st.sampled_from([r.value for r in Rating])},
        solved=optional(st.booleans()),
        comment=optional(text(2000)),
    ),
    contract.WITHDRAWN: _lifecycle({}, reason=optional(text(500))),
}
assert set(DATA) == set(contract.INBOUND_TYPES)

RESERVED = {"data", "data_base64", "specversion", "id", "source", "type", "time", "subject"}
RESERVED |= {"datacontenttype", "dataschema"}
extensions = st.dictionaries(
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(lambda name: name not in RESERVED),
    st.booleans() | st.integers(-(2**31), 2**31 - 1) | attribute_text,
    max_size=3,
)


@st.composite
def valid_events(draw: st.DrawFn) -> InboundEvent:
    """Any event of the inbound contract, every optional attribute present or not."""
    event_type = draw(st.sampled_from(contract.INBOUND_TYPES))
    event = make_event(
        event_type,
        draw(DATA[event_type]),
        source=draw(attribute_text.filter(bool)),
        id=draw(attribute_text.filter(bool)),
        time=draw(moments),
    )
    return replace(
        event,
        time=draw(st.sampled_from([event.time, None])),
        subject=draw(st.sampled_from([event.subject, None]) | attribute_text.filter(bool)),
        extensions=draw(extensions),
    )


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included: the parser must refuse them
    | st.text(max_size=20)
    | st.sampled_from(["1.0", *contract.INBOUND_TYPES, "2026-11-23T08:00:00Z", "high", "inc-1"])
)
json_documents = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
HEADER_NAMES = [
    "content-type",
    "Content-Type",
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "ce_dataschema",
    "ce_datacontenttype",
    "ce_traceparent",
    # not "ce_data": accepted today and dropped on re-encoding, a known gap (hostile.GAPS)
    "ce_",
    "CE_TYPE",
    "traceparent",
]
HEADER_VALUES = [
    b"application/cloudevents+json",
    b"application/cloudevents+json; charset=utf-8",
    b"application/json",
    b"text/plain",
    b"1.0",
    b"0.3",
    contract.REPORTED.encode(),
    contract.ACCEPTED.encode(),
    b"2026-11-23T08:00:00Z",
    b"",
]
header_lists = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES) | st.text(max_size=12),
        st.sampled_from(HEADER_VALUES) | st.binary(max_size=40),
    ),
    max_size=8,
)


def dumps(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def encode(event: InboundEvent, mode: ContentMode) -> KafkaMessage:
    return encode_structured(event) if mode == "structured" else encode_binary(event)


modes: st.SearchStrategy[ContentMode] = st.sampled_from(["structured", "binary"])


# --- properties ------------------------------------------------------------------------------------------


@FUZZ
@given(
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=300) | json_documents.map(dumps),
    headers=st.none() | header_lists,
)
def test_any_bytes_give_an_event_or_a_rejection(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> None:
    outcome(key, value, headers)


@FUZZ
@given(
    document=json_documents,
    event_type=st.sampled_from(contract.INBOUND_TYPES) | st.text(max_size=30),
    mode=modes,
    key=st.none() | identifiers.map(str.encode),
)
def test_any_json_as_event_data_gives_an_event_or_a_rejection(
    document: object, event_type: str, mode: ContentMode, key: bytes | None
) -> None:
    if mode == "structured":
        envelope = {
            "specversion": "1.0",
            "id": "e-1",
            "source": "/fuzz",
            "type": event_type,
            "data": document,
        }
        result = outcome(key, dumps(envelope), [("content-type", b"application/cloudevents+json")])
    else:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"e-1"),
            ("ce_source", b"/fuzz"),
            ("ce_type", event_type.encode("utf-8", "surrogatepass")),
        ]
        result = outcome(key, dumps(document), headers)
    if not isinstance(document, dict):
        assert isinstance(result, EventRejected)


@FUZZ
@given(
    attributes=st.dictionaries(
        st.sampled_from(["specversion", "id", "source", "type", "time", "subject", "datacontenttype"])
        | st.text(max_size=12),
        json_documents,
        max_size=8,
    ),
    event_type=st.sampled_from(contract.INBOUND_TYPES),
)
def test_any_json_as_envelope_attributes_gives_an_event_or_a_rejection(
    attributes: dict[str, Any], event_type: str
) -> None:
    envelope: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "/fuzz", "type": event_type}
    envelope |= attributes
    envelope["data"] = sample_data(event_type)
    result = outcome(None, dumps(envelope), [("content-type", b"application/cloudevents+json")])
    if envelope["specversion"] != "1.0":
        assert isinstance(result, EventRejected)


@FUZZ
@given(event=valid_events(), mode=modes)
def test_valid_events_round_trip_in_both_modes(event: InboundEvent, mode: ContentMode) -> None:
    parsed = parse_message(*encode(event, mode))
    if mode == "binary":
        event = replace(event, extensions={name: canonical(v) for name, v in event.extensions.items()})
    assert parsed == replace(event, mode=mode)


def _required(event_type: str, path: tuple[str, ...]) -> set[str]:
    """The fields that must be present at a path: the envelope (()), the data (("data",)) or its location."""
    if path == ():
        return {"specversion", "id", "source", "type", "data"}
    model = Location if path[-1] == "location" else contract.DATA_MODELS[event_type]
    return {name for name, info in model.model_fields.items() if info.is_required()}


OTHER_TYPES: list[object] = [None, 0, -1, 1.5, True, "", "x", [], ["x"], {}, {"a": 1}]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Message, bool]:
    """A valid event, encoded, then changed once; and whether the change must make it a rejection."""
    event = draw(valid_events())
    mode = draw(modes)
    key, value, headers = encode(event, mode)
    kind = draw(st.sampled_from(["drop", "retype", "insert", "header", "key"]))
    if kind == "key":
        other = draw(st.none() | st.binary(max_size=20) | identifiers.map(str.encode))
        return (other, value, headers), other is not None and other != key
    if kind == "insert":
        position = draw(st.integers(0, len(value)))
        inserted = draw(
            st.sampled_from(
                [b"\x00", b'"', b"\\", b"{", b"}", b"[", b",", b"\xff", b"\xc3", b"\\ud800", b"NaN"]
            )
            | st.binary(min_size=1, max_size=4)
            | st.text(min_size=1, max_size=3).map(str.encode)
        )
        return (key, value[:position] + inserted + value[position:], headers), False
    if kind == "header":
        index = draw(st.integers(0, len(headers)))
        name = draw(st.sampled_from(HEADER_NAMES))
        new = (name, draw(st.sampled_from(HEADER_VALUES) | st.binary(max_size=20)))
        if draw(st.booleans()) and index < len(headers):
            removed = headers[index]
            changed = headers[:index] + headers[index + 1 :]
            must_reject = mode == "binary" and removed[0] in {
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
            }
            must_reject |= mode == "structured" and removed[0] == "content-type"
            return (key, value, changed), must_reject
        return (key, value, [*headers[:index], new, *headers[index:]]), False
    document = json.loads(value)
    path: tuple[str, ...] = ()
    container = document
    if mode == "structured" and draw(st.booleans()):
        path, container = ("data",), document["data"]
    elif mode == "binary":
        path = ("data",)
    if isinstance(container, dict) and "location" in container and draw(st.booleans()):
        path, container = (*path, "location"), container["location"]
    name = draw(st.sampled_from(sorted(container)))
    if kind == "drop":
        del container[name]
        must_reject = name in _required(event.type, path)
    else:
        old = container[name]
        container[name] = draw(st.sampled_from([v for v in OTHER_TYPES if type(v) is not type(old)]))
        must_reject = name in _required(event.type, path)
    return (key, dumps(document), headers), must_reject


@FUZZ
@given(case=mutated())
def test_mutated_valid_events_give_an_event_or_a_rejection(case: tuple[Message, bool]) -> None:
    (key, value, headers), must_reject = case
    result = outcome(key, value, headers)
    if must_reject:
        assert isinstance(result, EventRejected)


# --- the real pipeline -----------------------------------------------------------------------------------


async def test_the_corpus_is_dead_lettered_one_for_one_and_good_events_still_start_incidents(
    pipeline: Pipeline,
) -> None:
    assert pipeline.settings.max_message_bytes == MAX_BYTES
    pipeline.start_bridge()
    corpus = [entry for entry in build_corpus(f"inc-h{uuid.uuid4().hex[:6]}") if entry.gap is None]
    good: list[str] = []
    for number, entry in enumerate(corpus):
        pipeline.publish_raw(entry.key, entry.value, entry.headers)
        if number % 3 == 0:
            good.append(new_id())
            mode = ("structured", "binary")[number % 2]
            pipeline.publish(pipeline.event(contract.REPORTED, good[-1]), mode=mode)
        elif number % 3 == 1:  # the good incident's next event, between hostile ones
            pipeline.publish(pipeline.event(contract.ACCEPTED, good[-1]))
    if len(corpus) % 3 == 1:  # the last good incident came last: its acceptance did not
        pipeline.publish(pipeline.event(contract.ACCEPTED, good[-1]))

    for incident_id in good:
        state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED)
        assert [step.kind.value for step in state.timeline] == ["reported", "dispatched", "accepted"]
    letters = await pipeline.wait_dead_letters(len(corpus), within=60)

    expected = {(entry.key, entry.value): entry for entry in corpus}
    problems: list[str] = []
    for letter in letters:
        found = expected.pop((letter.key, letter.value), None)
        if found is None:
            problems.append(
                f"unexpected dead letter {letter.key!r} ({letter.error_type}: {letter.error_message})"
            )
            continue
        if letter.error_type != found.error_type.value:
            problems.append(f"{found.name}: {letter.error_type}, not {found.error_type.value}")
        if letter.original_headers != found.headers:
            problems.append(f"{found.name}: headers {letter.original_headers!r}, not {found.headers!r}")
        if letter.header(contract.DLQ_SOURCE_TOPIC_HEADER) != pipeline.settings.incidents_topic:
            problems.append(f"{found.name}: no source topic header")
    problems += [f"{entry.name}: not dead-lettered" for entry in expected.values()]
    assert problems == []
    assert Counter(letter.error_type for letter in letters) == Counter(e.error_type.value for e in corpus)

    (_, task), *_ = pipeline.bridges
    assert not task.done()
    last = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, last))
    await pipeline.wait_for(last, lambda s: s.status is Status.DISPATCHED)
    assert len(pipeline.dead_letters()) == len(corpus)


async def test_a_report_ten_minutes_ahead_starts_its_incident_with_its_reported_at_as_given(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    oddity = next(o for o in build_oddities(incident_id) if o.name.startswith("reported_at ten minutes"))
    pipeline.publish_raw(oddity.key, oddity.value, oddity.headers)

    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)
    assert state.reported_at == datetime.fromisoformat(json.loads(oddity.value)["data"]["reported_at"])
    assert state.timeline[0].event_at == state.reported_at
    assert pipeline.dead_letters() == []


def kinds(state: IncidentState) -> list[str]:
    return [step.kind.value for step in state.timeline]


def is_in(status: Status) -> Callable[[IncidentState], bool]:
    return lambda state: state.status is status


async def test_lifecycle_events_out_of_order_end_as_refusals_with_the_workflows_reason(
    pipeline: Pipeline,
) -> None:
    """How each ordering mistake of an upstream app ends today, one incident each, beside a normal one."""
    a, r, p, s, f, w = (
        contract.ACCEPTED,
        contract.REPORTED,
        contract.PROGRESS,
        contract.RESOLVED,
        contract.FEEDBACK,
        contract.WITHDRAWN,
    )
    # (what, events in order, final status or None, steps, dead letters: (type, message with {id}))
    cases: list[tuple[str, list[str], Status | None, list[str], list[tuple[str, str]]]] = [
        (
            "resolved before accepted",
            [r, s, a],
            Status.ACCEPTED,
            ["reported", "dispatched", "accepted"],
            [("rejected", "cannot resolve incident {id}: it is dispatched, not accepted or paused")],
        ),
        (
            "feedback before accepted",
            [r, f, a],
            Status.ACCEPTED,
            ["reported", "dispatched", "accepted"],
            [("rejected", "cannot take feedback on incident {id}: it is dispatched, not resolved")],
        ),
        (
            "feedback before resolved",
            [r, a, f, s],
            Status.RESOLVED,
            ["reported", "dispatched", "accepted", "resolved"],
            [("rejected", "cannot take feedback on incident {id}: it is accepted, not resolved")],
        ),
        (
            "accepted twice",
            [r, a, a],
            Status.ACCEPTED,
            ["reported", "dispatched", "accepted"],
            [("rejected", "cannot accept incident {id}: it is accepted, not dispatched")],
        ),
        (
            "accepted before its report",
            [a, r],
            Status.DISPATCHED,
            ["reported", "dispatched"],
            [("unknown_incident", "no incident {id} has been reported")],
        ),
        (
            "progress for an incident never reported",
            [p],
            None,
            [],
            [("unknown_incident", "no incident {id}")],
        ),
        (
            "accepted after the withdrawal",
            [r, w, a],
            Status.CLOSED,
            ["reported", "dispatched", "closed"],
            # `rejected` while the workflow still runs (its validator: "is closed (withdrawn)"),
            # `incident_closed` once it has completed: the reason depends on a race (see the report).
            [("incident_closed|rejected", "incident {id} is closed")],
        ),
        (
            "a normal incident alongside",
            [r, a, p, s, f],
            Status.CLOSED,
            ["reported", "dispatched", "accepted", "progress", "resolved", "feedback", "closed"],
            [],
        ),
    ]
    ids = [new_id() for _ in cases]
    for incident_id, (_, events, *_) in zip(ids, cases, strict=True):
        for event_type in events:
            pipeline.publish(pipeline.event(event_type, incident_id))
    # A resolution dated before the report: applied, its `at` kept as the upstream app's word only.
    early = new_id()
    for event_type in (r, a):
        pipeline.publish(pipeline.event(event_type, early))
    pipeline.publish(pipeline.event(s, early, at="2026-11-01T00:00:00Z"))
    pipeline.start_bridge()

    expected = sum(len(letters) for *_, letters in cases)
    letters = await pipeline.wait_dead_letters(expected, within=60)
    problems: list[str] = []
    for incident_id, (name, _, status, steps, wanted) in zip(ids, cases, strict=True):
        if status is not None:
            state = await pipeline.wait_for(incident_id, is_in(status))
            if kinds(state) != steps:
                problems.append(f"{name}: steps {kinds(state)}")
        got = [(lt.error_type, lt.error_message) for lt in letters if lt.key == incident_id.encode()]
        if len(got) != len(wanted) or any(
            kind not in want_kind.split("|") or want.format(id=incident_id) not in message
            for (kind, message), (want_kind, want) in zip(got, wanted, strict=False)
        ):
            problems.append(f"{name}: dead letters {got}, not {wanted}")
    assert problems == []
    assert len(letters) == expected

    state = await pipeline.wait_for(early, lambda st: st.status is Status.RESOLVED)
    reported_step, resolved_step = state.timeline[0], state.timeline[-1]
    assert resolved_step.kind.value == "resolved"
    assert resolved_step.event_at == datetime(2026, 11, 1, tzinfo=UTC) < state.reported_at
    assert resolved_step.at >= reported_step.at  # the workflow's own time orders the steps
    assert resolved_step.elapsed is not None and resolved_step.elapsed >= timedelta(0)


FLOOD = 500


def progress_count(state: IncidentState) -> int:
    return sum(step.kind.value == "progress" for step in state.timeline)


def partition_of(pipeline: Pipeline, incident_id: str) -> int:
    """The partition an incident's events go to: Kafka's default partitioner, murmur2 of the key."""
    partitions = sorted(pipeline.producer.partitions_for(pipeline.settings.incidents_topic))
    return int(partitions[(murmur2(incident_id.encode()) & 0x7FFFFFFF) % len(partitions)])


def publish_to_partition(pipeline: Pipeline, event: InboundEvent) -> int:
    """Publish an event; the partition the broker put it in."""
    key, value, headers = encode_structured(event)
    sent = pipeline.producer.send(pipeline.settings.incidents_topic, key=key, value=value, headers=headers)
    return int(sent.get(10).partition)


@dataclass(frozen=True)
class Flooded:
    """What a flood left: for each other incident, how many of the flood's events were applied before its
    resolution, and after how many its resolution was in the topic; which share the flood's partition."""

    applied_before: dict[str, int]
    resolved_after: dict[str, int]
    same_partition: set[str]

    def waited(self, other: str) -> int:
        """Flood events applied between the resolution's place in the topic and its being applied
        (negative: applied before the flood got there)."""
        return self.applied_before[other] - self.resolved_after[other]


async def flood(pipeline: Pipeline) -> Flooded:
    """500 progress events of one incident waiting in the topic, ten other incidents' events mixed in
    (three on the flood's partition, seven on others), then a bridge. Checks that nothing of the flood is
    lost or reordered and that the others' steps are a normal incident's."""
    reference, flooded = new_id(), new_id()
    flood_partition = partition_of(pipeline, flooded)
    same: list[str] = []
    elsewhere: list[str] = []
    while len(same) < 3 or len(elsewhere) < 7:
        candidate = new_id()
        side, wanted = (same, 3) if partition_of(pipeline, candidate) == flood_partition else (elsewhere, 7)
        if len(side) < wanted:
            side.append(candidate)
    others = sorted(same + elsewhere)  # random ids: the two kinds mixed along the flood
    normal = (contract.REPORTED, contract.ACCEPTED, contract.RESOLVED)
    for event_type in normal:
        pipeline.publish(pipeline.event(event_type, reference))
    assert publish_to_partition(pipeline, pipeline.event(contract.REPORTED, flooded)) == flood_partition
    pipeline.publish(pipeline.event(contract.ACCEPTED, flooded))
    # Each other incident's three events spread over the flood's first half: at 20j, 20j + 5, 20j + 10.
    mixed_in = {20 * j + 5 * n: (other, normal[n]) for j, other in enumerate(others) for n in range(3)}
    resolved_after: dict[str, int] = {}  # each other incident's resolved event: after how many progress
    for number in range(FLOOD):
        if number in mixed_in:
            other, event_type = mixed_in[number]
            partition = publish_to_partition(pipeline, pipeline.event(event_type, other))
            assert (partition == flood_partition) is (other in same)
            if event_type == contract.RESOLVED:
                resolved_after[other] = number
        pipeline.publish(pipeline.event(contract.PROGRESS, flooded, note=f"progress {number}"))
    pipeline.start_bridge()

    state = await pipeline.wait_for(flooded, lambda st: progress_count(st) == FLOOD, within=600)
    progress = [step for step in state.timeline if step.kind.value == "progress"]
    assert [step.note for step in progress] == [f"progress {n}" for n in range(FLOOD)]  # none lost, doubled
    expected = kinds(await pipeline.wait_for(reference, is_in(Status.RESOLVED)))
    assert expected == ["reported", "dispatched", "accepted", "resolved"]
    applied_before: dict[str, int] = {}
    for other in others:
        other_state = await pipeline.wait_for(other, is_in(Status.RESOLVED))
        assert kinds(other_state) == expected
        # Temporal's clock times both incidents' steps (one server): comparable.
        done = other_state.timeline[-1].at
        applied_before[other] = sum(step.at < done for step in progress)
    assert pipeline.dead_letters() == []
    result = Flooded(applied_before, resolved_after, set(same))
    print(
        f"limit {pipeline.settings.bridge_max_in_flight}, per incident "
        f"{pipeline.settings.bridge_per_incident_cap}: flood of {FLOOD} applied in "
        f"{(progress[-1].at - progress[0].at).total_seconds():.1f} s; flood events applied while each "
        f"other resolution waited: on other partitions {sorted(map(result.waited, elsewhere))}, on the "
        f"flood's {sorted(map(result.waited, same))}"
    )
    return result


async def test_a_flood_of_one_incidents_events_loses_nothing_and_leaves_the_others_steps_normal(
    pipeline: Pipeline,
) -> None:
    flooded = await flood(pipeline)

    # The flood holds only its own partition (the per-incident cap): an incident on another partition
    # is resolved, its last step, before half the flood is applied, wherever its events were mixed in
    # (up to event 190). Those on the flood's partition come after the flood's events before theirs:
    # how long they wait is printed, not asserted.
    late = {
        other: applied
        for other, applied in flooded.applied_before.items()
        if other not in flooded.same_partition and applied >= FLOOD // 2
    }
    assert late == {}, f"resolved only after this many of the flood's {FLOOD} events: {late}"


async def test_a_second_report_with_other_content_for_a_running_incident_is_a_conflict(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
    await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)

    other = pipeline.event(contract.REPORTED, incident_id, title="Burst water main", category="water_main")
    pipeline.publish(other)
    pipeline.publish(pipeline.event(contract.ACCEPTED, incident_id))  # same key: handled after `other`
    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED)

    assert state.category == "street_lamp"  # the first report stands
    letters = await pipeline.wait_dead_letters(1, within=5)
    assert [(letter.error_type, letter.key) for letter in letters] == [("conflict", incident_id.encode())]
    assert letters[0].value == encode_structured(other)[1]


class RawName(str):
    """A header name that reaches the wire as arbitrary bytes, as a librdkafka or Sarama producer can send.

    kafka-python's producer writes a header name as `name.encode("utf-8")`; this one encodes to `raw`.
    """

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("utf-8", "replace"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def test_a_header_name_that_is_not_utf8_does_not_stop_the_bridge(pipeline: Pipeline) -> None:
    bridge = Bridge(pipeline.settings, pipeline.client)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        pipeline.publish_raw(b"poison", b"{}", [(RawName(b"ce_\xff"), b"1.0")])
        incident_id = new_id()
        pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
        deadline = asyncio.get_running_loop().time() + 20
        while not task.done() and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(Exception):
                if (await pipeline.state(incident_id)).status is Status.DISPATCHED:
                    break
            await asyncio.sleep(0.2)
        assert not task.done(), task.exception()
        await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED, within=1)
        letters = await pipeline.wait_dead_letters(1, within=10)
        # kafka-python yields nothing of such a record: the dead letter says where the original is.
        assert [letter.error_type for letter in letters] == ["unreadable_record"]
        assert letters[0].header(contract.DLQ_SOURCE_OFFSET_HEADER) is not None
        assert "read it with another Kafka client" in letters[0].error_message
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task


async def test_a_value_the_broker_took_but_too_big_to_dead_letter_as_is_still_reaches_the_dlq(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    value = b"x" * (1024 * 1024 - 300)  # fits the producer's 1 MiB request; its dead letter does not
    pipeline.publish_raw(b"big", value, [("content-type", b"application/cloudevents+json")])
    marker = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, marker))
    await pipeline.wait_for(marker, lambda s: s.status is Status.DISPATCHED)

    letters = await pipeline.wait_dead_letters(1, within=3)
    assert [(letter.key, letter.error_type) for letter in letters] == [(b"big", "oversized")]
