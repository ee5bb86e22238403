"""The chaos soak: a seeded stream of incidents and hostile messages through real processes under SIGKILL.

Shared by tests/faults/test_chaos_soak.py (the short run in `make test`) and bench/chaos.py (the long run).
`run_soak(config, kafka_bootstrap, tmp)` starts its own Temporal dev server on a SQLite file, worker and
bridge processes (the scale-out test's `Scenario`), publishes the stream, runs the kill schedule, and
returns a `SoakReport`: the figures and a list of `problems` (empty when nothing was lost, doubled,
early, late beyond its outage, or miscounted). What each check means is in the test's docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from events import contract
from events.cloudevents import encode_structured, make_event
from events.dead_letters import DeadLetterRecord, read_dead_letters
from events.kafka import client_config, ensure_topics, make_producer
from events.lifecycle import step_event_id, step_event_type
from gridflow.app.binaries import find_binary
from gridflow.app.codec import generate_key
from gridflow.app.settings import Settings
from gridflow.app.temporal import connect, register_search_attributes
from gridflow.domain.incident import Outcome
from gridflow.domain.lifecycle import ClockKind, IncidentState, StepKind
from tests.conftest import free_port, isolated_settings
from tests.deploy.test_scale_out import PARTITIONS, Process, Scenario, consumer_lag
from tests.events.hostile import MAX_BYTES, REJECTED, Hostile
from tests.events.samples import sample_data
from tests.faults.test_process_kills import DEMO_RULES, ONCE, read_topic, states_of, timeline_problems

SOURCE = "chaos-soak"
WARN_AT = 0.75  # demo-default's warn_at (the only rule the soak's reports match: priority high)
#: A clock step and the input that stopped its clock may land in either order within this much time.
EDGE = timedelta(seconds=1)
#: Lateness a clock may have beyond the outage it overlapped (Temporal down, or a killed worker's sticky
#: window): a worker's reconnection backoff after a Temporal restart and the workflow task itself. Measured:
#: at most 2.2 s on a quiet machine, 5.5 s with a second soak running beside it on the same 2 CPUs.
ALLOWANCE = timedelta(seconds=6)
#: How long a killed worker's workflows wait on its sticky task queue before any worker may take them
#: (the Python SDK's default sticky_queue_schedule_to_start_timeout): a clock due then is that late.
STICKY_TIMEOUT = timedelta(seconds=10)
SCRIPTS = ("rated", "unrated", "withdrawn")
#: The metric each counted step kind increments (activities/metrics.py), summed over its labels.
METRIC_OF = {
    StepKind.REPORTED: "gridflow_incidents_received_total",
    StepKind.DISPATCHED: "gridflow_incidents_dispatched_total",
    StepKind.ACCEPTED: "gridflow_incidents_accepted_total",
    StepKind.ESCALATED: "gridflow_incidents_escalated_total",
    StepKind.SLA_WARNING: "gridflow_sla_warnings_total",
    StepKind.SLA_BREACHED: "gridflow_sla_breaches_total",
    StepKind.OVERDUE: "gridflow_incidents_overdue_total",
    StepKind.RESOLVED: "gridflow_incidents_resolved_total",
    StepKind.REOPENED: "gridflow_incidents_reopened_total",
    StepKind.FEEDBACK: "gridflow_feedback_total",
    StepKind.CLOSED: "gridflow_incidents_closed_total",
}
INPUT_STEP = {
    contract.ACCEPTED: StepKind.ACCEPTED,
    contract.RESOLVED: StepKind.RESOLVED,
    contract.FEEDBACK: StepKind.FEEDBACK,
    contract.WITHDRAWN: StepKind.CLOSED,
}


@dataclass(frozen=True)
class SoakConfig:
    """The size and schedule of one soak."""

    seed: int = 20261204
    incidents: int = 40
    spread_s: float = 30.0  # reports are published over this long
    hostile: int = 12
    workers: int = 2
    bridges: int = 2
    #: The kill schedule, in order: "worker", "bridge", "temporal", or a pair joined by "+" (same moment).
    kills: tuple[str, ...] = ("bridge", "worker", "temporal", "bridge", "worker+temporal", "worker")
    kill_window_s: tuple[float, float] = (4.0, 40.0)  # kills fall in this window after the stream starts
    final_incidents: int = 6  # the metrics phase, on the final worker
    budget_s: float = 240.0


@dataclass
class Message:
    """One scheduled inbound message."""

    at: float  # seconds after the stream starts
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    event_id: str | None = None  # None for hostile messages
    incident_id: str | None = None
    event_type: str | None = None


@dataclass
class SoakReport:
    """The figures of one soak and what went wrong (`problems`, empty when nothing did)."""

    seed: int
    incidents: int
    final_incidents: int
    events_published: int
    lifecycle_events: int
    lifecycle_steps: int
    kills: dict[str, int]
    simultaneous_kills: int
    exited_on_their_own: dict[str, int]
    temporal_downtime_s: float
    lost_steps: int
    lost_inputs: int
    doubled_steps: int
    duplicate_copies_by_id: int
    inputs_refused_as_late: int
    hostile_dead_lettered: str
    unexpected_dead_letters: int
    redelivered_dead_letters: int
    max_clock_lateness_s: float
    max_lateness_beyond_outage_s: float
    allowance_s: float
    clocks_checked: int
    metrics_compared: dict[str, list[int]]
    wall_s: float
    #: Lifecycle events found only past the end offsets the broker reported (read_topic would miss them).
    events_beyond_end_offsets: int = 0
    #: The group's committed offsets short of (or past) the end offsets Tansu reported with every incident
    #: closed: Tansu 0.6.0 sometimes reports end offsets below records it acknowledged and served
    #: (tests/faults/test_broker_stall.py saw it too). Not a gridflow loss, which the timelines and the
    #: dead letters would show; reported, not counted as a problem.
    broker_offset_disagreements: list[str] = field(default_factory=list)
    #: Clock steps missing although their clock ran past them (see clock_problems): the known bug of a
    #: command applied in the same workflow activation as its overdue timers, before them.
    lost_clock_steps: int = 0
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


# ---------------------------------------------------------------------- Temporal, killable


class TemporalServer:
    """A `temporal server start-dev` on a SQLite file: SIGKILLed and restarted on the same file."""

    def __init__(self, directory: Path) -> None:
        self.db = directory / "temporal.db"
        self.log = directory / "temporal.log"
        self.port = free_port()
        self.ui_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None
        self.down: list[tuple[datetime, datetime]] = []  # kill -> ready again

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                [
                    find_binary("temporal"),
                    "server",
                    "start-dev",
                    "--db-filename",
                    str(self.db),
                    "--port",
                    str(self.port),
                    "--ui-port",
                    str(self.ui_port),
                    "--ip",
                    "127.0.0.1",
                    "--headless",
                    "--log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, settings: Settings, within: float = 60) -> Client:
        """A client once the server answers (and has gridflow's search attributes)."""
        deadline = time.monotonic() + within
        while True:
            assert self.popen is not None and self.popen.poll() is None, "the Temporal server exited"
            try:
                client = await asyncio.wait_for(connect(settings), 5)
                await asyncio.wait_for(register_search_attributes(client, settings.temporal_namespace), 10)
                return client
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def kill(self) -> datetime:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        return datetime.now(UTC)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)


