"""The incident workflow's side effects: matching the rule in force, publishing lifecycle steps."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import activity

from activities.sinks import StepSink
from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle import StepBatch
from gridflow.domain.rules.loader import RulesSource
from gridflow.domain.rules.model import RuleSnapshot
from workflows.activity_names import MATCH_RULE, PUBLISH_STEPS


class IncidentActivities:
    """Activities bound to the worker's rules and step sinks."""

    def __init__(self, rules: RulesSource, sinks: Sequence[StepSink]) -> None:
        self._rules = rules
        self._sinks = list(sinks)

    @activity.defn(name=MATCH_RULE)
    async def match_rule(self, incident: Incident) -> RuleSnapshot:
        """Pick the first rule in force that matches the incident (re-reading a changed rules file)."""
        return self._rules.current().snapshot_for(incident)

    @activity.defn(name=PUBLISH_STEPS)
    async def publish_steps(self, batch: StepBatch) -> None:
        """Deliver lifecycle steps to every sink. Steps carry stable sequence numbers, so a retry
        delivers the same steps again and consumers drop what they have already seen."""
        for sink in self._sinks:
            await sink.publish(batch)
