"""The dev stack keeps residents' personal data out of Temporal's history in clear.

A real dev stack (Temporal dev server, Tansu, the in-process worker and bridge) gets a report through
Kafka, as upstream apps send it, and an acceptance naming the handler. Its history, read with a client
that has no codec and serialized as the server stores it (protobuf) and as the UI and CLI show it
(JSON), holds none of the personal data in any encoding a reader could undo by eye: UTF-8, JSON
`\\uXXXX` escapes, base64 at each of the three byte offsets (standard and URL-safe), hex, UTF-16. A
control incident written by a client without the codec shows the search would find them. The codec
server decrypts the same payloads for the Web UI's origin, and a second start on the same state
directory reuses the key, so the first run's history still reads.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from events.cloudevents import encode_structured, make_event
from events.contract import ACCEPTED, REPORTED
from events.kafka import make_producer
from gridflow.app.codec import ENCODING
from gridflow.app.devstack import DevStack
from gridflow.domain.incident import Incident, Reporter, Status
from gridflow.domain.lifecycle import Accept, IncidentState
from tests.conftest import make_incident
from tests.gridflow.app.test_devstack import Ports, free_ports, new_stack
from tests.gridflow.app.test_devstack import ports as ports  # the fixture
from workflows.client import incident_state, report_incident
from workflows.input import IncidentInput

# Two starts of the stack, each well under 10 s here; the limit catches one that hangs.
pytestmark = pytest.mark.timeout(180)

NAME, PHONE = "Wang Xiuying", "13812345678"
HANDLER = "Zhao Guilan"  # a handler's name is a person's name too
PERSONAL = (NAME, PHONE, HANDLER)
WAIT_SECONDS = 60.0


def encodings(text: str) -> dict[str, bytes]:
    """`text` in every form a history reader could find it in: what must not be in the history."""
    raw = text.encode()
    forms = {
        "utf-8": raw,
        "json \\u escapes (lower)": "".join(f"\\u{ord(c):04x}" for c in text).encode(),
        "json \\u escapes (upper)": "".join(f"\\u{ord(c):04X}" for c in text).encode(),
        "hex (lower)": raw.hex().encode(),
        "hex (upper)": raw.hex().upper().encode(),
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
    }
    for offset in range(3):
        # The text after `offset` other bytes: the base64 characters that depend on the text alone
        # (not on the bytes before or after it), which is what appears wherever it is embedded.
        first = (4 * offset + 2) // 3
        last = (8 * (offset + len(raw))) // 6
        for alphabet, encode in (("", base64.b64encode), (" url-safe", base64.urlsafe_b64encode)):
            forms[f"base64{alphabet} at offset {offset}"] = encode(bytes(offset) + raw)[first:last]
    return forms


def found_in(blob: bytes, texts: tuple[str, ...] = PERSONAL) -> list[str]:
    """Which of the texts appear in `blob`, and how."""
    return [f"{text!r} as {form}" for text in texts for form, b in encodings(text).items() if b in blob]


def test_the_search_finds_each_encoding_wherever_it_is_embedded() -> None:
    # The search itself must be able to fail: each form, amid other bytes, at every base64 offset.
    for text in PERSONAL:
        raw = text.encode()
        assert found_in(b"<" + raw + b">", (text,))
        escaped = "".join(f"\\u{ord(c):04x}" for c in text)
        assert json.loads(f'"{escaped}"') == text  # a JSON string that reads as the text
        assert found_in(f'{{"name": "{escaped}"}}'.encode(), (text,))
        assert found_in(b"x" + raw.hex().encode(), (text,)) and found_in(text.encode("utf-16-le"), (text,))
        for before in (b"", b"a", b"ab", b"abc"):
            for after in (b"", b"z", b"yz"):
                assert found_in(base64.b64encode(before + raw + after), (text,)), (text, before, after)
                assert found_in(base64.urlsafe_b64encode(before + raw + after), (text,))
    assert not found_in(b"nothing personal here: " + base64.b64encode(b"Wang Xiu-ying 1381234567"))


def with_reporter(incident: Incident) -> Incident:
    """The incident reported by a resident with a known name and phone."""
    return incident.model_copy(update={"reporter": Reporter(name=NAME, phone=PHONE, channel="app")})


async def publish(stack: DevStack, event_type: str, data: dict[str, Any]) -> None:
    """One CloudEvent on the stack's incidents topic, as an upstream app sends it."""

    def send() -> None:
        producer = make_producer(stack.settings)
        try:
            key, value, headers = encode_structured(make_event(event_type, data, source="encryption-test"))
            producer.send(stack.settings.incidents_topic, key=key, value=value, headers=headers).get(30)
        finally:
            producer.close(5)

    await asyncio.to_thread(send)


