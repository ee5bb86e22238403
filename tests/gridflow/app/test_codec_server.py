"""The codec server over real HTTP: decode and encode real encrypted payloads, CORS, the token."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from gridflow.app.binaries import find_binary
from gridflow.app.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, Keyring, data_converter
from gridflow.app.codec_server import CodecServer, serve_codec, start_codec_server
from gridflow.app.compose import build_worker
from gridflow.app.logs import configure_logging
from gridflow.domain.incident import Reporter
from gridflow.domain.lifecycle import Accept
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import free_port, make_incident
from workflows.client import report_incident, send_command

ORIGIN = "http://localhost:8233"
TOKEN = "s3cret-codec-token"
K1, K2 = os.urandom(32), os.urandom(32)
KEYRING = Keyring({"k2": K2, "k1": K1})  # k2 current, k1 an older key still read
CODEC = EncryptionCodec(KEYRING)


@dataclass(frozen=True)
class Answer:
    """An HTTP response, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def payloads(self) -> list[Payload]:
        """The body's payloads."""
        return list(json_format.Parse(self.body, Payloads()).payloads)


def _call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


async def call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One request on a fresh connection, off the event loop the server runs on."""
    return await asyncio.to_thread(_call, port, method, path, body, headers)


def _json(payloads: list[Payload]) -> bytes:
    return json_format.MessageToJson(Payloads(payloads=payloads)).encode()


def _plain() -> list[Payload]:
    return pydantic_data_converter.payload_converter.to_payloads(
        [Reporter(name="Li Wei", phone="+86 138 0000 0000"), 42]
    )


def _post_headers(token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Origin": ORIGIN, "X-Namespace": "default", **extra}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
async def server() -> AsyncIterator[CodecServer]:
    """A codec server with a token, on a port the OS picks."""
    async with await start_codec_server(KEYRING, "127.0.0.1", 0, ORIGIN, TOKEN) as running:
        yield running


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of gridflow and of the libraries (aiohttp's too), as JSON, into a buffer."""
    buffer = io.StringIO()
    configure_logging("json", "debug", stream=buffer)
    yield buffer
    configure_logging("console", "warning")
    logging.getLogger().handlers.clear()


async def test_decode_returns_the_original_payloads(server: CodecServer) -> None:
    encrypted = await CODEC.encode(_plain())

    answer = await call(server.port, "POST", "/decode", _json(encrypted), _post_headers())

    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.payloads() == _plain()
    assert set(json.loads(answer.body)) == {"payloads"}


async def test_decode_reads_payloads_of_older_keys_and_plain_ones(server: CodecServer) -> None:
    old = await EncryptionCodec(Keyring({"k1": K1})).encode(_plain()[1:])
    mixed = [*_plain()[:1], *old]

    answer = await call(server.port, "POST", "/default/decode", _json(mixed), _post_headers())

    assert answer.status == 200
    assert answer.payloads() == _plain()
    # A key the server does not hold: a clear error naming the id, never a key.
    foreign = await EncryptionCodec(Keyring({"k0-retired": os.urandom(32)})).encode(_plain())
    refused = await call(server.port, "POST", "/decode", _json(foreign), _post_headers())
    assert refused.status == 400
    assert "'k0-retired'" in json.loads(refused.body)["error"]
    assert refused.headers["access-control-allow-origin"] == ORIGIN  # so the UI can show the error


async def test_encode_encrypts_with_the_current_key(server: CodecServer) -> None:
    answer = await call(server.port, "POST", "/encode", _json(_plain()), _post_headers())

    assert answer.status == 200
    encrypted = answer.payloads()
    assert all(p.metadata["encoding"] == ENCODING for p in encrypted)
    assert all(p.metadata[KEY_ID_METADATA] == b"k2" for p in encrypted)
    assert b"Li Wei" not in answer.body
    assert await CODEC.decode(encrypted) == _plain()


async def test_cors_preflight_is_answered_without_the_token(server: CodecServer) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }

    answer = await call(server.port, "OPTIONS", "/decode", headers=preflight)

    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-namespace"} <= allowed
    assert answer.headers["access-control-allow-credentials"] == "true"

    stranger = await call(server.port, "OPTIONS", "/decode", headers={**preflight, "Origin": "http://evil"})
    assert "access-control-allow-origin" not in stranger.headers


async def test_the_token_is_required(server: CodecServer) -> None:
    body = _json(await CODEC.encode(_plain()))

    missing = await call(server.port, "POST", "/decode", body, _post_headers(token=None))
    wrong = await call(server.port, "POST", "/decode", body, _post_headers(token="guess"))
    bare = await call(server.port, "POST", "/decode", body, _post_headers(token=None, Authorization=TOKEN))

    assert missing.status == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert b"Li Wei" not in missing.body
    assert wrong.status == 401
    assert missing.headers["access-control-allow-origin"] == ORIGIN
    # `temporal --codec-auth` sends the header verbatim, so the bare token is accepted as well.
    assert bare.status == 200
    assert bare.payloads() == _plain()


