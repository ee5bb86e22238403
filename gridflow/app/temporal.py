"""Connecting to Temporal the one way gridflow does: pydantic payloads, search attributes registered."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from gridflow.app.codec import Keyring, data_converter
from gridflow.app.settings import Settings, env_name, revealed
from workflows import search_attributes


def sdk_metrics_runtime(settings: Settings) -> Runtime:
    """A Temporal runtime that serves the SDK's own worker metrics (slots, latencies, failures)."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{settings.metrics_host}:{settings.sdk_metrics_port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )


async def connect(settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    """A Temporal client for gridflow's namespace, speaking pydantic models.

    `lazy` connects on first use, so a process can start while Temporal is still down.
    """
    tls = tls_config(settings)
    keys = revealed(settings.codec_keys)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(Keyring.parse(keys) if keys else None),
        tls=tls,
        api_key=revealed(settings.temporal_api_key),
        lazy=lazy,
        runtime=runtime,
    )


class KeysRequiredError(RuntimeError):
    """A process that writes personal data into Temporal was started without encryption keys."""


def require_keys(settings: Settings, what: str) -> None:
    """Refuse to run `what` (a process or command that writes incident payloads into Temporal) without
    GRIDFLOW_CODEC_KEYS, unless GRIDFLOW_ALLOW_PLAINTEXT says payloads in clear are wanted.

    Without keys, residents' names and phones would sit in Temporal's history in clear (its payloads
    are only base64 JSON), readable by anyone with access to the server or its database.
    """
    if settings.codec_keys is not None and settings.codec_keys.get_secret_value().strip():
        return
    if settings.allow_plaintext:
        return
    raise KeysRequiredError(
        f"{what} refuses to write incident payloads into Temporal in clear: set "
        f"{env_name('codec_keys')} (make a key with `gridflow codec keygen --id k1`), or "
        f"{env_name('allow_plaintext')}=true for tests and local experiments only"
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to Temporal as the settings ask: a CA, a client certificate (mTLS), or an API key (TLS on)."""
    if not (
        settings.temporal_tls
        or settings.temporal_tls_ca
        or settings.temporal_tls_cert
        or settings.temporal_api_key
    ):
        return False
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca),
        client_cert=_read(settings.temporal_tls_cert),
        client_private_key=_read(settings.temporal_tls_key),
    )


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register gridflow's search attributes where they are missing; return the names added."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:
        # The time-skipping test server can add search attributes but not list them.
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {key.name: key for key in search_attributes.ALL if key.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    # The SDK's enum has the protocol's numbers (KEYWORD 2, DATETIME 6, ...).
                    name: IndexedValueType.ValueType(int(key.indexed_value_type))
                    for name, key in missing.items()
                },
            )
        )
    return sorted(missing)
