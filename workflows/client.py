"""Client-side operations on incidents: report one (idempotently) and send it lifecycle commands.

The CLI and the Kafka bridge both go through here, so there is one way to start an incident and one
mapping from a command to the workflow's update.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from gridflow.domain.incident import Incident, workflow_id_for
from gridflow.domain.lifecycle import (
    Accept,
    Feedback,
    IncidentState,
    IncidentSummary,
    LifecycleCommand,
    Pause,
    Progress,
    RequestEscalation,
    Resolve,
    Resume,
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
    """A fingerprint of a report's content, to tell a re-delivery from a conflicting report."""
    return hashlib.sha256(incident.model_dump_json().encode()).hexdigest()


async def report_incident(client: Client, task_queue: str, incident: Incident) -> Reported:
    """Start the incident's workflow unless it already exists, running or closed.

    A running duplicate is absorbed by the id conflict policy; a closed one is refused by the reuse
    policy, so the same incident reported twice (or redelivered after a crash) never runs twice.
    """
    digest = report_digest(incident)
    try:
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(incident=incident),
            id=incident.workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={REPORT_DIGEST_MEMO: digest},
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, incident.workflow_id)
        return Reported(handle, False, None, await _differs(handle, digest))
    # With USE_EXISTING the server hands back the running workflow; it is new only if it says so
    # (the SDK keeps the server's start response on the handle).
    response = getattr(handle, "_start_workflow_response", None)
    is_new = bool(getattr(response, "started", True)) if response is not None else True
    if is_new:
        return Reported(handle, True, handle.result_run_id)
    return Reported(handle, False, handle.result_run_id, await _differs(handle, digest))


async def _differs(handle: WorkflowHandle[IncidentWorkflow, IncidentSummary], digest: str) -> bool:
    description = await handle.describe()
    try:
        known = await description.memo_value(REPORT_DIGEST_MEMO, type_hint=str)
    except KeyError:
        return False  # started without a digest: cannot tell, treat as the same report
    return bool(known != digest)


_UPDATES: dict[type[Any], Any] = {
    Accept: IncidentWorkflow.accept,
    Progress: IncidentWorkflow.progress,
    RequestEscalation: IncidentWorkflow.request_escalation,
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
