"""IncidentWorkflow: the Temporal shell around one incident's lifecycle.

The rules of the loop live in `gridflow.domain.lifecycle` (pure functions of state, command and instant). This
shell gives them Temporal's time (`workflow.now()`), matches the rule and publishes the steps through
activities, sleeps until the next due instant or a command, turns each lifecycle command into an update
whose validator asks the core for its refusal, and keeps the search attributes in step with the state.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from gridflow.domain import lifecycle
    from gridflow.domain.incident import Incident
    from gridflow.domain.lifecycle import (
        Accept,
        Feedback,
        GrantExtension,
        IncidentState,
        IncidentSummary,
        LifecycleCommand,
        Pause,
        Progress,
        RefuseExtension,
        Reject,
        RequestEscalation,
        RequestExtension,
        Resolve,
        Resume,
        Step,
        StepBatch,
        StepKind,
        Transfer,
        Verify,
        Withdraw,
    )
    from gridflow.domain.lifecycle.resolution import ceil_to, floor_to
    from gridflow.domain.rules.model import RuleSnapshot
    from workflows import search_attributes as sa
    from workflows.activity_names import MATCH_RULE, PUBLISH_STEPS
    from workflows.input import IncidentInput

# Side effects must happen eventually, so activities retry until they succeed; the cap keeps a long
# outage from turning into hours between attempts.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Short: a worker that dies mid-publish holds the incident's clocks until the activity times out.
ACTIVITY_TIMEOUT = timedelta(seconds=10)

ILLEGAL = "IllegalTransition"
#: `workflow.patched` id: lifecycle commands fire the clocks already due before they apply (2026-12).
FIRE_DUE_BEFORE_COMMANDS = "fire-due-before-commands"
#: `workflow.patched` id: the running SLA clock's deadline is kept in GridflowNextDeadline (2026-12).
NEXT_DEADLINE_ATTRIBUTE = "next-deadline-search-attribute"
#: What GridflowNextDeadline holds at the start of a continued run: not known, so it is set again.
_NOT_KNOWN = datetime.min.replace(tzinfo=UTC)

C = TypeVar("C", bound=LifecycleCommand)


def _refuse(problem: str | None) -> None:
    if problem is not None:
        raise ApplicationError(problem, type=ILLEGAL, non_retryable=True)


@workflow.defn
class IncidentWorkflow:
    """Dispatches an incident, runs its clocks, escalates it up the ladder and closes the loop."""

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        self._incident: Incident = input.incident
        self._resolution = input.clock_resolution
        self._reported: list[Step] = []  # the report's step, taken (search attributes) when the run starts
        if input.carried is not None:
            self._state: IncidentState = input.carried
        else:
            self._state, self._reported = lifecycle.report(self._incident, self._now())
        # A carried-over state was fully published before continue-as-new.
        self._published = len(input.carried.timeline) if input.carried else 0
        self._search_attributes: tuple[str | None, str] | None = None
        self._deadline_attribute: datetime | None = _NOT_KNOWN if input.carried else None

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentSummary:
        """Run the incident until it is closed; return how it ended."""
        state = self._state
        self._took(self._reported)
        if state.rule is None:
            snapshot: RuleSnapshot = await workflow.execute_activity(
                MATCH_RULE,
                self._incident,
                result_type=RuleSnapshot,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            workflow.logger.info(
                "incident matched rule %s (rules version %s)", snapshot.rule.name, snapshot.rules_version
            )
            self._took(lifecycle.start(state, self._incident, snapshot, self._now()))

        while True:
            self._took(lifecycle.fire_due(state, self._incident, self._now()))
            await self._publish()
            if not state.is_open:
                break
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(
                    IncidentInput(incident=self._incident, carried=state, clock_resolution=self._resolution)
                )
            due = lifecycle.next_due(state)
            wake = None if due is None else ceil_to(due, self._resolution)
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(milliseconds=1))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._has_unpublished, timeout=timeout)

        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._publish()
        return IncidentSummary.of(state)

    def _now(self) -> datetime:
        """The instant the core is given: the workflow's time (on a simulation's grid, if it has one)."""
        return floor_to(workflow.now(), self._resolution)

    def _has_unpublished(self) -> bool:
        return self._published < len(self._state.timeline)

    async def _publish(self) -> None:
        state = self._state
        while self._has_unpublished():
            steps = state.timeline[self._published :]
            await workflow.execute_activity(
                PUBLISH_STEPS,
                StepBatch.publishing(state, steps),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            self._published += len(steps)

    # ------------------------------------------------------------------ what the core's steps mean here

    def _took(self, steps: list[Step]) -> None:
        """Follow the core's new steps: search attributes in step with each, and the log."""
        for step in steps:
            self._sync_search_attributes(step)
            if step.kind is StepKind.ESCALATED:
                workflow.logger.info(
                    "incident escalated %s -> %s (%s)", step.from_level, step.to_level, step.reason
                )
            elif step.kind is StepKind.CLOSED and step.outcome is not None:
                workflow.logger.info("incident closed: %s", step.outcome.value)
        self._sync_deadline()

    def _sync_deadline(self) -> None:
        # One upsert when a running clock's deadline changes (dispatch, accept, resume, an extension,
        # a resolution to verify, rework, escalation), after the steps that changed it; with no clock
        # running the status says so and the value stays. Histories recorded before it replay without
        # (the patch): incidents running through a deploy keep working.
        deadline = self._state.sla_deadline
        if deadline is None or deadline == self._deadline_attribute:
            return
        if not workflow.patched(NEXT_DEADLINE_ATTRIBUTE):
            return
        workflow.upsert_search_attributes([sa.NEXT_DEADLINE.value_set(deadline)])
        self._deadline_attribute = deadline

    def _sync_search_attributes(self, step: Step) -> None:
        # One upsert per change of (level, status), made as each step is taken: the command sequence
        # recorded histories hold.
        state = self._state
        current = (step.level, step.status.value)
        if current == self._search_attributes:
            return
        pairs: list[SearchAttributeUpdate[str]] = [sa.STATUS.value_set(step.status.value)]
        if self._search_attributes is None:
            pairs += [
                sa.CATEGORY.value_set(state.category),
                sa.PRIORITY.value_set(state.priority.value),
                sa.DISTRICT.value_set(state.district_id),
            ]
        if step.level is not None:
            pairs.append(sa.LEVEL.value_set(step.level))
        if state.rule is not None:
            pairs.append(sa.RULE.value_set(state.rule.rule.name))
        workflow.upsert_search_attributes(pairs)
        self._search_attributes = current

    # ------------------------------------------------------------------ lifecycle updates

    async def _command(self, command: C) -> IncidentSummary:
        # A command can arrive while the rule is still being matched; it waits rather than fails.
        await workflow.wait_condition(self._started)
        state = self._state
        if workflow.patched(FIRE_DUE_BEFORE_COMMANDS):
            # A command can reach the workflow in the same task as a clock already due (the worker or
            # the server was down at the deadline), and the SDK runs update handlers before timers. The
            # clocks first: a breach that happened is recorded, and a late acceptance is not on time.
            self._took(lifecycle.fire_due(state, self._incident, self._now()))
        _refuse(lifecycle.refusal(state, command))
        self._took(lifecycle.apply(state, self._incident, command, self._now()))
        return IncidentSummary.of(state)

    def _started(self) -> bool:
        return self._state.rule is not None

    def _validate(self, command: LifecycleCommand) -> None:
        # Before the rule is matched the update waits in its handler instead (see _command).
        if self._started():
            _refuse(lifecycle.refusal(self._state, command))

    @workflow.update
    async def accept(self, command: Accept) -> IncidentSummary:
        """The holding unit accepts the incident; its resolve clock starts."""
        return await self._command(command)

    @accept.validator
    def _validate_accept(self, command: Accept) -> None:
        self._validate(command)

    @workflow.update
    async def progress(self, command: Progress) -> IncidentSummary:
        """The holding unit notes work under way."""
        return await self._command(command)

    @progress.validator
    def _validate_progress(self, command: Progress) -> None:
        self._validate(command)

    @workflow.update
    async def request_escalation(self, command: RequestEscalation) -> IncidentSummary:
        """The holding unit passes the incident to the next level."""
        return await self._command(command)

    @request_escalation.validator
    def _validate_request_escalation(self, command: RequestEscalation) -> None:
        self._validate(command)

    @workflow.update
    async def transfer(self, command: Transfer) -> IncidentSummary:
        """Another unit at the same level takes the incident over (a dispatch corrected)."""
        return await self._command(command)

    @transfer.validator
    def _validate_transfer(self, command: Transfer) -> None:
        self._validate(command)

    @workflow.update
    async def request_extension(self, command: RequestExtension) -> IncidentSummary:
        """The holding unit asks for more time to resolve; the rule's approver decides."""
        return await self._command(command)

    @request_extension.validator
    def _validate_request_extension(self, command: RequestExtension) -> None:
        self._validate(command)

    @workflow.update
    async def grant_extension(self, command: GrantExtension) -> IncidentSummary:
        """The approver grants the pending extension: the resolve deadline moves."""
        return await self._command(command)

    @grant_extension.validator
    def _validate_grant_extension(self, command: GrantExtension) -> None:
        self._validate(command)

    @workflow.update
    async def refuse_extension(self, command: RefuseExtension) -> IncidentSummary:
        """The approver refuses the pending extension."""
        return await self._command(command)

    @refuse_extension.validator
    def _validate_refuse_extension(self, command: RefuseExtension) -> None:
        self._validate(command)

    @workflow.update
    async def verify(self, command: Verify) -> IncidentSummary:
        """The inspector confirms the fix; the resident is asked next."""
        return await self._command(command)

    @verify.validator
    def _validate_verify(self, command: Verify) -> None:
        self._validate(command)

    @workflow.update
    async def reject(self, command: Reject) -> IncidentSummary:
        """The inspector finds the fix not done: rework for the unit that resolved it."""
        return await self._command(command)

    @reject.validator
    def _validate_reject(self, command: Reject) -> None:
        self._validate(command)

    @workflow.update
    async def pause(self, command: Pause) -> IncidentSummary:
        """Stop the resolve clock; it restarts on resume or when the rule's pause allowance runs out."""
        return await self._command(command)

    @pause.validator
    def _validate_pause(self, command: Pause) -> None:
        self._validate(command)

    @workflow.update
    async def resume(self, command: Resume) -> IncidentSummary:
        """Restart the resolve clock; its deadline moves by the time paused."""
        return await self._command(command)

    @resume.validator
    def _validate_resume(self, command: Resume) -> None:
        self._validate(command)

    @workflow.update
    async def resolve(self, command: Resolve) -> IncidentSummary:
        """The holding unit reports the incident solved; the resident's feedback window opens."""
        return await self._command(command)

    @resolve.validator
    def _validate_resolve(self, command: Resolve) -> None:
        self._validate(command)

    @workflow.update
    async def feedback(self, command: Feedback) -> IncidentSummary:
        """The resident rates the resolution: closes the incident, or reopens it when unsatisfied."""
        return await self._command(command)

    @feedback.validator
    def _validate_feedback(self, command: Feedback) -> None:
        self._validate(command)

    @workflow.update
    async def withdraw(self, command: Withdraw) -> IncidentSummary:
        """The reporter withdraws the incident; it closes from any open state."""
        return await self._command(command)

    @withdraw.validator
    def _validate_withdraw(self, command: Withdraw) -> None:
        self._validate(command)

    # ------------------------------------------------------------------ queries

    @workflow.query
    def state(self) -> IncidentState:
        """The full current state, with deadlines and the timeline of every step."""
        return self._state
