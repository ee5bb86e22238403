"""gridflow's TLS settings connect to a Temporal frontend that speaks TLS.

The dev server has no TLS of its own, so the test puts a TLS-terminating proxy (a self-signed CA and a
certificate for 127.0.0.1) in front of it: the client side is exactly what production uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from gridflow.app.settings import Settings
from gridflow.app.temporal import connect
from tests.certificates import certificates
from tests.conftest import free_port


@contextlib.asynccontextmanager
async def tls_proxy(target: str, cert: Path, key: Path) -> AsyncIterator[str]:
    """A TLS-terminating TCP proxy to `target` (host:port); yields its own address."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])  # gRPC
    host, port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    listen = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", listen, ssl=context)
    async with server:
        yield f"127.0.0.1:{listen}"


async def test_the_temporal_tls_settings_connect_through_tls_and_refuse_an_unknown_certificate(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    ca, cert, key = certificates(tmp_path)
    target = dev_server_env.client.service_client.config.target_host
    async with tls_proxy(target, cert, key) as address:
        client = await connect(Settings(temporal_address=address, temporal_tls_ca=str(ca)))
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
        assert described.namespace_info.name == "default"

        # Without our CA the server's certificate is not trusted: the connection is refused.
        with pytest.raises(RuntimeError):
            await connect(Settings(temporal_address=address, temporal_tls=True))
