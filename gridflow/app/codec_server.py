"""A Temporal codec server: lets the Web UI and the `temporal` CLI read gridflow's encrypted payloads.

The protocol is the one Temporal's tools speak: `POST /encode` and `POST /decode` (also under a
namespace segment, `/{namespace}/decode`, for the CLI's endpoint templating) take and return
`{"payloads": [...]}` with payloads in protobuf JSON form. The Web UI calls it from the browser, so
answers carry CORS headers for the UI's origin and OPTIONS preflights are answered.

It runs on aiohttp (its HTTP parser, keep-alive and shutdown). Decoded payloads are residents' personal
data: the server asks clients not to cache them, can require a token, and should sit behind TLS when it
is not on loopback.

    Web UI:  Settings -> Codec Server -> http://127.0.0.1:8081
    CLI:     temporal workflow show -w incident-... --codec-endpoint http://127.0.0.1:8081 \\
               --codec-auth "Bearer $GRIDFLOW_CODEC_SERVER_TOKEN"

The token (GRIDFLOW_CODEC_SERVER_TOKEN) suits the CLI and scripts. The Web UI can send only its own
login's access token ("pass access token"), never a static one, so for the UI keep the server on
loopback or put an authenticating proxy in front of it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from gridflow.app.codec import CodecError, EncryptionCodec, Keyring

log = structlog.get_logger(__name__)

#: The environment variable with the token clients must send in `Authorization` (optional).
TOKEN_ENV = "GRIDFLOW_CODEC_SERVER_TOKEN"

#: The origins of the Temporal Web UI of `gridflow dev` (the dev server's UI port): its banner gives
#: 127.0.0.1, and a browser may be pointed at localhost; they are different origins to CORS.
DEFAULT_CORS_ORIGIN = "http://127.0.0.1:8233,http://localhost:8233"

# Temporal caps a payload at 2 MiB by default and the UI decodes an event's payloads at a time; a
# limit well above that keeps a stray client from making the server buffer arbitrary amounts.
MAX_BODY_BYTES = 16 * 1024 * 1024
# An idle keep-alive connection is closed after this long, and a body must arrive within it.
_IDLE_TIMEOUT_S = 30.0
# On stop, a request being answered gets this long to finish before its connection is cut.
_SHUTDOWN_TIMEOUT_S = 5.0

# The action is the last segment; one segment (a namespace, for the CLI's endpoint templating) may come
# before it. Empty segments are ignored, so an endpoint configured with a trailing slash still works.
_PATH = "/{prefix:/*(?:[^/]+/+)?}{action:(?:en|de)code}{suffix:/*}"
_ALLOW_HEADERS = "authorization, content-type, x-namespace"


class _NoRequestBytes(logging.Filter):
    """Keeps aiohttp's exceptions' text out of its log lines: a parse error quotes the raw request.

    That quote can hold the `Authorization` header, so only the exception's class is logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__})"
            record.exc_info = None
            record.exc_text = None
        return True


_http_log = logging.getLogger(f"{__name__}.http")
_http_log.addFilter(_NoRequestBytes())


