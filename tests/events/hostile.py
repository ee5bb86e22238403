"""A corpus of hostile Kafka messages for the inbound topic, each with the error type it must earn.

Every entry has its own incident id and event id, so no two entries share a (key, value) pair and a dead
letter can be matched to the entry it came from. Entries are sized for `MAX_BYTES` (the pipeline fixture's
`max_message_bytes`): only the `oversized` ones are larger.

`GAPS` are entries parse_message does not reject as it should today (see each `gap`): accepted, or
rejected with another error type. `ODDITIES` look hostile but are within the contract and are accepted.

Timestamps relative to now ("three days ahead") are computed when the corpus is built: they only move
towards the past while the tests run, and stay on the side of the limit they were built for (a margin of
hours, or minutes, well beyond a test run's length).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from events import contract
from events.cloudevents import MAX_JSON_DEPTH, format_time
from events.errors import ErrorType
from tests.events.samples import reported_data, sample_data

#: The largest value the corpus is sized for (the pipeline fixture's `max_message_bytes`).
MAX_BYTES: Final = 64 * 1024
#: Nesting far beyond both MAX_JSON_DEPTH and Python's recursion limit.
DEEP: Final = 10_000

Headers = list[tuple[str, bytes]]
STRUCTURED: Final[Headers] = [("content-type", b"application/cloudevents+json")]


@dataclass(frozen=True)
class Hostile:
    """One bad Kafka message and the `gridflow.error.type` it must earn."""

    name: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    error_type: ErrorType
    gap: str | None = None  # set when parse_message does not earn it today: why that is a bug
    names: str | None = None  # the field the rejection's message must name, when the entry checks one


@dataclass(frozen=True)
class Oddity:
    """A message that looks hostile but is within the contract: parse_message accepts it."""

    name: str
    key: bytes | None
    value: bytes
    headers: Headers
    why: str


@dataclass
class _Corpus:
    prefix: str
    entries: list[Hostile] = field(default_factory=list)

    def ids(self) -> tuple[str, str, bytes]:
        """The next entry's incident id, event id and Kafka key."""
        number = len(self.entries) + 1
        incident_id = f"{self.prefix}-{number:03d}"
        return incident_id, f"evt-{self.prefix}-{number:03d}", incident_id.encode()

    def add(
        self,
        name: str,
        error_type: ErrorType,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        gap: str | None = None,
        names: str | None = None,
    ) -> None:
        self.entries.append(Hostile(name, key, value, headers, error_type, gap, names))


# --- building blocks -------------------------------------------------------------------------------------


