"""A step sink for tests: every published step kept in memory, as a real consumer would see it."""

from __future__ import annotations

from gridflow.domain.lifecycle import Step, StepBatch


class MemorySink:
    """Keeps every step in memory, deduplicated by (incident, seq) as a real consumer would."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Step]] = {}

    async def publish(self, batch: StepBatch) -> None:
        """Remember the steps."""
        steps = self._steps.setdefault(batch.incident_id, {})
        for step in batch.steps:
            steps[step.seq] = step

    def steps(self, incident_id: str) -> list[Step]:
        """The steps published so far for an incident, in order."""
        return [step for _, step in sorted(self._steps.get(incident_id, {}).items())]
