"""Why a lifecycle command is refused in an incident's current state (None: it may be applied).

The reasons are the words handlers and upstream apps see: in the refused update, on the dead-letter
topic and in the CLI. They read the state only.
"""

from __future__ import annotations

from gridflow.domain.incident import Status
from gridflow.domain.lifecycle.commands import (
    Accept,
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
from gridflow.domain.lifecycle.state import IncidentState
from gridflow.domain.rules.durations import WorkingDays, format_limit
from gridflow.domain.rules.model import APPROVER_ABOVE

HANDLING = (Status.ACCEPTED, Status.PAUSED)


def refusal(state: IncidentState, command: LifecycleCommand) -> str | None:
    """The reason `command` cannot be applied to the incident now, or None when it can."""
    if state.rule is None:
        return f"incident {state.incident_id} has not been dispatched yet"
    match command:
        case Accept():
            return _holder_problem(state, command.unit_id, "accept", (Status.DISPATCHED,))
        case Progress():
            return _holder_problem(state, command.unit_id, "note progress on", HANDLING)
        case RequestEscalation():
            return _escalation_problem(state, command)
        case Transfer():
            return _transfer_problem(state, command)
        case RequestExtension():
            return _extension_request_problem(state, command)
        case GrantExtension() | RefuseExtension():
            return _extension_decision_problem(state, command.unit_id)
        case Pause():
            return _pause_problem(state, command)
        case Resume():
            return _holder_problem(state, command.unit_id, "resume", (Status.PAUSED,))
        case Resolve():
            return _holder_problem(state, command.unit_id, "resolve", HANDLING)
        case Verify() | Reject():
            return _verification_problem(state, command.unit_id)
        case Feedback():
            return _feedback_problem(state)
        case Withdraw():
            return _closed_problem(state)
    raise TypeError(f"not a lifecycle command: {command!r}")  # pragma: no cover


def _closed_problem(state: IncidentState) -> str | None:
    if state.status is Status.CLOSED:
        outcome = state.outcome.value if state.outcome else "closed"
        return f"incident {state.incident_id} is closed ({outcome}); nothing more can happen to it"
    return None


def _holder_problem(
    state: IncidentState, unit_id: str, action: str, allowed: tuple[Status, ...]
) -> str | None:
    if problem := _closed_problem(state):
        return problem
    if unit_id != state.holder_unit:
        return (
            f"unit {unit_id} does not hold incident {state.incident_id} "
            f"(held by {state.holder_unit} at level {state.level})"
        )
    if state.status not in allowed:
        names = " or ".join(status.value for status in allowed)
        return f"cannot {action} incident {state.incident_id}: it is {state.status.value}, not {names}"
    return None


def _escalation_problem(state: IncidentState, command: RequestEscalation) -> str | None:
    if problem := _holder_problem(state, command.unit_id, "escalate", (Status.DISPATCHED, *HANDLING)):
        return problem
    assert state.rule is not None
    if state.level_index + 1 >= len(state.rule.rule.levels):
        return f"incident {state.incident_id} is at the top level ({state.level}): nothing is above"
    return None


def _transfer_problem(state: IncidentState, command: Transfer) -> str | None:
    by = command.unit_id if command.unit_id is not None else state.holder_unit or ""
    if problem := _holder_problem(state, by, "transfer", (Status.DISPATCHED, Status.ACCEPTED)):
        return problem
    assert state.rule is not None
    if command.to_unit == state.holder_unit:
        return f"incident {state.incident_id} is already held by {command.to_unit}"
    most = state.rule.rule.transfer.max_per_level
    if state.level_transfers >= most:
        return (
            f"incident {state.incident_id} was transferred {state.level_transfers} times at {state.level}, "
            f"the rule's limit: pass it up instead"
        )
    return None


def _extension_request_problem(state: IncidentState, command: RequestExtension) -> str | None:
    if problem := _holder_problem(state, command.unit_id, "extend", (Status.ACCEPTED,)):
        return problem
    assert state.rule is not None and state.level is not None and state.resolve_clock is not None
    policy, name = state.rule.rule.extension, state.incident_id
    if state.extension is not None:
        return f"incident {name} already has an extension request waiting for {state.extension.approver}"
    if state.extensions >= policy.max_count:
        return f"incident {name} has had the {policy.max_count} extension(s) its rule allows"
    if state.resolve_clock.breached:
        return f"incident {name} is past its resolve limit: too late to extend it"
    rule, levels = state.rule.rule, state.rule.rule.levels
    if rule.extension.approver == APPROVER_ABOVE and state.level_index + 1 >= len(levels):
        return f"incident {name} is at the top level ({state.level}): nobody above approves an extension"
    if isinstance(command.extra, WorkingDays) and rule.calendar_for(state.level) is None:
        return (
            f"incident {name}: its clocks run on the wall clock, so ask in hours or days, not {command.extra}"
        )
    start = state.resolve_clock.deadline
    asked = state.rule.working_time(state.level, command.extra, start)
    if asked > state.rule.working_time(state.level, policy.max_extra, start):
        return (
            f"incident {name}: {format_limit(command.extra)} is more than one extension may add "
            f"({format_limit(policy.max_extra)})"
        )
    return None


def _extension_decision_problem(state: IncidentState, unit_id: str) -> str | None:
    if problem := _closed_problem(state):
        return problem
    pending = state.extension
    if pending is None:
        return f"incident {state.incident_id} has no extension request to decide"
    if unit_id != pending.approver:
        return (
            f"unit {unit_id} does not decide extensions of incident {state.incident_id} "
            f"({pending.approver} does)"
        )
    return None


def _pause_problem(state: IncidentState, command: Pause) -> str | None:
    if problem := _holder_problem(state, command.unit_id, "pause", (Status.ACCEPTED,)):
        return problem
    assert state.rule is not None
    if state.paused_total >= state.rule.rule.max_pause_for(state.level or ""):
        return f"incident {state.incident_id} has used its whole pause allowance"
    return None


def _verification_problem(state: IncidentState, unit_id: str) -> str | None:
    if problem := _closed_problem(state):
        return problem
    if state.status is not Status.VERIFYING:
        return f"cannot verify incident {state.incident_id}: it is {state.status.value}, not verifying"
    if unit_id != state.inspector:
        return f"unit {unit_id} does not verify incident {state.incident_id} ({state.inspector} does)"
    return None


def _feedback_problem(state: IncidentState) -> str | None:
    if problem := _closed_problem(state):
        return problem
    if state.status is not Status.RESOLVED:
        return (
            f"cannot take feedback on incident {state.incident_id}: it is {state.status.value}, not resolved"
        )
    return None
