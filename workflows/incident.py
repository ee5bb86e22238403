"""IncidentWorkflow: one per incident, from dispatch to the grid up the ladder to closure.

The workflow keeps every deadline in its state and sleeps until the earliest one or until a lifecycle
command changes something; a command is a Temporal update whose validator refuses illegal transitions
before they reach history. Every change is a step on the timeline, and every step is published.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.incident import IncidentActivities
    from gridflow.incident import EscalationReason, Incident, Outcome, Rating, Status
    from gridflow.rules.calendar import SlaClock
    from gridflow.rules.model import OnUnsatisfied, Rule
    from workflows import search_attributes as sa
    from workflows.commands import (
        Accept,
        Feedback,
        Pause,
        Progress,
        RequestEscalation,
        Resolve,
        Resume,
        Withdraw,
    )
    from workflows.state import (
        Clock,
        ClockKind,
        IncidentInput,
        IncidentState,
        IncidentSummary,
        Step,
        StepBatch,
        StepKind,
    )

# Side effects must happen eventually, so activities retry until they succeed; the cap keeps a long
# outage from turning into hours between attempts.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Short: a worker that dies mid-publish holds the incident's clocks until the activity times out.
ACTIVITY_TIMEOUT = timedelta(seconds=10)

ILLEGAL = "IllegalTransition"
HANDLING = (Status.ACCEPTED, Status.PAUSED)


def _refuse(problem: str | None) -> None:
    if problem is not None:
        raise ApplicationError(problem, type=ILLEGAL, non_retryable=True)


@workflow.defn
class IncidentWorkflow:
    """Dispatches an incident, runs its clocks, escalates it up the ladder and closes the loop."""

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        incident = input.incident
        self._incident: Incident = incident
        self._state: IncidentState = input.carried or IncidentState(
            incident_id=incident.incident_id,
            category=incident.category,
            priority=incident.priority,
            district_id=incident.location.district_id,
            reported_at=incident.reported_at,
        )
        # A carried-over state was fully published before continue-as-new.
        self._published = len(self._state.timeline)
        self._search_attributes: tuple[str | None, str] | None = None

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentSummary:
        """Run the incident until it is closed; return how it ended."""
        state = self._state
        if state.rule is None:
            self._record(StepKind.REPORTED, event_at=self._incident.reported_at)
            state.rule = await workflow.execute_activity_method(
                IncidentActivities.match_rule,
                self._incident,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            workflow.logger.info(
                "incident matched rule %s (rules version %s)", self._rule.name, state.rule.rules_version
            )
            self._dispatch(0)

        while True:
            self._fire_due_clocks()
            await self._publish()
            if not state.is_open:
                break
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(IncidentInput(incident=self._incident, carried=state))
            due = self._state.next_due()
            timeout = None if due is None else max(due - workflow.now(), timedelta(milliseconds=1))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._has_unpublished, timeout=timeout)

        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._publish()
        return IncidentSummary.of(state)

    @property
    def _rule(self) -> Rule:
        assert self._state.rule is not None
        return self._state.rule.rule

    def _has_unpublished(self) -> bool:
        return self._published < len(self._state.timeline)

    async def _publish(self) -> None:
        while self._has_unpublished():
            steps = self._state.timeline[self._published :]
            state = self._state
            await workflow.execute_activity_method(
                IncidentActivities.publish_steps,
                StepBatch(
                    incident_id=state.incident_id,
                    category=state.category,
                    priority=state.priority,
                    district_id=state.district_id,
                    rule_name=state.rule.rule.name if state.rule else None,
                    rules_version=state.rule.rules_version if state.rule else None,
                    levels=state.rule.rule.levels if state.rule else [],
                    steps=steps,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            self._published += len(steps)

    # ------------------------------------------------------------------ clocks

    def _pause_cap_at(self) -> datetime:
        cap = self._state.pause_cap_at()
        assert cap is not None
        return cap

    def _fire_due_clocks(self) -> None:
        """Give every warning, breach, reminder and window end that is due, in time order."""
        now = workflow.now()
        while self._state.is_open and (due := self._state.next_due()) is not None and due <= now:
            self._fire_one(now)

    def _fire_one(self, now: datetime) -> None:
        state, rule = self._state, self._rule
        clock = state.running_clock
        if clock is not None:
            warning = clock.warning_due()
            if warning is not None and warning[1] <= now:
                fraction, _ = warning
                clock.warned.append(fraction)
                self._record(
                    StepKind.SLA_WARNING, clock=clock.kind, fraction=fraction, deadline=clock.deadline
                )
                return
            breach = clock.breach_due()
            if breach is not None and breach <= now:
                clock.breached = True
                self._record(StepKind.SLA_BREACHED, clock=clock.kind, deadline=clock.deadline)
                reason = (
                    EscalationReason.ACCEPT_TIMEOUT
                    if clock.kind is ClockKind.ACCEPT
                    else EscalationReason.RESOLVE_TIMEOUT
                )
                self._escalate(reason)
                return
        if (cap := state.pause_cap_at()) is not None and cap <= now:
            self._end_pause(until=cap)
            self._record(StepKind.RESUMED, reason="pause_cap_reached", deadline=state.resolve_deadline)
            return
        if state.status is Status.RESOLVED and state.feedback_deadline and state.feedback_deadline <= now:
            self._close(Outcome.RESOLVED_UNRATED, reason="no_feedback")
            return
        if state.reminding and state.next_reminder_at is not None and state.next_reminder_at <= now:
            self._record(StepKind.OVERDUE_REMINDER)
            every = rule.overdue_reminder_for(state.level or "")
            following = state.next_reminder_at + every
            # After an outage, remind once and carry on from now rather than replaying every reminder.
            state.next_reminder_at = following if following > now else now + every
            return
        raise AssertionError("a due clock fired nothing")  # pragma: no cover

    # ------------------------------------------------------------------ transitions

    def _record(self, kind: StepKind, **fields: object) -> Step:
        state = self._state
        step = Step.model_validate(
            {
                "seq": len(state.timeline) + 1,
                "kind": kind,
                "at": workflow.now(),
                "level": state.level,
                "unit_id": state.holder_unit,
                "status": state.status,
                **fields,
            }
        )
        state.timeline.append(step)
        self._sync_search_attributes()
        return step

    def _sync_search_attributes(self) -> None:
        state = self._state
        current = (state.level, state.status.value)
        if current == self._search_attributes:
            return
        pairs: list[SearchAttributeUpdate[str]] = [sa.STATUS.value_set(state.status.value)]
        if self._search_attributes is None:
            pairs += [
                sa.CATEGORY.value_set(state.category),
                sa.PRIORITY.value_set(state.priority.value),
                sa.DISTRICT.value_set(state.district_id),
            ]
        if state.level is not None:
            pairs.append(sa.LEVEL.value_set(state.level))
        if state.rule is not None:
            pairs.append(sa.RULE.value_set(state.rule.rule.name))
        workflow.upsert_search_attributes(pairs)
        self._search_attributes = current

    def _dispatch(self, index: int) -> None:
        state, rule = self._state, self._rule
        level = rule.levels[index]
        state.level, state.level_index = level, index
        assert state.rule is not None
        state.holder_unit = state.rule.unit_for(level, self._incident)
        state.status = Status.DISPATCHED
        state.overdue, state.next_reminder_at = False, None
        state.accept_clock = Clock.start(
            ClockKind.ACCEPT,
            workflow.now(),
            rule.limits(level).accept,
            rule.warn_at_for(level),
            self._sla(level),
        )
        state.resolve_clock = None
        state.feedback_deadline = None
        self._record(StepKind.DISPATCHED, deadline=state.accept_clock.deadline)
        for department in state.rule.notified_units(level, self._incident):
            # The "whistle": other departments hear of the incident when it reaches this level.
            self._record(StepKind.NOTIFIED, unit_id=department, reason="level_reached")

    def _escalate(self, reason: EscalationReason) -> None:
        state, rule = self._state, self._rule
        if state.level_index + 1 >= len(rule.levels):
            # Nothing is above the top level: the incident is overdue and reminded until resolved.
            if not state.overdue:
                state.overdue = True
                state.next_reminder_at = workflow.now() + rule.overdue_reminder_for(state.level or "")
                self._record(StepKind.OVERDUE, reason=reason.value)
            return
        from_level, to_level = state.level, rule.levels[state.level_index + 1]
        state.escalations += 1
        workflow.logger.info("incident escalated %s -> %s (%s)", from_level, to_level, reason.value)
        self._record(StepKind.ESCALATED, reason=reason.value, from_level=from_level, to_level=to_level)
        self._dispatch(state.level_index + 1)

    def _sla(self, level: str | None) -> SlaClock:
        assert self._state.rule is not None and level is not None
        return self._state.rule.sla_clock(level)

    def _end_pause(self, until: datetime | None = None) -> None:
        """Restart the resolve clock; the pause counts up to `until` (now, or when the allowance ran out)."""
        state = self._state
        clock = state.resolve_clock
        assert clock is not None and clock.paused_since is not None
        resumed_at = until or workflow.now()
        state.paused_total += resumed_at - clock.paused_since
        level = state.level or ""
        clock.resume(resumed_at, self._rule.warn_at_for(level), self._sla(level))
        state.status = Status.ACCEPTED

    def _close(self, outcome: Outcome, reason: str | None = None) -> None:
        state = self._state
        state.status = Status.CLOSED
        state.outcome = outcome
        state.closed_at = workflow.now()
        state.accept_clock = state.resolve_clock = None
        state.feedback_deadline = state.next_reminder_at = None
        workflow.logger.info("incident closed: %s", outcome.value)
        self._record(StepKind.CLOSED, outcome=outcome, reason=reason, escalations=state.escalations)

    # ------------------------------------------------------------------ command checks

    @property
    def _started(self) -> bool:
        return self._state.rule is not None

    async def _wait_until_started(self) -> None:
        # A command can arrive while the rule is still being matched; it waits rather than fails.
        await workflow.wait_condition(lambda: self._started)

    def _closed_problem(self) -> str | None:
        state = self._state
        if state.status is Status.CLOSED:
            outcome = state.outcome.value if state.outcome else "closed"
            return f"incident {state.incident_id} is closed ({outcome}); nothing more can happen to it"
        return None

    def _holder_problem(self, unit_id: str, action: str, allowed: tuple[Status, ...]) -> str | None:
        state = self._state
        if problem := self._closed_problem():
            return problem
        if unit_id != state.holder_unit:
            return (
                f"unit {unit_id} does not hold incident {state.incident_id} "
                f"(held by {state.holder_unit} at level {state.level})"
            )
        if state.status not in allowed:
            names = " or ".join(status.value for status in allowed)
            return f"cannot {action} incident {state.incident_id}: it is {state.status.value}, not {names}"
        return None

    def _accept_problem(self, command: Accept) -> str | None:
        return self._holder_problem(command.unit_id, "accept", (Status.DISPATCHED,))

    def _progress_problem(self, command: Progress) -> str | None:
        return self._holder_problem(command.unit_id, "note progress on", HANDLING)

    def _escalation_problem(self, command: RequestEscalation) -> str | None:
        if problem := self._holder_problem(command.unit_id, "escalate", (Status.DISPATCHED, *HANDLING)):
            return problem
        if self._state.level_index + 1 >= len(self._rule.levels):
            state = self._state
            return f"incident {state.incident_id} is at the top level ({state.level}): nothing is above"
        return None

    def _pause_problem(self, command: Pause) -> str | None:
        if problem := self._holder_problem(command.unit_id, "pause", (Status.ACCEPTED,)):
            return problem
        if self._state.paused_total >= self._rule.max_pause_for(self._state.level or ""):
            return f"incident {self._state.incident_id} has used its whole pause allowance"
        return None

    def _resume_problem(self, command: Resume) -> str | None:
        return self._holder_problem(command.unit_id, "resume", (Status.PAUSED,))

    def _resolve_problem(self, command: Resolve) -> str | None:
        return self._holder_problem(command.unit_id, "resolve", HANDLING)

    def _feedback_problem(self, command: Feedback) -> str | None:
        if problem := self._closed_problem():
            return problem
        if self._state.status is not Status.RESOLVED:
            return (
                f"cannot take feedback on incident {self._state.incident_id}: "
                f"it is {self._state.status.value}, not resolved"
            )
        return None

    def _withdraw_problem(self, command: Withdraw) -> str | None:
        return self._closed_problem()

    def _refuse_if_started(self, problem: str | None) -> None:
        if self._started:
            _refuse(problem)

    # ------------------------------------------------------------------ lifecycle updates

    @workflow.update
    async def accept(self, command: Accept) -> IncidentSummary:
        """The holding unit accepts the incident; its resolve clock starts."""
        await self._wait_until_started()
        _refuse(self._accept_problem(command))
        state = self._state
        assert state.accept_clock is not None
        within = not state.accept_clock.breached
        state.status = Status.ACCEPTED
        level = state.level or ""
        state.resolve_clock = Clock.start(
            ClockKind.RESOLVE,
            workflow.now(),
            self._rule.limits(level).resolve,
            self._rule.warn_at_for(level),
            self._sla(level),
        )
        self._record(
            StepKind.ACCEPTED,
            within_limit=within,
            elapsed=workflow.now() - state.accept_clock.started_at,
            deadline=state.resolve_clock.deadline,
            note=command.handler,
            event_at=command.at,
        )
        return IncidentSummary.of(state)

    @accept.validator
    def _validate_accept(self, command: Accept) -> None:
        self._refuse_if_started(self._accept_problem(command))

    @workflow.update
    async def progress(self, command: Progress) -> IncidentSummary:
        """The holding unit notes work under way."""
        await self._wait_until_started()
        _refuse(self._progress_problem(command))
        self._record(StepKind.PROGRESS, note=command.note, event_at=command.at)
        return IncidentSummary.of(self._state)

    @progress.validator
    def _validate_progress(self, command: Progress) -> None:
        self._refuse_if_started(self._progress_problem(command))

    @workflow.update
    async def request_escalation(self, command: RequestEscalation) -> IncidentSummary:
        """The holding unit passes the incident to the next level."""
        await self._wait_until_started()
        _refuse(self._escalation_problem(command))
        if self._state.status is Status.PAUSED:
            self._end_pause()
        self._escalate(EscalationReason(command.reason.value))
        return IncidentSummary.of(self._state)

    @request_escalation.validator
    def _validate_request_escalation(self, command: RequestEscalation) -> None:
        self._refuse_if_started(self._escalation_problem(command))

    @workflow.update
    async def pause(self, command: Pause) -> IncidentSummary:
        """Stop the resolve clock; it restarts on resume or when the rule's pause allowance runs out."""
        await self._wait_until_started()
        _refuse(self._pause_problem(command))
        state = self._state
        assert state.resolve_clock is not None
        state.status = Status.PAUSED
        state.resolve_clock.pause(workflow.now(), self._sla(state.level))
        self._record(
            StepKind.PAUSED, reason=command.reason, deadline=self._pause_cap_at(), event_at=command.at
        )
        return IncidentSummary.of(state)

    @pause.validator
    def _validate_pause(self, command: Pause) -> None:
        self._refuse_if_started(self._pause_problem(command))

    @workflow.update
    async def resume(self, command: Resume) -> IncidentSummary:
        """Restart the resolve clock; its deadline moves by the time paused."""
        await self._wait_until_started()
        _refuse(self._resume_problem(command))
        self._end_pause()
        self._record(StepKind.RESUMED, deadline=self._state.resolve_deadline, event_at=command.at)
        return IncidentSummary.of(self._state)

    @resume.validator
    def _validate_resume(self, command: Resume) -> None:
        self._refuse_if_started(self._resume_problem(command))

    @workflow.update
    async def resolve(self, command: Resolve) -> IncidentSummary:
        """The holding unit reports the incident solved; the resident's feedback window opens."""
        await self._wait_until_started()
        _refuse(self._resolve_problem(command))
        state = self._state
        if state.status is Status.PAUSED:
            self._end_pause()
        assert state.resolve_clock is not None
        within = not state.resolve_clock.breached
        state.status = Status.RESOLVED
        state.feedback_deadline = workflow.now() + self._rule.feedback.window
        self._record(
            StepKind.RESOLVED,
            within_limit=within,
            elapsed=workflow.now() - state.timeline[0].at,
            note=command.resolution,
            deadline=state.feedback_deadline,
            event_at=command.at,
        )
        return IncidentSummary.of(state)

    @resolve.validator
    def _validate_resolve(self, command: Resolve) -> None:
        self._refuse_if_started(self._resolve_problem(command))

    @workflow.update
    async def feedback(self, command: Feedback) -> IncidentSummary:
        """The resident rates the resolution: closes the incident, or reopens it when unsatisfied."""
        await self._wait_until_started()
        _refuse(self._feedback_problem(command))
        state, policy = self._state, self._rule.feedback
        state.rating = command.rating
        self._record(StepKind.FEEDBACK, rating=command.rating, note=command.comment, event_at=command.at)
        if command.rating is not Rating.UNSATISFIED:
            self._close(Outcome.RESOLVED)
        elif state.reopen_count >= policy.max_reopens:
            state.flagged = True
            self._close(Outcome.RESOLVED_UNSATISFIED, reason="max_reopens_reached")
        else:
            state.reopen_count += 1
            target = state.level_index
            if policy.on_unsatisfied is OnUnsatisfied.ESCALATE:
                target = min(target + 1, len(self._rule.levels) - 1)
            to_level = self._rule.levels[target]
            self._record(StepKind.REOPENED, reason="unsatisfied", from_level=state.level, to_level=to_level)
            if target != state.level_index:
                state.escalations += 1
                self._record(
                    StepKind.ESCALATED,
                    reason=EscalationReason.UNSATISFIED.value,
                    from_level=state.level,
                    to_level=to_level,
                )
            self._dispatch(target)
        return IncidentSummary.of(state)

    @feedback.validator
    def _validate_feedback(self, command: Feedback) -> None:
        self._refuse_if_started(self._feedback_problem(command))

    @workflow.update
    async def withdraw(self, command: Withdraw) -> IncidentSummary:
        """The reporter withdraws the incident; it closes from any open state."""
        await self._wait_until_started()
        _refuse(self._withdraw_problem(command))
        self._close(Outcome.WITHDRAWN, reason=command.reason)
        return IncidentSummary.of(self._state)

    @withdraw.validator
    def _validate_withdraw(self, command: Withdraw) -> None:
        self._refuse_if_started(self._withdraw_problem(command))

    # ------------------------------------------------------------------ queries

    @workflow.query
    def state(self) -> IncidentState:
        """The full current state, with deadlines and the timeline of every step."""
        return self._state

    @workflow.query
    def summary(self) -> IncidentSummary:
        """The compact current state."""
        return IncidentSummary.of(self._state)
