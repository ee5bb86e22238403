"""Properties of the lifecycle core, found by driving it with random command sequences and clock jumps.

A hypothesis state machine reports and starts one incident on one of several rule sets (the built-in
rules for a normal and an urgent incident; a tight rule with three warnings, a small pause allowance and
one reopen that escalates; a rule on a business calendar; a custom ladder with file-defined levels and
whistles), then sends it every lifecycle command, from the holding unit and from units that do not hold
it, and lets time pass in jumps of seconds to days, firing what is due. After every step it checks what
must always hold: the timeline's numbering and order, one holder at one level of the ladder, counts that
agree with the timeline, refused commands that change nothing, closed incidents that never change again,
honest due instants and the pause allowance. At the end it replays the run on a state read back from
JSON before every action (what continue-as-new carries) and expects the same incident.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident, Outcome, Priority, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    IncidentState,
    LifecycleCommand,
    Pause,
    Progress,
    Refused,
    RequestEscalation,
    Resolve,
    Resume,
    Step,
    StepKind,
    Withdraw,
)
from gridflow.domain.rules import RuleSet, RuleSnapshot, builtin_rule_set, parse_rule_set
from gridflow.domain.rules.explain import explain
from tests.conftest import make_incident

TIGHT_RULES = """
version: props-tight
rules:
  - name: tight
    ladder:
      grid:     {accept: 10m, resolve: 1h}
      street:   {accept: 15m, resolve: 2h}
      district: {accept: 30m, resolve: 4h, max_pause: 5m}
    warn_at: [0.5, 0.75, 0.9]
    max_pause: 20m
    overdue_reminder: 30m
    feedback: {window: 1h, on_unsatisfied: escalate, max_reopens: 1}
"""

CALENDAR_RULES = """
version: props-calendar
calendars:
  shanghai-office:
    timezone: Asia/Shanghai
    working_hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
    holidays: [2026-11-25]
    extra_working_days: [2026-11-28]
rules:
  - name: office-hours
    calendar: shanghai-office
    ladder:
      grid:     {accept: 1h, resolve: 4h}
      street:   {accept: 2h, resolve: 8h, warn_at: [0.25, 0.5]}
      district: {accept: 4h, resolve: 2d, calendar: null}
    warn_at: 0.5
    max_pause: 4h
    overdue_reminder: 2h
    feedback: {window: 48h, on_unsatisfied: reopen_same_level, max_reopens: 2}
"""

CUSTOM_LADDER_RULES = """
version: props-custom
levels:
  elders: {unit: "elders-{street_id}", description: respected elders of the street}
  mediation: {unit: "mediation-{district_id}-{category}"}
rules:
  - name: neighbourhood
    ladder:
      grid:      {accept: 30m, resolve: 2h}
      elders:    {accept: 1h, resolve: 6h, notify: ["market-supervision-{district_id}"]}
      street:    {accept: 1h, resolve: 8h, max_pause: 1h}
      mediation: {accept: 2h, resolve: 1d, notify: ["whistle-{city_id}", "hotline-{priority}"]}
    warn_at: [0.75]
    max_pause: 3h
    overdue_reminder: 3h
    feedback: {window: 24h, on_unsatisfied: escalate, max_reopens: 2}
"""


@dataclass(frozen=True)
class Case:
    """One rule set the machine runs an incident on, and the incident's priority and category there."""

    label: str
    rules: RuleSet
    priority: Priority
    category: str
    rule_name: str


BUILTIN = builtin_rule_set()
CASES = (
    Case("built-in, normal", BUILTIN, Priority.NORMAL, "street_lamp", "default"),
    Case("built-in, urgent", BUILTIN, Priority.URGENT, "water_leak", "urgent"),
    Case("tight", parse_rule_set(TIGHT_RULES, "tight.yaml"), Priority.HIGH, "street_lamp", "tight"),
    Case(
        "calendar",
        parse_rule_set(CALENDAR_RULES, "calendar.yaml"),
        Priority.NORMAL,
        "elevator",
        "office-hours",
    ),
    Case(
        "custom ladder",
        parse_rule_set(CUSTOM_LADDER_RULES, "custom.yaml"),
        Priority.LOW,
        "noise",
        "neighbourhood",
    ),
)

