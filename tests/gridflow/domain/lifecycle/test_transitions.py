"""The paths of the incident loop, run on the pure lifecycle core with explicit instants (no server).

Each test reports an incident, starts it on a rule snapshot, applies commands at chosen instants and lets
time pass by firing what is due at the instants `next_due` names. The expected steps are written out
field by field: they are what the workflow publishes and what `rules explain` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridflow.domain.incident import Incident, Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    ClockKind,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    IncidentState,
    Pause,
    Progress,
    Refused,
    RefuseExtension,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    Resume,
    Step,
    StepKind,
    Transfer,
    Verify,
    Withdraw,
    apply,
    fire_due,
    next_due,
    report,
    start,
)
from gridflow.domain.rules import (
    LevelLimits,
    Rule,
    RuleSet,
    RulesFileError,
    builtin_rule_set,
    parse_rule_set,
)
from tests.conftest import make_incident
from tests.rule_texts import VERIFYING

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)  # a Monday; make_incident's reported_at
SECOND, MINUTE, HOUR, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
GRID, STREET, DISTRICT, CITY = "g-nanjing-07", "s-nanjing-east", "d-huangpu", "c-shanghai"
BUILTIN = builtin_rule_set()
INCIDENT_ID = "inc-lifecycle-1"


def begin(incident: Incident, rules: RuleSet = BUILTIN, at: datetime = T0) -> IncidentState:
    """Report the incident and start it on its rule of `rules`, both at `at`."""
    state, _ = report(incident, at)
    start(state, incident, rules.snapshot_for(incident), at)
    return state


def run_until(state: IncidentState, incident: Incident, until: datetime) -> list[Step]:
    """Let time pass up to `until`, firing at every instant next_due names; the steps fired."""
    steps: list[Step] = []
    while (due := next_due(state)) is not None and due <= until:
        steps += fire_due(state, incident, due)
    return steps


def kinds(steps: list[Step]) -> list[StepKind]:
    """The kinds of a list of steps, in order."""
    return [step.kind for step in steps]


def normal() -> Incident:
    """A normal-priority street lamp incident (the built-in `default` rule)."""
    return make_incident(incident_id=INCIDENT_ID)


def urgent() -> Incident:
    """An urgent incident (the built-in `urgent` rule: four levels, short limits, hourly reminders)."""
    return make_incident(priority=Priority.URGENT, incident_id=INCIDENT_ID)


def accept_and_resolve(state: IncidentState, incident: Incident, unit: str, at: datetime) -> None:
    """The holder accepts at `at` and resolves an hour later."""
    apply(state, incident, Accept(unit_id=unit), at)
    apply(state, incident, Resolve(unit_id=unit, resolution="fixed"), at + HOUR)


# ---------------------------------------------------------------------- report and start


def test_a_report_is_the_first_step_and_start_dispatches_the_incident_to_its_grid_unit() -> None:
    incident = normal()
    received = T0 + 2 * MINUTE  # the workflow starts a little after the reporter's app sent it

    state, reported = report(incident, received)

    assert reported == [
        Step(
            seq=1, kind=StepKind.REPORTED, at=received, status=Status.REPORTED, event_at=incident.reported_at
        )
    ]
    assert state.timeline == reported
    assert (state.status, state.rule, state.level, state.holder_unit) == (Status.REPORTED, None, None, None)
    assert next_due(state) is None

    dispatched = start(state, incident, BUILTIN.snapshot_for(incident), received)

    assert dispatched == [
        Step(
            seq=2,
            kind=StepKind.DISPATCHED,
            at=received,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            deadline=received + 2 * HOUR,
        )
    ]
    assert state.rule is not None
    assert (state.rule.rule.name, state.rule.rules_version) == ("default", "2026-11-1")
    assert (state.level, state.level_index, state.holder_unit) == ("grid", 0, GRID)
    assert state.status is Status.DISPATCHED
    assert (state.accept_deadline, state.resolve_deadline) == (received + 2 * HOUR, None)
    assert next_due(state) == received + 90 * MINUTE  # the 75 % warning of the 2 h accept limit


def test_nothing_happens_before_the_next_due_instant() -> None:
    incident = normal()
    state = begin(incident)
    before = state.model_dump()

    assert fire_due(state, incident, T0 + 90 * MINUTE - SECOND) == []
    assert state.model_dump() == before


def test_progress_notes_are_recorded_and_change_no_clock() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + 10 * MINUTE)
    due = next_due(state)

    steps = apply(
        state, incident, Progress(unit_id=GRID, note="bulb ordered", at=T0 + 58 * MINUTE), T0 + HOUR
    )

    assert steps == [
        Step(
            seq=4,
            kind=StepKind.PROGRESS,
            at=T0 + HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            note="bulb ordered",
            event_at=T0 + 58 * MINUTE,
        )
    ]
    assert (state.status, next_due(state), state.resolve_deadline) == (
        Status.ACCEPTED,
        due,
        T0 + 24 * HOUR + 10 * MINUTE,
    )


# ---------------------------------------------------------------------- the happy path


def test_an_incident_accepted_and_resolved_at_the_grid_closes_resolved_when_the_resident_is_satisfied() -> (
    None
):
    incident = normal()
    state = begin(incident)

    accepted = apply(
        state, incident, Accept(unit_id=GRID, handler="Wang", at=T0 + 29 * MINUTE), T0 + 30 * MINUTE
    )
    assert run_until(state, incident, T0 + 3 * HOUR + 30 * MINUTE) == []
    resolved = apply(
        state,
        incident,
        Resolve(unit_id=GRID, resolution="bulb replaced", at=T0 + 3 * HOUR + 25 * MINUTE),
        T0 + 3 * HOUR + 30 * MINUTE,
    )
    rated = apply(
        state,
        incident,
        Feedback(rating=Rating.SATISFIED, comment="bright again", at=T0 + 5 * HOUR + 55 * MINUTE),
        T0 + 6 * HOUR,
    )

    assert accepted == [
        Step(
            seq=3,
            kind=StepKind.ACCEPTED,
            at=T0 + 30 * MINUTE,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            note="Wang",
            deadline=T0 + 30 * MINUTE + 24 * HOUR,
            within_limit=True,
            elapsed=30 * MINUTE,
            event_at=T0 + 29 * MINUTE,
        )
    ]
    assert resolved == [
        Step(
            seq=4,
            kind=StepKind.RESOLVED,
            at=T0 + 3 * HOUR + 30 * MINUTE,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            note="bulb replaced",
            deadline=T0 + 3 * HOUR + 30 * MINUTE + 72 * HOUR,  # the feedback window
            within_limit=True,
            elapsed=3 * HOUR + 30 * MINUTE,
            event_at=T0 + 3 * HOUR + 25 * MINUTE,
        )
    ]
    assert rated == [
        Step(
            seq=5,
            kind=StepKind.FEEDBACK,
            at=T0 + 6 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            note="bright again",
            rating=Rating.SATISFIED,
            event_at=T0 + 5 * HOUR + 55 * MINUTE,
        ),
        Step(
            seq=6,
            kind=StepKind.CLOSED,
            at=T0 + 6 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.CLOSED,
            outcome=Outcome.RESOLVED,
            escalations=0,
            within_limit=True,
            deferred=False,
        ),
    ]
    assert kinds(state.timeline) == [
        StepKind.REPORTED,
        StepKind.DISPATCHED,
        StepKind.ACCEPTED,
        StepKind.RESOLVED,
        StepKind.FEEDBACK,
        StepKind.CLOSED,
    ]
    assert (state.outcome, state.rating, state.closed_at) == (
        Outcome.RESOLVED,
        Rating.SATISFIED,
        T0 + 6 * HOUR,
    )
    assert (state.escalations, state.reopen_count, state.flagged) == (0, 0, False)
    assert (state.accept_clock, state.resolve_clock, state.feedback_deadline) == (None, None, None)
    assert next_due(state) is None
    assert fire_due(state, incident, T0 + 1000 * HOUR) == []


# ---------------------------------------------------------------------- clocks running out


def test_an_unaccepted_grid_incident_escalates_to_the_street_after_its_accept_limit() -> None:
    incident = normal()
    state = begin(incident)

    warned = run_until(state, incident, T0 + 2 * HOUR - SECOND)
    escalated = run_until(state, incident, T0 + 2 * HOUR)

    assert warned == [
        Step(
            seq=3,
            kind=StepKind.SLA_WARNING,
            at=T0 + 90 * MINUTE,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            clock=ClockKind.ACCEPT,
            fraction=0.75,
            deadline=T0 + 2 * HOUR,
        )
    ]
    assert escalated == [
        Step(
            seq=4,
            kind=StepKind.SLA_BREACHED,
            at=T0 + 2 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            clock=ClockKind.ACCEPT,
            deadline=T0 + 2 * HOUR,
        ),
        Step(
            seq=5,
            kind=StepKind.ESCALATED,
            at=T0 + 2 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            reason="accept_timeout",
            from_level="grid",
            to_level="street",
        ),
        Step(
            seq=6,
            kind=StepKind.DISPATCHED,
            at=T0 + 2 * HOUR,
            level="street",
            unit_id=STREET,
            status=Status.DISPATCHED,
            deadline=T0 + 6 * HOUR,  # the street accepts within 4 h
        ),
    ]
    assert (state.level, state.level_index, state.holder_unit, state.escalations) == ("street", 1, STREET, 1)
    assert next_due(state) == T0 + 5 * HOUR


def test_an_urgent_incident_never_accepted_climbs_grid_street_district_city_then_is_overdue() -> None:
    incident = urgent()
    state = begin(incident)

    steps = run_until(state, incident, T0 + 2 * HOUR)

    assert state.rule is not None and state.rule.rule.name == "urgent"
    dispatches = [
        (s.level, s.unit_id, s.at, s.deadline) for s in state.timeline if s.kind is StepKind.DISPATCHED
    ]
    assert dispatches == [
        ("grid", GRID, T0, T0 + 15 * MINUTE),
        ("street", STREET, T0 + 15 * MINUTE, T0 + 30 * MINUTE),
        ("district", DISTRICT, T0 + 30 * MINUTE, T0 + HOUR),
        ("city", CITY, T0 + HOUR, T0 + 2 * HOUR),
    ]
    assert [(s.from_level, s.to_level, s.reason) for s in steps if s.kind is StepKind.ESCALATED] == [
        ("grid", "street", "accept_timeout"),
        ("street", "district", "accept_timeout"),
        ("district", "city", "accept_timeout"),
    ]
    assert [s.at for s in steps if s.kind is StepKind.SLA_WARNING] == [
        T0 + 11 * MINUTE + 15 * SECOND,
        T0 + 26 * MINUTE + 15 * SECOND,
        T0 + 52 * MINUTE + 30 * SECOND,
        T0 + HOUR + 45 * MINUTE,
    ]
    assert steps[-2:] == [
        Step(
            seq=16,
            kind=StepKind.SLA_BREACHED,
            at=T0 + 2 * HOUR,
            level="city",
            unit_id=CITY,
            status=Status.DISPATCHED,
            clock=ClockKind.ACCEPT,
            deadline=T0 + 2 * HOUR,
        ),
        Step(
            seq=17,
            kind=StepKind.OVERDUE,
            at=T0 + 2 * HOUR,
            level="city",
            unit_id=CITY,
            status=Status.DISPATCHED,
            reason="accept_timeout",
        ),
    ]
    assert (state.level, state.holder_unit, state.status) == ("city", CITY, Status.DISPATCHED)
    assert (state.overdue, state.escalations, state.next_reminder_at) == (True, 3, T0 + 3 * HOUR)
    assert next_due(state) == T0 + 3 * HOUR


def test_an_overdue_incident_is_reminded_every_overdue_reminder_and_accepted_late_until_it_is_resolved() -> (
    None
):
    incident = urgent()
    state = begin(incident)
    run_until(state, incident, T0 + 2 * HOUR)  # overdue at the city

    reminders = run_until(state, incident, T0 + 5 * HOUR)
    late = apply(state, incident, Accept(unit_id=CITY), T0 + 5 * HOUR + 30 * MINUTE)
    still_reminded = run_until(state, incident, T0 + 6 * HOUR)
    resolved = apply(state, incident, Resolve(unit_id=CITY, resolution="done"), T0 + 6 * HOUR + 30 * MINUTE)

    assert reminders == [
        Step(
            seq=seq,
            kind=StepKind.OVERDUE_REMINDER,
            at=T0 + hours * HOUR,
            level="city",
            unit_id=CITY,
            status=Status.DISPATCHED,
        )
        for seq, hours in ((18, 3), (19, 4), (20, 5))
    ]
    assert late == [
        Step(
            seq=21,
            kind=StepKind.ACCEPTED,
            at=T0 + 5 * HOUR + 30 * MINUTE,
            level="city",
            unit_id=CITY,
            status=Status.ACCEPTED,
            deadline=T0 + 5 * HOUR + 30 * MINUTE + 24 * HOUR,
            within_limit=False,
            elapsed=4 * HOUR + 30 * MINUTE,  # since the city got it, at T0 + 1 h
        )
    ]
    assert still_reminded == [
        Step(
            seq=22,
            kind=StepKind.OVERDUE_REMINDER,
            at=T0 + 6 * HOUR,
            level="city",
            unit_id=CITY,
            status=Status.ACCEPTED,
        )
    ]
    assert [(s.kind, s.within_limit, s.elapsed) for s in resolved] == [
        (StepKind.RESOLVED, True, 6 * HOUR + 30 * MINUTE)  # the city's own resolve clock did not run out
    ]
    assert run_until(state, incident, T0 + 20 * HOUR) == []  # no reminders once resolved
    assert next_due(state) == T0 + 6 * HOUR + 30 * MINUTE + 72 * HOUR


def test_after_a_long_gap_an_overdue_incident_is_reminded_once_then_carries_on_from_then() -> None:
    incident = urgent()
    state = begin(incident)
    run_until(state, incident, T0 + 2 * HOUR)
    assert next_due(state) == T0 + 3 * HOUR

    # Nothing fired from 3 h to 10 h 30 (a worker outage): one reminder, not eight.
    caught_up = fire_due(state, incident, T0 + 10 * HOUR + 30 * MINUTE)

    assert caught_up == [
        Step(
            seq=18,
            kind=StepKind.OVERDUE_REMINDER,
            at=T0 + 10 * HOUR + 30 * MINUTE,
            level="city",
            unit_id=CITY,
            status=Status.DISPATCHED,
        )
    ]
    assert next_due(state) == T0 + 11 * HOUR + 30 * MINUTE
    following = run_until(state, incident, T0 + 12 * HOUR + 30 * MINUTE)
    assert [(s.seq, s.kind, s.at) for s in following] == [
        (19, StepKind.OVERDUE_REMINDER, T0 + 11 * HOUR + 30 * MINUTE),
        (20, StepKind.OVERDUE_REMINDER, T0 + 12 * HOUR + 30 * MINUTE),
    ]


def test_an_accepted_incident_not_resolved_in_time_escalates_with_resolve_timeout() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)

    warned = run_until(state, incident, T0 + 25 * HOUR - SECOND)
    escalated = run_until(state, incident, T0 + 25 * HOUR)

    assert warned == [
        Step(
            seq=4,
            kind=StepKind.SLA_WARNING,
            at=T0 + 19 * HOUR,  # 75 % of the 24 h resolve limit after accepting
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            clock=ClockKind.RESOLVE,
            fraction=0.75,
            deadline=T0 + 25 * HOUR,
        )
    ]
    assert escalated == [
        Step(
            seq=5,
            kind=StepKind.SLA_BREACHED,
            at=T0 + 25 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            clock=ClockKind.RESOLVE,
            deadline=T0 + 25 * HOUR,
        ),
        Step(
            seq=6,
            kind=StepKind.ESCALATED,
            at=T0 + 25 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            reason="resolve_timeout",
            from_level="grid",
            to_level="street",
        ),
        Step(
            seq=7,
            kind=StepKind.DISPATCHED,
            at=T0 + 25 * HOUR,
            level="street",
            unit_id=STREET,
            status=Status.DISPATCHED,
            deadline=T0 + 29 * HOUR,
        ),
    ]
    assert (state.level, state.status, state.holder_unit) == ("street", Status.DISPATCHED, STREET)
    assert (state.resolve_clock, state.resolve_deadline, state.escalations) == (None, None, 1)


WARNINGS = """
version: warnings-1
rules:
  - name: watched
    warn_at: [0.9, 0.5, 0.75]
    ladder:
      grid:   {accept: 1h, resolve: 10h}
      street: {accept: 2h, resolve: 1d, warn_at: 0.25}
