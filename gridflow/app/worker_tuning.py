"""How a worker is sized: its workflow cache, task slots, sticky queue and sandbox, from the settings.

Each figure trades memory or recovery time for throughput; the README's capacity plan says what each
costs and when to change it. `build_worker` takes a `WorkerTuning` (the settings' defaults when none is
given); the settings check the ranges, so a bad value is refused naming its variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from gridflow.app.settings import Settings


@dataclass(frozen=True)
class WorkerTuning:
    """A worker's size and sandbox: the GRIDFLOW_WORKER_* settings."""

    max_cached_workflows: int
    max_concurrent_workflow_tasks: int
    max_concurrent_activities: int
    sticky_queue_timeout: timedelta
    sandbox_passthrough: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> WorkerTuning:
        """The tuning the settings ask for."""
        return cls(
            max_cached_workflows=settings.worker_max_cached_workflows,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            sticky_queue_timeout=timedelta(seconds=settings.worker_sticky_queue_timeout_seconds),
            sandbox_passthrough=tuple(
                module.strip() for module in settings.worker_sandbox_passthrough.split(",") if module.strip()
            ),
        )

    @classmethod
    def defaults(cls) -> WorkerTuning:
        """The settings' defaults, whatever the environment says (benchmarks and tests)."""
        return cls.of(Settings.model_construct())

    def worker_options(self) -> dict[str, Any]:
        """The keyword arguments of `temporalio.worker.Worker` this tuning sets."""
        restrictions = SandboxRestrictions.default.with_passthrough_modules(*self.sandbox_passthrough)
        return {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
            "max_concurrent_activities": self.max_concurrent_activities,
            "sticky_queue_schedule_to_start_timeout": self.sticky_queue_timeout,
            "workflow_runner": SandboxedWorkflowRunner(restrictions=restrictions),
        }