async def test_bad_requests_get_clear_answers(server: CodecServer) -> None:
    headers = _post_headers()

    assert (await call(server.port, "GET", "/decode", headers=headers)).status == 405
    assert (await call(server.port, "POST", "/nope", b"{}", headers)).status == 404
    assert (await call(server.port, "POST", "/a/b/decode", b"{}", headers)).status == 404
    not_json = await call(server.port, "POST", "/decode", b"{not json", headers)
    assert not_json.status == 400
    assert "error" in json.loads(not_json.body)
    text = await call(server.port, "POST", "/decode", b"{}", {**headers, "Content-Type": "text/plain"})
    assert text.status == 415
    empty = await call(server.port, "POST", "/decode", b"{}", headers)
    assert (empty.status, empty.payloads()) == (200, [])


async def test_keep_alive_serves_several_requests_on_one_connection(server: CodecServer) -> None:
    def two_requests() -> list[int]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            statuses = []
            for path in ("/encode", "/decode"):
                connection.request("POST", path, body=_json(_plain()), headers=_post_headers())
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            return statuses
        finally:
            connection.close()

    assert await asyncio.to_thread(two_requests) == [200, 200]


async def test_malformed_framing_is_refused(server: CodecServer) -> None:
    chunked = b"POST /decode HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    garbage = b"HELLO\r\n\r\n"
    # Both framings at once, the classic request-smuggling shape, and a repeated Content-Length.
    smuggled = (
        b"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}"
    )
    doubled = b"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"

    assert (await asyncio.to_thread(_raw, server.port, chunked)).startswith(b"HTTP/1.1 501 ")
    # aiohttp answers a request it cannot parse in HTTP/1.0, as it cannot trust the version it read.
    for request in (garbage, smuggled, doubled):
        assert re.match(rb"HTTP/1\.[01] 400 ", await asyncio.to_thread(_raw, server.port, request))


async def test_an_endpoint_with_a_trailing_slash_or_an_empty_segment_still_reaches_the_codec(
    server: CodecServer,
) -> None:
    body = _json(await CODEC.encode(_plain()))

    for path in ("/decode/", "//decode", "/default/decode/"):
        answer = await call(server.port, "POST", path, body, _post_headers())
        assert (answer.status, answer.payloads()) == (200, _plain()), path


async def test_preflights_are_answered_on_every_codec_route_and_only_there(server: CodecServer) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }

    for path in ("/encode", "/default/decode", "/default/encode"):
        answer = await call(server.port, "OPTIONS", path, headers=preflight)
        assert (answer.status, answer.headers["access-control-allow-origin"]) == (204, ORIGIN), path
        assert answer.headers["access-control-max-age"] == "600"
    elsewhere = await call(server.port, "OPTIONS", "/nope", headers=preflight)
    assert elsewhere.status == 404
    assert elsewhere.headers["access-control-allow-origin"] == ORIGIN  # the UI can show why


async def test_a_token_outside_ascii_is_refused_like_any_wrong_token(server: CodecServer) -> None:
    body = _json(await CODEC.encode(_plain()))

    answer = await call(server.port, "POST", "/decode", body, _post_headers(token="sécret-ü"))

    assert answer.status == 401
    assert json.loads(answer.body) == {"error": "missing or wrong token"}


async def test_a_body_over_the_size_limit_is_refused_with_a_clear_error() -> None:
    fits = b'{"payloads": []}'.ljust(1024)

    async with await start_codec_server(KEYRING, "127.0.0.1", 0, ORIGIN, TOKEN, max_body_bytes=1024) as small:
        accepted = await call(small.port, "POST", "/decode", fits, _post_headers())
        refused = await call(small.port, "POST", "/decode", fits + b" ", _post_headers())

    assert (accepted.status, accepted.payloads()) == (200, [])
    assert refused.status == 413
    assert json.loads(refused.body) == {"error": "body over 1024 bytes"}
    assert refused.headers["access-control-allow-origin"] == ORIGIN


async def test_a_payload_encoded_before_a_key_rotation_is_decoded_after_it() -> None:
    async with await start_codec_server(Keyring({"k1": K1}), "127.0.0.1", 0, ORIGIN, TOKEN) as before:
        encoded = (await call(before.port, "POST", "/encode", _json(_plain()), _post_headers())).payloads()
    # The rotation: k2 goes first and k1 stays, so the server reads k1's payloads and writes with k2.
    async with await start_codec_server(KEYRING, "127.0.0.1", 0, ORIGIN, TOKEN) as rotated:
        decoded = await call(rotated.port, "POST", "/decode", _json(encoded), _post_headers())
        encoded_after = await call(rotated.port, "POST", "/encode", _json(_plain()), _post_headers())
    async with await start_codec_server(Keyring({"k2": K2}), "127.0.0.1", 0, ORIGIN, TOKEN) as retired:
        refused = await call(retired.port, "POST", "/decode", _json(encoded), _post_headers())

    assert all(p.metadata[KEY_ID_METADATA] == b"k1" for p in encoded)
    assert (decoded.status, decoded.payloads()) == (200, _plain())
    assert all(p.metadata[KEY_ID_METADATA] == b"k2" for p in encoded_after.payloads())
    assert refused.status == 400
    assert "'k1'" in json.loads(refused.body)["error"]


