"""Where published lifecycle steps go: the sink protocol, and a structured log line per step.

The other sinks: Kafka (kafka_sink.py) and the metrics (metrics.py).
"""

from __future__ import annotations

from typing import Protocol

import structlog

from gridflow.domain.lifecycle import StepBatch

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
