"""The workflow runs the core faithfully: IncidentWorkflow's timeline is the lifecycle core's, step for step.

Each incident below is a script of (wait, command) pairs. It runs through IncidentWorkflow on a real
worker against the time-skipping test server; then the same incident runs through `gridflow.domain.lifecycle`
directly, and every field of every step, and the final state, must be equal.

Workflow time on the test server includes a few real milliseconds per activity and timer, so the core is
driven at the instants the workflow actually saw: `report` at the `reported` step, `start` at the first
`dispatched` step, each command at the instant the workflow applied it (that of the last step its update
made), and the clocks at every other instant a step was taken. At each instant, in time order, the
commands applied then go first (as updates do in a workflow activation), then `fire_due`. The scripts
keep every command minutes away from any deadline, so no timer and command ever share an activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident, Outcome, Priority, Rating
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    IncidentState,
    LifecycleCommand,
    Pause,
    Progress,
    RequestEscalation,
    Resolve,
    Resume,
    StepKind,
    Withdraw,
)
from gridflow.domain.rules import parse_rule_set
from gridflow.domain.rules.model import RuleSet
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents
from workflows.incident import IncidentWorkflow

GRID, STREET, DISTRICT, CITY = "g-nanjing-07", "s-nanjing-east", "d-huangpu", "c-shanghai"
ELDERS = "elders-s-nanjing-east"

Script = list[tuple[timedelta, LifecycleCommand | None]]


def after(*, days: int = 0, hours: int = 0, minutes: int = 0) -> timedelta:
    """How long a script waits before its next command (or just waits, with None)."""
    return timedelta(days=days, hours=hours, minutes=minutes)


@dataclass(frozen=True)
class Scenario:
    """One scripted incident, the step kinds its script is written to reach and how it ends (None: open)."""

    name: str
    incident: Incident
    script: Script
    reaches: frozenset[StepKind]
    outcome: Outcome | None


@dataclass(frozen=True)
class Run:
    """What the workflow did with a scenario: its final state, and the instant each command was applied."""

    state: IncidentState
    applied: list[tuple[datetime, LifecycleCommand]]


def _update_for(command: LifecycleCommand) -> Any:
    match command:
        case Accept():
            return IncidentWorkflow.accept
        case Progress():
            return IncidentWorkflow.progress
        case RequestEscalation():
            return IncidentWorkflow.request_escalation
        case Pause():
            return IncidentWorkflow.pause
        case Resume():
            return IncidentWorkflow.resume
        case Resolve():
            return IncidentWorkflow.resolve
        case Feedback():
            return IncidentWorkflow.feedback
        case Withdraw():
            return IncidentWorkflow.withdraw
    raise TypeError(f"not a lifecycle command: {command!r}")  # pragma: no cover


async def _run_workflow(incidents: Incidents, scenario: Scenario) -> Run:
    handle = await incidents.report(scenario.incident)
    last_seqs: list[tuple[int, LifecycleCommand]] = []
    for wait, command in scenario.script:
        if wait:
            await incidents.advance(handle, wait)
        if command is not None:
            summary = await incidents.command(handle, _update_for(command), command)
            last_seqs.append((summary.last_seq, command))
    state = await incidents.quiet(handle)
    if state.is_open:
        # Stop its clocks, so that they do not fire while the next scenario moves time on.
        await handle.terminate("script finished")
    applied = [(state.timeline[seq - 1].at, command) for seq, command in last_seqs]
    return Run(state=state, applied=applied)


def _run_core(incident: Incident, rule_set: RuleSet, run: Run) -> IncidentState:
    """The same incident through the core alone, at the instants the workflow saw."""
    timeline = run.state.timeline
    state, _ = lifecycle.report(incident, timeline[0].at)
    dispatched_at = next(step.at for step in timeline if step.kind is StepKind.DISPATCHED)
    lifecycle.start(state, incident, rule_set.snapshot_for(incident), dispatched_at)
    instants = sorted(
        {step.at for step in timeline if step.at >= dispatched_at} | {at for at, _ in run.applied}
    )
    for instant in instants:
        for at, command in run.applied:
            if at == instant:
                lifecycle.apply(state, incident, command, instant)
        lifecycle.fire_due(state, incident, instant)
    return state


def _differences(name: str, workflow: IncidentState, core: IncidentState) -> list[str]:
    """Every field, of every step and of the state, on which the workflow and the core disagree."""
    found: list[str] = []
    for theirs, ours in zip(workflow.timeline, core.timeline, strict=False):
        mine = ours.model_dump()
        for field, value in theirs.model_dump().items():
            if mine[field] != value:
                found.append(
                    f"{name}: step {theirs.seq} ({theirs.kind.value}) {field}: "
                    f"workflow {value!r}, core {mine[field]!r}"
                )
    if len(workflow.timeline) != len(core.timeline):
        found.append(
            f"{name}: the workflow took {len(workflow.timeline)} steps, the core {len(core.timeline)}: "
            f"{[s.kind.value for s in workflow.timeline]} vs {[s.kind.value for s in core.timeline]}"
        )
    ours_dump = core.model_dump(exclude={"timeline"})
    for field, value in workflow.model_dump(exclude={"timeline"}).items():
        if ours_dump[field] != value:
            found.append(f"{name}: state {field}: workflow {value!r}, core {ours_dump[field]!r}")
    return found


async def _assert_workflow_runs_the_core(
    incidents: Incidents, rule_set: RuleSet, scenarios: list[Scenario]
) -> None:
    differences: list[str] = []
    compared: list[tuple[IncidentState, IncidentState]] = []
    for scenario in scenarios:
        run = await _run_workflow(incidents, scenario)
        kinds = {step.kind for step in run.state.timeline}
        assert scenario.reaches <= kinds, f"{scenario.name} never reached {scenario.reaches - kinds}"
        assert run.state.outcome is scenario.outcome, f"{scenario.name} ended {run.state.outcome}"
        core = _run_core(scenario.incident, rule_set, run)
        differences += _differences(scenario.name, run.state, core)
        compared.append((run.state, core))
    assert not differences, "the workflow and the core disagree:\n" + "\n".join(differences)
    for workflow, core in compared:
        assert core.timeline == workflow.timeline
        assert core.model_dump() == workflow.model_dump()


# ---------------------------------------------------------------------- the built-in rules


def _builtin_scenarios() -> list[Scenario]:
    def unsatisfied_round(unit: str) -> Script:
        return [
            (after(minutes=10), Accept(unit_id=unit)),
            (after(hours=1), Resolve(unit_id=unit, resolution="bulb replaced")),
            (after(hours=1), Feedback(rating=Rating.UNSATISFIED, comment="still dark")),
        ]

    k = StepKind
    return [
        Scenario(
            "satisfied at the grid",
            make_incident(),
            [
                (after(minutes=10), Accept(unit_id=GRID, handler="Wang")),
                (after(hours=3), Progress(unit_id=GRID, note="ladder truck ordered")),
                (after(hours=2), Resolve(unit_id=GRID, resolution="bulb replaced")),
                (after(hours=5), Feedback(rating=Rating.SATISFIED, comment="thanks")),
            ],
            frozenset({k.ACCEPTED, k.PROGRESS, k.RESOLVED, k.FEEDBACK, k.CLOSED}),
            Outcome.RESOLVED,
        ),
        Scenario(
            "never accepted: up the whole ladder to overdue, with reminders",
            make_incident(),
            [
                (after(hours=2, minutes=1), None),
                (after(hours=4, minutes=1), None),
                (after(hours=8, minutes=1), None),
                (after(hours=9), None),
            ],
            frozenset({k.SLA_WARNING, k.SLA_BREACHED, k.ESCALATED, k.OVERDUE, k.OVERDUE_REMINDER}),
            None,
        ),
        Scenario(
            "resolve timeout at the grid, then resolved at the street",
            make_incident(),
            [
                (after(minutes=5), Accept(unit_id=GRID)),
                (after(hours=24, minutes=1), None),
                (after(minutes=30), Accept(unit_id=STREET)),
                (after(hours=1), Resolve(unit_id=STREET, resolution="cable repaired")),
                (after(hours=1), Feedback(rating=Rating.BASICALLY_SATISFIED)),
            ],
            frozenset({k.SLA_WARNING, k.SLA_BREACHED, k.ESCALATED}),
            Outcome.RESOLVED,
        ),
        Scenario(
            "passed up while paused, then as not responsible; no feedback",
            make_incident(),
            [
                (after(minutes=5), Accept(unit_id=GRID)),
                (after(minutes=10), Pause(unit_id=GRID, reason="waiting for the resident")),
                (
                    after(hours=1),
                    RequestEscalation(
                        unit_id=GRID, reason=EscalationRequestReason.REQUESTED, note="needs a lift truck"
                    ),
                ),
                (
                    after(minutes=20),
                    RequestEscalation(unit_id=STREET, reason=EscalationRequestReason.NOT_RESPONSIBLE),
                ),
                (after(hours=1), Accept(unit_id=DISTRICT)),
                (after(hours=2), Resolve(unit_id=DISTRICT, resolution="pole replaced")),
                (after(hours=72, minutes=1), None),
            ],
            frozenset({k.PAUSED, k.ESCALATED, k.CLOSED}),
            Outcome.RESOLVED_UNRATED,
        ),
        Scenario(
            "paused, resumed, paused again until the allowance runs out",
            make_incident(),
            [
                (after(minutes=5), Accept(unit_id=GRID)),
                (after(hours=1), Pause(unit_id=GRID, reason="waiting for parts")),
                (after(hours=30), Resume(unit_id=GRID)),
                (after(hours=2), Pause(unit_id=GRID, reason="resident away")),
                (after(hours=43), None),
                (after(hours=1), Resolve(unit_id=GRID, resolution="parts fitted")),
                (after(hours=1), Feedback(rating=Rating.SATISFIED)),
            ],
            frozenset({k.PAUSED, k.RESUMED}),
            Outcome.RESOLVED,
        ),
        Scenario(
            "unsatisfied, reopened, then satisfied",
            make_incident(),
            [
                *unsatisfied_round(GRID),
                (after(minutes=10), Accept(unit_id=GRID)),
                (after(hours=1), Resolve(unit_id=GRID, resolution="wiring redone")),
                (after(hours=2), Feedback(rating=Rating.SATISFIED)),
            ],
            frozenset({k.REOPENED, k.FEEDBACK}),
            Outcome.RESOLVED,
        ),
        Scenario(
            "unsatisfied past max_reopens: closed unsatisfied and flagged",
            make_incident(),
            [*unsatisfied_round(GRID), *unsatisfied_round(GRID), *unsatisfied_round(GRID)],
            frozenset({k.REOPENED}),
            Outcome.RESOLVED_UNSATISFIED,
        ),
        Scenario(
            "withdrawn while the street holds it",
            make_incident(),
            [
                (after(hours=2, minutes=1), None),
                (after(minutes=30), Withdraw(reason="fixed by a neighbour")),
            ],
            frozenset({k.ESCALATED, k.CLOSED}),
            Outcome.WITHDRAWN,
        ),
        Scenario(
            "urgent: up the urgent ladder to the city, overdue, accepted late and resolved",
            make_incident(priority=Priority.URGENT),
            [
                (after(minutes=16), None),
                (after(minutes=5), Accept(unit_id=STREET)),
                (after(hours=1), Progress(unit_id=STREET, note="crew on site")),
                (after(hours=3, minutes=10), None),
                (after(minutes=31), None),
                (after(hours=1, minutes=1), None),
                (after(hours=2, minutes=30), None),
                (after(minutes=10), Accept(unit_id=CITY)),
                (after(hours=1), Resolve(unit_id=CITY, resolution="substation reset")),
                (after(hours=1), Feedback(rating=Rating.SATISFIED)),
            ],
            frozenset({k.SLA_BREACHED, k.OVERDUE, k.OVERDUE_REMINDER, k.ACCEPTED, k.RESOLVED}),
            Outcome.RESOLVED,
        ),
    ]


async def test_the_workflow_takes_the_cores_steps_on_every_path_of_the_builtin_rules(
    incidents: Incidents,
) -> None:
    await _assert_workflow_runs_the_core(incidents, incidents.rules.current(), _builtin_scenarios())


# ---------------------------------------------------------------------- a business calendar

OFFICE = """
version: calendar-eq-1
calendars:
  shanghai-office:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
    holidays: [{holiday}]