# ---------------------------------------------------------------------- the stream


def event_message(at: float, event_type: str, incident_id: str) -> Message:
    """A fresh structured CloudEvent of a type for an incident, as an upstream app sends it."""
    event = make_event(event_type, sample_data(event_type, incident_id), source=SOURCE)
    key, value, headers = encode_structured(event)
    return Message(at, key, value, headers, event.id, incident_id, event_type)


def script_messages(rng: random.Random, incident_id: str, script: str, at: float) -> list[Message]:
    """An incident's inputs: reported, then accepted/resolved/rated at once, or withdrawn much later."""
    messages = [event_message(at, contract.REPORTED, incident_id)]
    if script in ("rated", "unrated"):
        messages.append(event_message(at + 0.2, contract.ACCEPTED, incident_id))
        messages.append(event_message(at + 0.4, contract.RESOLVED, incident_id))
    if script == "rated":
        messages.append(event_message(at + 0.6, contract.FEEDBACK, incident_id))
    if script == "withdrawn":  # after the grid's breach (10 s), often after the street's (20 s)
        messages.append(event_message(at + rng.uniform(12.0, 28.0), contract.WITHDRAWN, incident_id))
    return messages


def hostile_messages(rng: random.Random, count: int, spread: float) -> list[tuple[Message, Hostile]]:
    """A sample of the hostile corpus (the entries parse_message rejects today), at random moments."""
    chosen = rng.sample(REJECTED, min(count, len(REJECTED)))
    return [(Message(rng.uniform(0, spread), h.key, h.value, list(h.headers)), h) for h in chosen]