"""


def test_an_accept_clock_warns_at_each_warn_at_fraction_before_it_breaches() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(WARNINGS, "warnings.yaml"))

    steps = run_until(state, incident, T0 + HOUR)

    assert steps[:3] == [
        Step(
            seq=seq,
            kind=StepKind.SLA_WARNING,
            at=at,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            clock=ClockKind.ACCEPT,
            fraction=fraction,
            deadline=T0 + HOUR,
        )
        for seq, fraction, at in (
            (3, 0.5, T0 + 30 * MINUTE),
            (4, 0.75, T0 + 45 * MINUTE),
            (5, 0.9, T0 + 54 * MINUTE),
        )
    ]
    assert kinds(steps[3:]) == [StepKind.SLA_BREACHED, StepKind.ESCALATED, StepKind.DISPATCHED]
    # The street has a warn_at of its own: one warning, at a quarter of its 2 h.
    street = run_until(state, incident, T0 + 3 * HOUR)
    assert [(s.kind, s.fraction, s.at, s.deadline) for s in street] == [
        (StepKind.SLA_WARNING, 0.25, T0 + 90 * MINUTE, T0 + 3 * HOUR),
        (StepKind.SLA_BREACHED, None, T0 + 3 * HOUR, T0 + 3 * HOUR),
        (StepKind.OVERDUE, None, T0 + 3 * HOUR, None),
    ]


def test_a_resolve_clock_warns_at_each_fraction_and_a_pause_moves_the_warnings_not_yet_given() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(WARNINGS, "warnings.yaml"))
    apply(state, incident, Accept(unit_id=GRID), T0)

    first = run_until(state, incident, T0 + 6 * HOUR)
    apply(state, incident, Pause(unit_id=GRID), T0 + 6 * HOUR)  # 6 of the 10 h used
    assert run_until(state, incident, T0 + 8 * HOUR) == []
    apply(state, incident, Resume(unit_id=GRID), T0 + 8 * HOUR)  # 4 h left: due at 12 h
    rest = run_until(state, incident, T0 + 12 * HOUR)

    assert first == [
        Step(
            seq=4,
            kind=StepKind.SLA_WARNING,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            clock=ClockKind.RESOLVE,
            fraction=0.5,
            deadline=T0 + 10 * HOUR,
        )
    ]
    assert [(s.kind, s.fraction, s.at, s.deadline) for s in rest] == [
        (StepKind.SLA_WARNING, 0.75, T0 + 9 * HOUR + 30 * MINUTE, T0 + 12 * HOUR),
        (StepKind.SLA_WARNING, 0.9, T0 + 11 * HOUR, T0 + 12 * HOUR),
        (StepKind.SLA_BREACHED, None, T0 + 12 * HOUR, T0 + 12 * HOUR),
        (StepKind.ESCALATED, None, T0 + 12 * HOUR, None),
        (StepKind.DISPATCHED, None, T0 + 12 * HOUR, T0 + 14 * HOUR),
    ]


# ---------------------------------------------------------------------- handlers passing it up


def test_a_handler_can_pass_the_incident_up_as_requested_or_not_responsible() -> None:
    incident = normal()
    state = begin(incident)

    requested = apply(
        state,
        incident,
        RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
        T0 + 10 * MINUTE,
    )
    apply(state, incident, Accept(unit_id=STREET), T0 + 20 * MINUTE)
    not_responsible = apply(
        state,
        incident,
        RequestEscalation(unit_id=STREET, reason=EscalationRequestReason.NOT_RESPONSIBLE),
        T0 + 30 * MINUTE,
    )

    assert requested == [
        Step(
            seq=3,
            kind=StepKind.ESCALATED,
            at=T0 + 10 * MINUTE,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            reason="requested",
            from_level="grid",
            to_level="street",
        ),
        Step(
            seq=4,
            kind=StepKind.DISPATCHED,
            at=T0 + 10 * MINUTE,
            level="street",
            unit_id=STREET,
            status=Status.DISPATCHED,
            deadline=T0 + 10 * MINUTE + 4 * HOUR,
        ),
    ]
    assert not_responsible == [
        Step(
            seq=6,
            kind=StepKind.ESCALATED,
            at=T0 + 30 * MINUTE,
            level="street",
            unit_id=STREET,
            status=Status.ACCEPTED,
            reason="not_responsible",
            from_level="street",
            to_level="district",
        ),
        Step(
            seq=7,
            kind=StepKind.DISPATCHED,
            at=T0 + 30 * MINUTE,
            level="district",
            unit_id=DISTRICT,
            status=Status.DISPATCHED,
            deadline=T0 + 30 * MINUTE + 8 * HOUR,
        ),
    ]
    assert (state.level, state.holder_unit, state.escalations, state.resolve_clock) == (
        "district",
        DISTRICT,
        2,
        None,
    )


def test_an_escalation_requested_while_paused_ends_the_pause_and_counts_its_time() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + 10 * MINUTE)
    apply(state, incident, Pause(unit_id=GRID), T0 + HOUR)

    steps = apply(
        state,
        incident,
        RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
        T0 + 3 * HOUR,
    )

    assert [(s.seq, s.kind, s.status, s.reason, s.from_level, s.to_level) for s in steps] == [
        (5, StepKind.ESCALATED, Status.ACCEPTED, "requested", "grid", "street"),
        (6, StepKind.DISPATCHED, Status.DISPATCHED, None, None, None),
    ]
    assert state.paused_total == 2 * HOUR
    # The 2 h paused at the grid count against the 72 h allowance at the street.
    apply(state, incident, Accept(unit_id=STREET), T0 + 4 * HOUR)
    paused = apply(state, incident, Pause(unit_id=STREET), T0 + 5 * HOUR)
    assert paused[0].deadline == T0 + 5 * HOUR + 70 * HOUR


# ---------------------------------------------------------------------- pauses


def _paused_thirty_hours() -> tuple[IncidentState, Incident]:
    """Accepted at 1 h (due at 25 h), paused at 3 h, resumed at 33 h: 30 of the 72 h allowance used."""
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    apply(state, incident, Pause(unit_id=GRID, reason="waiting for parts"), T0 + 3 * HOUR)
    apply(state, incident, Resume(unit_id=GRID), T0 + 33 * HOUR)
    return state, incident


def test_a_pause_stops_the_resolve_clock_and_resuming_moves_the_deadline_by_the_time_paused() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    assert state.resolve_deadline == T0 + 25 * HOUR

    paused = apply(
        state,
        incident,
        Pause(unit_id=GRID, reason="waiting for parts", at=T0 + 3 * HOUR - MINUTE),
        T0 + 3 * HOUR,
    )
    assert paused == [
        Step(
            seq=4,
            kind=StepKind.PAUSED,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.PAUSED,
            reason="waiting for parts",
            deadline=T0 + 3 * HOUR + 72 * HOUR,  # when the pause ends by itself
            event_at=T0 + 3 * HOUR - MINUTE,
        )
    ]
    assert state.resolve_deadline is None  # the clock is stopped
    assert next_due(state) == T0 + 75 * HOUR
    assert run_until(state, incident, T0 + 33 * HOUR) == []  # past 25 h, but nothing runs out

    resumed = apply(state, incident, Resume(unit_id=GRID, at=T0 + 33 * HOUR - MINUTE), T0 + 33 * HOUR)

    assert resumed == [
        Step(
            seq=5,
            kind=StepKind.RESUMED,
            at=T0 + 33 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            deadline=T0 + 55 * HOUR,  # 25 h + the 30 h paused
            event_at=T0 + 33 * HOUR - MINUTE,
        )
    ]
    assert (state.status, state.paused_total, state.resolve_deadline) == (
        Status.ACCEPTED,
        30 * HOUR,
        T0 + 55 * HOUR,
    )
    assert next_due(state) == T0 + 49 * HOUR  # the warning at 18 h of clock: 2 h before, 16 h after


def test_the_pause_allowance_ends_a_pause_by_itself_when_it_runs_out() -> None:
    state, incident = _paused_thirty_hours()

    paused = apply(state, incident, Pause(unit_id=GRID, reason="resident away"), T0 + 35 * HOUR)
    assert paused[0].deadline == T0 + 77 * HOUR  # the 42 h left of the allowance
    capped = run_until(state, incident, T0 + 80 * HOUR)

    assert capped == [
        Step(
            seq=7,
            kind=StepKind.RESUMED,
            at=T0 + 77 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            reason="pause_cap_reached",
            deadline=T0 + 97 * HOUR,  # 4 h of the 24 h used: 20 h from 77 h
        )
    ]
    assert state.rule is not None
    assert state.paused_total == state.rule.rule.max_pause_for("grid") == 72 * HOUR
    assert state.status is Status.ACCEPTED
    with pytest.raises(Refused) as refused:
        apply(state, incident, Pause(unit_id=GRID), T0 + 80 * HOUR)
    assert refused.value.reason == f"incident {INCIDENT_ID} has used its whole pause allowance"


def test_a_pause_cap_noticed_late_still_counts_only_the_allowance() -> None:
    state, incident = _paused_thirty_hours()
    apply(state, incident, Pause(unit_id=GRID), T0 + 35 * HOUR)

    steps = fire_due(state, incident, T0 + 80 * HOUR)  # three hours after the cap, in one go

    assert [(s.kind, s.at, s.reason, s.deadline) for s in steps] == [
        (StepKind.RESUMED, T0 + 80 * HOUR, "pause_cap_reached", T0 + 97 * HOUR)
    ]
    assert state.paused_total == 72 * HOUR


def test_resolving_a_paused_incident_ends_the_pause() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    apply(state, incident, Pause(unit_id=GRID), T0 + 2 * HOUR)

    steps = apply(state, incident, Resolve(unit_id=GRID, resolution="parts came"), T0 + 5 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.RESOLVED,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            note="parts came",
            deadline=T0 + 77 * HOUR,
            within_limit=True,
            elapsed=5 * HOUR,
        )
    ]
    assert (state.status, state.paused_total, state.pause_cap_at()) == (Status.RESOLVED, 3 * HOUR, None)
    assert next_due(state) == T0 + 77 * HOUR  # the feedback window, not the pause cap


# ---------------------------------------------------------------------- feedback


def test_an_unsatisfied_resident_reopens_the_incident_at_the_same_level() -> None:
    incident = normal()
    state = begin(incident)
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.UNSATISFIED, comment="still dark"), T0 + 5 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.FEEDBACK,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            note="still dark",
            rating=Rating.UNSATISFIED,
        ),
        Step(
            seq=6,
            kind=StepKind.REOPENED,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            reason="unsatisfied",
            from_level="grid",
            to_level="grid",
        ),
        Step(
            seq=7,
            kind=StepKind.DISPATCHED,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            deadline=T0 + 7 * HOUR,
        ),
    ]
    assert (state.status, state.level, state.reopen_count, state.escalations) == (
        Status.DISPATCHED,
        "grid",
        1,
        0,
    )
    assert (state.feedback_deadline, state.resolve_clock, state.accept_deadline) == (
        None,
        None,
        T0 + 7 * HOUR,
    )

    accept_and_resolve(state, incident, GRID, T0 + 6 * HOUR)
    closing = apply(state, incident, Feedback(rating=Rating.SATISFIED), T0 + 8 * HOUR)
    assert [(s.kind, s.outcome) for s in closing] == [
        (StepKind.FEEDBACK, None),
        (StepKind.CLOSED, Outcome.RESOLVED),
    ]
    assert (state.reopen_count, state.flagged, state.rating) == (1, False, Rating.SATISFIED)


def test_basically_satisfied_closes_the_incident_resolved() -> None:
    incident = normal()
    state = begin(incident)
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.BASICALLY_SATISFIED), T0 + 5 * HOUR)

    assert steps[-1] == Step(
        seq=6,
        kind=StepKind.CLOSED,
        at=T0 + 5 * HOUR,
        level="grid",
        unit_id=GRID,
        status=Status.CLOSED,
        outcome=Outcome.RESOLVED,
        escalations=0,
        within_limit=True,
        deferred=False,
    )
    assert (state.outcome, state.rating, state.flagged) == (
        Outcome.RESOLVED,
        Rating.BASICALLY_SATISFIED,
        False,
    )


ESCALATE_WHEN_UNSATISFIED = """
version: escalate-1
rules:
  - name: escalating
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
    feedback: {window: 48h, on_unsatisfied: escalate, max_reopens: 3}
