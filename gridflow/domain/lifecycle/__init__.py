"""The incident lifecycle: the rules of the loop as deterministic functions of (state, command, instant).

No Temporal, Kafka, Prometheus or logging here, and no clock of its own: IncidentWorkflow runs these
functions with `workflow.now()`, `rules explain` and the simulations with instants of their own.

- `clock`: the SLA clocks of a level; `timeline`: the steps; `state`: what an incident knows;
- `commands`: what handlers and residents can do; `checks`: why a command is refused;
- `transitions`: report, start, apply a command, fire what is due, the next due instant.
"""

from gridflow.domain.lifecycle.checks import refusal
from gridflow.domain.lifecycle.clock import Clock, ClockKind, PlannedWarning
from gridflow.domain.lifecycle.commands import (
    Accept,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    LifecycleCommand,
    Pause,
    Progress,
    RefuseExtension,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    Resume,
    Transfer,
    Verify,
    Withdraw,
)
from gridflow.domain.lifecycle.state import (
    IncidentContext,
    IncidentState,
    IncidentStep,
    IncidentSummary,
    PendingExtension,
    StepBatch,
)
from gridflow.domain.lifecycle.timeline import Step, StepKind
from gridflow.domain.lifecycle.transitions import Refused, apply, fire_due, next_due, report, start

__all__ = [
    "Accept",
    "Clock",
    "ClockKind",
    "EscalationRequestReason",
    "Feedback",
    "GrantExtension",
    "IncidentContext",
    "IncidentState",
    "IncidentStep",
    "IncidentSummary",
    "LifecycleCommand",
    "Pause",
    "PendingExtension",
    "PlannedWarning",
    "Progress",
    "RefuseExtension",
    "Refused",
    "Reject",
    "RequestEscalation",
    "RequestExtension",
    "Resolve",
    "Resume",
    "Step",
    "StepBatch",
    "StepKind",
    "Transfer",
    "Verify",
    "Withdraw",
    "apply",
    "fire_due",
    "next_due",
    "refusal",
    "report",
    "start",
]