def publish(settings: Settings, messages: list[Message], started: float, sent: list[int]) -> None:
    """Publish the messages at their moments (seconds after `started`, monotonic)."""
    producer = make_producer(settings)
    try:
        futures = []
        for message in sorted(messages, key=lambda m: m.at):
            time.sleep(max(0.0, started + message.at - time.monotonic()))
            futures.append(
                producer.send(
                    settings.incidents_topic, key=message.key, value=message.value, headers=message.headers
                )
            )
            sent[0] += 1
        for future in futures:
            future.get(30)
    finally:
        producer.close(10)


# ---------------------------------------------------------------------- the processes


class Fleet:
    """Worker and bridge slots: a dead process is restarted (a killed one after its chosen delay)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.slots: dict[str, Process] = {}
        self.down_until: dict[str, float] = {}
        self.incarnations: Counter[str] = Counter()
        self.exited: Counter[str] = Counter()
        self.retired: set[str] = set()
        self.sticky: list[tuple[datetime, datetime]] = []  # after each worker kill: STICKY_TIMEOUT

    def start(self, slot: str) -> Process:
        self.incarnations[slot] += 1
        process = self.scenario.start(slot.split("-")[0], f"{slot}.{self.incarnations[slot]}")
        self.slots[slot] = process
        return process

    def kill(self, slot: str, restart_after: float) -> None:
        process = self.slots[slot]
        if slot.startswith("worker"):
            now = datetime.now(UTC)
            self.sticky.append((now, now + STICKY_TIMEOUT))
        if process.alive():
            process.popen.send_signal(signal.SIGKILL)
            process.popen.wait(10)
        self.down_until[slot] = time.monotonic() + restart_after

    def supervise(self) -> None:
        """Restart what is dead: killed ones once their delay is over, the others at once (counted)."""
        for slot, process in list(self.slots.items()):
            if slot in self.retired or process.alive():
                continue
            until = self.down_until.pop(slot, None)
            if until is None:
                self.exited[slot.split("-")[0]] += 1
            elif time.monotonic() < until:
                self.down_until[slot] = until
                continue
            self.start(slot)

    def live(self, kind: str) -> list[str]:
        return [
            s for s, p in self.slots.items() if s.startswith(kind) and s not in self.retired and p.alive()
        ]


def metrics_url(process: Process) -> str:
    for record in process.records():
        if record.get("event") == "metrics served":
            return str(record["url"])
    raise AssertionError(f"{process.name} logged no metrics URL")


def scrape(url: str) -> dict[str, float]:
    """Every counter of a /metrics page, summed over its labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return dict(sums)


# ---------------------------------------------------------------------- the checks


@dataclass
class Lateness:
    incident_id: str
    what: str
    deadline: datetime
    at: datetime


def overlap(start: datetime, end: datetime, intervals: list[tuple[datetime, datetime]]) -> timedelta:
    """How much of [start, end] the intervals cover."""
    total = timedelta()
    for a, b in intervals:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += hi - lo
    return total


STOPS = {
    ClockKind.ACCEPT: {StepKind.ACCEPTED, StepKind.ESCALATED, StepKind.CLOSED},
    ClockKind.RESOLVE: {StepKind.RESOLVED, StepKind.ESCALATED, StepKind.CLOSED, StepKind.PAUSED},
}


