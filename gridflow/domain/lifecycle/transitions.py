"""The rules of the incident loop: how a report, a command or the passing of time changes an incident.

Every function takes the state, what happens and the instant it happens at, changes the state in place
and returns the steps it added to the timeline. Nothing here reads a clock, does I/O or knows about
Temporal or Kafka: IncidentWorkflow calls these with `workflow.now()`, `rules explain` and the
simulator with instants of their own, and they all get the same timeline.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gridflow.domain.incident import EscalationReason, Incident, Outcome, Rating, Status
from gridflow.domain.lifecycle.checks import refusal
from gridflow.domain.lifecycle.clock import Clock, ClockKind
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
from gridflow.domain.lifecycle.state import IncidentState, PendingExtension
from gridflow.domain.lifecycle.timeline import Step, StepKind
from gridflow.domain.rules.calendar import SlaClock
from gridflow.domain.rules.durations import WorkingDays, format_limit
from gridflow.domain.rules.model import OnUnsatisfied, Rule, RuleSnapshot, TransferClocks, VerifyTimeout


class Refused(Exception):
    """A command that the incident's state does not allow; nothing was changed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def report(incident: Incident, now: datetime) -> tuple[IncidentState, list[Step]]:
    """A new incident, reported at `now` (before its rule is known): its state and `reported` step."""
    state = IncidentState(
        incident_id=incident.incident_id,
        category=incident.category,
        priority=incident.priority,
        district_id=incident.location.district_id,
        street_id=incident.location.street_id,
        reported_at=incident.reported_at,
    )
    return state, [_record(state, now, StepKind.REPORTED, event_at=incident.reported_at)]


def start(state: IncidentState, incident: Incident, snapshot: RuleSnapshot, now: datetime) -> list[Step]:
    """Put the incident on its rule (kept for its whole life) and dispatch it to the first level."""
    if state.rule is not None:
        raise ValueError(f"incident {state.incident_id} has already started on rule {state.rule.rule.name}")
    mark = len(state.timeline)
    state.rule = snapshot
    _dispatch(state, incident, 0, now)
    return state.timeline[mark:]


def next_due(state: IncidentState) -> datetime | None:
    """The earliest instant at which the passing of time changes the incident, if ever."""
    return state.next_due()


def fire_due(state: IncidentState, incident: Incident, now: datetime) -> list[Step]:
    """Give every warning, breach, escalation, pause cap, reminder and window end due by `now`, in
    time order; each step is recorded at `now`."""
    mark = len(state.timeline)
    while state.is_open and (due := state.next_due()) is not None and due <= now:
        _fire_one(state, incident, now)
    return state.timeline[mark:]


def apply(state: IncidentState, incident: Incident, command: LifecycleCommand, now: datetime) -> list[Step]:
    """Apply a lifecycle command at `now`; raises Refused (state untouched) when it is not allowed.

    What was due before `now` should have fired first (`fire_due`): the workflow's handlers wait a turn
    after the timers of their activation, the simulator fires before people act. Applied to a state with
    a clock overdue, an acceptance would count as in time.
    """
    if (problem := refusal(state, command)) is not None:
        raise Refused(problem)
    mark = len(state.timeline)
    match command:
        case Accept():
            _accept(state, command, now)
        case Progress():
            _record(state, now, StepKind.PROGRESS, note=command.note, event_at=command.at)
        case RequestEscalation():
            if state.status is Status.PAUSED:
                _end_pause(state, now)
            reason = EscalationReason(command.reason.value)
            _escalate(state, incident, reason, now, note=command.note, event_at=command.at)
        case Transfer():
            _transfer(state, incident, command, now)
        case RequestExtension():
            _request_extension(state, incident, command, now)
        case GrantExtension():
            _grant_extension(state, command, now)
        case RefuseExtension():
            _end_extension(state, now, command.reason, actor=command.unit_id, event_at=command.at)
        case Pause():
            _pause(state, command, now)
        case Resume():
            _end_pause(state, now)
            _record(state, now, StepKind.RESUMED, deadline=state.resolve_deadline, event_at=command.at)
        case Resolve():
            _resolve(state, incident, command, now)
        case Verify():
            _verify(state, command, now)
        case Reject():
            _reject(state, command, now)
        case Feedback():
            _feedback(state, incident, command, now)
        case Withdraw():
            _close(state, now, Outcome.WITHDRAWN, reason=command.reason, event_at=command.at)
    return state.timeline[mark:]


