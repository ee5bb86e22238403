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


#: Step fields a log line leaves out: free text written by people (handlers' notes, residents' words)
#: may hold personal data, and logs are not encrypted.
UNLOGGED_STEP_FIELDS: set[str] = {"note"}
#: Step fields logged under another name: a log record's own `level` is its severity, so the step's
#: level (grid, street, ...) is `incident_level`, in console and JSON alike.
RENAMED_STEP_FIELDS = {"level": "incident_level"}


class LogSink:
    """Writes one structured log line per step: every field of the step but free text, with the
    incident's ids, rule, category and priority (no personal data)."""

    async def publish(self, batch: StepBatch) -> None:
        """Log each step."""
        for step in batch.steps:
            fields = step.model_dump(mode="json", exclude=UNLOGGED_STEP_FIELDS)
            kind = fields.pop("kind")
            log.info(
                f"incident {kind}",
                incident_id=batch.incident_id,
                rule=batch.rule_name,
                category=batch.category,
                priority=batch.priority.value,
                district_id=batch.district_id,
                street_id=batch.street_id,
                **{RENAMED_STEP_FIELDS.get(name, name): value for name, value in fields.items()},
            )