rules:
  - name: office
    calendar: shanghai-office
    warn_at: [0.5, 0.75]
    overdue_reminder: 1d
    ladder:
      grid:   {{accept: 2h, resolve: 16h}}
      street: {{accept: 4h, resolve: 2d}}
"""


def _next_weekday(day: date) -> date:
    following = day + timedelta(days=1)
    while following.weekday() >= 5:
        following += timedelta(days=1)
    return following


async def test_the_workflow_takes_the_cores_steps_on_a_calendar_with_working_hours_and_a_holiday(
    incidents: Incidents,
) -> None:
    # The next weekday is a holiday: sixteen working hours from today always run across it.
    today = (await incidents.env.get_current_time()).astimezone(ZoneInfo("Asia/Shanghai")).date()
    rule_set = parse_rule_set(OFFICE.format(holiday=_next_weekday(today).isoformat()), "office.yaml")
    incidents.rules.replace(rule_set)
    k = StepKind
    scenario = Scenario(
        "a paused resolve clock across a holiday, breached; overdue at the street, resolved late",
        make_incident(),
        [
            (after(minutes=10), Accept(unit_id=GRID)),
            (after(minutes=20), Pause(unit_id=GRID, reason="waiting for the landlord")),
            (after(days=1), Resume(unit_id=GRID)),
            (after(days=10), None),  # at most about six days to the resolve and street accept breaches
            (after(hours=2), Accept(unit_id=STREET)),
            (after(hours=1), Resolve(unit_id=STREET, resolution="done")),
            (after(hours=1), Feedback(rating=Rating.SATISFIED)),
        ],
        frozenset({k.PAUSED, k.RESUMED, k.SLA_WARNING, k.SLA_BREACHED, k.OVERDUE, k.OVERDUE_REMINDER}),
        Outcome.RESOLVED,
    )
    await _assert_workflow_runs_the_core(incidents, rule_set, [scenario])


# ---------------------------------------------------------------------- a ladder of the file's own

MEDIATION = """
version: mediation-eq-1
levels:
  grid_mediator: {unit: "mediator-{grid_id}", description: grid mediator}
  elders:        {unit: "elders-{street_id}", description: respected elders of the street}