async def test_no_log_line_holds_the_token_or_payload_data(
    server: CodecServer, captured_logs: io.StringIO
) -> None:
    await call(server.port, "POST", "/decode", _json(await CODEC.encode(_plain())), _post_headers())
    await call(server.port, "POST", "/encode", _json(_plain()), _post_headers())
    await call(server.port, "POST", "/decode", b'{"payloads": "Li Wei"}', _post_headers())
    # A header line aiohttp cannot parse: its parse error quotes the line, token and all.
    unparsable = f"POST /decode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\x01\r\n\r\n"
    refused = await asyncio.to_thread(_raw, server.port, unparsable.encode())

    assert TOKEN.encode() in refused  # the error text carries the token back to its own sender...
    text = captured_logs.getvalue()
    assert "Error handling request" in text  # ...and the refusal was logged...
    assert TOKEN not in text  # ...without it
    assert "Li Wei" not in text
    assert "+86 138" not in text


async def test_closing_the_server_ends_idle_keep_alive_connections() -> None:
    running = await start_codec_server(KEYRING, "127.0.0.1", 0, ORIGIN, TOKEN)
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)

    def one_request() -> int:
        connection.request("POST", "/encode", body=_json(_plain()), headers=_post_headers())
        response = connection.getresponse()
        response.read()
        return response.status

    try:
        assert await asyncio.to_thread(one_request) == 200
        assert connection.sock is not None  # kept alive for the next request
        await running.close()
        assert await asyncio.to_thread(connection.sock.recv, 1) == b""  # the server closed it
    finally:
        connection.close()


async def test_serve_codec_runs_until_stopped_and_needs_no_token_when_none_is_set() -> None:
    port = free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_codec(KEYRING, "127.0.0.1", port, ORIGIN, None, stop=stop))
    try:
        for _ in range(100):
            try:
                answer = await call(
                    port, "POST", "/decode", _json(await CODEC.encode(_plain())), _post_headers(None)
                )
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the codec server did not start")
        assert answer.status == 200
        assert answer.payloads() == _plain()
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
    with pytest.raises(ConnectionRefusedError):
        await call(port, "POST", "/decode", b"{}", _post_headers(None))


async def test_the_temporal_cli_reads_a_real_history_through_the_server(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """The protocol as Temporal's own tool speaks it: `temporal workflow show --codec-endpoint`."""
    target = dev_server_env.client.service_client.config.target_host
    client = await Client.connect(
        target, namespace=dev_server_env.client.namespace, data_converter=data_converter(KEYRING)
    )
    task_queue = f"q-codec-server-{uuid.uuid4().hex[:8]}"
    incident = make_incident()
    async with build_worker(client, task_queue, RulesSource(), sinks=[MemorySink()]):
        await report_incident(client, task_queue, incident)
        await send_command(client, incident.incident_id, Accept(unit_id=incident.location.grid_id))

    async def show(*codec: str) -> bytes:
        process = await asyncio.create_subprocess_exec(
            find_binary("temporal"),
            "workflow",
            "show",
            "--workflow-id",
            incident.workflow_id,
            "--address",
            target,
            "--namespace",
            dev_server_env.client.namespace,
            "--output",
            "json",
            *codec,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode(errors="replace")
        history = WorkflowHistory.from_json(incident.workflow_id, out.decode())
        return b"".join(event.SerializeToString() for event in history.events)

    async with await start_codec_server(KEYRING, "127.0.0.1", 0, None, TOKEN) as server:
        # The CLI templates {namespace} into the endpoint and sends --codec-auth verbatim.
        decoded = await show(
            "--codec-endpoint", f"{server.url}/{{namespace}}", "--codec-auth", f"Bearer {TOKEN}"
        )
    encrypted = await show()

    assert b"Li Wei" in decoded
    assert b"+86 138 0000 0000" in decoded
    assert b"Li Wei" not in encrypted
    assert ENCODING in encrypted


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://127.0.0.1:8233", True), ("http://localhost:8233", True), ("http://evil.example", False)],
)
async def test_by_default_the_dev_uis_origins_may_call_and_no_other(origin: str, allowed: bool) -> None:
    # The dev UI's banner gives 127.0.0.1; a browser may be pointed at localhost: different origins.
    async with await start_codec_server(KEYRING, "127.0.0.1", 0) as running:
        answer = await call(
            running.port, "POST", "/decode", _json(_plain()), _post_headers(None, Origin=origin)
        )
    assert answer.status == 200
    assert answer.headers.get("access-control-allow-origin") == (origin if allowed else None)
