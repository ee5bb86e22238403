"""The activities the workflows call, by name: the workflows' half of the contract that activities/
implements (each activity is defined under one of these names).

The workflows name their activities instead of importing them, so that the Temporal shell does not
depend on the adapters above it; the names are what the recorded histories hold.
"""

from __future__ import annotations

from typing import Final

MATCH_RULE: Final = "match_rule"  # (Incident) -> RuleSnapshot: the rule in force that matches
PUBLISH_STEPS: Final = "publish_steps"  # (StepBatch) -> None: deliver lifecycle steps to the sinks
SIMULATION_OBSERVE: Final = "simulation_observe"  # (incident id) -> IncidentState
SIMULATION_ACT: Final = "simulation_act"  # (incident id, Action) -> refusal text or None
