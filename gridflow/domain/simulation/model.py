"""What a simulated incident's people do: the lines of a `gridflow simulate` stream."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from gridflow.domain.incident import Identifier, Incident, Rating, Status
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
    Feedback,
    GrantExtension,
    IncidentState,
    LifecycleCommand,
    RefuseExtension,
    Reject,
    RequestEscalation,
    RequestExtension,
    Resolve,
    StepKind,
    Transfer,
    Verify,
    Withdraw,
)
from gridflow.domain.rules.durations import Delay, Limit, format_limit

# How long after its report a simulated incident is followed; one still open then stays open.
HORIZON = timedelta(days=30)


def _per_level_or_one(value: object) -> str:
    return "per_level" if isinstance(value, dict) else "one"


# One delay for every level, or one per level: told apart by the value's shape, so that a per-level
# mapping (what generate-stream writes) is not first tried, and refused, as a duration.
AcceptAfter = Annotated[
    Annotated[dict[str, Delay | None], Tag("per_level")] | Annotated[Delay, Tag("one")],
    Discriminator(_per_level_or_one),
]


class SimulatedExtension(BaseModel):
    """A holder who asks once for more time, `after` accepting, and how its approver answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extra: Limit
    after: Delay = timedelta(hours=1)
    decision: Literal["grant", "refuse"] | None = "grant"  # None: the approver never answers
    decide_after: Delay = timedelta(minutes=30)


class Behaviour(BaseModel):
    """How the handlers and the resident of one incident behave.

    `accept_after` is one duration for every level or a duration per level (a level left out, or
    null, never accepts); below `solvable_from` the handlers pass the incident up (`requested`)
    instead of accepting it. Each resolution takes the next of `ratings`; when they run out the
    resident gives no feedback. Each return visit also takes the next of `solved` (whether the
    resident says the problem was solved); when they run out the question is not asked.
    `transfer_to` names, per level, the unit a misdispatched incident belongs to: the unit it is
    dispatched to passes it there (a transfer) when it would have accepted, and that unit accepts.
    Where the rule verifies, each verification takes the next of `checks` (`verify` or `reject`),
    `check_after` the resolution; when they run out the inspector never checks.
    With `extension`, the first holder to accept asks for more time once; it resolves after
    `resolve_after` all the same, so an extension is what keeps a slow resolution in time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_after: AcceptAfter | None = timedelta(minutes=30)
    solvable_from: str | None = None
    resolve_after: Delay = timedelta(hours=4)
    ratings: list[Rating] = Field(default_factory=lambda: [Rating.SATISFIED])
    solved: list[bool] = Field(default_factory=list)
    transfer_to: dict[str, Identifier] = Field(default_factory=dict)
    extension: SimulatedExtension | None = None
    checks: list[Literal["verify", "reject"]] = Field(default_factory=list)
    check_after: Delay = timedelta(hours=1)
    feedback_after: Delay = timedelta(hours=2)
    withdraw_after: Delay | None = None

    def accept_delay(self, level: str) -> timedelta | None:
        """How long after dispatch the unit at a level accepts (or passes up); None: never."""
        if isinstance(self.accept_after, dict):
            return self.accept_after.get(level)
        return self.accept_after


class SimulatedIncident(BaseModel):
    """One line of a simulation stream: an incident as reported and how its people behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: Incident
    behaviour: Behaviour = Behaviour()


class HandlerPlan(BaseModel):
    """A simulated incident as the Temporal engine plays it: when it is reported on the test server's
    clock, how its people behave, and the grid its instants are counted on."""

    incident: Incident
    behaviour: Behaviour
    report_at: datetime  # on the test server's clock
    horizon: timedelta = HORIZON  # how long after its report the incident is followed
    resolution: timedelta | None = None  # see gridflow.domain.lifecycle.resolution


ActionKind = Literal[
    "accept",
    "escalate",
    "transfer",
    "request_extension",
    "grant_extension",
    "refuse_extension",
    "verify",
    "reject",
    "resolve",
    "feedback",
    "withdraw",
]


class Action(BaseModel):
    """One thing a simulated person does to an incident."""

    model_config = ConfigDict(frozen=True)

    kind: ActionKind
    unit_id: str | None = None
    rating: Rating | None = None
    solved: bool | None = None
    to_unit: str | None = None
    extra: str | None = None  # request_extension: the time asked for, as written

    def command(self) -> LifecycleCommand:
        """The lifecycle command this action sends."""
        if self.kind == "accept":
            return Accept(unit_id=self.unit_id or "", handler="simulated")
        if self.kind == "escalate":
            return RequestEscalation(unit_id=self.unit_id or "", reason=EscalationRequestReason.REQUESTED)
        if self.kind == "transfer":
            assert self.to_unit is not None
            return Transfer(unit_id=self.unit_id, to_unit=self.to_unit, reason="simulated: not this unit's")
        if self.kind == "request_extension":
            assert self.extra is not None
            return RequestExtension(unit_id=self.unit_id or "", extra=self.extra, reason="simulated")
        if self.kind == "grant_extension":
            return GrantExtension(unit_id=self.unit_id or "")
        if self.kind == "refuse_extension":
            return RefuseExtension(unit_id=self.unit_id or "", reason="simulated refusal")
        if self.kind == "verify":
            return Verify(unit_id=self.unit_id or "", note="simulated check")
        if self.kind == "reject":
            return Reject(unit_id=self.unit_id or "", reason="simulated: not fixed")
        if self.kind == "resolve":
            return Resolve(unit_id=self.unit_id or "", resolution="simulated resolution")
        if self.kind == "feedback":
            assert self.rating is not None
            return Feedback(rating=self.rating, solved=self.solved)
        return Withdraw(reason="simulated withdrawal")


