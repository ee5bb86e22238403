"""Client-side operations on incidents: report one (idempotently), send it lifecycle commands, read it,
and say what a failed call to Temporal means.

The CLI and the Kafka bridge both go through here, so there is one way to start an incident, one
mapping from a command to the workflow's update, and one reading of Temporal's errors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import Any, Final

from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from gridflow.domain.incident import Incident, workflow_id_for
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    GrantExtension,
    IncidentState,
    IncidentSummary,
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
from workflows.incident import IncidentWorkflow
from workflows.input import IncidentInput

REPORT_DIGEST_MEMO = "report_digest"


@dataclass(frozen=True)
class Reported:
    """The answer to reporting an incident."""

    handle: WorkflowHandle[IncidentWorkflow, IncidentSummary]
    started: bool  # False: the incident was already known (running or closed), nothing new started
    run_id: str | None
    conflict: bool = False  # already known, but reported then with different content


def report_digest(incident: Incident) -> str:
    """A fingerprint of a report's content, to tell a re-delivery from a conflicting report.

    The report time counts as an instant: the same report with its time written in another UTC offset
    (an upstream app that moved from `+08:00` to `Z`) has the same digest. A report written in UTC has
    the digest it had before instants were compared, so running incidents keep theirs.
    """
    in_utc = incident.model_copy(update={"reported_at": incident.reported_at.astimezone(UTC)})
    return _digest_of(in_utc)


def _digest_of(incident: Incident) -> str:
    return hashlib.sha256(incident.model_dump_json().encode()).hexdigest()


async def report_incident(client: Client, task_queue: str, incident: Incident) -> Reported:
    """Start the incident's workflow unless it already exists, running or closed.

    The server refuses a second start under the incident's workflow id whether the first run is
    running (the conflict policy) or closed (the reuse policy), so the same incident reported twice (or
    redelivered after a crash) never runs twice, and the refusal is how a known incident is told from
    a new one.
    """
    digest = report_digest(incident)
    try:
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=incident),
            id=incident.workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={REPORT_DIGEST_MEMO: digest},
        )
    except WorkflowAlreadyStartedError as known:
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, incident.workflow_id)
        # Before instants were compared, a report in another offset was digested as written.
        same = {digest, _digest_of(incident)}
        return Reported(handle, False, known.run_id or None, await _differs(handle, same))
    return Reported(handle, True, handle.result_run_id)


async def _differs(handle: WorkflowHandle[IncidentWorkflow, IncidentSummary], same: set[str]) -> bool:
    description = await handle.describe()
    try:
        known = await description.memo_value(REPORT_DIGEST_MEMO, type_hint=str)
    except KeyError:
        return False  # started without a digest: cannot tell, treat as the same report
    return known not in same


_UPDATES: dict[type[Any], Any] = {
    Accept: IncidentWorkflow.accept,
    Progress: IncidentWorkflow.progress,
    RequestEscalation: IncidentWorkflow.request_escalation,
    Transfer: IncidentWorkflow.transfer,
    RequestExtension: IncidentWorkflow.request_extension,
    GrantExtension: IncidentWorkflow.grant_extension,
    RefuseExtension: IncidentWorkflow.refuse_extension,
    Verify: IncidentWorkflow.verify,
    Reject: IncidentWorkflow.reject,
    Pause: IncidentWorkflow.pause,
    Resume: IncidentWorkflow.resume,
    Resolve: IncidentWorkflow.resolve,
    Feedback: IncidentWorkflow.feedback,
    Withdraw: IncidentWorkflow.withdraw,
}


def incident_handle(client: Client, incident_id: str) -> WorkflowHandle[IncidentWorkflow, IncidentSummary]:
    """A handle on an incident's workflow by incident id."""
    return client.get_workflow_handle_for(IncidentWorkflow.run, workflow_id_for(incident_id))


async def send_command(
    client: Client, incident_id: str, command: LifecycleCommand, *, command_id: str | None = None
) -> IncidentSummary:
    """Apply a lifecycle command to an incident; raises WorkflowUpdateFailedError when it is refused.

    `command_id` becomes the update id: Temporal applies an update id once per run, so a command
    delivered twice (a Kafka redelivery) changes the incident once and answers the same both times.
    """
    handle = incident_handle(client, incident_id)
    summary: IncidentSummary = await handle.execute_update(_UPDATES[type(command)], command, id=command_id)
    return summary