def clock_problems(incident_id: str, state: IncidentState, late: list[Lateness]) -> tuple[list[str], int]:
    """Every SLA clock of a timeline fired when due: not early, and not missing when its stop came later.

    A clock starts at a dispatch (accept) or an acceptance (resolve) with the step's deadline; it stops at
    the next acceptance, resolution, escalation or closure. Its warning (at 0.75) and breach belong between
    the two exactly when the stop came after them (within EDGE either way); a resolution starts the
    feedback window, which a closure as resolved_unrated must not end early.
    """
    problems: list[str] = []
    timeline = state.timeline
    checked = 0
    for n, start in enumerate(timeline):
        clock = {StepKind.DISPATCHED: ClockKind.ACCEPT, StepKind.ACCEPTED: ClockKind.RESOLVE}.get(start.kind)
        if start.kind is StepKind.RESOLVED:
            closing = next(
                (s for s in timeline[n + 1 :] if s.kind in (StepKind.FEEDBACK, StepKind.CLOSED)), None
            )
            if start.deadline is None or closing is None:
                problems.append(f"{incident_id}: feedback window of step {start.seq} never ended")
                continue
            checked += 1
            if closing.kind is StepKind.CLOSED and closing.outcome is Outcome.RESOLVED_UNRATED:
                if closing.at < start.deadline:
                    problems.append(f"{incident_id}: feedback window closed early at step {closing.seq}")
                late.append(Lateness(incident_id, "feedback window", start.deadline, closing.at))
            continue
        if clock is None:
            continue
        if start.deadline is None:
            problems.append(f"{incident_id}: step {start.seq} ({start.kind}) starts a clock with no deadline")
            continue
        checked += 1
        rest = timeline[n + 1 :]
        stop = next((s for s in rest if s.kind in STOPS[clock]), None)
        window = [s for s in rest if stop is None or s.seq < stop.seq]
        warn_due = start.at + (start.deadline - start.at) * WARN_AT
        for kind, due in ((StepKind.SLA_WARNING, warn_due), (StepKind.SLA_BREACHED, start.deadline)):
            found = [s for s in window if s.kind is kind and s.clock is clock and s.level == start.level]
            what = f"{kind.value} {start.level}/{clock.value} after step {start.seq}"
            if found:
                step = found[0]
                if step.at < due - timedelta(milliseconds=50):
                    problems.append(f"{incident_id}: {what} early ({step.at} < {due})")
                late.append(Lateness(incident_id, what, due, step.at))
            elif stop is None:
                problems.append(f"{incident_id}: {what} missing and the clock never stopped")
            elif stop.at > due + EDGE:
                problems.append(
                    f"{incident_id}: {what} lost: due {due:%H:%M:%S.%f}, the clock ran until "
                    f"{stop.at:%H:%M:%S.%f} ({stop.kind.value} step {stop.seq}, "
                    f"within_limit {stop.within_limit})"
                )
    return problems, checked


#: The dead-letter reasons of an input that came too late for its incident.
REFUSALS = ("rejected", "incident_closed")


def expected_outcome(script: str, refused: bool) -> Outcome:
    if refused or script == "withdrawn":
        return Outcome.WITHDRAWN
    return Outcome.RESOLVED if script == "rated" else Outcome.RESOLVED_UNRATED


# ---------------------------------------------------------------------- the soak