rules:
  - name: disputes
    match: {category: [neighbour_dispute]}
    ladder:
      grid_mediator: {accept: 1h, resolve: 1d}
      elders:        {accept: 2h, resolve: 2d, warn_at: 0.5}
      district:      {accept: 4h, resolve: 3d, notify: ["justice-{district_id}", "women-{district_id}"]}
    feedback: {window: 24h, on_unsatisfied: escalate, max_reopens: 2}
  - name: enterprise
    match: {category: [enterprise]}
    ladder:
      district: {accept: 1h, resolve: 1d, notify: ["market-supervision-{district_id}"]}
      city:     {accept: 2h, resolve: 2d}
  - name: default
    ladder:
      grid: {accept: 2h, resolve: 1d}
"""


async def test_the_workflow_takes_the_cores_steps_on_a_custom_ladder_that_blows_the_whistle(
    incidents: Incidents,
) -> None:
    rule_set = parse_rule_set(MEDIATION, "mediation.yaml")
    incidents.rules.replace(rule_set)
    k = StepKind
    scenarios = [
        Scenario(
            "a dispute: the elders, escalated on an unsatisfied rating, reopened at the top, unrated",
            make_incident(category="neighbour_dispute"),
            [
                (after(hours=1, minutes=1), None),
                (after(minutes=30), Accept(unit_id=ELDERS, handler="Old Zhang")),
                (after(hours=1), Progress(unit_id=ELDERS, note="both families heard")),
                (after(hours=2), Resolve(unit_id=ELDERS, resolution="agreement signed")),
                (after(hours=3), Feedback(rating=Rating.UNSATISFIED)),
                (after(minutes=30), Accept(unit_id=DISTRICT)),
                (after(hours=2), Resolve(unit_id=DISTRICT, resolution="mediated")),
                (after(hours=1), Feedback(rating=Rating.UNSATISFIED)),
                (after(minutes=20), Accept(unit_id=DISTRICT)),
                (after(hours=1), Resolve(unit_id=DISTRICT, resolution="mediated again")),
                (after(hours=24, minutes=1), None),
            ],
            frozenset({k.SLA_WARNING, k.ESCALATED, k.REOPENED, k.NOTIFIED, k.PROGRESS}),
            Outcome.RESOLVED_UNRATED,
        ),
        Scenario(
            "an enterprise problem: the whistle at the first level, passed up, withdrawn",
            make_incident(category="enterprise", priority=Priority.HIGH),
            [
                (
                    after(minutes=20),
                    RequestEscalation(
                        unit_id=DISTRICT,
                        reason=EscalationRequestReason.NOT_RESPONSIBLE,
                        note="a matter for the market regulator",
                    ),
                ),
                (after(minutes=30), Withdraw()),
            ],
            frozenset({k.NOTIFIED, k.ESCALATED, k.CLOSED}),
            Outcome.WITHDRAWN,
        ),
    ]
    await _assert_workflow_runs_the_core(incidents, rule_set, scenarios)