"""


def test_with_on_unsatisfied_escalate_an_unsatisfied_rating_reopens_the_incident_one_level_up() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(ESCALATE_WHEN_UNSATISFIED, "escalate.yaml"))
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + 3 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.FEEDBACK,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            rating=Rating.UNSATISFIED,
        ),
        Step(
            seq=6,
            kind=StepKind.REOPENED,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            reason="unsatisfied",
            from_level="grid",
            to_level="street",
        ),
        Step(
            seq=7,
            kind=StepKind.ESCALATED,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            reason="unsatisfied",
            from_level="grid",
            to_level="street",
        ),
        Step(
            seq=8,
            kind=StepKind.DISPATCHED,
            at=T0 + 3 * HOUR,
            level="street",
            unit_id=STREET,
            status=Status.DISPATCHED,
            deadline=T0 + 7 * HOUR,
        ),
    ]
    assert (state.level, state.holder_unit, state.reopen_count, state.escalations) == ("street", STREET, 1, 1)


def test_with_on_unsatisfied_escalate_an_incident_at_the_top_level_reopens_there() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(ESCALATE_WHEN_UNSATISFIED, "escalate.yaml"))
    accept_and_resolve(state, incident, GRID, T0 + HOUR)
    apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + 3 * HOUR)  # now at the street, the top
    accept_and_resolve(state, incident, STREET, T0 + 4 * HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + 6 * HOUR)

    assert [(s.seq, s.kind, s.level, s.from_level, s.to_level) for s in steps] == [
        (11, StepKind.FEEDBACK, "street", None, None),
        (12, StepKind.REOPENED, "street", "street", "street"),
        (13, StepKind.DISPATCHED, "street", None, None),
    ]
    assert steps[-1].deadline == T0 + 10 * HOUR
    assert (state.level, state.reopen_count, state.escalations) == ("street", 2, 1)


def test_reaching_max_reopens_closes_the_incident_unsatisfied_and_flagged() -> None:
    incident = normal()
    state = begin(incident)
    for round_ in range(2):  # the default rule allows two reopens
        accept_and_resolve(state, incident, GRID, T0 + (3 * round_ + 1) * HOUR)
        apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + (3 * round_ + 3) * HOUR)
    accept_and_resolve(state, incident, GRID, T0 + 7 * HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + 9 * HOUR)

    assert steps == [
        Step(
            seq=15,
            kind=StepKind.FEEDBACK,
            at=T0 + 9 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            rating=Rating.UNSATISFIED,
        ),
        Step(
            seq=16,
            kind=StepKind.CLOSED,
            at=T0 + 9 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.CLOSED,
            reason="max_reopens_reached",
            outcome=Outcome.RESOLVED_UNSATISFIED,
            escalations=0,
            within_limit=True,
            deferred=False,
        ),
    ]
    assert len(state.timeline) == 16  # reported, dispatched, two rounds of five, the last four
    assert (state.outcome, state.flagged, state.reopen_count, state.rating) == (
        Outcome.RESOLVED_UNSATISFIED,
        True,
        2,
        Rating.UNSATISFIED,
    )
    assert kinds(state.timeline).count(StepKind.REOPENED) == 2


def test_a_satisfied_resident_who_says_the_problem_is_not_solved_reopens_the_incident() -> None:
    incident = normal()
    state = begin(incident)
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.SATISFIED, solved=False), T0 + 5 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.FEEDBACK,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            rating=Rating.SATISFIED,
            solved=False,
        ),
        Step(
            seq=6,
            kind=StepKind.REOPENED,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            reason="not_solved",
            from_level="grid",
            to_level="grid",
        ),
        Step(
            seq=7,
            kind=StepKind.DISPATCHED,
            at=T0 + 5 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.DISPATCHED,
            deadline=T0 + 7 * HOUR,
        ),
    ]
    assert (state.reopen_count, state.rating, state.solved) == (1, Rating.SATISFIED, False)

    accept_and_resolve(state, incident, GRID, T0 + 6 * HOUR)
    closing = apply(state, incident, Feedback(rating=Rating.SATISFIED, solved=True), T0 + 8 * HOUR)
    assert [(s.kind, s.solved, s.outcome) for s in closing] == [
        (StepKind.FEEDBACK, True, None),
        (StepKind.CLOSED, None, Outcome.RESOLVED),
    ]
    assert state.solved is True


def test_feedback_that_does_not_say_whether_solved_closes_as_a_rating_alone_did() -> None:
    incident = normal()
    state = begin(incident)
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.SATISFIED), T0 + 5 * HOUR)

    assert [(s.kind, s.solved, s.outcome) for s in steps] == [
        (StepKind.FEEDBACK, None, None),
        (StepKind.CLOSED, None, Outcome.RESOLVED),
    ]


def test_with_on_unsatisfied_escalate_not_solved_goes_one_level_up_for_that_reason() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(ESCALATE_WHEN_UNSATISFIED, "escalate.yaml"))
    accept_and_resolve(state, incident, GRID, T0 + HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.BASICALLY_SATISFIED, solved=False), T0 + 3 * HOUR)

    assert [(s.kind, s.reason, s.to_level) for s in steps] == [
        (StepKind.FEEDBACK, None, None),
        (StepKind.REOPENED, "not_solved", "street"),
        (StepKind.ESCALATED, "not_solved", "street"),
        (StepKind.DISPATCHED, None, None),
    ]


def test_not_solved_after_the_last_reopen_closes_the_incident_unaccepted_and_flagged() -> None:
    incident = normal()
    state = begin(incident)
    for round_ in range(2):  # the default rule allows two reopens
        accept_and_resolve(state, incident, GRID, T0 + (3 * round_ + 1) * HOUR)
        apply(state, incident, Feedback(rating=Rating.SATISFIED, solved=False), T0 + (3 * round_ + 3) * HOUR)
    accept_and_resolve(state, incident, GRID, T0 + 7 * HOUR)

    steps = apply(state, incident, Feedback(rating=Rating.SATISFIED, solved=False), T0 + 9 * HOUR)

    assert [(s.kind, s.reason, s.outcome) for s in steps] == [
        (StepKind.FEEDBACK, None, None),
        (StepKind.CLOSED, "max_reopens_reached", Outcome.RESOLVED_UNSATISFIED),
    ]
    assert (state.flagged, state.reopen_count) == (True, 2)


def test_an_incident_with_no_feedback_closes_unrated_when_the_window_ends() -> None:
    incident = normal()
    state = begin(incident)
    accept_and_resolve(state, incident, GRID, T0 + HOUR)  # resolved at 2 h: the window ends at 74 h

    assert run_until(state, incident, T0 + 74 * HOUR - SECOND) == []
    steps = run_until(state, incident, T0 + 100 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.CLOSED,
            at=T0 + 74 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.CLOSED,
            reason="no_feedback",
            outcome=Outcome.RESOLVED_UNRATED,
            escalations=0,
            within_limit=True,
            deferred=False,
        )
    ]
    assert (state.outcome, state.rating, state.closed_at) == (Outcome.RESOLVED_UNRATED, None, T0 + 74 * HOUR)


# ---------------------------------------------------------------------- withdrawal


Setup = Callable[[], tuple[IncidentState, Incident, datetime]]


def _dispatched_at_the_street() -> tuple[IncidentState, Incident, datetime]:
    incident = normal()
    state = begin(incident)
    run_until(state, incident, T0 + 2 * HOUR)
    return state, incident, T0 + 3 * HOUR


def _accepted() -> tuple[IncidentState, Incident, datetime]:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + 10 * MINUTE)
    return state, incident, T0 + HOUR


def _paused() -> tuple[IncidentState, Incident, datetime]:
    state, incident, now = _accepted()
    apply(state, incident, Pause(unit_id=GRID), now)
    return state, incident, now + HOUR


def _resolved() -> tuple[IncidentState, Incident, datetime]:
    state, incident, now = _accepted()
    apply(state, incident, Resolve(unit_id=GRID, resolution="fixed"), now)
    return state, incident, now + HOUR


def _overdue() -> tuple[IncidentState, Incident, datetime]:
    incident = urgent()
    state = begin(incident)
    run_until(state, incident, T0 + 2 * HOUR)
    assert state.overdue
    return state, incident, T0 + 2 * HOUR + 30 * MINUTE


@pytest.mark.parametrize(
    ("setup", "status", "level", "unit", "escalations"),
    [
        pytest.param(_dispatched_at_the_street, Status.DISPATCHED, "street", STREET, 1, id="dispatched"),
        pytest.param(_accepted, Status.ACCEPTED, "grid", GRID, 0, id="accepted"),
        pytest.param(_paused, Status.PAUSED, "grid", GRID, 0, id="paused"),
        pytest.param(_resolved, Status.RESOLVED, "grid", GRID, 0, id="resolved"),
        pytest.param(_overdue, Status.DISPATCHED, "city", CITY, 3, id="overdue"),
    ],
)
def test_an_incident_withdrawn_from_any_open_state_closes_as_withdrawn(
    setup: Setup, status: Status, level: str, unit: str, escalations: int
) -> None:
    state, incident, now = setup()
    assert state.status is status
    seq = len(state.timeline) + 1

    steps = apply(state, incident, Withdraw(reason="fixed by a neighbour"), now)

    assert steps == [
        Step(
            seq=seq,
            kind=StepKind.CLOSED,
            at=now,
            level=level,
            unit_id=unit,
            status=Status.CLOSED,
            reason="fixed by a neighbour",
            outcome=Outcome.WITHDRAWN,
            escalations=escalations,
            deferred=status is Status.PAUSED,
        )
    ]
    assert (state.status, state.outcome, state.closed_at, state.level) == (
        Status.CLOSED,
        Outcome.WITHDRAWN,
        now,
        level,
    )
    assert (state.accept_clock, state.resolve_clock, state.feedback_deadline, state.next_reminder_at) == (
        None,
        None,
        None,
        None,
    )
    assert next_due(state) is None
    assert fire_due(state, incident, now + 1000 * HOUR) == []


# ---------------------------------------------------------------------- business calendars

SHANGHAI = ZoneInfo("Asia/Shanghai")

OFFICE_HOURS = """
version: calendar-1
calendars:
  shanghai-office:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
    holidays: [2026-11-30]            # Monday
    extra_working_days: [2026-11-28]  # Saturday, on Monday's hours