# ---------------------------------------------------------------------- the steps themselves


def _rule(state: IncidentState) -> Rule:
    assert state.rule is not None, "the incident has no rule yet"
    return state.rule.rule


def _sla(state: IncidentState) -> SlaClock:
    assert state.rule is not None and state.level is not None
    return state.rule.sla_clock(state.level)


def _limit(state: IncidentState, limit: timedelta | WorkingDays, now: datetime) -> timedelta:
    """A level's limit as the counted time a clock starting now gets (working days become hours)."""
    assert state.rule is not None and state.level is not None
    return state.rule.working_time(state.level, limit, now)


def _record(state: IncidentState, now: datetime, kind: StepKind, **fields: object) -> Step:
    step = Step.model_validate(
        {
            "seq": len(state.timeline) + 1,
            "kind": kind,
            "at": now,
            "level": state.level,
            "unit_id": state.holder_unit,
            "status": state.status,
            **fields,
        }
    )
    state.timeline.append(step)
    return step


def _dispatch(
    state: IncidentState, incident: Incident, index: int, now: datetime, *, to_unit: str | None = None
) -> None:
    """Send the incident to the unit of a level (a transfer names the unit: same level, another one)."""
    rule = _rule(state)
    assert state.rule is not None
    _end_extension(state, now, "lapsed")  # a request is for the holder that made it, at its level
    level = rule.levels[index]
    arriving = to_unit is None
    if arriving:  # a new level, or back to one after a reopen: the level's clocks start afresh
        state.level_since, state.level_transfers = now, 0
    state.level, state.level_index = level, index
    state.holder_unit = to_unit or state.units.get(level) or state.rule.unit_for(level, incident)
    state.status = Status.DISPATCHED
    state.overdue, state.next_reminder_at = False, None
    limit = rule.limits(level).accept
    since = state.level_since
    if not arriving and rule.transfer.clocks is TransferClocks.CONTINUE and since is not None:
        # The level's accept limit counts from when the incident reached the level, whoever held it.
        counted, consumed = _limit(state, limit, since), _sla(state).working_between(since, now)
    else:
        counted, consumed = _limit(state, limit, now), timedelta(0)
    state.accept_clock = Clock.start(
        ClockKind.ACCEPT, now, counted, rule.warn_at_for(level), _sla(state), consumed=consumed
    )
    state.resolve_clock = state.verify_clock = None
    state.inspector = None
    state.feedback_deadline = None
    _record(state, now, StepKind.DISPATCHED, deadline=state.accept_clock.deadline)
    if not arriving:
        return  # the departments of the level heard of the incident when it reached it
    for department in state.rule.notified_units(level, incident):
        # The "whistle": other departments hear of the incident when it reaches this level.
        _record(state, now, StepKind.NOTIFIED, unit_id=department, reason="level_reached")


def _request_extension(
    state: IncidentState, incident: Incident, command: RequestExtension, now: datetime
) -> None:
    assert state.rule is not None and state.level is not None
    approver = state.rule.approver_for(state.level, incident)
    assert approver is not None, "checks refuse a request nobody can decide"
    decide_by = now + state.rule.rule.extension.decide_within
    state.extension = PendingExtension(
        extra=command.extra, approver=approver, requested_at=now, decide_by=decide_by
    )
    _record(
        state,
        now,
        StepKind.EXTENSION_REQUESTED,
        reason=command.reason,
        extension=format_limit(command.extra),
        deadline=decide_by,
        event_at=command.at,
    )