STRANGER = "u-stranger"

# Mostly the holding unit, sometimes another (hypothesis shrinks towards the holder).
BY_HOLDER = st.sampled_from([True, True, True, False])
# Unsatisfied twice as often as each other rating, so that runs reach reopens and the reopen limit.
RATINGS = st.sampled_from(
    [Rating.UNSATISFIED, Rating.SATISFIED, Rating.UNSATISFIED, Rating.BASICALLY_SATISFIED]
)
WITHDRAWS = st.sampled_from([False] * 7 + [True])  # one resident in eight withdraws
OTHER_UNIT = st.integers(min_value=0, max_value=16)
JUMPS = st.one_of(
    st.integers(min_value=1, max_value=120),  # seconds
    st.integers(min_value=1, max_value=240).map(lambda minutes: minutes * 60),
    st.integers(min_value=1, max_value=72).map(lambda hours: hours * 3600),
    st.integers(min_value=1, max_value=4 * 24 * 3600),  # anything up to four days
).map(lambda seconds: timedelta(seconds=seconds))


def note(value: str) -> None:
    """Count what runs reach (shown by --hypothesis-show-statistics); nothing outside a hypothesis run."""
    if currently_in_test_context():
        event(value)


@dataclass(frozen=True)
class Action:
    """What the machine did at an instant: a command (None: fire what is due)."""

    at: datetime
    command: LifecycleCommand | None


