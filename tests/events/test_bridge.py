"""The bridge on a real Tansu broker and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from events import contract
from events.bridge import Bridge, command_id
from events.cloudevents import dump_json
from events.dead_letters import replay_dead_letters
from events.kafka import ensure_topics, make_producer
from gridflow.app.compose import build_worker
from gridflow.domain.incident import Outcome, Status, workflow_id_for
from gridflow.domain.rules.loader import RulesSource
from tests.activities.sinks import MemorySink
from tests.conftest import isolated_settings
from tests.events.conftest import Pipeline
from tests.events.samples import sample_data
from workflows.client import incident_handle


def new_id() -> str:
    return f"inc-{uuid.uuid4().hex[:10]}"


async def test_a_reported_event_in_binary_mode_starts_the_incident(pipeline: Pipeline) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, incident_id), mode="binary")

    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)
    assert (state.level, state.holder_unit) == ("grid", "g-nanjing-07")


async def test_a_reported_event_from_the_official_cloudevents_sdk_starts_the_incident(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    event = CloudEvent(
        attributes={
            "id": str(uuid.uuid4()),
            "source": "https://hotline.example.gov/12345",
            "type": contract.REPORTED,
            "specversion": "1.0",
            "datacontenttype": "application/json",
        },
        data=sample_data(contract.REPORTED, incident_id),
    )
    message = ce_kafka.to_structured_event(event, key_mapper=lambda _: incident_id)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    pipeline.publish_raw(key, message.value, list(message.headers.items()))

    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)
    assert state.category == "street_lamp"


async def test_the_same_incident_published_twice_runs_one_workflow_even_after_it_closed(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    report = pipeline.event(contract.REPORTED, incident_id)
    pipeline.publish(report)
    pipeline.publish(report, mode="binary")
    first = await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)
    pipeline.publish(pipeline.event(contract.WITHDRAWN, incident_id))
    await pipeline.wait_for(incident_id, lambda s: s.status is Status.CLOSED)

    pipeline.publish(pipeline.event(contract.REPORTED, incident_id))  # a late re-publication
    marker = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, marker))
    await pipeline.wait_for(marker, lambda s: s.status is Status.DISPATCHED)
    await asyncio.sleep(1)

    runs = [w async for w in pipeline.client.list_workflows(f"WorkflowId = 'incident-{incident_id}'")]
    assert len(runs) == 1
    state = await pipeline.state(incident_id)
    assert state.timeline[0].at == first.timeline[0].at
    assert pipeline.dead_letters() == []


async def test_lifecycle_events_through_kafka_close_the_incident_and_are_published_in_order(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    for event_type in (contract.REPORTED, contract.ACCEPTED, contract.PROGRESS, contract.RESOLVED):
        pipeline.publish(pipeline.event(event_type, incident_id))
    await pipeline.wait_for(incident_id, lambda s: s.status is Status.RESOLVED)
    pipeline.publish(pipeline.event(contract.FEEDBACK, incident_id, rating="satisfied"), mode="binary")

    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.CLOSED)
    assert state.outcome is Outcome.RESOLVED
    await asyncio.sleep(0.5)
    events = await asyncio.to_thread(pipeline.lifecycle_events, incident_id)
    assert [e["type"] for e in events] == [
        f"gridflow.incident.{kind}.v1"
        for kind in ("reported", "dispatched", "accepted", "progress", "resolved", "feedback", "closed")
    ]
    assert [e["id"] for e in events] == [f"{incident_id}:{seq}" for seq in range(1, 8)]
    assert all(e["subject"] == incident_id for e in events)


async def test_a_return_visit_through_kafka_that_says_not_solved_reopens_the_incident(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    for event_type in (contract.REPORTED, contract.ACCEPTED, contract.RESOLVED):
        pipeline.publish(pipeline.event(event_type, incident_id))
    await pipeline.wait_for(incident_id, lambda s: s.status is Status.RESOLVED)
    # An answer the contract does not know is dead-lettered with its reason; the incident waits on.
    unknown_answer = {
        "specversion": "1.0",
        "id": f"{incident_id}-maybe",
        "source": "tests",
        "type": contract.FEEDBACK,
        "data": {**sample_data(contract.FEEDBACK, incident_id), "solved": "maybe"},
    }
    structured = [("content-type", b"application/cloudevents+json")]
    pipeline.publish_raw(incident_id.encode(), dump_json(unknown_answer), structured)
    (letter,) = await pipeline.wait_dead_letters(1)
    assert letter.error_type == "invalid_data" and "data.solved" in letter.error_message

    pipeline.publish(pipeline.event(contract.FEEDBACK, incident_id, rating="satisfied", solved=False))

    state = await pipeline.wait_for(incident_id, lambda s: s.reopen_count == 1)
    assert (state.status, state.solved) == (Status.DISPATCHED, False)
    await asyncio.sleep(0.5)
    events = await asyncio.to_thread(pipeline.lifecycle_events, incident_id)
    feedback = next(e for e in events if e["type"] == "gridflow.incident.feedback.v1")
    reopened = next(e for e in events if e["type"] == "gridflow.incident.reopened.v1")
    assert (feedback["data"]["solved"], feedback["data"]["rating"]) == (False, "satisfied")
    assert reopened["data"]["reason"] == "not_solved"


async def test_a_transfer_through_kafka_moves_the_incident_and_is_published(pipeline: Pipeline) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
    pipeline.publish(pipeline.event(contract.TRANSFERRED, incident_id))

    state = await pipeline.wait_for(incident_id, lambda s: s.transfers == 1)
    assert (state.status, state.holder_unit) == (Status.DISPATCHED, "g-nanjing-08")
    await asyncio.sleep(0.5)
    events = await asyncio.to_thread(pipeline.lifecycle_events, incident_id)
    moved = next(e for e in events if e["type"] == "gridflow.incident.transferred.v1")
    assert (moved["data"]["from_unit"], moved["data"]["unit_id"]) == (
        state.timeline[1].unit_id,
        "g-nanjing-08",
    )


async def test_an_extension_asked_and_granted_through_kafka_moves_the_resolve_deadline(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    for event_type in (contract.REPORTED, contract.ACCEPTED):
        pipeline.publish(pipeline.event(event_type, incident_id))
    accepted = await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED)
    assert accepted.resolve_deadline is not None
    for event_type in (contract.EXTENSION_REQUESTED, contract.EXTENSION_GRANTED):
        pipeline.publish(pipeline.event(event_type, incident_id))

    state = await pipeline.wait_for(incident_id, lambda s: s.extensions == 1)
    assert state.resolve_deadline == accepted.resolve_deadline + timedelta(hours=8)
    await asyncio.sleep(0.5)
    events = await asyncio.to_thread(pipeline.lifecycle_events, incident_id)
    kinds = [e["type"].removeprefix("gridflow.incident.").removesuffix(".v1") for e in events]
    assert kinds[-2:] == ["extension_requested", "extension_granted"]
    assert events[-1]["data"]["actor"] == "s-nanjing-east" and events[-1]["data"]["extension"] == "8h"


async def test_a_refusal_to_verify_through_kafka_is_dead_lettered_with_its_reason(pipeline: Pipeline) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    # The built-in rules verify nothing: an inspector's verdict on a dispatched incident is refused.
    for event_type in (contract.REPORTED, contract.VERIFIED):
        pipeline.publish(pipeline.event(event_type, incident_id))

    (letter,) = await pipeline.wait_dead_letters(1)
    assert letter.error_type == "rejected"
    assert f"cannot verify incident {incident_id}: it is dispatched, not verifying" in letter.error_message


async def test_every_unusable_message_is_dead_lettered_with_its_reason_and_the_bridge_keeps_going(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    known = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, known))
    await pipeline.wait_for(known, lambda s: s.status is Status.DISPATCHED)
    structured = [("content-type", b"application/cloudevents+json")]

    pipeline.publish_raw(b"k1", b"{not json", structured)
    envelope = {
        "specversion": "1.0",
        "id": "x1",
        "source": "tests",
        "type": "gridflow.incident.teleported.v1",
        "data": {"incident_id": "k2"},
    }
    pipeline.publish_raw(b"k2", dump_json(envelope), structured)
    data = sample_data(contract.REPORTED, "k3")
    del data["location"]
    envelope = {**envelope, "id": "x2", "type": contract.REPORTED, "data": data}
    pipeline.publish_raw(b"k3", dump_json(envelope), structured)
    huge = sample_data(contract.REPORTED, "k4") | {"description": "x" * 70_000}
    pipeline.publish_raw(b"k4", dump_json({**envelope, "id": "x3", "data": huge}), structured)
    pipeline.publish(pipeline.event(contract.ACCEPTED, "never-reported"))
    pipeline.publish(pipeline.event(contract.RESOLVED, known))  # resolve before accept
    good = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, good))

    await pipeline.wait_for(good, lambda s: s.status is Status.DISPATCHED)
    letters = await pipeline.wait_dead_letters(6)
    reasons = sorted(letter.error_type for letter in letters)
    assert reasons == sorted(
        ["malformed", "unknown_type", "invalid_data", "oversized", "unknown_incident", "rejected"]
    )
    rejected = next(letter for letter in letters if letter.error_type == "rejected")
    assert "it is dispatched, not accepted or paused" in rejected.error_message
    assert rejected.key == known.encode()
    assert rejected.header(contract.DLQ_SOURCE_TOPIC_HEADER) == pipeline.settings.incidents_topic
    assert rejected.header(contract.DLQ_SOURCE_OFFSET_HEADER) is not None
    malformed = next(letter for letter in letters if letter.error_type == "malformed")
    assert malformed.value == b"{not json"
    assert malformed.original_headers == structured


async def test_dead_letters_can_be_replayed_after_the_cause_is_fixed(pipeline: Pipeline) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    pipeline.publish(pipeline.event(contract.ACCEPTED, incident_id))  # arrives before its report
    letters = await pipeline.wait_dead_letters(1)
    assert [letter.error_type for letter in letters] == ["unknown_incident"]

    pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
    await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)
    replayed = await asyncio.to_thread(replay_dead_letters, pipeline.settings)

    assert len(replayed) == 1
    state = await pipeline.wait_for(incident_id, lambda s: s.status is Status.ACCEPTED)
    assert state.holder_unit == "g-nanjing-07"


async def test_a_bridge_killed_before_committing_redelivers_without_duplicates(pipeline: Pipeline) -> None:
    class CrashBeforeCommit(Bridge):
        """A bridge that dies before any offset commit, as if killed right after the Temporal calls."""

        def _commit_now(self, offsets: object) -> None:
            return None

    crashing = pipeline.start_bridge(CrashBeforeCommit(pipeline.settings, pipeline.client))
    incident_id = new_id()
    for event_type in (contract.REPORTED, contract.ACCEPTED, contract.PROGRESS):
        pipeline.publish(pipeline.event(event_type, incident_id))
    before = await pipeline.wait_for(incident_id, lambda s: len(s.timeline) == 4)
    await pipeline.stop_bridges()
    del crashing

    pipeline.start_bridge()  # reads everything again from the last commit (none)
    marker = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, marker))
    await pipeline.wait_for(marker, lambda s: s.status is Status.DISPATCHED)
    await asyncio.sleep(1)

    after = await pipeline.state(incident_id)
    assert after.timeline == before.timeline  # the start and both updates applied once
    assert pipeline.dead_letters() == []


async def test_a_second_report_with_different_content_is_dead_lettered_as_a_conflict(
    pipeline: Pipeline,
) -> None:
    pipeline.start_bridge()
    incident_id = new_id()
    pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
    first = await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)

    pipeline.publish(pipeline.event(contract.REPORTED, incident_id, title="Another problem entirely"))
    letters = await pipeline.wait_dead_letters(1)

    assert [letter.error_type for letter in letters] == ["conflict"]
    assert "already reported with different content" in letters[0].error_message
    assert (await pipeline.state(incident_id)).timeline == first.timeline


ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED


async def admitted(client: Client, incident_id: str, update_id: str) -> bool:
    """Whether Temporal has taken in an update to the incident (it waits there for a worker)."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=workflow_id_for(incident_id)),
            update_id=update_id,
        ),
        wait_policy=WaitPolicy(lifecycle_stage=ADMITTED),
    )
    try:
        await client.workflow_service.poll_workflow_execution_update(request, timeout=timedelta(seconds=5))
    except RPCError:  # not there (yet)
        return False
    return True