rules:
  - name: office
    calendar: shanghai-office
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
"""


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """An instant of 2026 on Shanghai's wall clock."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def test_a_calendar_accept_limit_counts_working_hours_only_and_runs_out_within_them() -> None:
    rules = parse_rule_set(OFFICE_HOURS, "office.yaml")
    office = rules.calendars["shanghai-office"]
    incident = normal()
    reported = local(23, 17)  # Monday 17:00 in Shanghai, one working hour before the evening
    state = begin(incident, rules, reported.astimezone(UTC))

    assert state.accept_deadline == local(24, 10)  # 17:00-18:00 Monday, 09:00-10:00 Tuesday
    assert state.accept_deadline == datetime(2026, 11, 24, 2, tzinfo=UTC)
    assert office.working_between(reported, state.accept_deadline) == 2 * HOUR
    assert next_due(state) == local(24, 9, 30)  # the warning at 90 working minutes
    assert run_until(state, incident, local(24, 9, 29)) == []  # nothing runs out in the night

    steps = run_until(state, incident, local(24, 10))

    assert [(s.kind, s.at, s.deadline) for s in steps] == [
        (StepKind.SLA_WARNING, local(24, 9, 30), local(24, 10)),
        (StepKind.SLA_BREACHED, local(24, 10), local(24, 10)),
        (StepKind.ESCALATED, local(24, 10), None),
        (StepKind.DISPATCHED, local(24, 10), local(24, 15)),  # 10:00-12:00, 13:00-15:00: four hours
    ]
    assert state.level == "street"