async def run_soak(config: SoakConfig, kafka_bootstrap: str, directory: Path, log: Any = print) -> SoakReport:
    """Run one soak end to end and return its report (raises only when the machinery itself fails)."""
    began = time.monotonic()
    rng = random.Random(config.seed)
    keys = "k1:" + generate_key()
    settings = isolated_settings(kafka_bootstrap, topic_partitions=PARTITIONS, max_message_bytes=MAX_BYTES)
    await asyncio.to_thread(ensure_topics, settings)
    temporal = TemporalServer(directory)
    settings = settings.with_overrides(temporal_address=temporal.address, codec_keys=keys)
    temporal.start()
    scenario: Scenario | None = None
    try:
        client = await temporal.ready(settings)
        scenario = Scenario(settings, temporal.address, settings.temporal_namespace, directory)
        scenario.deadline = time.monotonic() + config.budget_s
        scenario.env.update(
            {
                "GRIDFLOW_RULES_FILE": str(DEMO_RULES),
                "GRIDFLOW_CODEC_KEYS": keys,
                "GRIDFLOW_MAX_MESSAGE_BYTES": str(MAX_BYTES),
            }
        )
        fleet = Fleet(scenario)
        for n in range(config.workers):
            fleet.start(f"worker-{n}")
        for n in range(config.bridges):
            fleet.start(f"bridge-{n}")
        for slot, process in list(fleet.slots.items()):
            event = "worker started" if slot.startswith("worker") else "partitions assigned"
            await scenario.until(f"{slot} to start", lambda p=process, e=event: p.logged(e), within=60)  # type: ignore[misc]

        # The stream: every incident's script, and the hostile sample.
        queue = settings.task_queue
        scripts = {f"inc-{queue}-{n:03d}": rng.choice(SCRIPTS) for n in range(config.incidents)}
        messages: list[Message] = []
        for n, (incident_id, script) in enumerate(scripts.items()):
            at = config.spread_s * n / max(config.incidents, 1) + rng.uniform(0, 0.5)
            messages += script_messages(rng, incident_id, script, at)
        hostile = hostile_messages(rng, config.hostile, config.spread_s)
        messages += [message for message, _ in hostile]
        sent = [0]
        started = time.monotonic()
        publishing = asyncio.create_task(asyncio.to_thread(publish, settings, messages, started, sent))

        # The kill schedule, with the supervisor restarting what is down.
        kills: Counter[str] = Counter()
        simultaneous = 0
        lo, hi = config.kill_window_s
        moments = sorted(rng.uniform(lo, hi) for _ in config.kills)
        temporal_back: float | None = None
        downtime_started: datetime | None = None
        plan = list(zip(moments, config.kills, strict=True))

        async def bring_back_temporal() -> None:
            nonlocal temporal_back, downtime_started
            assert downtime_started is not None
            temporal.start()
            await temporal.ready(settings)
            temporal.down.append((downtime_started, datetime.now(UTC)))
            log(f"  temporal back after {(datetime.now(UTC) - downtime_started).total_seconds():.1f} s")
            temporal_back, downtime_started = None, None

        while plan or temporal_back is not None or downtime_started is not None:
            fleet.supervise()
            now = time.monotonic() - started
            if temporal_back is not None and now >= temporal_back:
                await bring_back_temporal()
                continue
            if plan and now >= plan[0][0]:
                _, what = plan.pop(0)
                targets = what.split("+")
                simultaneous += len(targets) > 1
                for target in targets:
                    if target == "temporal":
                        if downtime_started is not None:
                            continue  # already down
                        downtime_started = temporal.kill()
                        temporal_back = now + rng.uniform(2.0, 6.0)
                    else:
                        slot = rng.choice(
                            fleet.live(target) or [s for s in fleet.slots if s.startswith(target)]
                        )
                        fleet.kill(slot, rng.uniform(0.5, 3.0) if target == "worker" else 0.0)
                    kills[target] += 1
                log(f"  {now:5.1f} s: killed {what} ({sent[0]} messages sent)")
            if scenario.remaining() <= 0:
                raise TimeoutError(f"the kill schedule outran the budget\n{scenario.diagnostics()}")
            await asyncio.sleep(0.1)

        # The final worker: started beside the others, which are then killed; it is never killed, so
        # its counters cover everything it ever published (the metrics phase).
        final = fleet.start("worker-final")
        await scenario.until("the final worker to start", lambda: final.logged("worker started"), within=60)
        for slot in [s for s in fleet.slots if s.startswith("worker") and s != "worker-final"]:
            fleet.retired.add(slot)
            fleet.kill(slot, 0.0)
        log(f"  {time.monotonic() - started:5.1f} s: the final worker alone")
        while not publishing.done():
            fleet.supervise()
            await asyncio.sleep(0.2)
        await publishing
        log(f"  {time.monotonic() - started:5.1f} s: stream published")

        # Settle: every event consumed, then every incident closed. An acceptance that reached a unit
        # after its deadline (the incident escalated under an outage) is refused and dead-lettered, and so
        # are the resolution and rating after it: that incident is withdrawn, as its app would.
        in_queue = f"TaskQueue = '{queue}'"
        withdrawn_late: dict[str, Message] = {}
        letters: list[DeadLetterRecord] = []
        # Every script ends within 30 s of its report; an incident still open a minute after the stream
        # lost an input. It is withdrawn (a problem) so that the metrics phase still runs clean.
        stuck: list[str] = []
        give_up = time.monotonic() + 60.0
        lag_problems: list[str] = []
        lagging_since: float | None = None
        while True:
            fleet.supervise()
            lag = await asyncio.to_thread(consumer_lag, settings)
            running = [
                e.id async for e in client.list_workflows(f"{in_queue} AND ExecutionStatus = 'Running'")
            ]
            if lag == 0 and not running:
                break
            # Every incident closed but the group's commits short of the end: report it, do not hang.
            lagging_since = (lagging_since or time.monotonic()) if lag and not running else None
            if lagging_since is not None and time.monotonic() - lagging_since > 30:
                lag_problems.append(f"consumer lag {lag} stuck for 30 s with every incident closed (chaos)")
                break
            if lag == 0:
                letters = await asyncio.to_thread(
                    lambda: list(read_dead_letters(settings, idle_timeout_s=1.0))
                )
                refused = {incident_of(letter) for letter in letters if letter.error_type == "rejected"}
                extra = [
                    event_message(0, contract.WITHDRAWN, incident_id)
                    for incident_id in sorted(refused - set(withdrawn_late))
                    if incident_id in scripts
                ]
                if not extra and not stuck and time.monotonic() > give_up:
                    stuck = sorted(set(running) - {f"incident-{i}" for i in withdrawn_late})
                    extra = [
                        event_message(0, contract.WITHDRAWN, incident_id)
                        for incident_id in scripts
                        if f"incident-{incident_id}" in stuck
                    ]
                if extra:
                    withdrawn_late.update({m.incident_id or "": m for m in extra})
                    await asyncio.to_thread(publish, settings, extra, time.monotonic(), [0])
            if scenario.remaining() <= 0:
                raise TimeoutError(f"not settled: lag {lag}, running {running[:5]}\n{scenario.diagnostics()}")
            await asyncio.sleep(1.0)

        log(f"  {time.monotonic() - started:5.1f} s: settled")
        # The metrics phase: fresh incidents, no faults, on the final worker alone; counters compared
        # exactly (their increase over the phase) with the steps of these incidents' timelines.
        all_ids = list(scripts)
        unpublished = await wait_published(settings, client, all_ids)
        log(f"  {time.monotonic() - started:5.1f} s: chaos steps published ({len(unpublished)} missing)")
        before = scrape(metrics_url(final))
        final_scripts = {f"inc-{queue}-final-{n:02d}": SCRIPTS[n % 3] for n in range(config.final_incidents)}
        final_messages = [
            m
            for incident_id, script in final_scripts.items()
            for m in script_messages(random.Random(incident_id), incident_id, script, 0.0)
        ]
        await asyncio.to_thread(publish, settings, final_messages, time.monotonic(), [0])
        lagging_since = None
        while True:
            running = [
                e.id async for e in client.list_workflows(f"{in_queue} AND ExecutionStatus = 'Running'")
            ]
            lag = await asyncio.to_thread(consumer_lag, settings)
            if not running and lag == 0:
                break
            lagging_since = (lagging_since or time.monotonic()) if lag and not running else None
            if lagging_since is not None and time.monotonic() - lagging_since > 30:
                lag_problems.append(f"consumer lag {lag} stuck for 30 s with every incident closed (final)")
                break
            if scenario.remaining() <= 0:
                raise TimeoutError(f"the metrics phase did not finish\n{scenario.diagnostics()}")
            await asyncio.sleep(1.0)
        final_states = await states_of(client, final_scripts)
        unpublished |= await wait_published(settings, client, list(final_scripts))
        after = scrape(metrics_url(final))
        log(f"  {time.monotonic() - started:5.1f} s: metrics phase over")

        # ---------------------------------------------------------------- the figures
        problems: list[str] = []
        problems += [f"{i} still open 60 s after the stream (an input lost)" for i in stuck]
        problems += [f"step {e} not on the lifecycle topic 45 s after settling" for e in sorted(unpublished)]
        completed = await client.count_workflows(f"{in_queue} AND ExecutionStatus = 'Completed'")
        if completed.count != len(scripts) + len(final_scripts):
            problems.append(
                f"{completed.count} executions completed, not {len(scripts) + len(final_scripts)}"
            )
        states = await states_of(client, all_ids)
        listed = [e.id async for e in client.list_workflows(in_queue)]
        if len(listed) != len(set(listed)) or len(listed) != len(all_ids) + len(final_scripts):
            problems.append(
                f"{len(listed)} executions ({len(set(listed))} distinct) for {len(all_ids)} + "
                f"{len(final_scripts)} incidents"
            )
        (directory / "timelines.json").write_text(
            json.dumps({i: st.model_dump(mode="json")["timeline"] for i, st in states.items()}, indent=1)
        )
        letters = await asyncio.to_thread(lambda: list(read_dead_letters(settings, idle_timeout_s=1.0)))
        inputs = {m.event_id: m for m in [*messages, *withdrawn_late.values(), *final_messages] if m.event_id}
        by_id = {m.event_id: m for m in inputs.values()}

        # Dead letters: each hostile message once with its reason; otherwise only refused late inputs.
        hostile_found: Counter[str] = Counter()  # distinct source offsets per entry
        seen: set[tuple[str, str | None, str | None]] = set()
        redelivered_letters = 0
        refused_inputs: Counter[str] = Counter()
        closed_first: set[str] = set()  # incidents a clock closed before an input reached them
        unexpected = 0
        for letter in letters:
            match = next((h for _, h in hostile if (h.key, h.value) == (letter.key, letter.value)), None)
            if match is None and letter.header(contract.DLQ_VALUE_DROPPED_HEADER) is not None:
                match = next((h for _, h in hostile if h.key == letter.key), None)
            if match is not None:
                source = (
                    match.name,
                    letter.header(contract.DLQ_SOURCE_PARTITION_HEADER),
                    letter.header(contract.DLQ_SOURCE_OFFSET_HEADER),
                )
                if source in seen:
                    redelivered_letters += 1  # the same message again: a bridge died before its commit
                    continue
                seen.add(source)
                hostile_found[match.name] += 1
                if letter.error_type != match.error_type.value:
                    problems.append(
                        f"hostile {match.name!r}: {letter.error_type}, not {match.error_type.value}"
                    )
                continue
            event_id = letter_event_id(letter)
            # A late input is refused as `rejected`, or as `incident_closed`: behind a withdrawal, or a
            # withdrawal itself when the feedback window closed the incident while a kill held it up.
            if event_id is not None and event_id in by_id and letter.error_type in REFUSALS:
                late_input = by_id[event_id]
                if letter.error_type == "incident_closed" and late_input.event_type == contract.WITHDRAWN:
                    closed_first.add(late_input.incident_id or "")
                source = (
                    event_id,
                    letter.header(contract.DLQ_SOURCE_PARTITION_HEADER),
                    letter.header(contract.DLQ_SOURCE_OFFSET_HEADER),
                )
                if source in seen:
                    redelivered_letters += 1
                    continue
                seen.add(source)
                refused_inputs[event_id] += 1
                continue
            unexpected += 1
            problems.append(f"unexpected dead letter {letter.error_type}: {letter.error_message[:120]}")
        for _, entry in hostile:
            if hostile_found[entry.name] != 1:
                problems.append(f"hostile {entry.name!r} dead-lettered {hostile_found[entry.name]} times")
        problems += [f"input {e} dead-lettered {n} times" for e, n in refused_inputs.items() if n > 1]

        # Timelines: the script's inputs each applied once or refused once, the right ending, the clocks.
        late: list[Lateness] = []
        lost_inputs = doubled = clocks = lost_clocks = 0
        everything = {**states, **final_states}
        every_script = {**scripts, **final_scripts}
        for incident_id, state in everything.items():
            found = timeline_problems(state)
            doubled += len(found)
            problems += [f"{incident_id}: {p}" for p in found]
            refused_here = False
            for message in inputs.values():
                if message.incident_id != incident_id or message.event_type == contract.REPORTED:
                    continue
                assert message.event_type is not None
                kind = INPUT_STEP[message.event_type]
                applied = [
                    s
                    for s in state.timeline
                    if s.kind is kind and (kind is not StepKind.CLOSED or s.outcome is Outcome.WITHDRAWN)
                ]
                refused_here |= refused_inputs[message.event_id or ""] > 0
                if len(applied) + refused_inputs[message.event_id or ""] != 1:
                    lost_inputs += 1
                    problems.append(
                        f"{incident_id}: {message.event_type} applied {len(applied)} times and "
                        f"refused {refused_inputs[message.event_id or '']}"
                    )
            want = expected_outcome(every_script[incident_id], refused_here)
            if incident_id in closed_first:
                want = Outcome.RESOLVED_UNRATED  # its feedback window ran out first
            if state.outcome is not want:
                problems.append(f"{incident_id}: closed {state.outcome}, the script implies {want}")
            found, checked = clock_problems(incident_id, state, late)
            lost_clocks += sum(" lost: " in p for p in found)
            problems += found
            clocks += checked

        # The lifecycle topic: every step's id there, no other id, no logical step under two ids.
        expected = {
            step_event_id(i, s.seq): (i, s) for i, state in everything.items() for s in state.timeline
        }
        envelopes = await asyncio.to_thread(read_all, settings, settings.events_topic)
        bounded = await asyncio.to_thread(read_topic, settings, settings.events_topic)
        beyond_end_offsets = len(envelopes) - len(bounded)
        copies = Counter(envelope["id"] for envelope in envelopes)
        lost_steps = len(set(expected) - set(copies))
        problems += [f"step {e} never published" for e in sorted(set(expected) - set(copies))[:20]]
        problems += [f"published {e} is on no timeline" for e in sorted(set(copies) - set(expected))[:20]]
        for event_id, (_, step) in expected.items():
            if event_id in copies:
                envelope = next(e for e in envelopes if e["id"] == event_id)
                if envelope["type"] != step_event_type(step.kind):
                    problems.append(
                        f"{event_id} published as {envelope['type']}, the timeline says {step.kind}"
                    )
        logical = Counter(
            (
                e["subject"],
                e["type"],
                e["data"].get("level"),
                e["data"].get("clock"),
                e["data"].get("fraction"),
            )
            for e in {e["id"]: e for e in envelopes}.values()
            if e["type"] in {step_event_type(k) for k in ONCE}
        )
        doubled_on_topic = sum(n - 1 for n in logical.values() if n > 1)
        problems += [f"logical step {k} under {n} ids" for k, n in logical.items() if n > 1][:20]

        # Metrics: the final worker's increase over the metrics phase equals the phase's steps.
        steps_by_kind = Counter(s.kind for state in final_states.values() for s in state.timeline)
        compared: dict[str, list[int]] = {}
        for kind, metric in METRIC_OF.items():
            increase = int(after.get(metric, 0) - before.get(metric, 0))
            compared[metric] = [increase, steps_by_kind[kind]]
            if increase != steps_by_kind[kind]:
                problems.append(
                    f"{metric} rose by {increase}; the phase's timelines have {steps_by_kind[kind]}"
                )

        # Lateness: no clock later than the Temporal downtime it overlapped, plus the allowance.
        worst = timedelta()
        beyond = timedelta()
        for clock_late in late:
            lateness = clock_late.at - clock_late.deadline
            worst = max(worst, lateness)
            excess = lateness - overlap(clock_late.deadline, clock_late.at, [*temporal.down, *fleet.sticky])
            beyond = max(beyond, excess)
            if excess > ALLOWANCE:
                problems.append(
                    f"{clock_late.incident_id}: {clock_late.what} {lateness.total_seconds():.1f} s late, "
                    f"{excess.total_seconds():.1f} s beyond the outage it overlapped"
                )
        downtime = sum(((b - a) for a, b in temporal.down), timedelta())
        exited = dict(fleet.exited)
        return SoakReport(
            seed=config.seed,
            incidents=len(all_ids),
            final_incidents=len(final_scripts),
            events_published=sent[0] + len(withdrawn_late) + len(final_messages),
            lifecycle_events=len(envelopes),
            lifecycle_steps=len(expected),
            kills=dict(kills),
            simultaneous_kills=simultaneous,
            exited_on_their_own=exited,
            temporal_downtime_s=round(downtime.total_seconds(), 1),
            lost_steps=lost_steps,
            lost_inputs=lost_inputs,
            doubled_steps=doubled + doubled_on_topic,
            duplicate_copies_by_id=sum(n - 1 for n in copies.values() if n > 1),
            inputs_refused_as_late=sum(refused_inputs.values()),
            hostile_dead_lettered=f"{sum(hostile_found[h.name] == 1 for _, h in hostile)}/{len(hostile)}",
            unexpected_dead_letters=unexpected,
            redelivered_dead_letters=redelivered_letters,
            max_clock_lateness_s=round(worst.total_seconds(), 1),
            max_lateness_beyond_outage_s=round(beyond.total_seconds(), 1),
            allowance_s=ALLOWANCE.total_seconds(),
            clocks_checked=clocks,
            metrics_compared=compared,
            wall_s=round(time.monotonic() - began, 1),
            events_beyond_end_offsets=beyond_end_offsets,
            broker_offset_disagreements=lag_problems,
            lost_clock_steps=lost_clocks,
            problems=problems,
        )
    except BaseException:
        if scenario is not None:
            log(scenario.diagnostics())
        log(temporal.log.read_text(errors="replace")[-3000:] if temporal.log.exists() else "")
        raise
    finally:
        if scenario is not None:
            scenario.stop_all()
        temporal.stop()