async def test_a_command_racing_its_incidents_close_is_dead_lettered_as_closed_not_as_unknown(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment
) -> None:
    """The accept reaches Temporal while no worker runs, and the incident is closed (an operator
    terminates it) before any worker sees the accept: Temporal aborts the waiting command."""
    settings = isolated_settings(kafka_bootstrap)
    client = dev_server_env.client
    await asyncio.to_thread(ensure_topics, settings)
    producer = await asyncio.to_thread(make_producer, settings)
    pipeline = Pipeline(settings, client, MemorySink(), producer)
    incident_id = new_id()
    try:
        pipeline.start_bridge()
        async with build_worker(client, settings.task_queue, RulesSource(), [pipeline.sink]):
            pipeline.publish(pipeline.event(contract.REPORTED, incident_id))
            await pipeline.wait_for(incident_id, lambda s: s.status is Status.DISPATCHED)

        accept = pipeline.event(contract.ACCEPTED, incident_id)
        pipeline.publish(accept)
        for _ in range(300):
            if await admitted(client, incident_id, command_id(accept)):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the bridge's accept never reached Temporal")
        await incident_handle(client, incident_id).terminate("closed by an operator")
        letters = await pipeline.wait_dead_letters(1)

        assert [(letter.error_type, letter.key) for letter in letters] == [
            ("incident_closed", incident_id.encode())
        ]
        assert letters[0].error_message == f"incident {incident_id} is closed"
    finally:
        await pipeline.stop_bridges()
        await asyncio.to_thread(producer.close, 5)
