"""Where published lifecycle steps go: a structured log line, an in-process list for tests."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from gridflow.domain.lifecycle import Step, StepBatch

log = structlog.get_logger("gridflow.steps")


class StepSink(Protocol):
    """Receives every lifecycle step of every incident, in order per incident."""

    async def publish(self, batch: StepBatch) -> None:
        """Deliver a batch of steps; raise to have the activity retried."""


class LogSink:
    """Writes one structured log line per step (ids, levels and reasons only: no personal data)."""

    async def publish(self, batch: StepBatch) -> None:
        """Log each step."""
        for step in batch.steps:
            log.info(
                f"incident {step.kind.value}",
                incident_id=batch.incident_id,
                seq=step.seq,
                rule=batch.rule_name,
                category=batch.category,
                priority=batch.priority.value,
                level=step.level,
                unit_id=step.unit_id,
                status=step.status.value,
                reason=step.reason,
                outcome=step.outcome.value if step.outcome else None,
                deadline=step.deadline.isoformat() if step.deadline else None,
            )


class MemorySink:
    """Keeps every step in memory, deduplicated by (incident, seq) as a real consumer would."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Step]] = {}
        self._changed = asyncio.Event()

    async def publish(self, batch: StepBatch) -> None:
        """Remember the steps."""
        steps = self._steps.setdefault(batch.incident_id, {})
        for step in batch.steps:
            steps[step.seq] = step
        self._changed.set()

    def steps(self, incident_id: str) -> list[Step]:
        """The steps published so far for an incident, in order."""
        return [step for _, step in sorted(self._steps.get(incident_id, {}).items())]
