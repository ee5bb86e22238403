"""gridflow's TLS settings connect to a Temporal frontend that speaks TLS.

The dev server has no TLS of its own, so the test puts a TLS-terminating proxy (a self-signed CA and a
certificate for 127.0.0.1) in front of it: the client side is exactly what production uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from gridflow.app.settings import Settings
from gridflow.app.temporal import connect
from tests.certificates import certificates
from tests.proxy import proxy, server_tls


async def test_the_temporal_tls_settings_connect_through_tls_and_refuse_an_unknown_certificate(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    ca, cert, key = certificates(tmp_path)
    target = dev_server_env.client.service_client.config.target_host
    with proxy(target, tls=server_tls(cert, key, alpn=["h2"])) as tls_proxy:
        address = tls_proxy.address
        client = await connect(Settings(temporal_address=address, temporal_tls_ca=str(ca)))
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
        assert described.namespace_info.name == "default"

        # Without our CA the server's certificate is not trusted: the connection is refused.
        with pytest.raises(RuntimeError):
            await connect(Settings(temporal_address=address, temporal_tls=True))