class CodecServer:
    """A running codec server; `async with` it, or `close()` it, to stop listening."""

    def __init__(self, runner: web.AppRunner, url: str, port: int) -> None:
        """Wrap a started aiohttp runner (use `start_codec_server`)."""
        self._runner = runner
        self.url = url
        self.port = port

    async def close(self) -> None:
        """Stop listening and close open connections (idle keep-alive ones at once)."""
        await self._runner.cleanup()

    async def __aenter__(self) -> CodecServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class _Endpoints:
    """The codec endpoints, and the headers every answer carries."""

    def __init__(
        self, codec: EncryptionCodec, cors_origins: frozenset[str], token: str | None, max_body: int
    ) -> None:
        self.codec = codec
        self.cors_origins = cors_origins
        self.expected = [f"Bearer {token}".encode(), token.encode()] if token else None
        self.max_body = max_body

    def application(self) -> web.Application:
        """The aiohttp application serving the codec protocol."""
        app = web.Application(middlewares=[self.answer_headers], client_max_size=self.max_body)
        app.router.add_post(_PATH, self.code)
        app.router.add_options(_PATH, self.preflight)
        return app

    @web.middleware
    async def answer_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Add CORS and no-store to every answer; give the router's refusals a JSON body like ours."""
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = _error(HTTPStatus.NOT_FOUND, "not found: POST /encode or /decode")
        except web.HTTPMethodNotAllowed:
            response = _error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", {"Allow": "POST, OPTIONS"})
        response.headers.update(self._cors(request.headers.get(hdrs.ORIGIN)))
        # Decoded payloads are personal data: no browser or proxy may keep them.
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        response.headers[hdrs.VARY] = "Origin"
        return response

    async def preflight(self, request: web.Request) -> web.Response:
        """A CORS preflight carries no credentials, so it is answered without the token."""
        return web.Response(status=HTTPStatus.NO_CONTENT)

    async def code(self, request: web.Request) -> web.Response:
        """`POST [/{namespace}]/encode` or `/decode`: the payloads, encrypted or decrypted."""
        if hdrs.TRANSFER_ENCODING in request.headers:
            # Browsers and the Temporal CLI send a Content-Length, which lets the size limit refuse a
            # body before any of it is read.
            refused = _error(HTTPStatus.NOT_IMPLEMENTED, "transfer-encoding is not supported")
            refused.force_close()
            return refused
        if len(request.headers.getall(hdrs.AUTHORIZATION, ())) > 1:
            # A proxy and this server could each check a different one of them.
            return _error(HTTPStatus.BAD_REQUEST, "repeated authorization header")
        if not self._authorized(request):
            return _error(HTTPStatus.UNAUTHORIZED, "missing or wrong token", {"WWW-Authenticate": "Bearer"})
        if request.content_type != "application/json":
            # Requiring JSON also makes every cross-origin browser call preflight, so a page from an
            # origin that is not allowed cannot get its request through at all.
            return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
        if (request.content_length or 0) > self.max_body:
            # The body is never read, so the connection cannot carry another request.
            refused = _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes")
            refused.force_close()
            return refused
        try:
            async with asyncio.timeout(_IDLE_TIMEOUT_S):
                body = await request.read()
        except TimeoutError:
            return _error(HTTPStatus.REQUEST_TIMEOUT, f"body not received within {_IDLE_TIMEOUT_S:.0f} s")
        try:
            payloads = json_format.Parse(body, Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(HTTPStatus.BAD_REQUEST, f"body is not {{'payloads': [...]}}: {exc}")
        try:
            if request.match_info["action"] == "encode":
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
        return web.Response(body=body, content_type="application/json")

    def _authorized(self, request: web.Request) -> bool:
        if self.expected is None:
            return True
        # aiohttp decodes header bytes as UTF-8 with surrogateescape; this gives back the bytes sent.
        given = request.headers.get(hdrs.AUTHORIZATION, "").encode("utf-8", "surrogateescape")
        # Constant-time comparisons, and both forms checked every time, so timing tells nothing.
        matches = [hmac.compare_digest(given, expected) for expected in self.expected]
        return any(matches)

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not origin or not ("*" in self.cors_origins or origin in self.cors_origins):
            return {}
        # The origin is echoed rather than "*": the UI's "include cross-origin credentials" needs that.
        return {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST, OPTIONS",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _ALLOW_HEADERS,
            hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.ACCESS_CONTROL_MAX_AGE: "600",
        }


def _error(status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": message}).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


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
    endpoints = _Endpoints(EncryptionCodec(keyring), _origins(cors_origin), token or None, max_body_bytes)
    # No access log: gridflow never logged requests, and a request line is all an operator would gain.
    runner = web.AppRunner(
        endpoints.application(),
        access_log=None,
        logger=_http_log,
        keepalive_timeout=_IDLE_TIMEOUT_S,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown_host = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
    url = f"{'https' if ssl_context else 'http'}://{shown_host}:{bound[1]}"
    # Key ids are not secret and tell an operator which keys the server can read; the keys stay out.
    log.info(
        "codec server listening",
        url=url,
        cors_origins=sorted(endpoints.cors_origins),
        token_required=bool(token),
        current_key_id=keyring.current_id,
        key_ids=list(keyring.key_ids),
    )
    if not token and not _is_loopback(host):
        log.warning(
            "codec server reachable beyond this machine without a token: anyone who can reach it can "
            f"decrypt incident payloads; set {TOKEN_ENV}"
        )
    return CodecServer(runner, url, int(bound[1]))


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
