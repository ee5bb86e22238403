"""Faults: real gridflow processes killed with SIGKILL mid-flight, then every incident counted.

Each test runs `python -m gridflow.app.cli worker` / `bridge` as OS processes (the helpers of the scale-out
test) against the session's Temporal dev server and Tansu broker, on its own topics, group and task queue,
and kills them with no chance to say goodbye:

- a worker killed while incidents wait for acceptance, are being handled, or sit in their feedback windows:
  a new worker continues every incident where it was, its SLA timers included, with no step lost or doubled;
- a bridge killed three times at random moments while reports and acceptances flow (some kills land
  between a workflow start and its offset commit): no incident lost or started twice, no acceptance
  applied twice, nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from events import contract
from events.cloudevents import encode_structured, make_event
from events.dead_letters import read_dead_letters
from events.kafka import client_config, ensure_topics, make_producer
from events.lifecycle import step_event_id, step_event_type
from gridflow.app.codec import Keyring, data_converter
from gridflow.app.settings import Settings
from gridflow.domain.incident import EscalationReason, Outcome, Status, workflow_id_for
from gridflow.domain.lifecycle import Accept, ClockKind, IncidentState, Resolve, Step, StepKind
from tests.conftest import isolated_settings, make_incident
from tests.deploy.test_scale_out import PARTITIONS, ROOT, Process, Scenario, consumer_lag
from tests.events.samples import sample_data
from workflows.client import incident_state, report_incident, send_command

DEMO_RULES = (
    ROOT / "gridflow" / "domain" / "rules" / "demo.yaml"
)  # demo-default: grid accept 10 s, resolve 30 s, ...
FEEDBACK_WINDOW = timedelta(seconds=20)  # demo-default's feedback window

# Steps that happen at most once per (level, clock, fraction) in these scenarios: a second one is a replay
# that doubled a step, not a new event.
ONCE = {
    StepKind.REPORTED,
    StepKind.DISPATCHED,
    StepKind.SLA_WARNING,
    StepKind.SLA_BREACHED,
    StepKind.ESCALATED,
    StepKind.ACCEPTED,
    StepKind.RESOLVED,
    StepKind.CLOSED,
}


# ---------------------------------------------------------------------- helpers


def with_codec(client: Client, keys: str) -> Client:
    """The same connection, encrypting and decrypting payloads with the processes' keys."""
    return Client(
        client.service_client, namespace=client.namespace, data_converter=data_converter(Keyring.parse(keys))
    )


async def counted(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def states_of(
    client: Client, incident_ids: Iterable[str], *, within: float = 15.0
) -> dict[str, IncidentState]:
    """Every incident's state (a query each, a few at a time); a query that gets no answer is retried."""
    gate = asyncio.Semaphore(16)

    async def one(incident_id: str) -> IncidentState:
        deadline = time.monotonic() + within
        async with gate:
            while True:
                try:
                    return await asyncio.wait_for(incident_state(client, incident_id), 5)
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise

    ids = list(incident_ids)
    found = await asyncio.gather(*(one(incident_id) for incident_id in ids))
    return dict(zip(ids, found, strict=True))


def timeline_problems(state: IncidentState) -> list[str]:
    """What is wrong with a timeline as a record: gaps or repeats in seq, time going back, doubled steps."""
    problems: list[str] = []
    seqs = [step.seq for step in state.timeline]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"seq is {seqs}, not 1..{len(seqs)}")
    moments = [step.at for step in state.timeline]
    if moments != sorted(moments):
        problems.append("step times go backwards")
    once = Counter((s.kind, s.level, s.clock, s.fraction) for s in state.timeline if s.kind in ONCE)
    problems += [
        f"{kind.value} at {level} ({clock}, {fraction}) x{n}"
        for (kind, level, clock, fraction), n in once.items()
        if n > 1
    ]
    escalated_from = Counter(s.from_level for s in state.timeline if s.kind is StepKind.ESCALATED)
    problems += [f"escalated from {level} x{n}" for level, n in escalated_from.items() if n > 1]
    return problems


def steps(state: IncidentState, kind: StepKind) -> list[Step]:
    return [step for step in state.timeline if step.kind is kind]