class LifecycleMachine(RuleBasedStateMachine):
    """One incident, driven by random commands and clock jumps through the lifecycle core."""

    case: Case
    incident: Incident
    snapshot: RuleSnapshot
    state: IncidentState
    now: datetime
    started_at: datetime

    def __init__(self) -> None:
        super().__init__()
        self.closed_dump: dict[str, object] | None = None
        self.pause_allowance: timedelta = timedelta(0)  # the largest allowance of a level it paused at
        self.log: list[Action] = []

    # ------------------------------------------------------------------ set-up

    @initialize(
        case=st.sampled_from(CASES),
        city=st.sampled_from(["c-shanghai", None]),
        offset=st.integers(min_value=0, max_value=7 * 24 * 3600),
    )
    def report_and_start(self, case: Case, city: str | None, offset: int) -> None:
        self.case = case
        self.incident = make_incident(
            priority=case.priority, category=case.category, city=city, incident_id="inc-props"
        )
        self.snapshot = case.rules.snapshot_for(self.incident)
        assert self.snapshot.rule.name == case.rule_name
        self.now = self.started_at = self.incident.reported_at + timedelta(seconds=offset)
        self.state, reported = lifecycle.report(self.incident, self.now)
        assert [step.kind for step in reported] == [StepKind.REPORTED]
        started = lifecycle.start(self.state, self.incident, self.snapshot, self.now)
        assert started[0].kind is StepKind.DISPATCHED
        assert started[0].level == self.snapshot.rule.levels[0]
        assert self.state.timeline == [*reported, *started]
        note(f"rules: {case.label}")

    # ------------------------------------------------------------------ helpers

    @property
    def levels(self) -> list[str]:
        return self.snapshot.rule.levels

    def unit(self, by_holder: bool, other: int) -> str:
        """The holding unit, or one that does not hold the incident (another level's, a whistle's)."""
        if by_holder and self.state.holder_unit is not None:
            return self.state.holder_unit
        candidates = [self.snapshot.unit_for(level, self.incident) for level in self.levels]
        for level in self.levels:
            candidates += self.snapshot.notified_units(level, self.incident)
        others = [unit for unit in [*candidates, STRANGER] if unit != self.state.holder_unit]
        return others[other % len(others)]

    def allowed(self, command: LifecycleCommand) -> bool:
        """The README's word on whether a command may be applied now, independent of checks.py."""
        state = self.state
        if not state.is_open:
            return False
        if isinstance(command, Feedback):
            return state.status is Status.RESOLVED
        if isinstance(command, Withdraw):
            return True
        if command.unit_id != state.holder_unit:
            return False
        assert state.level is not None
        match command:
            case Accept():
                return state.status is Status.DISPATCHED
            case Progress() | Resolve():
                return state.status in (Status.ACCEPTED, Status.PAUSED)
            case RequestEscalation():
                below_top = state.level_index < len(self.levels) - 1
                return below_top and state.status in (Status.DISPATCHED, Status.ACCEPTED, Status.PAUSED)
            case Pause():
                allowance = self.snapshot.rule.max_pause_for(state.level)
                return state.status is Status.ACCEPTED and state.paused_total < allowance
            case Resume():
                return state.status is Status.PAUSED
        raise AssertionError(f"not a lifecycle command: {command!r}")  # pragma: no cover

    def command(self, command: LifecycleCommand) -> None:
        """Apply a command at the current instant; refused or not, check what it did."""
        before = self.state.model_dump()
        allowed = self.allowed(command)
        was_closed = not self.state.is_open
        reason = lifecycle.refusal(self.state, command)
        mark = len(self.state.timeline)
        try:
            steps = lifecycle.apply(self.state, self.incident, command, self.now)
        except Refused as refused:
            assert not allowed, f"{command!r} was refused: {refused.reason}"
            assert reason == refused.reason, "refusal() and apply() disagree on the reason"
            assert self.state.model_dump() == before, "a refused command changed the state"
            note(f"refused: {type(command).__name__}")
        else:
            assert reason is None, f"apply() took a command refusal() refuses: {reason}"
            assert allowed, f"{command!r} should have been refused in status {before['status']}"
            assert not was_closed, "a closed incident took a command"
            assert steps, "an applied command added no step"
            assert steps == self.state.timeline[mark:]
            assert all(step.at == self.now for step in steps)
            if isinstance(command, Pause):
                assert self.state.level is not None
                allowance = self.snapshot.rule.max_pause_for(self.state.level)
                self.pause_allowance = max(self.pause_allowance, allowance)
            for step in steps:
                note(f"step: {step.kind.value}")
        self.log.append(Action(self.now, command))

    def fire(self) -> list[Step]:
        """Fire what is due at the current instant, and check it."""
        was_closed = not self.state.is_open
        mark = len(self.state.timeline)
        steps = lifecycle.fire_due(self.state, self.incident, self.now)
        self.log.append(Action(self.now, None))
        assert steps == self.state.timeline[mark:]
        assert all(step.at == self.now for step in steps)
        if was_closed:
            assert steps == [], "time changed a closed incident"
        due = lifecycle.next_due(self.state)
        assert due is None or due > self.now, f"after firing at {self.now}, {due} is still due"
        assert lifecycle.fire_due(self.state, self.incident, self.now) == [], "firing twice did more"
        for step in steps:
            note(f"step: {step.kind.value}")
            if step.kind is StepKind.RESUMED and step.reason == "pause_cap_reached":
                assert step.level is not None
                # The cap ends the pause exactly when the allowance is used up.
                assert self.state.paused_total == self.snapshot.rule.max_pause_for(step.level)
        return steps

    # ------------------------------------------------------------------ commands

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT)
    def accept(self, by_holder: bool, other: int) -> None:
        self.command(Accept(unit_id=self.unit(by_holder, other), handler="Officer Zhang"))

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT)
    def progress(self, by_holder: bool, other: int) -> None:
        self.command(Progress(unit_id=self.unit(by_holder, other), note="parts ordered"))

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT, reason=st.sampled_from(EscalationRequestReason))
    def request_escalation(self, by_holder: bool, other: int, reason: EscalationRequestReason) -> None:
        self.command(RequestEscalation(unit_id=self.unit(by_holder, other), reason=reason))

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT)
    def pause(self, by_holder: bool, other: int) -> None:
        self.command(Pause(unit_id=self.unit(by_holder, other), reason="waiting for the resident"))

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT)
    def resume(self, by_holder: bool, other: int) -> None:
        self.command(Resume(unit_id=self.unit(by_holder, other)))

    @rule(by_holder=BY_HOLDER, other=OTHER_UNIT)
    def resolve(self, by_holder: bool, other: int) -> None:
        self.command(Resolve(unit_id=self.unit(by_holder, other), resolution="lamp replaced"))

    @rule(rating=RATINGS, withdraws=WITHDRAWS)
    def resident(self, rating: Rating, withdraws: bool) -> None:
        """The resident rates the incident or, less often, withdraws it (which ends the run's story)."""
        self.command(Withdraw(reason="reported twice") if withdraws else Feedback(rating=rating))

    @rule(rating=RATINGS, pause_first=st.booleans())
    def the_loop_moves_on(self, rating: Rating, pause_first: bool) -> None:
        """What the holder or the resident would do next, so that runs reach resolution and feedback."""
        holder = self.state.holder_unit or STRANGER
        match self.state.status:
            case Status.DISPATCHED:
                self.command(Accept(unit_id=holder))
            case Status.ACCEPTED if pause_first:
                self.command(Pause(unit_id=holder, reason="waiting for parts"))
            case Status.ACCEPTED:
                self.command(Resolve(unit_id=holder, resolution="fixed"))
            case Status.PAUSED:
                self.command(Resume(unit_id=holder))
            case _:
                self.command(Feedback(rating=rating))

    # ------------------------------------------------------------------ time

    @rule(jump=JUMPS)
    def jump_and_fire(self, jump: timedelta) -> None:
        self.now += jump
        self.fire()

    @rule()
    def fire_at_next_due(self) -> None:
        due = lifecycle.next_due(self.state)
        if due is None:
            assert not self.state.is_open
            assert self.fire() == []
            return
        self.now = max(self.now, due)
        assert self.fire(), f"nothing fired at the due instant {due}"

    # ------------------------------------------------------------------ invariants

    @invariant()
    def numbered_and_in_order(self) -> None:
        timeline = self.state.timeline
        assert [step.seq for step in timeline] == list(range(1, len(timeline) + 1))
        assert all(earlier.at <= later.at for earlier, later in pairwise(timeline))
        assert timeline[0].kind is StepKind.REPORTED and timeline[0].at == self.started_at
        assert timeline[-1].at <= self.now

    @invariant()
    def one_holder_at_one_level(self) -> None:
        state = self.state
        assert state.level in self.levels
        assert state.level_index == self.levels.index(state.level)
        assert state.level == state.timeline[-1].level
        if state.is_open:
            assert state.holder_unit == self.snapshot.unit_for(state.level, self.incident)
        if state.overdue:
            assert state.level_index == len(self.levels) - 1, "overdue below the top level"

    @invariant()
    def the_ladder_goes_up_one_level_at_a_time(self) -> None:
        timeline = self.state.timeline
        for index, step in enumerate(timeline):
            if step.kind is StepKind.ESCALATED:
                assert step.from_level is not None and step.to_level is not None
                assert self.levels.index(step.to_level) == self.levels.index(step.from_level) + 1
                following = timeline[index + 1]
                assert following.kind is StepKind.DISPATCHED and following.level == step.to_level
            if step.kind is StepKind.DISPATCHED:
                assert step.level is not None
                notified = self.snapshot.notified_units(step.level, self.incident)
                whistles = timeline[index + 1 : index + 1 + len(notified)]
                assert [(s.kind, s.unit_id) for s in whistles] == [(StepKind.NOTIFIED, u) for u in notified]

    @invariant()
    def counts_agree_with_the_timeline(self) -> None:
        state, timeline = self.state, self.state.timeline
        kinds = [step.kind for step in timeline]
        assert state.escalations == kinds.count(StepKind.ESCALATED)
        assert state.reopen_count == kinds.count(StepKind.REOPENED)
        assert state.reopen_count <= self.snapshot.rule.feedback.max_reopens
        ratings = [step.rating for step in timeline if step.kind is StepKind.FEEDBACK]
        assert state.rating == (ratings[-1] if ratings else None)
        # Each step records the status at its moment; after every call the last one is the state's.
        assert state.status == timeline[-1].status

    @invariant()
    def closed_means_closed(self) -> None:
        state, last = self.state, self.state.timeline[-1]
        closed = state.status is Status.CLOSED
        assert closed == (last.kind is StepKind.CLOSED)
        assert [step.kind for step in state.timeline].count(StepKind.CLOSED) == (1 if closed else 0)
        assert (state.outcome is not None) == closed
        assert (state.closed_at is not None) == closed
        assert state.flagged == (state.outcome is Outcome.RESOLVED_UNSATISFIED)
        if closed:
            assert state.outcome == last.outcome and state.closed_at == last.at
            assert last.escalations == state.escalations
            assert state.accept_clock is None and state.resolve_clock is None
        # An open incident always has something due (nothing is ever stuck); a closed one never.
        assert (lifecycle.next_due(state) is None) == closed

    @invariant()
    def a_closed_incident_never_changes(self) -> None:
        if self.closed_dump is not None:
            assert self.state.model_dump() == self.closed_dump
        elif not self.state.is_open:
            self.closed_dump = self.state.model_dump()

    @invariant()
    def clocks_fit_the_status(self) -> None:
        state = self.state
        status = state.status
        paused = state.resolve_clock is not None and state.resolve_clock.paused_since is not None
        assert (status is Status.PAUSED) == paused
        assert state.accept_clock is None or state.accept_clock.paused_since is None
        if status is Status.DISPATCHED:
            assert state.accept_clock is not None and state.resolve_clock is None
        if status in (Status.ACCEPTED, Status.PAUSED, Status.RESOLVED):
            assert state.resolve_clock is not None
        assert (state.feedback_deadline is not None) == (status is Status.RESOLVED)

    @invariant()
    def the_pause_allowance_holds(self) -> None:
        state = self.state
        assert state.paused_total <= self.pause_allowance
        clock = state.resolve_clock
        if clock is not None and clock.paused_since is not None:
            assert state.level is not None
            allowance = self.snapshot.rule.max_pause_for(state.level)
            # What fire_due left running is still within the allowance at this instant.
            assert state.paused_total + (self.now - clock.paused_since) < allowance

    # ------------------------------------------------------------------ the end

    def teardown(self) -> None:
        """Replay the run, reading the state back from JSON before every action: the same incident."""
        if not self.log:
            return
        replayed, _ = lifecycle.report(self.incident, self.started_at)
        lifecycle.start(replayed, self.incident, self.snapshot, self.started_at)
        for action in self.log:
            replayed = IncidentState.model_validate_json(replayed.model_dump_json())
            if action.command is None:
                lifecycle.fire_due(replayed, self.incident, action.at)
                continue
            with suppress(Refused):
                lifecycle.apply(replayed, self.incident, action.command, action.at)
        assert replayed.model_dump() == self.state.model_dump(), "a state read back from JSON went otherwise"


