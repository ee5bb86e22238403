"""A workflow that reads the wall clock: what the sandbox must refuse (tests of the worker's tuning)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn
class ClockReadingWorkflow:
    """Returns `datetime.now()`: non-deterministic, refused inside a sandbox that checks its imports."""

    @workflow.run
    async def run(self) -> str:
        """The wall clock's time."""
        return datetime.now().isoformat()