def test_a_calendar_resolve_limit_skips_the_weekend_and_a_holiday_and_counts_an_extra_working_day() -> None:
    rules = parse_rule_set(OFFICE_HOURS, "office.yaml")
    incident = normal()
    state = begin(incident, rules, local(27, 16, 30))  # Friday 16:30
    assert state.accept_deadline == local(28, 9, 30)  # 90 minutes on Friday, 30 on the working Saturday

    accepted = apply(state, incident, Accept(unit_id=GRID), local(27, 17))

    # 24 working hours: Friday 1, Saturday 8 (extra day), Sunday none, Monday a holiday, Tuesday 8,
    # Wednesday 7 (09:00-12:00, 13:00-17:00).
    assert accepted[0].deadline == local(2, 17, month=12)
    assert state.resolve_clock is not None
    assert [(w.fraction, w.at) for w in state.resolve_clock.warnings] == [(0.75, local(2, 10, month=12))]
    assert fire_due(state, incident, local(29, 12)) == []  # Sunday
    assert fire_due(state, incident, local(30, 15)) == []  # the holiday
    assert next_due(state) == local(2, 10, month=12)

    steps = run_until(state, incident, local(2, 17, month=12))
    assert [(s.kind, s.clock, s.at) for s in steps][:2] == [
        (StepKind.SLA_WARNING, ClockKind.RESOLVE, local(2, 10, month=12)),
        (StepKind.SLA_BREACHED, ClockKind.RESOLVE, local(2, 17, month=12)),
    ]


def test_a_pause_on_a_calendar_moves_the_deadline_by_the_working_time_paused() -> None:
    rules = parse_rule_set(OFFICE_HOURS, "office.yaml")
    incident = normal()
    state = begin(incident, rules, local(27, 16, 30))
    apply(state, incident, Accept(unit_id=GRID), local(27, 17))

    paused = apply(state, incident, Pause(unit_id=GRID), local(28, 10))  # 2 working hours used
    resumed = apply(state, incident, Resume(unit_id=GRID), local(28, 16))

    assert paused[0].deadline == local(1, 10, month=12)  # the 72 h allowance is wall-clock time
    # 22 working hours left from Saturday 16:00: Saturday 2, Tuesday 8, Wednesday 8, Thursday 4.
    assert resumed[0].deadline == local(3, 14, month=12)
    assert state.paused_total == 6 * HOUR
    assert next_due(state) == local(2, 16, month=12)  # the warning, 16 working hours after resuming
    # The feedback window is wall-clock time too.
    resolved = apply(state, incident, Resolve(unit_id=GRID, resolution="done"), local(1, 11, month=12))
    assert resolved[0].deadline == local(4, 11, month=12)