def test_random_commands_and_clock_jumps_keep_the_lifecycle_invariants() -> None:
    run_state_machine_as_test(
        LifecycleMachine, settings=settings(max_examples=80, stateful_step_count=60, deadline=None)
    )


def test_a_walk_through_the_pause_cap_and_the_reopen_limit_keeps_the_invariants() -> None:
    """Random runs reach the pause cap and the reopen limit only now and then: walk them once for sure,
    with every invariant checked after every step."""
    machine = LifecycleMachine()
    invariants = [
        machine.numbered_and_in_order,
        machine.one_holder_at_one_level,
        machine.the_ladder_goes_up_one_level_at_a_time,
        machine.counts_agree_with_the_timeline,
        machine.closed_means_closed,
        machine.a_closed_incident_never_changes,
        machine.clocks_fit_the_status,
        machine.the_pause_allowance_holds,
    ]
    tight = next(case for case in CASES if case.label == "tight")
    walk: list[Callable[[], None]] = [
        lambda: machine.report_and_start(case=tight, city="c-shanghai", offset=0),
        lambda: machine.the_loop_moves_on(Rating.SATISFIED, pause_first=False),  # accept
        lambda: machine.the_loop_moves_on(Rating.SATISFIED, pause_first=True),  # pause
        lambda: machine.jump_and_fire(timedelta(hours=1)),  # the 20m allowance runs out
        lambda: machine.pause(by_holder=True, other=0),  # refused: the allowance is used up
        lambda: machine.the_loop_moves_on(Rating.SATISFIED, pause_first=False),  # resolve
        lambda: machine.resident(Rating.UNSATISFIED, withdraws=False),  # reopened one level up
        lambda: machine.accept(by_holder=False, other=0),  # refused: another unit
        lambda: machine.the_loop_moves_on(Rating.SATISFIED, pause_first=False),  # accept
        lambda: machine.the_loop_moves_on(Rating.SATISFIED, pause_first=False),  # resolve
        lambda: machine.resident(Rating.UNSATISFIED, withdraws=False),  # closed, flagged
        lambda: machine.resident(Rating.SATISFIED, withdraws=True),  # refused: closed
        lambda: machine.fire_at_next_due(),
        lambda: machine.jump_and_fire(timedelta(days=3)),
    ]
    for step in walk:
        step()
        for check in invariants:
            check()
    machine.teardown()
    kinds = [step.kind for step in machine.state.timeline]
    assert StepKind.RESUMED in kinds and kinds.count(StepKind.REOPENED) == 1
    assert machine.state.outcome is Outcome.RESOLVED_UNSATISFIED and machine.state.flagged
    assert machine.state.paused_total == timedelta(minutes=20)