@lru_cache(maxsize=65536)
def _action(
    kind: ActionKind,
    unit_id: str | None = None,
    rating: Rating | None = None,
    solved: bool | None = None,
    to_unit: str | None = None,
    extra: str | None = None,
) -> Action:
    return Action(kind=kind, unit_id=unit_id, rating=rating, solved=solved, to_unit=to_unit, extra=extra)


def _last(state: IncidentState, kind: StepKind) -> datetime | None:
    for step in reversed(state.timeline):
        if step.kind is kind:
            return step.at
    return None


def _extension_action(
    behaviour: Behaviour, state: IncidentState, accepted: datetime
) -> tuple[Action, datetime] | None:
    """The holder's one request for more time, or the approver's answer to it."""
    wish = behaviour.extension
    if wish is None:
        return None
    pending = state.extension
    if pending is not None:
        if wish.decision is None:
            return None
        kind: ActionKind = "grant_extension" if wish.decision == "grant" else "refuse_extension"
        return _action(kind, pending.approver), pending.requested_at + wish.decide_after
    if any(step.kind is StepKind.EXTENSION_REQUESTED for step in state.timeline):
        return None
    return _action(
        "request_extension", state.holder_unit, extra=format_limit(wish.extra)
    ), accepted + wish.after


def next_action(behaviour: Behaviour, state: IncidentState) -> tuple[Action, datetime] | None:
    """What the scripted people do next, and when (None: nothing until the incident changes)."""
    rule = state.rule
    if rule is None or state.level is None or state.holder_unit is None:
        return None
    # The simulator asks this after every step of every incident: the actions are shared (few units,
    # five kinds) and only the earliest is kept.
    unit, status = state.holder_unit, state.status
    chosen: tuple[Action, datetime] | None = None
    if status is Status.DISPATCHED and (wait := behaviour.accept_delay(state.level)) is not None:
        dispatched = _last(state, StepKind.DISPATCHED)
        assert dispatched is not None
        levels = rule.rule.levels
        index = levels.index(state.level)
        solvable = behaviour.solvable_from is None or (
            behaviour.solvable_from in levels and index >= levels.index(behaviour.solvable_from)
        )
        kind: ActionKind = "accept" if solvable or index + 1 >= len(levels) else "escalate"
        right_unit = behaviour.transfer_to.get(state.level)
        if right_unit is not None and right_unit != unit:
            chosen = (_action("transfer", unit, to_unit=right_unit), dispatched + wait)
        else:
            chosen = (_action(kind, unit), dispatched + wait)
    elif status is Status.ACCEPTED:
        accepted = _last(state, StepKind.ACCEPTED)
        assert accepted is not None
        chosen = (_action("resolve", unit), accepted + behaviour.resolve_after)
        if (extending := _extension_action(behaviour, state, accepted)) is not None and extending[1] < chosen[
            1
        ]:
            chosen = extending
    elif status is Status.VERIFYING and state.inspector is not None:
        checked = sum(step.kind in (StepKind.VERIFIED, StepKind.REJECTED) for step in state.timeline)
        if checked < len(behaviour.checks):
            resolved = _last(state, StepKind.RESOLVED)
            assert resolved is not None
            chosen = (_action(behaviour.checks[checked], state.inspector), resolved + behaviour.check_after)
    elif status is Status.RESOLVED:
        rated = sum(step.kind is StepKind.FEEDBACK for step in state.timeline)
        if rated < len(behaviour.ratings):
            resolved = _last(state, StepKind.RESOLVED)
            assert resolved is not None
            answer = behaviour.solved[rated] if rated < len(behaviour.solved) else None
            feedback = _action("feedback", rating=behaviour.ratings[rated], solved=answer)
            # Where the rule verifies, the resident is asked once the inspector has verified.
            verified = _last(state, StepKind.VERIFIED)
            asked = verified if verified is not None and verified > resolved else resolved
            chosen = (feedback, asked + behaviour.feedback_after)
    if behaviour.withdraw_after is not None:
        # On a tie the withdrawal goes first, as it always has.
        withdrawn = state.timeline[0].at + behaviour.withdraw_after
        if chosen is None or withdrawn <= chosen[1]:
            chosen = (_action("withdraw"), withdrawn)
    return chosen