def read_all(settings: Settings, topic: str, idle: float = 3.0) -> list[dict[str, Any]]:
    """Every message of a topic as JSON, read until nothing new came for `idle` seconds.

    Unlike read_topic it does not stop at the end offsets the broker reports when it starts: a message the
    broker acknowledged but does not yet count in its end offset is still found (and the difference shown).
    """
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle:
            for records in consumer.poll(timeout_ms=300).values():
                quiet_since = time.monotonic()
                found += [json.loads(record.value) for record in records]
        return found
    finally:
        consumer.close()


def letter_event_id(letter: DeadLetterRecord) -> str | None:
    """The CloudEvents id of a dead-lettered structured event of ours, if it is one."""
    try:
        document = json.loads(letter.value or b"")
    except ValueError:
        return None
    return document.get("id") if isinstance(document, dict) else None


def incident_of(letter: DeadLetterRecord) -> str:
    return (letter.key or b"").decode("utf-8", "replace")


async def wait_published(
    settings: Settings, client: Client, incident_ids: list[str], within: float = 45.0
) -> set[str]:
    """Wait (up to `within` seconds) until every step of these incidents is on the lifecycle topic;
    return the ids still missing then."""
    states = await states_of(client, incident_ids)
    expected = {step_event_id(i, s.seq) for i, state in states.items() for s in state.timeline}
    deadline = time.monotonic() + within
    while True:
        envelopes = await asyncio.to_thread(read_all, settings, settings.events_topic)
        missing = expected - {e["id"] for e in envelopes}
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(1.0)