def read_topic(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every message of a topic as JSON, from the beginning (no group, no commits)."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    if record.offset < ends[tp]:
                        found.append(json.loads(record.value))
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        assert not remaining, (
            f"{topic}: partitions {sorted(tp.partition for tp in remaining)} not read to the end"
        )
        return found
    finally:
        consumer.close()


def kill(process: Process) -> None:
    """SIGKILL: no drain, no commit, no leaving the group, no goodbye to Temporal."""
    process.popen.send_signal(signal.SIGKILL)
    process.popen.wait(10)


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))


async def eventually(scenario: Scenario, what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds, within the scenario's budget."""
    while not await check():
        if scenario.remaining() <= 0:
            pytest.fail(f"timed out waiting for {what}")  # the caller prints the processes' logs
        await asyncio.sleep(0.5)


def owns_partitions(process: Process) -> bool:
    return bool(process.owned())


# ---------------------------------------------------------------------- a worker killed

WAITING = 8  # never accepted: grid -> street -> district on accept_timeout
HANDLING = 6  # accepted, never resolved: grid -> street on resolve_timeout
RESOLVED = 6  # resolved, never rated: closed as resolved_unrated when the feedback window ends
KILL_BEFORE_DUE = timedelta(seconds=3)  # 7 s after dispatch: before the 0.75 warnings (at 7.5 s)
RESTART_AFTER_DUE = timedelta(seconds=3)


@pytest.mark.timeout(120)
async def test_a_worker_killed_mid_escalations_and_feedback_windows_continues_every_incident_where_it_was(
    dev_server_env: WorkflowEnvironment, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, topic_partitions=PARTITIONS)
    client = dev_server_env.client
    await asyncio.to_thread(ensure_topics, settings)
    scenario = Scenario(settings, client.service_client.config.target_host, client.namespace, tmp_path)
    client = with_codec(client, scenario.keys)  # the processes encrypt: this test reads and writes too
    scenario.env["GRIDFLOW_RULES_FILE"] = str(DEMO_RULES)
    queue = settings.task_queue
    in_queue = f"TaskQueue = '{queue}'"
    # The category tells the groups apart in visibility queries; demo-default matches every one.
    categories = {"waiting": "street_lamp", "handling": "pothole", "resolved": "graffiti"}
    sizes = {"waiting": WAITING, "handling": HANDLING, "resolved": RESOLVED}
    ids = {group: [f"inc-{queue}-{group}-{n:02d}" for n in range(size)] for group, size in sizes.items()}
    everyone = [incident_id for group in ids.values() for incident_id in group]
    incidents = {
        incident_id: make_incident(incident_id=incident_id, category=categories[group])
        for group, members in ids.items()
        for incident_id in members
    }
    try:
        first = scenario.start("worker", "worker-1")
        await scenario.until("the first worker to start", lambda: first.logged("worker started"), within=30)
        for incident_id, incident in incidents.items():
            assert (await report_incident(client, queue, incident)).started, incident_id
        for incident_id in ids["handling"] + ids["resolved"]:
            grid = incidents[incident_id].location.grid_id
            await send_command(client, incident_id, Accept(unit_id=grid, handler="Zhang San"))
        for incident_id in ids["resolved"]:
            grid = incidents[incident_id].location.grid_id
            await send_command(client, incident_id, Resolve(unit_id=grid, resolution="Lamp replaced."))

        # Kill the worker just before the first accept deadlines (and their warnings) fall due.
        before = await states_of(client, everyone)
        accept_due = sorted(d for i in ids["waiting"] if (d := before[i].accept_deadline) is not None)
        assert len(accept_due) == WAITING, f"not all dispatched\n{scenario.diagnostics()}"
        kill_at = accept_due[0] - KILL_BEFORE_DUE
        assert datetime.now(UTC) < kill_at, f"setting up took too long\n{scenario.diagnostics()}"
        await sleep_until(kill_at)
        at_kill = await states_of(client, everyone)
        expected_then = {
            "waiting": Status.DISPATCHED,
            "handling": Status.ACCEPTED,
            "resolved": Status.RESOLVED,
        }
        for group, status in expected_then.items():
            for incident_id in ids[group]:
                state = at_kill[incident_id]
                assert (state.level, state.status, state.escalations) == ("grid", status, 0), incident_id
                assert not steps(state, StepKind.SLA_WARNING), f"{incident_id}: warned before the kill"
        killed_at = datetime.now(UTC)
        kill(first)

        # Dead past every first deadline; then a new worker takes over.
        await sleep_until(accept_due[-1] + RESTART_AFTER_DUE)
        restarted_at = datetime.now(UTC)
        second = scenario.start("worker", "worker-2")
        await scenario.until("the second worker to start", lambda: second.logged("worker started"), within=30)

        async def where_expected() -> bool:
            waiting = f"{in_queue} AND GridflowCategory = 'street_lamp' AND GridflowLevel = 'district'"
            handling = (
                f"{in_queue} AND GridflowCategory = 'pothole' AND GridflowLevel IN ('street', 'district')"
            )
            resolved = f"{in_queue} AND GridflowCategory = 'graffiti' AND ExecutionStatus = 'Completed'"
            return (
                await counted(client, waiting) == WAITING
                and await counted(client, handling) == HANDLING
                and await counted(client, resolved) == RESOLVED
            )

        await eventually(scenario, "every incident to move on from where it was", where_expected)
        final = await states_of(client, everyone)

        # Nothing lost, nothing failed: 20 executions, the resolved ones completed, the others running.
        assert await counted(client, in_queue) == len(everyone)
        assert await counted(client, f"{in_queue} AND ExecutionStatus = 'Running'") == WAITING + HANDLING
        assert await counted(client, f"{in_queue} AND ExecutionStatus = 'Completed'") == RESOLVED
        problems = {i: p for i, state in final.items() if (p := timeline_problems(state))}
        assert problems == {}, problems

        lateness: list[float] = []
        for incident_id in ids["waiting"]:
            state = final[incident_id]
            escalated = [(s.from_level, s.to_level, s.reason) for s in steps(state, StepKind.ESCALATED)]
            timeout = EscalationReason.ACCEPT_TIMEOUT.value
            assert escalated == [("grid", "street", timeout), ("street", "district", timeout)], incident_id
            breaches = steps(state, StepKind.SLA_BREACHED)
            assert [(b.level, b.clock) for b in breaches] == [
                ("grid", ClockKind.ACCEPT),
                ("street", ClockKind.ACCEPT),
            ]
            for breach in breaches:  # each timer fired once, not before its deadline, and escalated at once
                assert breach.deadline is not None and breach.at >= breach.deadline, (incident_id, breach)
                assert state.timeline[breach.seq].kind is StepKind.ESCALATED, incident_id
            grid_breach = breaches[0]
            assert grid_breach.deadline is not None
            assert grid_breach.at >= restarted_at > killed_at, incident_id  # fired by the new worker
            assert grid_breach.deadline == before[incident_id].accept_deadline, incident_id  # the same timer
            lateness.append((grid_breach.at - grid_breach.deadline).total_seconds())
            assert not steps(state, StepKind.ACCEPTED), incident_id
            assert (state.level, state.status) == ("district", Status.DISPATCHED), incident_id
        for incident_id in ids["handling"]:
            state = final[incident_id]
            escalated = [(s.from_level, s.to_level, s.reason) for s in steps(state, StepKind.ESCALATED)]
            assert escalated[0] == ("grid", "street", EscalationReason.RESOLVE_TIMEOUT.value), incident_id
            assert all(reason == EscalationReason.ACCEPT_TIMEOUT.value for *_, reason in escalated[1:]), (
                incident_id
            )
            (breach, *_) = steps(state, StepKind.SLA_BREACHED)
            assert (breach.level, breach.clock) == ("grid", ClockKind.RESOLVE), incident_id
            assert breach.deadline == before[incident_id].resolve_deadline, incident_id
            assert breach.deadline is not None and breach.at >= breach.deadline, incident_id
            assert len(steps(state, StepKind.ACCEPTED)) == 1, incident_id
        for incident_id in ids["resolved"]:
            state = final[incident_id]
            (resolved,) = steps(state, StepKind.RESOLVED)
            (closed,) = steps(state, StepKind.CLOSED)
            assert (state.status, state.outcome) == (Status.CLOSED, Outcome.RESOLVED_UNRATED), incident_id
            assert (closed.outcome, closed.reason) == (Outcome.RESOLVED_UNRATED, "no_feedback"), incident_id
            assert resolved.deadline == resolved.at + FEEDBACK_WINDOW, incident_id
            assert closed.at >= resolved.deadline, incident_id  # the window ran its full length
            assert state.escalations == 0 and not steps(state, StepKind.ESCALATED), incident_id

        # Every step of every timeline reached the lifecycle topic (a retried publish may send one twice,
        # with the same id and the same bytes).
        expected = {
            step_event_id(i, step.seq): step_event_type(step.kind)
            for i, state in final.items()
            for step in state.timeline
        }
        deadline = time.monotonic() + min(15.0, scenario.remaining())
        while True:
            envelopes = await asyncio.to_thread(read_topic, settings, settings.events_topic)
            published = {envelope["id"] for envelope in envelopes}
            missing = sorted(set(expected) - published)
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert missing == [], missing
        copies: dict[str, list[dict[str, Any]]] = {}
        for envelope in envelopes:
            copies.setdefault(envelope["id"], []).append(envelope)
        for event_id, event_type in expected.items():
            assert copies[event_id][0]["type"] == event_type, event_id
        doubled = {event_id: found for event_id, found in copies.items() if len(found) > 1}
        assert all(all(f == found[0] for f in found) for found in doubled.values()), doubled

        print(
            f"\n[worker kill] incidents {len(everyone)} (waiting {WAITING}, handling {HANDLING}, "
            f"resolved {RESOLVED}); killed {(accept_due[0] - killed_at).total_seconds():.1f} s before the "
            f"first accept deadline, restarted {(restarted_at - accept_due[-1]).total_seconds():.1f} s after "
            f"the last; grid breaches fired {min(lateness):.1f}-{max(lateness):.1f} s late; "
            f"steps {len(expected)}, lifecycle events {len(envelopes)} ({len(doubled)} sent twice); "
            f"lost 0, failed 0, doubled steps 0"
        )
    except BaseException:
        print(scenario.diagnostics())
        raise
    finally:
        scenario.stop_all()


# ---------------------------------------------------------------------- a bridge killed

REPORTS = 120
KILLS = 3
SEED = 20261123
PACE_SECONDS = 0.2  # the stream outlasts the kills (a restarted bridge is assigned ~11 s later)
ACCEPT_LAG = 5  # an incident's acceptance follows its report a few events later
SOURCE = "fault-test"


def stream_of(incident_ids: list[str], accepted: set[str]) -> list[tuple[str, str]]:
    """(type, incident id) in publishing order: every report, each acceptance a little after its report."""
    stream: list[tuple[str, str]] = []
    for n, incident_id in enumerate(incident_ids):
        stream.append((contract.REPORTED, incident_id))
        if n >= ACCEPT_LAG and incident_ids[n - ACCEPT_LAG] in accepted:
            stream.append((contract.ACCEPTED, incident_ids[n - ACCEPT_LAG]))
    stream += [(contract.ACCEPTED, i) for i in incident_ids[-ACCEPT_LAG:] if i in accepted]
    return stream


def publish_stream(settings: Settings, stream: list[tuple[str, str]], sent: list[int]) -> None:
    """Publish the stream, paced, each event a fresh CloudEvent; `sent[0]` counts the events handed over."""
    producer = make_producer(settings)
    try:
        futures = []
        for event_type, incident_id in stream:
            event = make_event(event_type, sample_data(event_type, incident_id), source=SOURCE)
            key, value, headers = encode_structured(event)
            futures.append(producer.send(settings.incidents_topic, key=key, value=value, headers=headers))
            sent[0] += 1
            time.sleep(PACE_SECONDS)
        for future in futures:
            future.get(30)
    finally:
        producer.close(10)


def handled(process: Process) -> set[tuple[str, str]]:
    """The (type, incident id) of every event the bridge logged as applied (a debug line)."""
    return {
        (record["type"], record["incident_id"])
        for record in process.records()
        if record.get("event") == "event applied"
    }


def outcomes(process: Process) -> Counter[tuple[str, str]]:
    return Counter(
        (record["type"], record["outcome"])
        for record in process.records()
        if record.get("event") == "event applied"
    )


@pytest.mark.timeout(120)
async def test_a_bridge_killed_at_random_points_while_events_flow_loses_and_doubles_nothing(
    dev_server_env: WorkflowEnvironment, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, topic_partitions=PARTITIONS)
    client = dev_server_env.client
    await asyncio.to_thread(ensure_topics, settings)
    scenario = Scenario(settings, client.service_client.config.target_host, client.namespace, tmp_path)
    client = with_codec(client, scenario.keys)  # the processes encrypt: this test reads and writes too
    queue = settings.task_queue
    in_queue = f"TaskQueue = '{queue}'"
    rng = random.Random(SEED)
    incident_ids = [f"inc-{queue}-{n:03d}" for n in range(REPORTS)]
    accepted = set(incident_ids[::2])
    stream = stream_of(incident_ids, accepted)
    sent = [0]
    kills: list[str] = []
    try:
        # The built-in rules (hours to accept) on the worker: no escalation gets in an acceptance's way.
        worker = scenario.start("worker", "worker")
        scenario.env["GRIDFLOW_LOG_LEVEL"] = "debug"  # the bridges log every event applied
        bridges = [scenario.start("bridge", "bridge-0")]
        await scenario.until("the worker to start", lambda: worker.logged("worker started"), within=30)
        publishing = asyncio.create_task(asyncio.to_thread(publish_stream, settings, stream, sent))

        for number in range(1, KILLS + 1):
            bridge = bridges[-1]
            await scenario.until(
                f"{bridge.name} to own partitions", partial(owns_partitions, bridge), within=30
            )
            delay = rng.uniform(0.5, 3.0)
            await asyncio.sleep(delay)
            kill(bridge)
            kills.append(f"{bridge.name} {delay:.1f} s after its assignment, {sent[0]} events sent")
            bridges.append(scenario.start("bridge", f"bridge-{number}"))
        await publishing
        last = bridges[-1]
        await scenario.until(f"{last.name} to own partitions", partial(owns_partitions, last), within=30)

        # Everything consumed, applied and committed.
        accepted_query = f"{in_queue} AND GridflowStatus = '{Status.ACCEPTED.value}'"

        async def all_applied() -> bool:
            return (
                await counted(client, in_queue) >= REPORTS
                and await counted(client, accepted_query) >= len(accepted)
                and await asyncio.to_thread(consumer_lag, settings) == 0
            )

        await eventually(scenario, "every event to be applied and committed", all_applied)

        listed = [execution.id async for execution in client.list_workflows(in_queue)]
        duplicates = len(listed) - len(set(listed))
        final = await states_of(client, incident_ids)
        acceptances = {i: len(steps(state, StepKind.ACCEPTED)) for i, state in final.items()}
        doubled_acceptances = sorted(i for i, n in acceptances.items() if n > 1)
        letters = await asyncio.to_thread(lambda: list(read_dead_letters(settings, idle_timeout_s=1.0)))
        # A kill between applying an event and committing its offset shows as the event applied again by a
        # later bridge (the start found its workflow, the update found its id).
        redone = [
            len(handled(b) & set().union(*(handled(later) for later in bridges[n + 1 :])))
            for n, b in enumerate(bridges[:-1])
        ]
        logged = sum((outcomes(b) for b in bridges), Counter())
        print(
            f"\n[bridge kills] seed {SEED}; published {len(stream)} ({REPORTS} reported, {len(accepted)} "
            f"accepted); kills: {'; '.join(kills)}; events applied again after each kill: {redone}; "
            f"bridge outcomes {dict(logged)}; started {len(set(listed))}, duplicate workflows {duplicates}, "
            f"doubled acceptances {len(doubled_acceptances)}, dead letters {len(letters)}"
        )

        assert duplicates == 0, sorted(i for i, n in Counter(listed).items() if n > 1)
        assert sorted(listed) == sorted(workflow_id_for(i) for i in incident_ids)
        assert doubled_acceptances == []
        assert sorted(i for i in accepted if acceptances[i] != 1) == []
        assert sorted(i for i in incident_ids if i not in accepted and acceptances[i] != 0) == []
        problems = {i: p for i, state in final.items() if (p := timeline_problems(state))}
        assert problems == {}, problems
        assert [(letter.error_type, letter.error_message) for letter in letters] == []
        # The workflows listed above prove every start happened once. The bridges' logs must never show
        # one twice, but may show fewer: a kill can land after a start and before its line is written
        # (the next bridge then finds the workflow, and says so).
        started = Counter(
            record["incident_id"]
            for bridge in bridges
            for record in bridge.records()
            if record.get("event") == "event applied"
            and (record["type"], record["outcome"]) == (contract.REPORTED, "started")
        )
        assert [incident_id for incident_id, times in started.items() if times > 1] == []
        assert logged[(contract.REPORTED, "started")] <= REPORTS
        assert all(process.alive() for process in (worker, last)), scenario.diagnostics()
    except BaseException:
        print(scenario.diagnostics())
        raise
    finally:
        scenario.stop_all()
