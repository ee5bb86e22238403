"""The composition root: each process counts in its own registry, and a worker that cannot run ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.metrics import LifecycleMetrics
from gridflow.app.codec import generate_key
from gridflow.app.compose import build_worker, process_registry, run_bridge, run_worker
from gridflow.app.settings import Settings
from gridflow.app.temporal import KeysRequiredError
from gridflow.domain.lifecycle import StepKind
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.activities.test_metrics import wait_until
from tests.conftest import free_port, isolated_settings, make_incident
from workflows.client import report_incident

# Far beyond the few seconds a failed start takes: reaching it means run_worker hangs.
HANG = 60


async def test_two_processes_in_one_test_count_only_their_own_incidents(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    first, second = LifecycleMetrics(process_registry()), LifecycleMetrics(process_registry())
    first_sink, second_sink = MemorySink(), MemorySink()
    first_queue, second_queue = (f"compose-{uuid.uuid4().hex[:8]}" for _ in range(2))
    reported = {first_queue: [make_incident(), make_incident()], second_queue: [make_incident()]}
    sinks = {first_queue: first_sink, second_queue: second_sink}

    async with (
        build_worker(client, first_queue, RulesSource(), [first_sink], first),
        build_worker(client, second_queue, RulesSource(), [second_sink], second),
    ):
        for queue, incidents in reported.items():
            for incident in incidents:
                await report_incident(client, queue, incident)
        await wait_until(
            lambda: all(
                StepKind.DISPATCHED in {step.kind for step in sinks[queue].steps(incident.incident_id)}
                for queue, incidents in reported.items()
                for incident in incidents
            )
        )

    labels = {"category": "street_lamp", "priority": "normal", "district": "d-huangpu", "rule": "default"}
    received = "gridflow_incidents_received_total"
    assert first.registry.get_sample_value(received, labels) == 2
    assert second.registry.get_sample_value(received, labels) == 1


@pytest.mark.parametrize(
    "encryption",
    [{"codec_keys": "k1:" + generate_key()}, {"allow_plaintext": True}],
    ids=["with keys", "plaintext allowed"],
)
async def test_a_worker_whose_temporal_worker_cannot_start_raises_instead_of_hanging(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment, encryption: dict[str, object]
) -> None:
    namespace = f"no-such-namespace-{uuid.uuid4().hex[:6]}"
    settings = isolated_settings(
        kafka_bootstrap,
        temporal_address=dev_server_env.client.service_client.config.target_host,
        temporal_namespace=namespace,
        metrics_port=free_port(),
        sdk_metrics_port=0,
        **encryption,
    )
    never = asyncio.Event()  # nobody stops it: only the worker's failure can end it

    with pytest.raises(RuntimeError, match=f"Worker validation failed: Namespace {namespace} was not found"):
        await asyncio.wait_for(run_worker(settings, never), timeout=HANG)


@pytest.mark.parametrize("process", [run_worker, run_bridge], ids=["worker", "bridge"])
async def test_the_worker_and_the_bridge_refuse_to_run_without_keys_before_reaching_any_server(
    process: Callable[[Settings, asyncio.Event], Awaitable[None]],
) -> None:
    # Nothing listens on these: getting past the check would fail differently, or hang.
    nowhere = f"127.0.0.1:{free_port()}"
    settings = Settings(temporal_address=nowhere, kafka_bootstrap_servers=nowhere, metrics_port=free_port())
    with pytest.raises(KeysRequiredError) as refused:
        await asyncio.wait_for(process(settings, asyncio.Event()), timeout=HANG)
    message = str(refused.value)
    assert "in clear" in message and "\n" not in message
    for named in ("GRIDFLOW_CODEC_KEYS", "gridflow codec keygen", "GRIDFLOW_ALLOW_PLAINTEXT"):
        assert named in message, message
    # Blank keys are no keys.
    with pytest.raises(KeysRequiredError):
        await process(settings.with_overrides(codec_keys="  "), asyncio.Event())