# ---------------------------------------------------------------------- plain properties

INCIDENTS = st.builds(
    lambda case, city, district, reported_at: (
        case,
        make_incident(
            priority=case.priority, category=case.category, city=city, district=district
        ).model_copy(update={"reported_at": reported_at}),
    ),
    st.sampled_from(CASES),
    st.sampled_from(["c-shanghai", None]),
    st.sampled_from(["d-huangpu", "d-jingan", "d-pudong"]),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)


@given(case_and_incident=INCIDENTS, reminders=st.integers(min_value=1, max_value=4))
@settings(max_examples=60, deadline=None)
def test_explain_always_ends_overdue_at_the_top_level(
    case_and_incident: tuple[Case, Incident], reminders: int
) -> None:
    case, incident = case_and_incident
    explanation = explain(case.rules, incident, reminders=reminders)
    timeline, levels = explanation.timeline, explanation.rule.levels
    assert explanation.rule.name == case.rule_name
    assert [step.seq for step in timeline] == list(range(1, len(timeline) + 1))
    assert all(earlier.at <= later.at for earlier, later in pairwise(timeline))
    kinds = [step.kind for step in timeline]
    assert [step.level for step in timeline if step.kind is StepKind.DISPATCHED] == levels
    assert kinds.count(StepKind.ESCALATED) == len(levels) - 1
    assert kinds.count(StepKind.OVERDUE) == 1
    assert kinds.count(StepKind.OVERDUE_REMINDER) == reminders
    assert StepKind.CLOSED not in kinds
    assert kinds[-1] is StepKind.OVERDUE_REMINDER and timeline[-1].level == levels[-1]
    overdue = kinds.index(StepKind.OVERDUE)
    assert timeline[overdue].level == levels[-1] and timeline[overdue].reason == "accept_timeout"