# ---------------------------------------------------------------------- ladders a rules file defines

MEDIATION = """
version: mediation-1
levels:
  grid_mediator: {unit: "mediator-{grid_id}", description: grid mediator}
  elders:        {unit: "elders-{street_id}", description: respected elders of the street}
  stations:      {unit: "stations-{district_id}", description: "police, judicial and court stations"}
  industry:      {unit: "industry-{category}-{district_id}", description: industry mediation committee}
  panel:         {unit: "panel-{district_id}", description: district expert panel}
rules:
  - name: disputes
    match: {category: [neighbour_dispute]}
    ladder:
      grid_mediator: {accept: 1h, resolve: 1d}
      elders:        {accept: 2h, resolve: 2d}
      stations:      {accept: 2h, resolve: 3d, notify: ["justice-{district_id}"]}
      industry:      {accept: 4h, resolve: 5d}
      panel:         {accept: 8h, resolve: 10d}
  - name: enterprise
    match: {category: [enterprise]}
    ladder:
      district: {accept: 1h, resolve: 1d, notify: ["market-supervision-{district_id}"]}
      city:     {accept: 2h, resolve: 2d}
  - name: drains
    match: {category: [drain]}
    ladder:
      grid:     {accept: 1h, resolve: 1d}
      district: {accept: 2h, resolve: 2d}
  - name: default
    ladder:
      grid: {accept: 2h, resolve: 1d}
"""


def test_a_five_step_mediation_ladder_climbs_through_every_step_with_units_from_its_templates() -> None:
    incident = make_incident(category="neighbour_dispute", incident_id=INCIDENT_ID)
    state = begin(incident, parse_rule_set(MEDIATION, "mediation.yaml"))

    run_until(state, incident, T0 + 17 * HOUR)

    dispatches = [
        (s.level, s.unit_id, s.at, s.deadline) for s in state.timeline if s.kind is StepKind.DISPATCHED
    ]
    assert dispatches == [
        ("grid_mediator", "mediator-g-nanjing-07", T0, T0 + HOUR),
        ("elders", "elders-s-nanjing-east", T0 + HOUR, T0 + 3 * HOUR),
        ("stations", "stations-d-huangpu", T0 + 3 * HOUR, T0 + 5 * HOUR),
        ("industry", "industry-neighbour_dispute-d-huangpu", T0 + 5 * HOUR, T0 + 9 * HOUR),
        ("panel", "panel-d-huangpu", T0 + 9 * HOUR, T0 + 17 * HOUR),
    ]
    assert [(s.from_level, s.to_level) for s in state.timeline if s.kind is StepKind.ESCALATED] == [
        ("grid_mediator", "elders"),
        ("elders", "stations"),
        ("stations", "industry"),
        ("industry", "panel"),
    ]
    # The whistle blew once, right after the stations got the incident.
    notified = [s for s in state.timeline if s.kind is StepKind.NOTIFIED]
    assert notified == [
        Step(
            seq=11,
            kind=StepKind.NOTIFIED,
            at=T0 + 3 * HOUR,
            level="stations",
            unit_id="justice-d-huangpu",
            status=Status.DISPATCHED,
            reason="level_reached",
        )
    ]
    assert state.timeline[9].kind is StepKind.DISPATCHED and state.timeline[9].level == "stations"
    assert (state.level, state.holder_unit, state.overdue, state.escalations) == (
        "panel",
        "panel-d-huangpu",
        True,
        4,
    )
    assert state.timeline[-1] == Step(
        seq=22,
        kind=StepKind.OVERDUE,
        at=T0 + 17 * HOUR,
        level="panel",
        unit_id="panel-d-huangpu",
        status=Status.DISPATCHED,
        reason="accept_timeout",
    )
    assert next_due(state) == T0 + 21 * HOUR  # the rule's default 4 h reminders


def test_enterprise_problems_go_straight_to_the_district_blow_the_whistle_and_skip_to_the_city() -> None:
    incident = make_incident(category="enterprise", priority=Priority.HIGH, incident_id=INCIDENT_ID)
    rules = parse_rule_set(MEDIATION, "mediation.yaml")
    state, _ = report(incident, T0)

    started = start(state, incident, rules.snapshot_for(incident), T0)

    assert started == [
        Step(
            seq=2,
            kind=StepKind.DISPATCHED,
            at=T0,
            level="district",
            unit_id=DISTRICT,
            status=Status.DISPATCHED,
            deadline=T0 + HOUR,
        ),
        Step(
            seq=3,
            kind=StepKind.NOTIFIED,
            at=T0,
            level="district",
            unit_id="market-supervision-d-huangpu",
            status=Status.DISPATCHED,
            reason="level_reached",
        ),
    ]
    steps = run_until(state, incident, T0 + HOUR)
    assert [(s.kind, s.from_level, s.to_level, s.unit_id) for s in steps][-2:] == [
        (StepKind.ESCALATED, "district", "city", DISTRICT),
        (StepKind.DISPATCHED, None, None, CITY),
    ]
    assert (state.level, state.level_index, state.holder_unit) == ("city", 1, CITY)


def test_a_location_without_a_city_goes_to_the_unit_named_city() -> None:
    incident = make_incident(category="enterprise", city=None, incident_id=INCIDENT_ID)
    state = begin(incident, parse_rule_set(MEDIATION, "mediation.yaml"))

    apply(state, incident, RequestEscalation(unit_id=DISTRICT, reason=EscalationRequestReason.REQUESTED), T0)

    assert (state.level, state.holder_unit) == ("city", "city")


def test_a_rule_that_skips_a_level_escalates_from_the_grid_straight_to_the_district() -> None:
    incident = make_incident(category="drain", incident_id=INCIDENT_ID)
    state = begin(incident, parse_rule_set(MEDIATION, "mediation.yaml"))

    steps = run_until(state, incident, T0 + HOUR)

    assert [(s.kind, s.from_level, s.to_level) for s in steps][-2:] == [
        (StepKind.ESCALATED, "grid", "district"),
        (StepKind.DISPATCHED, None, None),
    ]
    assert (state.level, state.holder_unit, state.accept_deadline) == ("district", DISTRICT, T0 + 3 * HOUR)


# ---------------------------------------------------------------------- the rule snapshot


def test_an_incident_keeps_its_rule_snapshot_and_start_refuses_a_second_start() -> None:
    incident = normal()
    state = begin(incident)
    stricter = BUILTIN.model_copy(
        update={
            "version": "2",
            "rules": [
                Rule(
                    name="strict",
                    ladder={"grid": LevelLimits(accept=timedelta(minutes=10), resolve=HOUR)},
                )
            ],
        }
    )
    before = state.model_dump()

    with pytest.raises(ValueError, match=f"incident {INCIDENT_ID} has already started on rule default"):
        start(state, incident, stricter.snapshot_for(incident), T0 + MINUTE)

    assert state.model_dump() == before
    run_until(state, incident, T0 + 30 * MINUTE)
    assert state.rule is not None and (state.rule.rule.name, state.rule.rules_version) == (
        "default",
        "2026-11-1",
    )
    assert state.level == "grid"  # still on the 2 h accept limit of its snapshot


def test_a_state_carried_over_as_json_continues_exactly_like_the_original() -> None:
    rules = parse_rule_set(OFFICE_HOURS, "office.yaml")
    incident = normal()
    state = begin(incident, rules, local(27, 16, 30))
    apply(state, incident, Accept(unit_id=GRID), local(27, 17))
    apply(state, incident, Pause(unit_id=GRID), local(28, 10))

    carried = IncidentState.model_validate_json(state.model_dump_json())  # as continue-as-new does

    for copy in (state, carried):
        apply(copy, incident, Resume(unit_id=GRID), local(28, 16))
        run_until(copy, incident, local(10, 12, month=12))
    assert carried.timeline == state.timeline
    assert carried.model_dump() == state.model_dump()
    assert state.level == "street"


# ---------------------------------------------------------------------- what the commands carry


def test_an_escalation_request_keeps_the_handlers_note_and_when_the_app_says_it_happened() -> None:
    incident = normal()
    state = begin(incident)
    said = T0 + 9 * MINUTE
    request = RequestEscalation(
        unit_id=GRID, reason=EscalationRequestReason.NOT_RESPONSIBLE, note="Power grid.", at=said
    )

    escalated, _ = apply(state, incident, request, T0 + 10 * MINUTE)

    assert (escalated.kind, escalated.note, escalated.event_at) == (StepKind.ESCALATED, "Power grid.", said)


def test_a_withdrawal_keeps_when_the_app_says_it_happened() -> None:
    incident = normal()
    state = begin(incident)

    (closed,) = apply(state, incident, Withdraw(reason="duplicate", at=T0 + MINUTE), T0 + 2 * MINUTE)

    assert (closed.outcome, closed.event_at) == (Outcome.WITHDRAWN, T0 + MINUTE)