async def state_when(
    client: Client, incident_id: str, holds: Callable[[IncidentState], bool]
) -> IncidentState:
    """The incident's state once `holds` is true of it (polled: the bridge may still be joining)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    state: IncidentState | None = None
    while loop.time() < deadline:
        try:
            state = await incident_state(client, incident_id)
        except Exception:  # not started yet
            state = None
        if state is not None and holds(state):
            return state
        await asyncio.sleep(0.2)
    pytest.fail(f"incident {incident_id} never got there; last state: {state}", pytrace=False)


async def raw_history(address: str, workflow_id: str) -> tuple[History, bytes]:
    """The history as a client without the codec reads it: the protobuf, and its bytes as stored,
    followed by its JSON form (as the UI and `temporal workflow show` print it)."""
    plain = await Client.connect(address)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    proto = History(events=history.events)
    return proto, proto.SerializeToString() + history.to_json().encode()


def input_payloads(history: History) -> list[Payload]:
    """The workflow's input, as stored: the first event's payloads."""
    started = history.events[0].workflow_execution_started_event_attributes
    return list(started.input.payloads)


def _post(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def reported_incident(decoded: list[Payload]) -> Incident:
    """The incident in the workflow's decoded input."""
    converter = pydantic_data_converter.payload_converter
    started: IncidentInput = converter.from_payloads(decoded, [IncidentInput])[0]
    return started.incident


async def decoded_by_codec_server(stack: DevStack, payloads: list[Payload]) -> list[Payload]:
    """The payloads decrypted by the stack's codec server, called as the Web UI calls it (its origin,
    after a CORS preflight)."""
    origin = stack.ui_url
    preflight = await asyncio.to_thread(
        _post,
        stack.codec_port,
        "OPTIONS",
        "/decode",
        None,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert preflight[0] == 204 and preflight[1].get("access-control-allow-origin") == origin, preflight
    body = json_format.MessageToJson(Payloads(payloads=payloads)).encode()
    status, headers, answer = await asyncio.to_thread(
        _post,
        stack.codec_port,
        "POST",
        "/decode",
        body,
        {"Content-Type": "application/json", "Origin": origin, "X-Namespace": "default"},
    )
    assert status == 200, answer
    assert headers.get("access-control-allow-origin") == origin
    return list(json_format.Parse(answer, Payloads()).payloads)


async def test_the_dev_stack_keeps_personal_data_out_of_temporal_and_its_codec_server_reads_it_back(
    tmp_path: Path, ports: Ports
) -> None:
    incident = with_reporter(make_incident())
    control = with_reporter(make_incident())
    state_dir = tmp_path / "state"
    async with new_stack(ports, state_dir) as stack:
        assert stack.key_file is not None
        key = stack.key_file.read_text()
        await publish(stack, REPORTED, incident.model_dump(mode="json"))
        await state_when(stack.client, incident.incident_id, lambda s: s.status is Status.DISPATCHED)
        accept = Accept(unit_id=incident.location.grid_id, handler=HANDLER)
        await publish(
            stack,
            ACCEPTED,
            {"incident_id": incident.incident_id, **accept.model_dump(mode="json", exclude_none=True)},
        )
        await state_when(stack.client, incident.incident_id, lambda s: s.status is Status.ACCEPTED)

        history, stored = await raw_history(stack.temporal_address, incident.workflow_id)
        assert len(history.events) > 5 and stored
        assert found_in(stored) == [], "personal data in the history in clear"
        payloads = input_payloads(history)
        assert payloads and all(p.metadata["encoding"] == ENCODING for p in payloads)

        # The codec server gives the UI the incident back, reporter and all.
        decoded = await decoded_by_codec_server(stack, payloads)
        reported = reported_incident(decoded)
        assert reported == incident

        # The control: a client without the codec writes in clear, and the same search sees it.
        plain = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
        await report_incident(plain, stack.settings.task_queue, control)
        _, clear = await raw_history(stack.temporal_address, control.workflow_id)
        assert f"{NAME!r} as utf-8" in found_in(clear) and f"{PHONE!r} as utf-8" in found_in(clear)

    # A second start on the same state directory (other ports) keeps the key: the first run's
    # history is still read, by the worker (its query replays the history) and by the codec server.
    again = Ports(*free_ports(6))
    async with new_stack(again, state_dir) as restarted:
        assert restarted.key_file is not None and restarted.key_file.read_text() == key
        state = await state_when(
            restarted.client, incident.incident_id, lambda s: s.status is Status.ACCEPTED
        )
        assert state.holder_unit == incident.location.grid_id
        history, _ = await raw_history(restarted.temporal_address, incident.workflow_id)
        decoded = await decoded_by_codec_server(restarted, input_payloads(history))
        assert reported_incident(decoded) == incident