def _grant_extension(state: IncidentState, command: GrantExtension, now: datetime) -> None:
    pending, clock = state.extension, state.resolve_clock
    assert pending is not None and clock is not None and state.rule is not None and state.level is not None
    # Working days are counted on from the deadline they extend: 2wd moves Friday 18:00 to Tuesday's.
    extra = state.rule.working_time(state.level, pending.extra, clock.deadline)
    clock.extend(extra, _rule(state).warn_at_for(state.level), _sla(state))
    state.extension, state.extensions = None, state.extensions + 1
    _record(
        state,
        now,
        StepKind.EXTENSION_GRANTED,
        actor=command.unit_id,
        extension=format_limit(pending.extra),
        deadline=state.resolve_deadline,
        note=command.note,
        event_at=command.at,
    )


def _end_extension(
    state: IncidentState,
    now: datetime,
    reason: str,
    *,
    actor: str | None = None,
    event_at: datetime | None = None,
) -> None:
    """The pending request ends without more time: refused, undecided in time, or lapsed."""
    pending = state.extension
    if pending is None:
        return
    state.extension = None
    _record(
        state,
        now,
        StepKind.EXTENSION_REFUSED,
        actor=actor,
        reason=reason,
        extension=format_limit(pending.extra),
        event_at=event_at,
    )


def _transfer(state: IncidentState, incident: Incident, command: Transfer, now: datetime) -> None:
    """Another unit at the same level takes the incident over: a dispatch corrected, and counted."""
    assert state.level is not None
    from_unit = state.holder_unit
    state.transfers += 1
    state.level_transfers += 1
    state.units[state.level] = command.to_unit
    _record(
        state,
        now,
        StepKind.TRANSFERRED,
        unit_id=command.to_unit,
        from_unit=from_unit,
        reason=command.reason,
        event_at=command.at,
    )
    _dispatch(state, incident, state.level_index, now, to_unit=command.to_unit)


def _escalate(
    state: IncidentState,
    incident: Incident,
    reason: EscalationReason,
    now: datetime,
    *,
    note: str | None = None,
    event_at: datetime | None = None,
) -> None:
    rule = _rule(state)
    if state.level_index + 1 >= len(rule.levels):
        # Nothing is above the top level: the incident is overdue and reminded until resolved.
        if not state.overdue:
            state.overdue = True
            state.next_reminder_at = now + rule.overdue_reminder_for(state.level or "")
            _record(state, now, StepKind.OVERDUE, reason=reason.value)
        return
    from_level, to_level = state.level, rule.levels[state.level_index + 1]
    state.escalations += 1
    _record(
        state,
        now,
        StepKind.ESCALATED,
        reason=reason.value,
        from_level=from_level,
        to_level=to_level,
        note=note,
        event_at=event_at,
    )
    _dispatch(state, incident, state.level_index + 1, now)


def _fire_one(state: IncidentState, incident: Incident, now: datetime) -> None:
    """Fire the earliest thing due (on a tie: warning, breach, pause cap, undecided extension, feedback
    window, reminder)."""
    rule = _rule(state)
    clock = state.running_clock
    due: list[tuple[datetime, int]] = []
    if clock is not None:
        if (warning := clock.warning_due()) is not None:
            due.append((warning[1], 0))
        if (breach := clock.breach_due()) is not None:
            due.append((breach, 1))
    if (cap := state.pause_cap_at()) is not None:
        due.append((cap, 2))
    if state.extension is not None:
        due.append((state.extension.decide_by, 3))
    if state.status is Status.RESOLVED and state.feedback_deadline is not None:
        due.append((state.feedback_deadline, 4))
    if state.reminding and state.next_reminder_at is not None:
        due.append((state.next_reminder_at, 5))
    at, what = min(due)
    assert at <= now, "nothing is due yet"
    if what == 0:
        assert clock is not None and warning is not None
        fraction, _ = warning
        clock.warned.append(fraction)
        _record(
            state, now, StepKind.SLA_WARNING, clock=clock.kind, fraction=fraction, deadline=clock.deadline
        )
    elif what == 1:
        assert clock is not None
        clock.breached = True
        _record(state, now, StepKind.SLA_BREACHED, clock=clock.kind, deadline=clock.deadline)
        check = rule.verification
        if clock.kind is ClockKind.VERIFY and check and check.on_timeout is VerifyTimeout.REMIND:
            # A late check does not move the case: it is marked overdue and reminded until done.
            state.overdue = True
            state.next_reminder_at = now + rule.overdue_reminder_for(state.level or "")
            _record(state, now, StepKind.OVERDUE, reason=EscalationReason.VERIFY_TIMEOUT.value)
            return
        reason = {
            ClockKind.ACCEPT: EscalationReason.ACCEPT_TIMEOUT,
            ClockKind.RESOLVE: EscalationReason.RESOLVE_TIMEOUT,
            ClockKind.VERIFY: EscalationReason.VERIFY_TIMEOUT,
        }[clock.kind]
        _escalate(state, incident, reason, now)
    elif what == 2:
        _end_pause(state, now, until=at)
        _record(state, now, StepKind.RESUMED, reason="pause_cap_reached", deadline=state.resolve_deadline)
    elif what == 3:
        _end_extension(state, now, "undecided")  # the approver did not answer in time: no more time
    elif what == 4:
        _close(state, now, Outcome.RESOLVED_UNRATED, reason="no_feedback")
    else:
        _record(state, now, StepKind.OVERDUE_REMINDER)
        every = rule.overdue_reminder_for(state.level or "")
        following = at + every
        # After an outage, remind once and carry on from now rather than replaying every reminder.
        state.next_reminder_at = following if following > now else now + every