def envelope(
    incident_id: str, event_id: str, event_type: str = contract.REPORTED, **changes: Any
) -> dict[str, Any]:
    """A valid structured envelope; `changes` replace attributes (or `data`); the value `...` removes one."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/apps/hotline",
        "type": event_type,
        "time": "2026-11-23T08:00:05Z",
        "subject": incident_id,
        "datacontenttype": "application/json",
        "data": sample_data(event_type, incident_id),
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not ...}


def reported(incident_id: str, /, **changes: Any) -> dict[str, Any]:
    """Reported data with some fields changed; the value `...` removes a field."""
    data = {**reported_data(incident_id), **changes}
    return {name: value for name, value in data.items() if value is not ...}


def located(incident_id: str, /, **changes: Any) -> dict[str, Any]:
    """Reported data with some location fields changed; the value `...` removes one."""
    location = {**reported_data(incident_id)["location"], **changes}
    return reported(incident_id, location={n: v for n, v in location.items() if v is not ...})


def encode(document: object) -> bytes:
    """JSON as a careless producer writes it: NaN and Infinity pass, non-ASCII stays UTF-8."""
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def binary_headers(
    event_id: str,
    event_type: str = contract.REPORTED,
    *,
    content_type: bytes | None = b"application/json",
    **changes: bytes | None,
) -> Headers:
    """Binary-mode headers (`ce_*` plus a content type); None removes a header."""
    attributes: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": event_id.encode(),
        "ce_source": b"/apps/hotline",
        "ce_type": event_type.encode(),
        "ce_time": b"2026-11-23T08:00:05Z",
        "content-type": content_type,
    }
    attributes.update(changes)
    return [(name, value) for name, value in attributes.items() if value is not None]


def nested(levels: int, open_: bytes = b"[", close: bytes = b"]", bottom: bytes = b"1") -> bytes:
    """JSON nested `levels` deep, written as bytes (json.dumps itself would hit the recursion limit)."""
    return open_ * levels + bottom + close * levels


def _padded_to(size: int, build: Callable[[str], bytes]) -> bytes:
    """`build(padding)` grown until the value is exactly `size` bytes (the padding is ASCII)."""
    base = len(build(""))
    value = build("x" * (size - base))
    assert len(value) == size
    return value


# --- the corpus ------------------------------------------------------------------------------------------


def _not_json(c: _Corpus) -> None:
    i, e, k = c.ids()
    whole = encode(envelope(i, e))
    c.add("truncated envelope", ErrorType.MALFORMED, k, whole[: len(whole) // 2], STRUCTURED)
    i, e, k = c.ids()
    c.add("truncated binary data", ErrorType.MALFORMED, k, encode(reported(i))[:-1], binary_headers(e))
    i, e, k = c.ids()
    c.add("trailing garbage", ErrorType.MALFORMED, k, encode(envelope(i, e)) + b"}", STRUCTURED)
    i, e, k = c.ids()
    c.add("python repr, not JSON", ErrorType.MALFORMED, k, repr(envelope(i, e)).encode(), STRUCTURED)
    i, e, k = c.ids()
    c.add("whitespace only", ErrorType.MALFORMED, k, b" \n\t ", STRUCTURED)
    i, e, k = c.ids()
    c.add("envelope is an array", ErrorType.MALFORMED, k, encode([envelope(i, e)]), STRUCTURED)
    i, e, k = c.ids()
    c.add("envelope is a string", ErrorType.MALFORMED, k, encode(json.dumps(envelope(i, e))), STRUCTURED)
    i, e, k = c.ids()
    c.add("envelope is null", ErrorType.MALFORMED, k, b"null", STRUCTURED)
    i, e, k = c.ids()
    c.add("binary data is an array", ErrorType.MALFORMED, k, encode([reported(i)]), binary_headers(e))
    i, e, k = c.ids()
    value = encode(envelope(i, e, n=0)).replace(b'"n": 0', b'"n": ' + b"9" * 5000)
    c.add("a 5000-digit number", ErrorType.MALFORMED, k, value, STRUCTURED)


def _no_value(c: _Corpus) -> None:
    _, e, k = c.ids()
    c.add("empty value, structured", ErrorType.MALFORMED, k, b"", STRUCTURED)
    _, e, k = c.ids()
    c.add("empty value, binary", ErrorType.MALFORMED, k, b"", binary_headers(e))
    _, e, k = c.ids()
    c.add("tombstone (None value)", ErrorType.MALFORMED, k, None, STRUCTURED)
    _, e, k = c.ids()
    c.add("tombstone without headers", ErrorType.MALFORMED, k, None, [])


def _reported_field_types(c: _Corpus) -> None:
    """Every required field of reported.v1 missing, null, of the wrong JSON type, or out of its domain."""
    cases: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        ("incident_id a number", lambda i: reported(i, incident_id=42)),
        ("incident_id null", lambda i: reported(i, incident_id=None)),
        ("incident_id missing", lambda i: reported(i, incident_id=...)),
        ("incident_id empty", lambda i: reported(i, incident_id="")),
        ("incident_id an array", lambda i: reported(i, incident_id=[i])),
        ("incident_id of 129 characters", lambda i: reported(i, incident_id=i + "x" * (129 - len(i)))),
        ("incident_id with a NUL", lambda i: reported(i, incident_id=i + "\x00")),
        ("incident_id with a newline", lambda i: reported(i, incident_id=i + "\n")),
        ("incident_id with a space", lambda i: reported(i, incident_id=i.replace("-", " ", 1))),
        ("incident_id with an escape sequence", lambda i: reported(i, incident_id=i + "\x1b[2J")),
        ("category a number", lambda i: reported(i, category=5)),
        ("category null", lambda i: reported(i, category=None)),
        ("category missing", lambda i: reported(i, category=...)),
        ("category not a slug", lambda i: reported(i, category="Street Lamp")),
        ("category of 65 characters", lambda i: reported(i, category="c" * 65)),
        ("title a number", lambda i: reported(i, title=123)),
        ("title null", lambda i: reported(i, title=None)),
        ("title missing", lambda i: reported(i, title=...)),
        ("title empty", lambda i: reported(i, title="")),
        ("title of 201 characters", lambda i: reported(i, title="t" * 201)),
        ("title of 50 000 characters", lambda i: reported(i, title="t" * 50_000)),
        ("title an object", lambda i: reported(i, title={"en": "lamp"})),
        ("description of 4001 characters", lambda i: reported(i, description="d" * 4001)),
        ("description a boolean", lambda i: reported(i, description=True)),
        ("priority not in the enum", lambda i: reported(i, priority="asap")),
        ("priority in upper case", lambda i: reported(i, priority="HIGH")),
        ("priority a number", lambda i: reported(i, priority=3)),
        ("priority null", lambda i: reported(i, priority=None)),
        ("priority missing", lambda i: reported(i, priority=...)),
        ("priority an array", lambda i: reported(i, priority=["high"])),
        ("location missing", lambda i: reported(i, location=...)),
        ("location null", lambda i: reported(i, location=None)),
        ("location a string", lambda i: reported(i, location="Nanjing East Road 100")),
        ("location an array", lambda i: reported(i, location=[])),
        ("location empty", lambda i: reported(i, location={})),
        ("location.grid_id a number", lambda i: located(i, grid_id=7)),
        ("location.grid_id missing", lambda i: located(i, grid_id=...)),
        ("location.street_id null", lambda i: located(i, street_id=None)),
        ("location.district_id empty", lambda i: located(i, district_id="")),
        ("location.lat a string", lambda i: located(i, lat="31.2354")),
        ("location.lat a boolean", lambda i: located(i, lat=True)),
        ("location.lat above 90", lambda i: located(i, lat=91)),
        ("location.lon below -180", lambda i: located(i, lon=-180.5)),
        ("location.address of 501 characters", lambda i: located(i, address="a" * 501)),
        ("location with an unknown field", lambda i: located(i, floor=3)),
        ("reported_at missing", lambda i: reported(i, reported_at=...)),
        ("reported_at null", lambda i: reported(i, reported_at=None)),
        ("reported_at epoch seconds", lambda i: reported(i, reported_at=1_795_420_800)),
        ("reported_at prose", lambda i: reported(i, reported_at="yesterday")),
        ("reported_at without a zone", lambda i: reported(i, reported_at="2026-11-23T08:00:00")),
        ("reported_at a date only", lambda i: reported(i, reported_at="2026-11-23")),
        ("reported_at 30 February", lambda i: reported(i, reported_at="2026-02-30T08:00:00Z")),
        ("reported_at a leap second", lambda i: reported(i, reported_at="2026-12-31T23:59:60Z")),
        ("reported_at offset of 24 hours", lambda i: reported(i, reported_at="2026-11-23T08:00:00+24:00")),
        ("reported_at year 10000", lambda i: reported(i, reported_at="10000-01-01T00:00:00Z")),
        ("reporter a string", lambda i: reported(i, reporter="Li Wei")),
        ("reporter.phone of 51 characters", lambda i: reported(i, reporter={"phone": "1" * 51})),
        ("an unknown data field", lambda i: reported(i, severity="high")),
    ]
    for name, build in cases:
        i, e, k = c.ids()
        c.add(
            f"reported: {name}", ErrorType.INVALID_DATA, k, encode(envelope(i, e, data=build(i))), STRUCTURED
        )
    i, e, k = c.ids()
    c.add(
        "reported, binary: incident_id a number",
        ErrorType.INVALID_DATA,
        k,
        encode(reported(i, incident_id=7)),
        binary_headers(e),
    )
    i, e, k = c.ids()
    c.add(
        "reported, binary: priority not in the enum",
        ErrorType.INVALID_DATA,
        k,
        encode(reported(i, priority="critical")),
        binary_headers(e),
    )
    for name, data in (("null", None), ("an array", ["x"]), ("a string", "inc"), ("missing", ...)):
        i, e, k = c.ids()
        c.add(f"data {name}", ErrorType.MALFORMED, k, encode(envelope(i, e, data=data)), STRUCTURED)


def _huge(c: _Corpus) -> None:
    i, e, k = c.ids()
    value = _padded_to(MAX_BYTES + 1, lambda pad: encode(envelope(i, e, data=reported(i, description=pad))))
    c.add("one byte over the size limit", ErrorType.OVERSIZED, k, value, STRUCTURED)
    i, e, k = c.ids()
    value = encode(envelope(i, e, data=reported(i, title="T" * 300_000)))
    c.add("300 kB title (over the default 256 KiB too)", ErrorType.OVERSIZED, k, value, STRUCTURED)
    i, e, k = c.ids()
    c.add("300 kB of zero bytes, binary", ErrorType.OVERSIZED, k, bytes(300_000), binary_headers(e))
    i, e, k = c.ids()
    value = _padded_to(MAX_BYTES, lambda pad: encode(envelope(i, e, data=reported(i, description=pad))))
    c.add("exactly at the size limit, description too long", ErrorType.INVALID_DATA, k, value, STRUCTURED)
    i, e, k = c.ids()
    c.add("a 20 kB Kafka key", ErrorType.KEY_MISMATCH, k * 1000, encode(envelope(i, e)), STRUCTURED)


def _deep(c: _Corpus) -> None:
    i, e, k = c.ids()
    head = encode(envelope(i, e, data=reported(i, extra=0)))
    value = head.replace(b'"extra": 0', b'"extra": ' + nested(DEEP))
    c.add("arrays 10 000 deep in data", ErrorType.MALFORMED, k, value, STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "objects 10 000 deep, binary", ErrorType.MALFORMED, k, nested(DEEP, b'{"a":', b"}"), binary_headers(e)
    )
    i, e, k = c.ids()
    c.add("10 000 unclosed brackets", ErrorType.MALFORMED, k, b"[" * DEEP, STRUCTURED)
    i, e, k = c.ids()
    value = head.replace(b'"extra": 0', b'"extra": ' + nested(MAX_JSON_DEPTH))
    c.add("one level deeper than MAX_JSON_DEPTH", ErrorType.MALFORMED, k, value, STRUCTURED)
    i, e, k = c.ids()
    value = encode(envelope(i, e, trace=0)).replace(
        b'"trace": 0', b'"trace": ' + nested(DEEP, b'{"a":', b"}")
    )
    c.add("an extension 10 000 deep", ErrorType.MALFORMED, k, value, STRUCTURED)


def _bad_utf8(c: _Corpus) -> None:
    def corrupt(i: str, e: str, marker: str, raw: bytes) -> bytes:
        value = encode(envelope(i, e, data=reported(i, title=marker)))
        return value.replace(marker.encode(), raw)

    i, e, k = c.ids()
    c.add("value: a 0xff byte", ErrorType.MALFORMED, k, corrupt(i, e, "@@", b"lamp \xff"), STRUCTURED)
    i, e, k = c.ids()
    c.add("value: overlong '/'", ErrorType.MALFORMED, k, corrupt(i, e, "@@", b"\xc0\xaf"), STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "value: UTF-8-encoded surrogate",
        ErrorType.MALFORMED,
        k,
        corrupt(i, e, "@@", b"\xed\xa0\x80"),
        STRUCTURED,
    )
    i, e, k = c.ids()
    c.add(
        "value: cut multi-byte sequence", ErrorType.MALFORMED, k, corrupt(i, e, "@@", b"\xe8\xb7"), STRUCTURED
    )
    i, e, k = c.ids()
    c.add(
        "value: JSON-escaped lone surrogate",
        ErrorType.MALFORMED,
        k,
        corrupt(i, e, "@@", b"\\ud800"),
        STRUCTURED,
    )
    i, e, k = c.ids()
    c.add("value: UTF-8 BOM", ErrorType.MALFORMED, k, b"\xef\xbb\xbf" + encode(envelope(i, e)), STRUCTURED)
    i, e, k = c.ids()
    c.add("value: UTF-16", ErrorType.MALFORMED, k, json.dumps(envelope(i, e)).encode("utf-16"), STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "value: Latin-1, binary",
        ErrorType.MALFORMED,
        k,
        json.dumps(reported(i, title="Straßenlampe"), ensure_ascii=False).encode("latin-1"),
        binary_headers(e),
    )
    i, e, k = c.ids()
    c.add(
        "header ce_id not UTF-8",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        binary_headers(e, ce_id=b"evt-\xff"),
    )
    i, e, k = c.ids()
    c.add(
        "header ce_type cut multi-byte",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        binary_headers(e, ce_type=b"gridflow.\xe8"),
    )
    i, e, k = c.ids()
    c.add(
        "header ce_source surrogate bytes",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        binary_headers(e, ce_source=b"/apps/\xed\xb0\x80"),
    )
    i, e, k = c.ids()
    c.add(
        "header content-type not UTF-8",
        ErrorType.MALFORMED,
        k,
        encode(envelope(i, e)),
        [("content-type", b"application/cloudevents+json\xff")],
    )
    i, e, k = c.ids()
    c.add("key not UTF-8", ErrorType.KEY_MISMATCH, k + b"\xff", encode(envelope(i, e)), STRUCTURED)


def _control_characters(c: _Corpus) -> None:
    i, e, k = c.ids()
    c.add("key with a trailing NUL", ErrorType.KEY_MISMATCH, k + b"\x00", encode(envelope(i, e)), STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "key with a trailing newline",
        ErrorType.KEY_MISMATCH,
        k + b"\n",
        encode(reported(i)),
        binary_headers(e),
    )
    # CloudEvents 1.0 String attributes must not hold U+0000-U+001F, U+007F-U+009F or noncharacters.
    gap = None
    i, e, k = c.ids()
    value = encode(envelope(i, e, type=contract.REPORTED + "\x00"))
    c.add(
        "type with a trailing NUL",
        ErrorType.INVALID_ATTRIBUTE,
        k,
        value,
        STRUCTURED,
        gap,
    )
    i, e, k = c.ids()
    c.add(
        "ce id with a NUL",
        ErrorType.INVALID_ATTRIBUTE,
        k,
        encode(envelope(i, e, id=e + "\x00")),
        STRUCTURED,
        gap,
    )
    i, e, k = c.ids()
    headers = binary_headers(e, ce_source=b"/apps/\x1b[31mhotline\n")
    c.add(
        "ce source with an escape sequence, binary",
        ErrorType.INVALID_ATTRIBUTE,
        k,
        encode(reported(i)),
        headers,
        gap,
    )
    i, e, k = c.ids()
    value = encode(envelope(i, e, subject=i + "\x85\x9b"))
    c.add("ce subject with C1 controls", ErrorType.INVALID_ATTRIBUTE, k, value, STRUCTURED, gap)
    i, e, k = c.ids()
    value = encode(envelope(i, e, id=e + "\ufffe"))
    c.add("ce id with the noncharacter U+FFFE", ErrorType.INVALID_ATTRIBUTE, k, value, STRUCTURED, gap)
    i, e, k = c.ids()
    value = encode(envelope(i, e, trace="a\x00b"))
    c.add("extension string with a NUL", ErrorType.INVALID_ATTRIBUTE, k, value, STRUCTURED, gap)
    i, e, k = c.ids()
    headers = [*binary_headers(e), ("ce_data", b"x")]
    gap = None  # CloudEvents 1.0: no attribute may be named data
    c.add("binary ce_data header", ErrorType.INVALID_ATTRIBUTE, k, encode(reported(i)), headers, gap)


def _specversion(c: _Corpus) -> None:
    for name, version, error_type in (
        ("specversion 0.3", "0.3", ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion 2.0", "2.0", ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion 1.0 as a number", 1.0, ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion 1 as a number", 1, ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion '1'", "1", ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion '1.0 '", "1.0 ", ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion '1.0.2'", "1.0.2", ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion an array", ["1.0"], ErrorType.UNSUPPORTED_SPECVERSION),
        ("specversion missing", ..., ErrorType.MISSING_ATTRIBUTE),
        ("specversion null", None, ErrorType.MISSING_ATTRIBUTE),
        ("specversion empty", "", ErrorType.MISSING_ATTRIBUTE),
    ):
        i, e, k = c.ids()
        c.add(name, error_type, k, encode(envelope(i, e, specversion=version)), STRUCTURED)
    for name, header, error_type in (
        ("binary specversion 0.3", b"0.3", ErrorType.UNSUPPORTED_SPECVERSION),
        ("binary specversion 2.0", b"2.0", ErrorType.UNSUPPORTED_SPECVERSION),
        ("binary specversion empty", b"", ErrorType.MISSING_ATTRIBUTE),
        ("binary specversion missing", None, ErrorType.MISSING_ATTRIBUTE),
    ):
        i, e, k = c.ids()
        c.add(name, error_type, k, encode(reported(i)), binary_headers(e, ce_specversion=header))


def _attributes(c: _Corpus) -> None:
    cases: list[tuple[str, dict[str, Any], ErrorType]] = [
        ("id missing", {"id": ...}, ErrorType.MISSING_ATTRIBUTE),
        ("id null", {"id": None}, ErrorType.MISSING_ATTRIBUTE),
        ("id a number", {"id": 42}, ErrorType.INVALID_ATTRIBUTE),
        ("id an object", {"id": {"v": 1}}, ErrorType.INVALID_ATTRIBUTE),
        ("source missing", {"source": ...}, ErrorType.MISSING_ATTRIBUTE),
        ("source empty", {"source": ""}, ErrorType.MISSING_ATTRIBUTE),
        ("source a boolean", {"source": True}, ErrorType.INVALID_ATTRIBUTE),
        ("type missing", {"type": ...}, ErrorType.MISSING_ATTRIBUTE),
        ("type a number", {"type": 1}, ErrorType.INVALID_ATTRIBUTE),
        ("time without a zone", {"time": "2026-11-23T08:00:05"}, ErrorType.INVALID_ATTRIBUTE),
        ("time prose", {"time": "now"}, ErrorType.INVALID_ATTRIBUTE),
        ("time epoch seconds", {"time": 1_795_420_805}, ErrorType.INVALID_ATTRIBUTE),
        ("time month 13", {"time": "2026-13-01T00:00:00Z"}, ErrorType.INVALID_ATTRIBUTE),
        ("time year 10000", {"time": "10000-01-01T00:00:00Z"}, ErrorType.INVALID_ATTRIBUTE),
        ("subject empty", {"subject": ""}, ErrorType.INVALID_ATTRIBUTE),
        ("dataschema a number", {"dataschema": 5}, ErrorType.INVALID_ATTRIBUTE),
        ("datacontenttype a number", {"datacontenttype": 5}, ErrorType.INVALID_ATTRIBUTE),
        ("datacontenttype XML", {"datacontenttype": "application/xml"}, ErrorType.MALFORMED),
        ("extension name with capitals and a dash", {"Trace-Id": "x"}, ErrorType.INVALID_ATTRIBUTE),
        ("extension an object", {"trace": {"a": 1}}, ErrorType.INVALID_ATTRIBUTE),
        ("extension a float", {"weight": 1.5}, ErrorType.INVALID_ATTRIBUTE),
        ("extension beyond int32", {"sequence": 2**31}, ErrorType.INVALID_ATTRIBUTE),
        ("data_base64 not base64", {"data": ..., "data_base64": "not base64!"}, ErrorType.MALFORMED),
        ("data_base64 a number", {"data": ..., "data_base64": 12}, ErrorType.MALFORMED),
        ("data_base64 not JSON", {"data": ..., "data_base64": "bGFtcA=="}, ErrorType.MALFORMED),
        ("data and data_base64", {"data_base64": "e30="}, ErrorType.MALFORMED),
    ]
    for name, changes, error_type in cases:
        i, e, k = c.ids()
        c.add(name, error_type, k, encode(envelope(i, e, **changes)), STRUCTURED)
    binary_cases: list[tuple[str, Headers, ErrorType]] = [
        (
            "binary ce_datacontenttype header",
            [("ce_datacontenttype", b"application/json")],
            ErrorType.INVALID_ATTRIBUTE,
        ),
        ("binary extension header with capitals", [("ce_Trace-Id", b"x")], ErrorType.INVALID_ATTRIBUTE),
        ("binary empty ce_ header name", [("ce_", b"x")], ErrorType.INVALID_ATTRIBUTE),
        ("binary ce_time without a zone", [("ce_time", b"2026-11-23T08:00:05")], ErrorType.INVALID_ATTRIBUTE),
        ("binary ce_id empty", [("ce_id", b"")], ErrorType.MISSING_ATTRIBUTE),
        ("binary ce_type missing", [("ce_type", b"")], ErrorType.MISSING_ATTRIBUTE),
    ]
    for name, replaced, error_type in binary_cases:
        i, e, k = c.ids()
        names = {header for header, _ in replaced}
        headers = [(n, v) for n, v in binary_headers(e) if n.lower() not in {m.lower() for m in names}]
        c.add(name, error_type, k, encode(reported(i)), [*headers, *replaced])


def _content_types(c: _Corpus) -> None:
    i, e, k = c.ids()
    c.add("no headers at all", ErrorType.MISSING_ATTRIBUTE, k, encode(envelope(i, e)), [])
    i, e, k = c.ids()
    c.add(
        "only unrelated headers",
        ErrorType.MISSING_ATTRIBUTE,
        k,
        encode(envelope(i, e)),
        [("traceparent", b"00-ab-cd-01")],
    )
    i, e, k = c.ids()
    c.add(
        "envelope sent as application/json",
        ErrorType.MISSING_ATTRIBUTE,
        k,
        encode(envelope(i, e)),
        [("content-type", b"application/json")],
    )
    i, e, k = c.ids()
    c.add("binary data without any header", ErrorType.MISSING_ATTRIBUTE, k, encode(reported(i)), [])
    i, e, k = c.ids()
    c.add(
        "batch content type",
        ErrorType.MALFORMED,
        k,
        encode([envelope(i, e)]),
        [("content-type", b"application/cloudevents-batch+json")],
    )
    i, e, k = c.ids()
    c.add(
        "cloudevents+xml",
        ErrorType.MALFORMED,
        k,
        b"<event/>",
        [("content-type", b"application/cloudevents+xml")],
    )
    i, e, k = c.ids()
    c.add(
        "binary data as text/plain",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        binary_headers(e, content_type=b"text/plain"),
    )
    i, e, k = c.ids()
    c.add(
        "binary data as application/xml",
        ErrorType.MALFORMED,
        k,
        b"<incident/>",
        binary_headers(e, content_type=b"application/xml"),
    )


def _mismatches(c: _Corpus) -> None:
    i, e, k = c.ids()
    c.add(
        "binary: ce_type reported, body is accepted data",
        ErrorType.INVALID_DATA,
        k,
        encode(sample_data(contract.ACCEPTED, i)),
        binary_headers(e),
    )
    i, e, k = c.ids()
    c.add(
        "binary: ce_type accepted, body is reported data",
        ErrorType.INVALID_DATA,
        k,
        encode(reported(i)),
        binary_headers(e, contract.ACCEPTED),
    )
    i, e, k = c.ids()
    c.add(
        "structured: type reported, data of resolved",
        ErrorType.INVALID_DATA,
        k,
        encode(envelope(i, e, data=sample_data(contract.RESOLVED, i))),
        STRUCTURED,
    )
    i, e, k = c.ids()
    c.add(
        "structured content type and ce_ headers, value is binary data",
        ErrorType.MISSING_ATTRIBUTE,
        k,
        encode(reported(i)),
        [*binary_headers(e, content_type=None), *STRUCTURED],
    )
    i, e, k = c.ids()
    c.add(
        "structured content type and ce_ headers that disagree: the envelope decides",
        ErrorType.UNKNOWN_TYPE,
        k,
        encode(envelope(i, e, type="gridflow.incident.reported.v2")),
        [*binary_headers(e, content_type=None), *STRUCTURED],
    )
    i, e, k = c.ids()
    c.add(
        "key of another incident, structured",
        ErrorType.KEY_MISMATCH,
        k + b"-other",
        encode(envelope(i, e)),
        STRUCTURED,
    )
    i, e, k = c.ids()
    c.add(
        "key of another incident, binary",
        ErrorType.KEY_MISMATCH,
        b"inc-someone-else",
        encode(reported(i)),
        binary_headers(e),
    )
    i, e, k = c.ids()
    c.add("key in another case", ErrorType.KEY_MISMATCH, k.upper(), encode(envelope(i, e)), STRUCTURED)
    i, e, k = c.ids()
    c.add("empty key", ErrorType.KEY_MISMATCH, b"", encode(envelope(i, e)), STRUCTURED)


def _duplicates(c: _Corpus) -> None:
    i, e, k = c.ids()
    c.add(
        "duplicate envelope key 'type'",
        ErrorType.MALFORMED,
        k,
        b'{"type": "gridflow.incident.withdrawn.v1", ' + encode(envelope(i, e))[1:],
        STRUCTURED,
    )
    i, e, k = c.ids()
    value = encode(envelope(i, e)).replace(b'"priority": "high"', b'"priority": "high", "priority": "low"')
    c.add("duplicate data key 'priority'", ErrorType.MALFORMED, k, value, STRUCTURED)
    i, e, k = c.ids()
    value = encode(envelope(i, e)).replace(b'"grid_id": ', b'"grid_id": "g-elsewhere", "grid_id": ')
    c.add("duplicate location key 'grid_id'", ErrorType.MALFORMED, k, value, STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "duplicate key in binary data",
        ErrorType.MALFORMED,
        k,
        b'{"incident_id": "inc-decoy", ' + encode(reported(i))[1:],
        binary_headers(e),
    )
    i, e, k = c.ids()
    headers = binary_headers(e)
    c.add(
        "ce_type header twice",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        [*headers, ("ce_type", contract.ACCEPTED.encode())],
    )
    i, e, k = c.ids()
    c.add(
        "ce_type and CE_TYPE",
        ErrorType.MALFORMED,
        k,
        encode(reported(i)),
        [*binary_headers(e), ("CE_TYPE", contract.REPORTED.encode())],
    )
    i, e, k = c.ids()
    c.add(
        "content-type twice",
        ErrorType.MALFORMED,
        k,
        encode(envelope(i, e)),
        [*STRUCTURED, ("Content-Type", b"application/json")],
    )


def _not_numbers(c: _Corpus) -> None:
    for name, text in (
        ("NaN", b"NaN"),
        ("Infinity", b"Infinity"),
        ("-Infinity", b"-Infinity"),
        ("1e999", b"1e999"),
    ):
        i, e, k = c.ids()
        value = encode(envelope(i, e, data=located(i, lat=0.5))).replace(b'"lat": 0.5', b'"lat": ' + text)
        c.add(f"location.lat {name}", ErrorType.MALFORMED, k, value, STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "NaN in binary data", ErrorType.MALFORMED, k, encode(located(i, lon=float("nan"))), binary_headers(e)
    )
    i, e, k = c.ids()
    c.add(
        "Infinity as an extension",
        ErrorType.MALFORMED,
        k,
        encode(envelope(i, e, weight=float("inf"))),
        STRUCTURED,
    )


def _types(c: _Corpus) -> None:
    for name, event_type in (
        ("unknown type", "gridflow.incident.teleported.v1"),
        ("reported.v2", "gridflow.incident.reported.v2"),
        ("reported without a version", "gridflow.incident.reported"),
        ("reported in upper case", contract.REPORTED.upper()),
        ("an outbound type", "gridflow.incident.dispatched.v1"),
        ("another producer's type", "com.example.order.created"),
    ):
        i, e, k = c.ids()
        c.add(name, ErrorType.UNKNOWN_TYPE, k, encode(envelope(i, e, type=event_type)), STRUCTURED)
    i, e, k = c.ids()
    c.add(
        "binary reported.v2",
        ErrorType.UNKNOWN_TYPE,
        k,
        encode(reported(i)),
        binary_headers(e, "gridflow.incident.reported.v2"),
    )
    i, e, k = c.ids()
    c.add(
        "binary accepted.v2",
        ErrorType.UNKNOWN_TYPE,
        k,
        encode(sample_data(contract.ACCEPTED, i)),
        binary_headers(e, "gridflow.incident.accepted.v2"),
    )


def lifecycle(incident_id: str, event_type: str, /, **changes: Any) -> dict[str, Any]:
    """Valid data of a lifecycle type with some fields changed; the value `...` removes a field."""
    data = {**sample_data(event_type, incident_id), **changes}
    return {name: value for name, value in data.items() if value is not ...}


def ahead(delta: timedelta) -> str:
    """An RFC 3339 timestamp `delta` ahead of now (when the corpus is built), in UTC."""
    return format_time((datetime.now(UTC) + delta).replace(microsecond=0))


#: 10 kB: far past the 128 characters an id may have, well within the message size limit.
LONG_ID: Final = "u" * 10_000


def _timestamps(c: _Corpus) -> None:
    """The data's own timestamps far ahead of gridflow's clock, or outside what UTC can represent."""
    cases: list[tuple[str, str, Callable[[str], dict[str, Any]], str]] = [
        (
            "reported_at in year 2300",
            contract.REPORTED,
            lambda i: reported(i, reported_at="2300-01-01T00:00:00Z"),
            "reported_at",
        ),
        (
            "reported_at three days ahead",
            contract.REPORTED,
            lambda i: reported(i, reported_at=ahead(timedelta(days=3))),
            "reported_at",
        ),
        (
            "reported_at local time sent as UTC (eight hours ahead)",
            contract.REPORTED,
            lambda i: reported(i, reported_at=ahead(timedelta(hours=8))),
            "reported_at",
        ),
        (
            "reported_at in year 9999, twelve hours west of UTC (year 10000 in UTC)",
            contract.REPORTED,
            lambda i: reported(i, reported_at="9999-12-31T23:59:59-12:00"),
            "reported_at",
        ),
        (
            "reported_at in year 1, twelve hours east of UTC (year 0 in UTC)",
            contract.REPORTED,
            lambda i: reported(i, reported_at="0001-01-01T00:00:00+12:00"),
            "reported_at",
        ),
        (
            "accepted: at in year 2300",
            contract.ACCEPTED,
            lambda i: lifecycle(i, contract.ACCEPTED, at="2300-06-01T08:00:00+08:00"),
            "at",
        ),
        (
            "resolved: at three days ahead",
            contract.RESOLVED,
            lambda i: lifecycle(i, contract.RESOLVED, at=ahead(timedelta(days=3))),
            "at",
        ),
        (
            "feedback: at in year 9999, west of UTC",
            contract.FEEDBACK,
            lambda i: lifecycle(i, contract.FEEDBACK, at="9999-12-31T20:00:00-05:00"),
            "at",
        ),
    ]
    for name, event_type, build, names in cases:
        i, e, k = c.ids()
        value = encode(envelope(i, e, event_type, data=build(i)))
        c.add(name, ErrorType.INVALID_DATA, k, value, STRUCTURED, names=f"data.{names}")
    i, e, k = c.ids()
    c.add(
        "binary progress: at in year 2300",
        ErrorType.INVALID_DATA,
        k,
        encode(lifecycle(i, contract.PROGRESS, at="2300-01-01T00:00:00Z")),
        binary_headers(e, contract.PROGRESS),
        names="data.at",
    )


def _unit_ids(c: _Corpus) -> None:
    """Unit ids (the holding unit, the grid of a location) with control characters, or 10 kB long."""
    for kind, bad in (("a NUL", "\x00"), ("an ANSI colour escape", "\x1b[31m"), ("a newline", "\n")):
        for event_type in (contract.ACCEPTED, contract.RESOLVED):
            i, e, k = c.ids()
            data = lifecycle(i, event_type, unit_id=f"g-nanjing{bad}-07")
            short = event_type.split(".")[2]
            c.add(
                f"{short}: unit_id with {kind}",
                ErrorType.INVALID_DATA,
                k,
                encode(envelope(i, e, event_type, data=data)),
                STRUCTURED,
                names="data.unit_id",
            )
        i, e, k = c.ids()
        c.add(
            f"reported: location.grid_id with {kind}",
            ErrorType.INVALID_DATA,
            k,
            encode(envelope(i, e, data=located(i, grid_id=f"g-nanjing-07{bad}"))),
            STRUCTURED,
            names="data.location.grid_id",
        )
    i, e, k = c.ids()
    c.add(
        "binary progress: unit_id with an ANSI colour escape",
        ErrorType.INVALID_DATA,
        k,
        encode(lifecycle(i, contract.PROGRESS, unit_id="\x1b[31mg-nanjing-07\x1b[0m")),
        binary_headers(e, contract.PROGRESS),
        names="data.unit_id",
    )
    i, e, k = c.ids()
    data = lifecycle(i, contract.ACCEPTED, unit_id=LONG_ID)
    c.add(
        "accepted: unit_id of 10 kB",
        ErrorType.INVALID_DATA,
        k,
        encode(envelope(i, e, contract.ACCEPTED, data=data)),
        STRUCTURED,
        names="data.unit_id",
    )
    i, e, k = c.ids()
    c.add(
        "reported: location.grid_id of 10 kB",
        ErrorType.INVALID_DATA,
        k,
        encode(envelope(i, e, data=located(i, grid_id=LONG_ID))),
        STRUCTURED,
        names="data.location.grid_id",
    )
    i, e, k = c.ids()
    c.add(
        "reported: location.city_id with a NUL",
        ErrorType.INVALID_DATA,
        k,
        encode(envelope(i, e, data=located(i, city_id="c-shanghai\x00"))),
        STRUCTURED,
        names="data.location.city_id",
    )


def _unicode_ids(c: _Corpus) -> None:
    """Ids that differ only in Unicode normalisation (or look ASCII and are not): all refused.

    Ids are ASCII by contract (`gridflow.domain.incident.Identifier`): were "café" allowed, its NFC and
    NFD forms would be two workflows, two Kafka keys and two search-attribute values that print the same.
    """
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for form, word in (("NFC", nfc), ("NFD", nfd)):
        i, e, _ = c.ids()
        incident_id = f"{i}-{word}"
        c.add(
            f"incident_id 'café' in {form}",
            ErrorType.INVALID_DATA,
            incident_id.encode(),
            encode(envelope(i, e, data=reported(incident_id), subject=...)),
            STRUCTURED,
            names="data.incident_id",
        )
    i, e, _ = c.ids()
    c.add(
        "key 'café' in NFC, incident_id in NFD",
        ErrorType.INVALID_DATA,
        f"{i}-{nfc}".encode(),
        encode(envelope(i, e, data=reported(f"{i}-{nfd}"), subject=...)),
        STRUCTURED,
        names="data.incident_id",
    )
    i, e, k = c.ids()
    c.add(
        "accepted: unit_id 'café' in NFD",
        ErrorType.INVALID_DATA,
        k,
        encode(envelope(i, e, contract.ACCEPTED, data=lifecycle(i, contract.ACCEPTED, unit_id=f"g-{nfd}"))),
        STRUCTURED,
        names="data.unit_id",
    )
    i, e, _ = c.ids()
    lookalike = i.replace("inc", "in\u0441", 1)  # CYRILLIC SMALL LETTER ES for the Latin c
    c.add(
        "incident_id with a Cyrillic look-alike letter",
        ErrorType.INVALID_DATA,
        lookalike.encode(),
        encode(envelope(i, e, data=reported(lookalike), subject=...)),
        STRUCTURED,
        names="data.incident_id",
    )
    i, e, _ = c.ids()
    wide = f"{i}-\uff11\uff12"  # FULLWIDTH DIGIT ONE, TWO: str.isdigit() says yes
    c.add(
        "incident_id with fullwidth digits",
        ErrorType.INVALID_DATA,
        wide.encode(),
        encode(envelope(i, e, data=reported(wide), subject=...)),
        STRUCTURED,
        names="data.incident_id",
    )


def build_corpus(prefix: str = "inc-hostile") -> list[Hostile]:
    """The whole corpus; `prefix` starts every incident id (and so every key)."""
    corpus = _Corpus(prefix)
    for part in (
        _not_json,
        _no_value,
        _reported_field_types,
        _huge,
        _deep,
        _bad_utf8,
        _control_characters,
        _specversion,
        _attributes,
        _content_types,
        _mismatches,
        _duplicates,
        _not_numbers,
        _types,
        _timestamps,
        _unit_ids,
        _unicode_ids,
    ):
        part(corpus)
    return corpus.entries


CORPUS: Final[list[Hostile]] = build_corpus()
#: What parse_message rejects as it should today.
REJECTED: Final[list[Hostile]] = [entry for entry in CORPUS if entry.gap is None]
#: What it does not yet reject as it should (xfail in the tests).
GAPS: Final[list[Hostile]] = [entry for entry in CORPUS if entry.gap is not None]


def build_oddities(incident_id: str = "inc-oddity") -> list[Oddity]:
    """Messages within the contract that look hostile, all about one incident."""
    i = incident_id
    k = i.encode()
    return [
        Oddity(
            "time in year 9999",
            k,
            encode(envelope(i, "odd-1", time="9999-12-31T23:59:59Z")),
            STRUCTURED,
            "gridflow reads no `time` attribute (the data's own timestamps are checked): refusing a report "
            "over an attribute nobody uses would only lose the incident",
        ),
        Oddity(
            "reported_at ten minutes ahead of the clock",
            k,
            encode(envelope(i, "odd-2", data=reported(i, reported_at=ahead(timedelta(minutes=10))))),
            STRUCTURED,
            "clocks differ a little: up to contract.MAX_AHEAD (15 minutes) ahead is taken as it is",
        ),
        Oddity(
            "reported_at in year 1 in UTC",
            k,
            encode(envelope(i, "odd-3", data=reported(i, reported_at="0001-01-01T00:00:00Z"))),
            STRUCTURED,
            "no lower bound: replays and backfills carry old timestamps, and an old one breaks no clock; "
            "the workflow times every step itself",
        ),
        Oddity(
            "time with nanoseconds",
            k,
            encode(envelope(i, "odd-4", time="2026-11-23T08:00:05.123456789Z")),
            STRUCTURED,
            "digits past microseconds are dropped",
        ),
        Oddity(
            "ce_ headers beside a structured envelope that disagree with it",
            k,
            encode(envelope(i, "odd-5")),
            [*binary_headers("other", contract.WITHDRAWN, content_type=None), *STRUCTURED],
            "in structured mode the envelope is authoritative; ce_ headers are ignored",
        ),
        Oddity(
            "an unrelated header that is not UTF-8",
            k,
            encode(envelope(i, "odd-6")),
            [*STRUCTURED, ("x-legacy", b"\xff\xfe")],
            "only content-type and ce_ headers are read",
        ),
        Oddity(
            "whitespace around the JSON",
            k,
            b"\n  " + encode(envelope(i, "odd-7")) + b"  \n",
            STRUCTURED,
            "JSON allows it",
        ),
        Oddity(
            "control characters in free text",
            k,
            encode(
                envelope(i, "odd-8", data=reported(i, title="Lamp\x00\x1b[2J dark", description="a\tb\rc"))
            ),
            STRUCTURED,
            "data strings are not restricted beyond their length",
        ),
        Oddity(
            "no Kafka key",
            None,
            encode(envelope(i, "odd-9")),
            STRUCTURED,
            "the key is compared only when present",
        ),
        Oddity(
            "a subject that names another incident",
            k,
            encode(envelope(i, "odd-10", subject="inc-someone-else")),
            STRUCTURED,
            "subject is not compared with data.incident_id",
        ),
        Oddity(
            "a resolution dated before its incident's report",
            k,
            encode(
                envelope(
                    i,
                    "odd-11",
                    contract.RESOLVED,
                    data=lifecycle(i, contract.RESOLVED, at="2026-11-01T00:00:00Z"),
                )
            ),
            STRUCTURED,
            "`at` is the upstream app's word, kept as the step's event_at; the workflow's own clock orders "
            "the steps and runs the SLA clocks, so a wrong `at` moves nothing (parse_message cannot know "
            "the report's time anyway)",
        ),
    ]


ODDITIES: Final[list[Oddity]] = build_oddities()
