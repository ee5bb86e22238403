"""Worker tuning: the GRIDFLOW_WORKER_* settings reach the Temporal worker, and bad values are refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.stack import sdk_counter
from gridflow.app.compose import build_worker
from gridflow.app.settings import Settings, SettingsError
from gridflow.app.temporal import sdk_metrics_runtime
from gridflow.app.worker_tuning import WorkerTuning
from gridflow.domain.lifecycle import StepBatch
from gridflow.domain.rules.loader import RulesSource
from tests.conftest import free_port, make_incident
from tests.gridflow.app.clock_reading_workflow import ClockReadingWorkflow
from workflows.client import report_incident


def test_the_settings_become_the_workers_options() -> None:
    settings = Settings.from_env(
        worker_max_cached_workflows=5000,
        worker_max_concurrent_workflow_tasks=20,
        worker_max_concurrent_activities=40,
        worker_sticky_queue_timeout_seconds=3.5,
        worker_sandbox_passthrough=" pydantic , pydantic_core,,",
    )
    options = WorkerTuning.of(settings).worker_options()
    assert options["max_cached_workflows"] == 5000
    assert options["max_concurrent_workflow_tasks"] == 20
    assert options["max_concurrent_activities"] == 40
    assert options["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=3.5)
    runner = options["workflow_runner"]
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert {"pydantic", "pydantic_core"} <= runner.restrictions.passthrough_modules


def test_the_defaults_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_WORKER_MAX_CACHED_WORKFLOWS", "7")
    assert WorkerTuning.of(Settings.from_env()).max_cached_workflows == 7
    assert WorkerTuning.defaults().max_cached_workflows == 1000


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("worker_max_cached_workflows", -1, "GRIDFLOW_WORKER_MAX_CACHED_WORKFLOWS"),
        ("worker_max_concurrent_workflow_tasks", 1, "GRIDFLOW_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS"),
        ("worker_max_concurrent_activities", 0, "GRIDFLOW_WORKER_MAX_CONCURRENT_ACTIVITIES"),
        ("worker_sticky_queue_timeout_seconds", 0, "GRIDFLOW_WORKER_STICKY_QUEUE_TIMEOUT_SECONDS"),
    ],
)
def test_an_out_of_range_tuning_is_refused_naming_its_variable(field: str, value: int, variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}="):
        Settings.from_env(**{field: value})


class CountingSink:
    """Counts the step batches the worker publishes (one per dispatched incident here)."""

    def __init__(self) -> None:
        self.batches = 0

    async def publish(self, batch: StepBatch) -> None:
        """Count the batch."""
        self.batches += 1


async def test_a_worker_caching_two_incidents_evicts_the_third(dev_server_env: WorkflowEnvironment) -> None:
    port = free_port()
    client = await Client.connect(
        dev_server_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=sdk_metrics_runtime(Settings(metrics_host="127.0.0.1", sdk_metrics_port=port)),
    )
    tuning = WorkerTuning.of(Settings.from_env(worker_max_cached_workflows=2))
    sink = CountingSink()
    queue = f"tuning-{free_port()}"
    async with build_worker(client, queue, RulesSource(), sinks=[sink], tuning=tuning):
        for _ in range(3):
            await report_incident(client, queue, make_incident())
        for _ in range(200):
            if sink.batches >= 3 and sdk_counter(port, "temporal_sticky_cache_total_forced_eviction_total"):
                break
            await asyncio.sleep(0.1)
        assert sink.batches == 3
        assert sdk_counter(port, "temporal_sticky_cache_size") <= 2
        assert sdk_counter(port, "temporal_sticky_cache_total_forced_eviction_total") >= 1


async def test_the_default_passthrough_keeps_the_sandbox_refusing_the_wall_clock(
    dev_server_env: WorkflowEnvironment,
) -> None:
    # Passing a workflow's own module through would spare its re-import for every incident loaded, but
    # its imports are then the real modules: the sandbox no longer sees datetime.now() (why the default
    # passes through libraries only).
    client = dev_server_env.client
    for passthrough, refused in (((), True), (("tests.gridflow.app.clock_reading_workflow",), False)):
        defaults = WorkerTuning.defaults()
        tuning = WorkerTuning.of(
            Settings.from_env(
                worker_sandbox_passthrough=",".join((*defaults.sandbox_passthrough, *passthrough))
            )
        )
        queue = f"sandbox-{free_port()}"
        worker = Worker(client, task_queue=queue, workflows=[ClockReadingWorkflow], **tuning.worker_options())
        async with worker:
            handle = await client.start_workflow(
                ClockReadingWorkflow.run, id=f"clock-{uuid.uuid4().hex}", task_queue=queue
            )
            try:
                await asyncio.wait_for(handle.result(), timeout=5)
                completed = True
            except TimeoutError:  # the workflow task fails and is retried: the run never completes
                completed = False
        assert completed is not refused, passthrough