def _accept(state: IncidentState, command: Accept, now: datetime) -> None:
    rule = _rule(state)
    assert state.accept_clock is not None
    within = not state.accept_clock.breached
    state.status = Status.ACCEPTED
    level = state.level or ""
    state.resolve_clock = Clock.start(
        ClockKind.RESOLVE,
        now,
        _limit(state, rule.limits(level).resolve, now),
        rule.warn_at_for(level),
        _sla(state),
    )
    _record(
        state,
        now,
        StepKind.ACCEPTED,
        within_limit=within,
        elapsed=now - state.accept_clock.started_at,
        deadline=state.resolve_clock.deadline,
        note=command.handler,
        event_at=command.at,
    )


def _pause(state: IncidentState, command: Pause, now: datetime) -> None:
    assert state.resolve_clock is not None
    state.status = Status.PAUSED
    state.resolve_clock.pause(now, _sla(state))
    cap = state.pause_cap_at()
    _record(state, now, StepKind.PAUSED, reason=command.reason, deadline=cap, event_at=command.at)


def _end_pause(state: IncidentState, now: datetime, until: datetime | None = None) -> None:
    """Restart the resolve clock; the pause counts up to `until` (now, or when the allowance ran out)."""
    clock = state.resolve_clock
    assert clock is not None and clock.paused_since is not None
    resumed_at = until or now
    state.paused_total += resumed_at - clock.paused_since
    clock.resume(resumed_at, _rule(state).warn_at_for(state.level or ""), _sla(state))
    state.status = Status.ACCEPTED


def _resolve(state: IncidentState, incident: Incident, command: Resolve, now: datetime) -> None:
    _end_extension(state, now, "lapsed")  # done without the time asked for
    if state.status is Status.PAUSED:
        _end_pause(state, now)
    assert state.resolve_clock is not None and state.rule is not None and state.level is not None
    within = not state.resolve_clock.breached
    inspector = state.rule.inspector_for(state.level, incident)
    if inspector is None:
        state.status = Status.RESOLVED
        state.feedback_deadline = now + _rule(state).feedback.window
        deadline = state.feedback_deadline
    else:
        # The inspector checks the fix first; the resident is asked once it is verified. The check
        # has a clock of its own: the holder's overdue reminders end with its resolution.
        check = state.rule.rule.verification
        assert check is not None
        state.status, state.inspector = Status.VERIFYING, inspector
        state.overdue, state.next_reminder_at = False, None
        state.verify_clock = Clock.start(
            ClockKind.VERIFY,
            now,
            _limit(state, check.within, now),
            _rule(state).warn_at_for(state.level),
            _sla(state),
        )
        deadline = state.verify_clock.deadline
    _record(
        state,
        now,
        StepKind.RESOLVED,
        within_limit=within,
        elapsed=now - state.timeline[0].at,
        note=command.resolution,
        deadline=deadline,
        event_at=command.at,
    )