def test_a_pause_running_when_the_incident_is_withdrawn_counts_in_the_paused_time() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0)
    apply(state, incident, Pause(unit_id=GRID, reason="waiting for parts"), T0 + HOUR)

    apply(state, incident, Withdraw(), T0 + 11 * HOUR)

    assert state.paused_total == 10 * HOUR


def test_what_is_due_after_a_gap_fires_in_time_order() -> None:
    # Overdue at the city, then accepted there: its next reminder (hourly) falls before the resolve
    # clock's warning; a worker back after a long outage gives the reminder first.
    incident = urgent()
    state = begin(incident)
    run_until(state, incident, T0 + 2 * HOUR)
    assert (state.level, state.overdue) == ("city", True)
    reminder_due = state.next_reminder_at
    apply(state, incident, Accept(unit_id=CITY), T0 + 2 * HOUR)
    assert state.resolve_clock is not None and reminder_due is not None
    warning_due = state.resolve_clock.warnings[0].at
    assert reminder_due < warning_due

    steps = fire_due(state, incident, warning_due + HOUR)

    assert kinds(steps) == [StepKind.OVERDUE_REMINDER, StepKind.SLA_WARNING]
    due = next_due(state)
    assert due is not None and due > warning_due + HOUR


# ---------------------------------------------------------------------- transfers


RIGHT_DEPARTMENT = "g-nanjing-08"

CONTINUING_TRANSFERS = """
version: transfer-1
rules:
  - name: continuing
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
    transfer: {clocks: continue, max_per_level: 1}
"""


def test_a_misdispatched_incident_is_transferred_to_the_right_unit_with_a_fresh_accept_clock() -> None:
    incident = normal()
    state = begin(incident)

    steps = apply(state, incident, Transfer(to_unit=RIGHT_DEPARTMENT, reason="not our street"), T0 + HOUR)

    assert steps == [
        Step(
            seq=3,
            kind=StepKind.TRANSFERRED,
            at=T0 + HOUR,
            level="grid",
            unit_id=RIGHT_DEPARTMENT,
            status=Status.DISPATCHED,
            reason="not our street",
            from_unit=GRID,
        ),
        Step(
            seq=4,
            kind=StepKind.DISPATCHED,
            at=T0 + HOUR,
            level="grid",
            unit_id=RIGHT_DEPARTMENT,
            status=Status.DISPATCHED,
            deadline=T0 + 3 * HOUR,  # the whole 2h accept limit, from the transfer
        ),
    ]
    assert (state.holder_unit, state.transfers, state.level_transfers, state.escalations) == (
        RIGHT_DEPARTMENT,
        1,
        1,
        0,
    )


def test_the_holder_may_transfer_an_accepted_incident_and_the_new_unit_must_accept_it() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)

    apply(
        state,
        incident,
        Transfer(unit_id=GRID, to_unit=RIGHT_DEPARTMENT, reason="water, not lamps"),
        T0 + 2 * HOUR,
    )

    assert (state.status, state.holder_unit, state.resolve_clock) == (
        Status.DISPATCHED,
        RIGHT_DEPARTMENT,
        None,
    )
    assert state.accept_deadline == T0 + 4 * HOUR
    accepted = apply(state, incident, Accept(unit_id=RIGHT_DEPARTMENT), T0 + 3 * HOUR)
    assert accepted[0].within_limit is True


def test_with_continue_the_new_unit_gets_what_is_left_of_the_levels_accept_limit() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(CONTINUING_TRANSFERS, "transfer.yaml"))

    assert kinds(run_until(state, incident, T0 + 100 * MINUTE)) == [StepKind.SLA_WARNING]  # at 90 minutes
    apply(state, incident, Transfer(to_unit=RIGHT_DEPARTMENT, reason="misdispatched"), T0 + 100 * MINUTE)

    # Reached the grid at T0 with 2h to accept: the new unit has the last 20 minutes.
    assert state.accept_deadline == T0 + 2 * HOUR
    fired = run_until(state, incident, T0 + 2 * HOUR)
    assert kinds(fired) == [StepKind.SLA_BREACHED, StepKind.ESCALATED, StepKind.DISPATCHED]
    assert (state.level, state.holder_unit, state.level_transfers) == ("street", STREET, 0)
    # The 75% warning was given to the first unit; the new one is not warned again.
    assert kinds(state.timeline).count(StepKind.SLA_WARNING) == 1


def test_a_reopened_incident_goes_back_to_the_unit_it_was_transferred_to() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Transfer(to_unit=RIGHT_DEPARTMENT, reason="misdispatched"), T0 + HOUR)
    accept_and_resolve(state, incident, RIGHT_DEPARTMENT, T0 + 2 * HOUR)

    apply(state, incident, Feedback(rating=Rating.UNSATISFIED), T0 + 5 * HOUR)

    assert (state.status, state.holder_unit) == (Status.DISPATCHED, RIGHT_DEPARTMENT)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (Transfer(unit_id=STREET, to_unit=RIGHT_DEPARTMENT, reason="x"), "unit s-nanjing-east does not hold"),
        (Transfer(to_unit=GRID, reason="x"), f"is already held by {GRID}"),
    ],
)
def test_a_transfer_by_another_unit_or_to_the_holder_is_refused(command: Transfer, reason: str) -> None:
    incident = normal()
    state = begin(incident)
    with pytest.raises(Refused, match=reason):
        apply(state, incident, command, T0 + HOUR)
    assert len(state.timeline) == 2


def test_transfers_stop_at_the_rules_limit_per_level_and_paused_incidents_are_not_transferred() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(CONTINUING_TRANSFERS, "transfer.yaml"))
    apply(state, incident, Transfer(to_unit=RIGHT_DEPARTMENT, reason="misdispatched"), T0 + MINUTE)
    with pytest.raises(Refused, match="transferred 1 times at grid, the rule's limit: pass it up instead"):
        apply(state, incident, Transfer(to_unit="g-elsewhere", reason="again"), T0 + 2 * MINUTE)

    apply(state, incident, Accept(unit_id=RIGHT_DEPARTMENT), T0 + 3 * MINUTE)
    apply(state, incident, Pause(unit_id=RIGHT_DEPARTMENT, reason="parts"), T0 + 4 * MINUTE)
    with pytest.raises(Refused, match="it is paused, not dispatched or accepted"):
        apply(state, incident, Transfer(to_unit=GRID, reason="x"), T0 + 5 * MINUTE)


# ---------------------------------------------------------------------- extensions

EXTENSIONS = """
version: extension-1
rules:
  - name: extending
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 4h, resolve: 2d}
    extension: {approver: above, decide_within: 2h, max_count: 1, max_extra: 12h}
"""


def extending() -> tuple[Incident, IncidentState]:
    """An incident on the `extending` rule, accepted at the grid an hour after its report."""
    incident = normal()
    state = begin(incident, parse_rule_set(EXTENSIONS, "extension.yaml"))
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    return incident, state


def test_a_granted_extension_moves_the_resolve_deadline_by_the_time_asked_for() -> None:
    incident, state = extending()
    assert state.resolve_deadline == T0 + 25 * HOUR

    asked = apply(state, incident, RequestExtension(unit_id=GRID, extra="8h", reason="parts"), T0 + 2 * HOUR)
    granted = apply(state, incident, GrantExtension(unit_id=STREET, note="fine"), T0 + 3 * HOUR)

    assert asked == [
        Step(
            seq=4,
            kind=StepKind.EXTENSION_REQUESTED,
            at=T0 + 2 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            reason="parts",
            extension="8h",
            deadline=T0 + 4 * HOUR,  # the approver has 2h to decide
        )
    ]
    assert granted == [
        Step(
            seq=5,
            kind=StepKind.EXTENSION_GRANTED,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.ACCEPTED,
            actor=STREET,  # the level above approves
            extension="8h",
            deadline=T0 + 33 * HOUR,
            note="fine",
        )
    ]
    assert (state.resolve_deadline, state.extensions, state.extension) == (T0 + 33 * HOUR, 1, None)


def test_a_refused_or_undecided_extension_leaves_the_deadline_where_it_was() -> None:
    incident, state = extending()
    apply(state, incident, RequestExtension(unit_id=GRID, extra="8h", reason="parts"), T0 + 2 * HOUR)
    refused = apply(state, incident, RefuseExtension(unit_id=STREET, reason="do it today"), T0 + 3 * HOUR)
    assert [(s.kind, s.actor, s.reason) for s in refused] == [
        (StepKind.EXTENSION_REFUSED, STREET, "do it today")
    ]
    assert (state.resolve_deadline, state.extensions) == (T0 + 25 * HOUR, 0)

    apply(state, incident, RequestExtension(unit_id=GRID, extra="4h", reason="still parts"), T0 + 4 * HOUR)
    fired = run_until(state, incident, T0 + 6 * HOUR)  # nobody answers within 2h
    assert [(s.kind, s.reason, s.at) for s in fired] == [
        (StepKind.EXTENSION_REFUSED, "undecided", T0 + 6 * HOUR)
    ]
    assert (state.resolve_deadline, state.extension) == (T0 + 25 * HOUR, None)