async def command_was_applied(client: Client, incident_id: str, command_id: str) -> bool:
    """Whether an update with this id is in the incident's history (for commands to closed incidents)."""
    handle = incident_handle(client, incident_id)
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes
            if accepted.accepted_request.meta.update_id == command_id:
                return True
    return False


async def incident_state(client: Client, incident_id: str) -> IncidentState:
    """The full state and timeline of an incident (a query: works on closed incidents too)."""
    return await incident_handle(client, incident_id).query(IncidentWorkflow.state)


# ---------------------------------------------------------------------- what a failed call means


class TemporalErrorKind(StrEnum):
    """What happened, in the incident's terms, when Temporal answered a report or a command with an error."""

    NO_INCIDENT = "no_incident"  # no such incident (never reported, or gone past retention)
    CLOSED = "closed"  # the incident is closed, or closed while the command waited for it
    REFUSED = "refused"  # the workflow refused the command (its validator's reason)
    TRANSIENT = "transient"  # Temporal unavailable, overloaded or timed out: the same call may succeed later
    OTHER = "other"  # anything else Temporal refused (permissions, a missing namespace, a bad request)


@dataclass(frozen=True)
class TemporalFailure:
    """A failed Temporal call, classified: its kind, and the words that explain it."""

    kind: TemporalErrorKind
    detail: str


#: The errors a report or a command can end with that `classify_temporal_error` reads.
TemporalCallError = RPCError | WorkflowUpdateFailedError | WorkflowUpdateRPCTimeoutOrCancelledError
TEMPORAL_CALL_ERRORS: Final = (RPCError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError)

# Statuses that mean "try again later", never "this call is wrong".
_TRANSIENT_STATUSES: Final = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
    }
)
# The server answers NOT_FOUND both for an incident that does not exist and for one that is closed; only
# its message tells them apart: a command to a closed workflow, and one admitted while the workflow
# completed (a command racing the incident's close).
_CLOSED_MESSAGES: Final = ("workflow execution already completed", "aborted by closing workflow")
# The failure of an update the workflow accepted but completed without finishing.
_ACCEPTED_THEN_CLOSED: Final = "AcceptedUpdateCompletedWorkflow"


def classify_temporal_error(error: TemporalCallError) -> TemporalFailure:
    """What a report's or a command's error says: see `TemporalErrorKind`."""
    if isinstance(error, WorkflowUpdateFailedError):
        cause = error.cause
        reason = getattr(cause, "message", None) or str(cause or error)
        if isinstance(cause, ApplicationError) and cause.type == _ACCEPTED_THEN_CLOSED:
            return TemporalFailure(TemporalErrorKind.CLOSED, reason)
        return TemporalFailure(TemporalErrorKind.REFUSED, reason)
    if isinstance(error, WorkflowUpdateRPCTimeoutOrCancelledError):
        return TemporalFailure(TemporalErrorKind.TRANSIENT, str(error))
    if error.status in _TRANSIENT_STATUSES:
        return TemporalFailure(TemporalErrorKind.TRANSIENT, error.message)
    if error.status is RPCStatusCode.NOT_FOUND and not _names_a_namespace(error):
        if any(closed in error.message for closed in _CLOSED_MESSAGES):
            return TemporalFailure(TemporalErrorKind.CLOSED, error.message)
        return TemporalFailure(TemporalErrorKind.NO_INCIDENT, error.message)
    return TemporalFailure(TemporalErrorKind.OTHER, error.message)


#: How the SDK's lazy client says its first connection failed (a RuntimeError, not an RPCError).
_CONNECT_FAILED: Final = "Failed client connect"


def is_connect_failure(error: BaseException) -> bool:
    """Whether `error` is a lazy client failing to reach Temporal at all: a server still down when a
    process started, as transient as UNAVAILABLE."""
    return isinstance(error, RuntimeError) and str(error).startswith(_CONNECT_FAILED)


def _names_a_namespace(error: RPCError) -> bool:
    # A missing namespace is NOT_FOUND too, and says so in its details, not about any incident.
    return any(detail.Is(NamespaceNotFoundFailure.DESCRIPTOR) for detail in error.grpc_status.details)