COMMANDS = st.one_of(
    st.builds(Accept, unit_id=st.just("g-nanjing-07")),
    st.builds(Progress, unit_id=st.just("g-nanjing-07")),
    st.builds(
        RequestEscalation, unit_id=st.just("g-nanjing-07"), reason=st.sampled_from(EscalationRequestReason)
    ),
    st.builds(Pause, unit_id=st.just("g-nanjing-07")),
    st.builds(Resume, unit_id=st.just("g-nanjing-07")),
    st.builds(Resolve, unit_id=st.just("g-nanjing-07"), resolution=st.just("fixed")),
    st.builds(Feedback, rating=st.sampled_from(Rating)),
    st.builds(Withdraw),
)


@given(command=COMMANDS, later=st.integers(min_value=0, max_value=30 * 24 * 3600))
@settings(max_examples=40, deadline=None)
def test_before_dispatch_every_command_is_refused_and_nothing_is_due(
    command: LifecycleCommand, later: int
) -> None:
    incident = make_incident(incident_id="inc-props")
    state, _ = lifecycle.report(incident, incident.reported_at)
    before = state.model_dump()
    reason = lifecycle.refusal(state, command)
    assert reason == "incident inc-props has not been dispatched yet"
    try:
        lifecycle.apply(state, incident, command, incident.reported_at)
    except Refused as refused:
        assert refused.reason == reason
    else:  # pragma: no cover
        raise AssertionError("a command was applied before dispatch")
    assert lifecycle.next_due(state) is None
    assert lifecycle.fire_due(state, incident, incident.reported_at + timedelta(seconds=later)) == []
    assert state.model_dump() == before