def _verify(state: IncidentState, command: Verify, now: datetime) -> None:
    """The fix holds: the resident's return visit comes next."""
    state.status, state.inspector, state.verify_clock = Status.RESOLVED, None, None
    state.overdue, state.next_reminder_at = False, None
    state.feedback_deadline = now + _rule(state).feedback.window
    _record(
        state,
        now,
        StepKind.VERIFIED,
        actor=command.unit_id,
        note=command.note,
        deadline=state.feedback_deadline,
        event_at=command.at,
    )


def _reject(state: IncidentState, command: Reject, now: datetime) -> None:
    """Rework: back to the unit that resolved it, with a resolve clock of its own."""
    assert state.level is not None
    rule = _rule(state)
    state.status, state.inspector, state.verify_clock = Status.ACCEPTED, None, None
    state.overdue, state.next_reminder_at = False, None
    state.reworks += 1
    state.resolve_clock = Clock.start(
        ClockKind.RESOLVE,
        now,
        _limit(state, rule.limits(state.level).resolve, now),
        rule.warn_at_for(state.level),
        _sla(state),
    )
    _record(
        state,
        now,
        StepKind.REJECTED,
        actor=command.unit_id,
        reason=command.reason,
        deadline=state.resolve_clock.deadline,
        event_at=command.at,
    )


def _feedback(state: IncidentState, incident: Incident, command: Feedback, now: datetime) -> None:
    rule = _rule(state)
    policy = rule.feedback
    state.rating, state.solved = command.rating, command.solved
    _record(
        state,
        now,
        StepKind.FEEDBACK,
        rating=command.rating,
        solved=command.solved,
        note=command.comment,
        event_at=command.at,
    )
    # "Unsatisfied means not accepted", and so does "not solved", however kindly it is rated.
    if command.rating is Rating.UNSATISFIED:
        why = EscalationReason.UNSATISFIED
    elif command.solved is False:
        why = EscalationReason.NOT_SOLVED
    else:
        _close(state, now, Outcome.RESOLVED)
        return
    if state.reopen_count >= policy.max_reopens:
        state.flagged = True
        _close(state, now, Outcome.RESOLVED_UNSATISFIED, reason="max_reopens_reached")
    else:
        state.reopen_count += 1
        target = state.level_index
        if policy.on_unsatisfied is OnUnsatisfied.ESCALATE:
            target = min(target + 1, len(rule.levels) - 1)
        to_level = rule.levels[target]
        _record(state, now, StepKind.REOPENED, reason=why.value, from_level=state.level, to_level=to_level)
        if target != state.level_index:
            state.escalations += 1
            _record(
                state,
                now,
                StepKind.ESCALATED,
                reason=why.value,
                from_level=state.level,
                to_level=to_level,
            )
        _dispatch(state, incident, target, now)


def _close(
    state: IncidentState,
    now: datetime,
    outcome: Outcome,
    reason: str | None = None,
    event_at: datetime | None = None,
) -> None:
    _end_extension(state, now, "lapsed")
    clock = state.resolve_clock
    if state.status is Status.PAUSED and clock is not None and clock.paused_since is not None:
        state.paused_total += now - clock.paused_since  # a pause running at withdrawal still counts
    state.status = Status.CLOSED
    state.outcome = outcome
    state.closed_at = now
    state.accept_clock = state.resolve_clock = None
    state.feedback_deadline = state.next_reminder_at = None
    # For the on-time closure rate: whether the last resolution was within its limit, and whether the
    # case was ever deferred (paused), which takes it out of the closures due.
    resolved = next((s for s in reversed(state.timeline) if s.kind is StepKind.RESOLVED), None)
    on_time = resolved.within_limit if resolved is not None and outcome.is_resolved else None
    deferred = any(s.kind is StepKind.PAUSED for s in state.timeline)
    _record(
        state,
        now,
        StepKind.CLOSED,
        outcome=outcome,
        reason=reason,
        escalations=state.escalations,
        within_limit=on_time,
        deferred=deferred,
        event_at=event_at,
    )