def test_a_pending_extension_lapses_when_the_incident_is_resolved_or_moves_on() -> None:
    incident, state = extending()
    apply(state, incident, RequestExtension(unit_id=GRID, extra="8h", reason="parts"), T0 + 2 * HOUR)

    steps = apply(state, incident, Resolve(unit_id=GRID, resolution="done anyway"), T0 + 3 * HOUR)

    assert [(s.kind, s.reason) for s in steps] == [
        (StepKind.EXTENSION_REFUSED, "lapsed"),
        (StepKind.RESOLVED, None),
    ]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (
            RequestExtension(unit_id=GRID, extra="13h", reason="x"),
            r"13h is more than one extension may add \(12h\)",
        ),
        (RequestExtension(unit_id=STREET, extra="1h", reason="x"), "unit s-nanjing-east does not hold"),
        (GrantExtension(unit_id=STREET), "has no extension request to decide"),
        (RequestExtension(unit_id=GRID, extra="1wd", reason="x"), "ask in hours or days, not 1wd"),
    ],
)
def test_extension_requests_and_decisions_the_rule_does_not_allow_are_refused(
    command: RequestExtension | GrantExtension, reason: str
) -> None:
    incident, state = extending()
    with pytest.raises(Refused, match=reason):
        apply(state, incident, command, T0 + 2 * HOUR)


def test_only_the_approver_decides_and_the_rule_caps_how_many_extensions() -> None:
    incident, state = extending()
    apply(state, incident, RequestExtension(unit_id=GRID, extra="1h", reason="x"), T0 + 2 * HOUR)
    with pytest.raises(Refused, match="already has an extension request waiting for s-nanjing-east"):
        apply(state, incident, RequestExtension(unit_id=GRID, extra="1h", reason="y"), T0 + 2 * HOUR)
    with pytest.raises(Refused, match=r"unit g-nanjing-07 does not decide .* \(s-nanjing-east does\)"):
        apply(state, incident, GrantExtension(unit_id=GRID), T0 + 2 * HOUR)
    apply(state, incident, GrantExtension(unit_id=STREET), T0 + 2 * HOUR)
    with pytest.raises(Refused, match="has had the 1 extension"):
        apply(state, incident, RequestExtension(unit_id=GRID, extra="1h", reason="z"), T0 + 3 * HOUR)


def test_at_the_top_level_nobody_above_approves_an_extension() -> None:
    incident = normal()
    state = begin(incident, parse_rule_set(EXTENSIONS, "extension.yaml"))
    apply(state, incident, RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED), T0)
    apply(state, incident, Accept(unit_id=STREET), T0 + HOUR)
    with pytest.raises(Refused, match="at the top level \\(street\\): nobody above approves an extension"):
        apply(state, incident, RequestExtension(unit_id=STREET, extra="1h", reason="x"), T0 + 2 * HOUR)


# ---------------------------------------------------------------------- verification and rework

INSPECTOR = f"inspector-{GRID}"


def verifying() -> tuple[Incident, IncidentState]:
    """An incident on the `verifying` rule, accepted at T0 + 1h and resolved at T0 + 2h."""
    incident = normal()
    state = begin(incident, parse_rule_set(VERIFYING, "verify.yaml"))
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    apply(state, incident, Resolve(unit_id=GRID, resolution="new bulb"), T0 + 2 * HOUR)
    return incident, state


def test_a_resolution_waits_for_the_inspector_before_the_resident_is_asked() -> None:
    incident, state = verifying()
    assert (state.status, state.inspector, state.feedback_deadline) == (Status.VERIFYING, INSPECTOR, None)
    assert state.timeline[-1].deadline == T0 + 6 * HOUR  # the inspector's 4h
    with pytest.raises(Refused, match="it is verifying, not resolved"):
        apply(state, incident, Feedback(rating=Rating.SATISFIED), T0 + 3 * HOUR)

    steps = apply(state, incident, Verify(unit_id=INSPECTOR, note="lit"), T0 + 3 * HOUR)

    assert steps == [
        Step(
            seq=5,
            kind=StepKind.VERIFIED,
            at=T0 + 3 * HOUR,
            level="grid",
            unit_id=GRID,
            status=Status.RESOLVED,
            actor=INSPECTOR,
            note="lit",
            deadline=T0 + 75 * HOUR,  # the resident's 72h window opens now
        )
    ]
    closing = apply(state, incident, Feedback(rating=Rating.SATISFIED, solved=True), T0 + 4 * HOUR)
    assert closing[-1].outcome is Outcome.RESOLVED


def test_a_rejected_fix_is_rework_for_the_unit_that_resolved_it() -> None:
    incident, state = verifying()

    steps = apply(state, incident, Reject(unit_id=INSPECTOR, reason="still dark"), T0 + 3 * HOUR)

    assert [(s.kind, s.actor, s.reason, s.status, s.deadline) for s in steps] == [
        (StepKind.REJECTED, INSPECTOR, "still dark", Status.ACCEPTED, T0 + 27 * HOUR)  # a new 1d
    ]
    assert (state.holder_unit, state.reworks, state.inspector) == (GRID, 1, None)
    apply(state, incident, Resolve(unit_id=GRID, resolution="rewired"), T0 + 4 * HOUR)
    assert state.status is Status.VERIFYING
    verified = apply(state, incident, Verify(unit_id=INSPECTOR), T0 + 5 * HOUR)
    assert verified[-1].status is Status.RESOLVED


def test_a_late_verification_is_overdue_and_reminded_not_escalated() -> None:
    incident, state = verifying()

    fired = run_until(state, incident, T0 + 11 * HOUR)

    assert [(s.kind, s.clock, s.reason) for s in fired] == [
        (StepKind.SLA_WARNING, ClockKind.VERIFY, None),  # at 75% of 4h
        (StepKind.SLA_BREACHED, ClockKind.VERIFY, None),
        (StepKind.OVERDUE, None, "verify_timeout"),
        (StepKind.OVERDUE_REMINDER, None, None),  # every 4h (the rule's overdue_reminder)
    ]
    assert (state.level, state.status, state.escalations) == ("grid", Status.VERIFYING, 0)
    apply(state, incident, Verify(unit_id=INSPECTOR), T0 + 11 * HOUR)
    assert (state.overdue, state.next_reminder_at) == (False, None)


def test_with_on_timeout_escalate_a_late_verification_sends_the_case_up_a_level() -> None:
    incident = normal()
    rules = parse_rule_set(VERIFYING.replace("within: 4h}", "within: 4h, on_timeout: escalate}"), "v.yaml")
    state = begin(incident, rules)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    apply(state, incident, Resolve(unit_id=GRID, resolution="new bulb"), T0 + 2 * HOUR)

    fired = run_until(state, incident, T0 + 6 * HOUR)

    assert [(s.kind, s.reason) for s in fired] == [
        (StepKind.SLA_WARNING, None),
        (StepKind.SLA_BREACHED, None),
        (StepKind.ESCALATED, "verify_timeout"),
        (StepKind.DISPATCHED, None),
    ]
    assert (state.level, state.status, state.inspector, state.verify_clock) == (
        "street",
        Status.DISPATCHED,
        None,
        None,
    )


def test_only_the_inspector_verifies_and_only_a_verifying_incident() -> None:
    incident, state = verifying()
    with pytest.raises(Refused, match=rf"unit {GRID} does not verify .* \({INSPECTOR} does\)"):
        apply(state, incident, Verify(unit_id=GRID), T0 + 3 * HOUR)
    plain = begin(normal())
    with pytest.raises(Refused, match="it is dispatched, not verifying"):
        apply(plain, normal(), Verify(unit_id=INSPECTOR), T0 + HOUR)


def test_verification_levels_must_be_on_the_ladder() -> None:
    text = VERIFYING.replace("within: 4h}", "within: 4h, levels: [district]}")
    with pytest.raises(RulesFileError, match=r"verification levels \['district'\] are not on its ladder"):
        parse_rule_set(text, "verify.yaml")


def test_an_overdue_incident_resolved_without_verification_stays_marked_overdue() -> None:
    incident = normal()
    state = begin(incident)
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    state.overdue = True  # as the top of a ladder leaves it

    apply(state, incident, Resolve(unit_id=GRID, resolution="done"), T0 + 2 * HOUR)

    assert (state.status, state.overdue, state.reminding) == (Status.RESOLVED, True, False)
