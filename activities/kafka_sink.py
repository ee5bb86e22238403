"""Publishes lifecycle steps to the incident-events topic as CloudEvents, keyed by incident id."""

from __future__ import annotations

import asyncio

from kafka import KafkaProducer

from events.lifecycle import step_events
from gridflow.domain.lifecycle import StepBatch

SEND_TIMEOUT_SECONDS = 8  # under the activity's 10 s, so a slow broker fails the attempt, not the task


class KafkaStepSink:
    """Sends one CloudEvent per step and waits for the broker's acknowledgement of all of them.

    Each event's id is `<incident_id>:<seq>`, so when a failed activity is retried and sends a step
    again, consumers see the same event twice and can drop the second. A step's note (people's words,
    maybe personal data) is sent only if `include_notes`; otherwise `note` is null and `has_note` says.
    """

    def __init__(self, producer: KafkaProducer, topic: str, *, include_notes: bool = False) -> None:
        self._producer = producer
        self._topic = topic
        self._include_notes = include_notes

    async def publish(self, batch: StepBatch) -> None:
        """Send the batch's steps in order; raise (and so retry the activity) if any is not acknowledged."""
        futures = [
            self._producer.send(self._topic, key=key, value=value, headers=headers)
            for key, value, headers in step_events(batch, include_notes=self._include_notes)
        ]
        await asyncio.to_thread(lambda: [future.get(SEND_TIMEOUT_SECONDS) for future in futures])
