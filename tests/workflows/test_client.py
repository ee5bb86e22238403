"""The client side of the incident workflows: reporting an incident once, and what Temporal's errors mean."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from temporalio.api.common.v1 import GrpcStatus
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gridflow.domain.incident import Status
from gridflow.domain.lifecycle import Accept, Resolve, Withdraw
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents
from workflows.client import (
    TEMPORAL_CALL_ERRORS,
    Reported,
    TemporalErrorKind,
    TemporalFailure,
    classify_temporal_error,
    report_digest,
    report_incident,
    send_command,
)


async def reported(incidents: Incidents, answer: Reported) -> Reported:
    """The answer, with its incident dispatched (and terminated when the test ends)."""
    incidents.handles.append(answer.handle)
    await incidents.wait_for(answer.handle, lambda s: s.status is Status.DISPATCHED)
    return answer


async def failure_of(call: Awaitable[object]) -> TemporalFailure:
    """How the classifier reads the error a Temporal call ends with (fails the test if none)."""
    try:
        await call
    except TEMPORAL_CALL_ERRORS as error:
        return classify_temporal_error(error)
    raise AssertionError("the call succeeded")


# ---------------------------------------------------------------------- reporting


async def test_reporting_the_same_incident_twice_says_new_then_existing(live_incidents: Incidents) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    incident = make_incident()

    first = await reported(live_incidents, await report_incident(client, queue, incident))
    again = await report_incident(client, queue, incident)

    assert (first.started, first.conflict) == (True, False)
    assert (again.started, again.conflict) == (False, False)
    assert again.run_id == first.run_id is not None
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{incident.workflow_id}'")]
    assert len(runs) == 1


async def test_a_report_whose_content_differs_from_the_running_incidents_is_a_conflict(
    live_incidents: Incidents,
) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    incident = make_incident()
    await reported(live_incidents, await report_incident(client, queue, incident))

    other = await report_incident(client, queue, incident.model_copy(update={"title": "Burst water main"}))

    assert (other.started, other.conflict) == (False, True)
    state = await live_incidents.state(other.handle)
    assert state.timeline[0].kind.value == "reported" and len(state.timeline) == 2  # reported, dispatched


async def test_the_same_report_with_its_time_in_another_offset_is_the_same_report(
    live_incidents: Incidents,
) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    in_shanghai = make_incident().model_copy(
        update={"reported_at": datetime(2026, 11, 23, 16, 0, tzinfo=timezone(timedelta(hours=8)))}
    )
    await reported(live_incidents, await report_incident(client, queue, in_shanghai))

    in_utc = in_shanghai.model_copy(update={"reported_at": datetime(2026, 11, 23, 8, 0, tzinfo=UTC)})
    an_hour_later = in_shanghai.model_copy(update={"reported_at": datetime(2026, 11, 23, 9, 0, tzinfo=UTC)})

    assert (await report_incident(client, queue, in_utc)).conflict is False
    assert (await report_incident(client, queue, an_hour_later)).conflict is True


def test_a_report_in_utc_keeps_the_digest_it_had_before_instants_were_compared() -> None:
    # Running incidents hold the old digest in their memo: a redelivery of theirs must still match.
    incident = make_incident()
    assert report_digest(incident) == hashlib.sha256(incident.model_dump_json().encode()).hexdigest()


async def test_a_report_of_an_incident_that_has_closed_starts_nothing(live_incidents: Incidents) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    incident = make_incident()
    first = await reported(live_incidents, await report_incident(client, queue, incident))
    await send_command(client, incident.incident_id, Withdraw(reason="duplicate report"))
    await first.handle.result()

    again = await report_incident(client, queue, incident)

    assert (again.started, again.conflict) == (False, False)
    assert again.run_id == first.run_id


# ---------------------------------------------------------------------- what an error means


async def test_a_command_to_an_incident_never_reported_means_no_incident(live_incidents: Incidents) -> None:
    failure = await failure_of(send_command(live_incidents.env.client, "never-reported", Accept(unit_id="u")))

    assert failure.kind is TemporalErrorKind.NO_INCIDENT


async def test_a_command_the_workflow_refuses_is_refused_with_its_reason(live_incidents: Incidents) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    incident = make_incident()
    await reported(live_incidents, await report_incident(client, queue, incident))
    resolve = Resolve(unit_id=incident.location.grid_id, resolution="Lamp replaced.")

    failure = await failure_of(send_command(client, incident.incident_id, resolve))

    assert failure == TemporalFailure(
        TemporalErrorKind.REFUSED,
        f"cannot resolve incident {incident.incident_id}: it is dispatched, not accepted or paused",
    )


async def test_a_command_to_a_closed_incident_means_closed(live_incidents: Incidents) -> None:
    client, queue = live_incidents.env.client, live_incidents.task_queue
    incident = make_incident()
    first = await reported(live_incidents, await report_incident(client, queue, incident))
    await send_command(client, incident.incident_id, Withdraw())
    await first.handle.result()

    failure = await failure_of(send_command(client, incident.incident_id, Accept(unit_id="u")))

    assert failure.kind is TemporalErrorKind.CLOSED


async def test_a_namespace_that_does_not_exist_is_no_answer_about_the_incident(
    live_incidents: Incidents,
) -> None:
    server = live_incidents.env.client.service_client.config.target_host
    elsewhere = await Client.connect(
        server, namespace="no-such-namespace", data_converter=pydantic_data_converter
    )

    failure = await failure_of(send_command(elsewhere, "inc-1", Accept(unit_id="u")))

    assert failure.kind is TemporalErrorKind.OTHER
    assert "no-such-namespace" in failure.detail


def not_found(message: str) -> RPCError:
    """NOT_FOUND as the server sends it about a workflow."""
    status = GrpcStatus(code=RPCStatusCode.NOT_FOUND.value, message=message)
    status.details.add().Pack(NotFoundFailure())
    return RPCError(message, RPCStatusCode.NOT_FOUND, status.SerializeToString())


ACCEPTED_THEN_CLOSED = ApplicationError("completed first", type="AcceptedUpdateCompletedWorkflow")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(
            not_found("workflow update was aborted by closing workflow"),
            TemporalErrorKind.CLOSED,
            id="a command admitted while the incident closed",
        ),
        pytest.param(
            not_found("workflow execution already completed"),
            TemporalErrorKind.CLOSED,
            id="a command to a closed incident",
        ),
        pytest.param(
            WorkflowUpdateFailedError(ACCEPTED_THEN_CLOSED),
            TemporalErrorKind.CLOSED,
            id="a command accepted, then the incident closed before it finished",
        ),
        pytest.param(
            not_found("workflow not found for ID: incident-x"),
            TemporalErrorKind.NO_INCIDENT,
            id="no such incident",
        ),
        pytest.param(
            RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""),
            TemporalErrorKind.TRANSIENT,
            id="Temporal unavailable",
        ),
        pytest.param(
            RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""),
            TemporalErrorKind.TRANSIENT,
            id="a call timed out",
        ),
        pytest.param(
            WorkflowUpdateRPCTimeoutOrCancelledError(),
            TemporalErrorKind.TRANSIENT,
            id="an update timed out",
        ),
        pytest.param(
            RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""),
            TemporalErrorKind.OTHER,
            id="permission denied",
        ),
    ],
)
def test_each_error_temporal_answers_means_one_thing(
    error: RPCError | WorkflowUpdateFailedError | WorkflowUpdateRPCTimeoutOrCancelledError,
    kind: TemporalErrorKind,
) -> None:
    assert classify_temporal_error(error).kind is kind
