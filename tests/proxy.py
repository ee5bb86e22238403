"""A TCP proxy for tests: TLS termination in front of a server that has none, and a cable to pull.

The proxy runs its own event loop in a thread, so synchronous clients (kafka-python) and other processes
use it as they would a real peer. `cut()` drops every connection and refuses new ones (the listener is
closed: a connect gets ECONNREFUSED), `restore()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from tests.conftest import free_port


def server_tls(cert: Path, key: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A server-side TLS context with `cert` and `key` (and ALPN protocols, e.g. ["h2"] for gRPC)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class Proxy:
    """Forwards 127.0.0.1:`port` to `target` (host:port); with `tls`, clients speak TLS to the proxy."""

    def __init__(self, target: str, *, tls: ssl.SSLContext | None = None, port: int | None = None) -> None:
        """A proxy to `target`, not yet listening (use it as a context manager, or `start()`)."""
        host, target_port = target.rsplit(":", 1)
        self._target = host, int(target_port)
        self._tls = tls
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        #: Connections accepted so far (a reconnecting client adds to it).
        self.accepted = 0

    @property
    def address(self) -> str:
        """host:port that clients connect to."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        """Start the loop and listen."""
        self._thread.start()
        self.restore()
        return self

    def close(self) -> None:
        """Stop listening, drop the connections, and stop the loop."""
        if not self._thread.is_alive():
            return
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self) -> None:
        """Drop every open connection (both sides) and refuse new ones until `restore()`."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again, on the same port."""
        self._call(self._listen())

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ in the proxy's loop

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, ssl=self._tls, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()  # an RST, as a pulled cable looks once the peer tries to talk
        self._transports.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        transports: set[asyncio.WriteTransport] = {client_writer.transport, server_writer.transport}
        self._transports |= transports
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
            )
        finally:
            self._transports -= transports
            for transport in transports:
                transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, RuntimeError):
            writer.close()


@contextlib.contextmanager
def proxy(target: str, *, tls: ssl.SSLContext | None = None, port: int | None = None) -> Iterator[Proxy]:
    """A running Proxy to `target` for the block."""
    with Proxy(target, tls=tls, port=port) as running:
        yield running
