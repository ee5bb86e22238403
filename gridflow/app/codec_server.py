"""A Temporal codec server: lets the Web UI and the `temporal` CLI read gridflow's encrypted payloads.

The protocol is the one Temporal's tools speak: `POST /encode` and `POST /decode` (also under a
namespace segment, `/{namespace}/decode`, for the CLI's endpoint templating) take and return
`{"payloads": [...]}` with payloads in protobuf JSON form. The Web UI calls it from the browser, so
answers carry CORS headers for the UI's origin and OPTIONS preflights are answered.

It is a small HTTP/1.1 server on asyncio streams (Content-Length bodies, keep-alive), so gridflow needs
no web framework for two endpoints. Decoded payloads are residents' personal data: the server asks
clients not to cache them, can require a token, and should sit behind TLS when it is not on loopback.

    Web UI:  Settings -> Codec Server -> http://127.0.0.1:8081
    CLI:     temporal workflow show -w incident-... --codec-endpoint http://127.0.0.1:8081 \\
               --codec-auth "Bearer $GRIDFLOW_CODEC_SERVER_TOKEN"

The token (GRIDFLOW_CODEC_SERVER_TOKEN) suits the CLI and scripts. The Web UI can send only its own
login's access token ("pass access token"), never a static one, so for the UI keep the server on
loopback or put an authenticating proxy in front of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType

import structlog
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from gridflow.app.codec import CodecError, EncryptionCodec, Keyring

log = structlog.get_logger(__name__)

#: The environment variable with the token clients must send in `Authorization` (optional).
TOKEN_ENV = "GRIDFLOW_CODEC_SERVER_TOKEN"

#: The origin of the Temporal Web UI of `gridflow dev` (the dev server's UI port).
DEFAULT_CORS_ORIGIN = "http://localhost:8233"

# Temporal caps a payload at 2 MiB by default and the UI decodes an event's payloads at a time; a
# limit well above that keeps a stray client from making the server buffer arbitrary amounts.
MAX_BODY_BYTES = 16 * 1024 * 1024
_MAX_HEADER_BYTES = 64 * 1024
# A connection that sends nothing for this long (idle keep-alive, or a request trickling in) is closed.
_IDLE_TIMEOUT_S = 30.0

_ROUTES = ("encode", "decode")
_ALLOW_HEADERS = "authorization, content-type, x-namespace"


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class _Response:
    status: HTTPStatus
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _BadRequest(Exception):
    """A request the server refuses to parse; the connection is closed after the answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class CodecServer:
    """A running codec server; `async with` it, or `close()` it, to stop listening."""

    def __init__(self, server: asyncio.Server, handler: _Handler, url: str) -> None:
        """Wrap a listening asyncio server (use `start_codec_server`)."""
        self._server = server
        self._handler = handler
        self.url = url
        sockets = server.sockets
        self.port: int = int(sockets[0].getsockname()[1]) if sockets else 0

    async def close(self) -> None:
        """Stop listening and close open connections."""
        self._server.close()
        # Idle keep-alive connections would otherwise linger until their timeout (Python 3.11 has no
        # Server.close_clients()), so their tasks are cancelled and awaited here.
        connections = list(self._handler.connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> CodecServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class _Handler:
    """Answers one connection's requests with the codec; shared by all connections."""

    def __init__(
        self, codec: EncryptionCodec, cors_origins: frozenset[str], token: str | None, max_body: int
    ) -> None:
        self.codec = codec
        self.cors_origins = cors_origins
        self.expected = [f"Bearer {token}".encode(), token.encode()] if token else None
        self.max_body = max_body
        self.connections: set[asyncio.Task[None]] = set()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            while True:
                try:
                    async with asyncio.timeout(_IDLE_TIMEOUT_S):
                        request = await self._read(reader)
                except _BadRequest as exc:
                    async with asyncio.timeout(_IDLE_TIMEOUT_S):
                        await self._write(writer, None, _error(exc.status, str(exc)), keep_alive=False)
                    return
                if request is None:
                    return
                response = await self._answer(request)
                keep_alive = request.version == "HTTP/1.1" and (
                    request.headers.get("connection", "").lower() != "close"
                )
                # A client that stops reading must not pin the connection (and its buffers) forever.
                async with asyncio.timeout(_IDLE_TIMEOUT_S):
                    await self._write(writer, request, response, keep_alive=keep_alive)
                if not keep_alive:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return  # the client went away or went quiet: nothing to answer
        finally:
            if task is not None:
                self.connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "incomplete request") from None
            return None  # the client closed a keep-alive connection between requests
        except asyncio.LimitOverrunError:
            raise _BadRequest(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large"
            ) from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
            name = name.lower()
            if name in headers and name in ("content-length", "authorization", "host"):
                raise _BadRequest(HTTPStatus.BAD_REQUEST, f"repeated {name} header")
            headers[name] = value.strip()
        if "transfer-encoding" in headers:
            # Browsers and the Temporal CLI send a Content-Length; refusing other framings keeps the
            # parser small and rules out request smuggling between the two.
            raise _BadRequest(HTTPStatus.NOT_IMPLEMENTED, "transfer-encoding is not supported")
        length_text = headers.get("content-length", "0")
        if not (length_text.isascii() and length_text.isdigit()):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "invalid content-length")
        length = int(length_text)
        if length > self.max_body:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes")
        body = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        return _Request(method.upper(), path, version, headers, body)

    async def _answer(self, request: _Request) -> _Response:
        segments = [s for s in request.path.split("/") if s]
        if not segments or len(segments) > 2 or segments[-1] not in _ROUTES:
            return _error(HTTPStatus.NOT_FOUND, "not found: POST /encode or /decode")
        if request.method == "OPTIONS":
            # A preflight carries no credentials, so it is answered without the token.
            return _Response(HTTPStatus.NO_CONTENT)
        if request.method != "POST":
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", {"Allow": "POST, OPTIONS"})
        if not self._authorized(request):
            return _error(HTTPStatus.UNAUTHORIZED, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            # Requiring JSON also makes every cross-origin browser call preflight, so a page from an
            # origin that is not allowed cannot get its request through at all.
            return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
        try:
            payloads = json_format.Parse(request.body, Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(HTTPStatus.BAD_REQUEST, f"body is not {{'payloads': [...]}}: {exc}")
        try:
            if segments[-1] == "encode":
                result = await self.codec.encode(payloads.payloads)
            else:
                result = await self.codec.decode(payloads.payloads)
        except CodecError as exc:
            # Codec errors name key ids at most, never keys, so the caller may see them.
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception:
            log.exception("codec server failed on a request", path=request.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        body = json_format.MessageToJson(Payloads(payloads=result)).encode()
        return _Response(HTTPStatus.OK, body, "application/json")

    def _authorized(self, request: _Request) -> bool:
        if self.expected is None:
            return True
        given = request.headers.get("authorization", "").encode("latin-1")
        # Constant-time comparisons, and both forms checked every time, so timing tells nothing.
        matches = [hmac.compare_digest(given, expected) for expected in self.expected]
        return any(matches)

    def _cors(self, request: _Request | None) -> dict[str, str]:
        origin = request.headers.get("origin") if request else None
        if not origin or not ("*" in self.cors_origins or origin in self.cors_origins):
            return {}
        # The origin is echoed rather than "*": the UI's "include cross-origin credentials" needs that.
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOW_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Max-Age": "600",
        }

    async def _write(
        self, writer: asyncio.StreamWriter, request: _Request | None, response: _Response, keep_alive: bool
    ) -> None:
        headers = {
            **self._cors(request),
            **response.headers,
            "Content-Length": str(len(response.body)),
            # Decoded payloads are personal data: no browser or proxy may keep them.
            "Cache-Control": "no-store",
            "Vary": "Origin",
            "Connection": "keep-alive" if keep_alive else "close",
        }
        if response.content_type:
            headers["Content-Type"] = response.content_type
        head = f"HTTP/1.1 {response.status.value} {response.status.phrase}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(head.encode("latin-1") + b"\r\n" + response.body)
        await writer.drain()


def _error(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> _Response:
    body = json.dumps({"error": message}).encode()
    return _Response(status, body, "application/json", headers or {})


def _origins(cors_origin: str | Iterable[str] | None) -> frozenset[str]:
    if cors_origin is None:
        return frozenset()
    items = cors_origin.split(",") if isinstance(cors_origin, str) else cors_origin
    return frozenset(item.strip().rstrip("/") for item in items if item.strip())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start_codec_server(
    keyring: Keyring,
    host: str = "127.0.0.1",
    port: int = 8081,
    cors_origin: str | Iterable[str] | None = DEFAULT_CORS_ORIGIN,
    token: str | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> CodecServer:
    """Start serving the codec protocol on host:port (0 picks a free port); return the running server.

    `cors_origin`: the Web UI origin(s) allowed to call from a browser (a comma-separated string or a
    list; "*" allows any; None answers no browser). `token`: when set, POSTs must send
    `Authorization: Bearer <token>` (or the bare token, as `temporal --codec-auth` passes it verbatim).
    """
    handler = _Handler(EncryptionCodec(keyring), _origins(cors_origin), token or None, max_body_bytes)
    server = await asyncio.start_server(
        handler.connection, host, port, ssl=ssl_context, limit=_MAX_HEADER_BYTES
    )
    bound = server.sockets[0].getsockname()
    shown_host = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
    url = f"{'https' if ssl_context else 'http'}://{shown_host}:{bound[1]}"
    # Key ids are not secret and tell an operator which keys the server can read; the keys stay out.
    log.info(
        "codec server listening",
        url=url,
        cors_origins=sorted(handler.cors_origins),
        token_required=bool(token),
        current_key_id=keyring.current_id,
        key_ids=list(keyring.key_ids),
    )
    if not token and not _is_loopback(host):
        log.warning(
            "codec server reachable beyond this machine without a token: anyone who can reach it can "
            f"decrypt incident payloads; set {TOKEN_ENV}"
        )
    return CodecServer(server, handler, url)


async def serve_codec(
    keyring: Keyring,
    host: str = "127.0.0.1",
    port: int = 8081,
    cors_origin: str | Iterable[str] | None = DEFAULT_CORS_ORIGIN,
    token: str | None = None,
    *,
    stop: asyncio.Event | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Run a codec server until `stop` is set (forever without one); for `gridflow codec-server`."""
    server = await start_codec_server(keyring, host, port, cors_origin, token, ssl_context=ssl_context)
    async with server:
        await (stop or asyncio.Event()).wait()
    log.info("codec server stopped")
