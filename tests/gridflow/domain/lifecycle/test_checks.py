"""Why a lifecycle command is refused: the exact words handlers, upstream apps and the CLI see.

Every refusal is checked twice: `refusal` gives the reason, and `apply` raises Refused with that same
reason and leaves the state exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gridflow.domain.incident import Incident, Priority, Rating, Status
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
    Withdraw,
    apply,
    fire_due,
    next_due,
    refusal,
    report,
    start,
)
from gridflow.domain.rules import builtin_rule_set
from tests.conftest import make_incident

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
HOUR = timedelta(hours=1)
GRID, STREET, DISTRICT, CITY = "g-nanjing-07", "s-nanjing-east", "d-huangpu", "c-shanghai"
ID = "inc-checks-1"
BUILTIN = builtin_rule_set()

Situation = tuple[IncidentState, Incident]


def assert_refused(state: IncidentState, incident: Incident, command: LifecycleCommand, reason: str) -> None:
    """`refusal` gives exactly `reason`; `apply` raises Refused with it and changes nothing."""
    assert refusal(state, command) == reason
    before = state.model_dump()
    with pytest.raises(Refused) as refused:
        apply(state, incident, command, T0 + 100 * HOUR)
    assert refused.value.reason == reason
    assert str(refused.value) == reason
    assert state.model_dump() == before


# ---------------------------------------------------------------------- situations


def reported() -> Situation:
    """Reported, its rule not yet matched (the workflow is still running match_rule)."""
    incident = make_incident(incident_id=ID)
    state, _ = report(incident, T0)
    return state, incident


def dispatched() -> Situation:
    """At the grid, waiting for it to accept."""
    state, incident = reported()
    start(state, incident, BUILTIN.snapshot_for(incident), T0)
    return state, incident


def accepted() -> Situation:
    """Accepted by the grid: its resolve clock runs."""
    state, incident = dispatched()
    apply(state, incident, Accept(unit_id=GRID), T0 + HOUR)
    return state, incident


def paused() -> Situation:
    """Accepted, then paused by the grid."""
    state, incident = accepted()
    apply(state, incident, Pause(unit_id=GRID), T0 + 2 * HOUR)
    return state, incident


def resolved() -> Situation:
    """Resolved by the grid: waiting for the resident's rating."""
    state, incident = accepted()
    apply(state, incident, Resolve(unit_id=GRID, resolution="fixed"), T0 + 2 * HOUR)
    return state, incident


def withdrawn() -> Situation:
    """Closed: the reporter withdrew it."""
    state, incident = dispatched()
    apply(state, incident, Withdraw(), T0 + HOUR)
    return state, incident


def rated(rating: Rating) -> Situation:
    """Closed by the resident's rating (unsatisfied: after the default rule's two reopens)."""
    state, incident = dispatched()
    rounds = 3 if rating is Rating.UNSATISFIED else 1
    for round_ in range(rounds):
        at = T0 + 3 * round_ * HOUR
        apply(state, incident, Accept(unit_id=GRID), at)
        apply(state, incident, Resolve(unit_id=GRID, resolution="fixed"), at + HOUR)
        apply(state, incident, Feedback(rating=rating), at + 2 * HOUR)
    return state, incident


def unrated() -> Situation:
    """Closed: the feedback window ended without a rating."""
    state, incident = resolved()
    fire_due(state, incident, T0 + 100 * HOUR)
    return state, incident


def at_the_top(status: Status) -> Situation:
    """An urgent incident passed up to the city, then (if asked) accepted or paused there."""
    incident = make_incident(priority=Priority.URGENT, incident_id=ID)
    state, _ = report(incident, T0)
    start(state, incident, BUILTIN.snapshot_for(incident), T0)
    for unit in (GRID, STREET, DISTRICT):
        apply(state, incident, RequestEscalation(unit_id=unit, reason=EscalationRequestReason.REQUESTED), T0)
    if status in (Status.ACCEPTED, Status.PAUSED):
        apply(state, incident, Accept(unit_id=CITY), T0)
    if status is Status.PAUSED:
        apply(state, incident, Pause(unit_id=CITY), T0)
    assert (state.level, state.status) == ("city", status)
    return state, incident


def allowance_used() -> Situation:
    """Accepted, and paused until the default rule's 72 h allowance ended the pause by itself."""
    state, incident = paused()
    while (due := next_due(state)) is not None and state.status is Status.PAUSED:
        fire_due(state, incident, due)
    assert state.status is Status.ACCEPTED and state.paused_total == 72 * HOUR
    return state, incident


EVERY_COMMAND: list[LifecycleCommand] = [
    Accept(unit_id=GRID),
    Progress(unit_id=GRID, note="on it"),
    RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
    Pause(unit_id=GRID),
    Resume(unit_id=GRID),
    Resolve(unit_id=GRID, resolution="fixed"),
    Feedback(rating=Rating.SATISFIED),
    Withdraw(reason="duplicate"),
]
UNIT_COMMANDS: list[LifecycleCommand] = [
    Accept(unit_id=STREET),
    Progress(unit_id=STREET),
    RequestEscalation(unit_id=STREET, reason=EscalationRequestReason.NOT_RESPONSIBLE),
    Pause(unit_id=STREET),
    Resume(unit_id=STREET),
    Resolve(unit_id=STREET, resolution="fixed"),
]


def _name(command: LifecycleCommand) -> str:
    return type(command).__name__


# ---------------------------------------------------------------------- before start, and the holder


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=_name)
def test_any_command_before_the_incident_is_started_is_refused_as_not_dispatched_yet(
    command: LifecycleCommand,
) -> None:
    state, incident = reported()

    assert_refused(state, incident, command, f"incident {ID} has not been dispatched yet")


@pytest.mark.parametrize("command", UNIT_COMMANDS, ids=_name)
@pytest.mark.parametrize("situation", [dispatched, accepted, paused, resolved], ids=lambda s: s.__name__)
def test_a_unit_that_does_not_hold_the_incident_is_refused(
    situation: Callable[[], Situation], command: LifecycleCommand
) -> None:
    state, incident = situation()

    assert_refused(
        state,
        incident,
        command,
        f"unit s-nanjing-east does not hold incident {ID} (held by {GRID} at level grid)",
    )


def test_the_holder_is_named_with_its_level_after_an_escalation() -> None:
    state, incident = dispatched()
    apply(state, incident, RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED), T0)

    assert_refused(
        state,
        incident,
        Accept(unit_id=GRID),
        f"unit {GRID} does not hold incident {ID} (held by {STREET} at level street)",
    )


# ---------------------------------------------------------------------- commands in the wrong status


@pytest.mark.parametrize(
    ("situation", "command", "reason"),
    [
        pytest.param(
            accepted,
            Accept(unit_id=GRID),
            f"cannot accept incident {ID}: it is accepted, not dispatched",
            id="accept-when-accepted",
        ),
        pytest.param(
            paused,
            Accept(unit_id=GRID),
            f"cannot accept incident {ID}: it is paused, not dispatched",
            id="accept-when-paused",
        ),
        pytest.param(
            resolved,
            Accept(unit_id=GRID),
            f"cannot accept incident {ID}: it is resolved, not dispatched",
            id="accept-when-resolved",
        ),
        pytest.param(
            dispatched,
            Resolve(unit_id=GRID, resolution="x"),
            f"cannot resolve incident {ID}: it is dispatched, not accepted or paused",
            id="resolve-before-accept",
        ),
        pytest.param(
            resolved,
            Resolve(unit_id=GRID, resolution="x"),
            f"cannot resolve incident {ID}: it is resolved, not accepted or paused",
            id="resolve-when-resolved",
        ),
        pytest.param(
            dispatched,
            Pause(unit_id=GRID),
            f"cannot pause incident {ID}: it is dispatched, not accepted",
            id="pause-when-dispatched",
        ),
        pytest.param(
            paused,
            Pause(unit_id=GRID),
            f"cannot pause incident {ID}: it is paused, not accepted",
            id="pause-when-paused",
        ),
        pytest.param(
            resolved,
            Pause(unit_id=GRID),
            f"cannot pause incident {ID}: it is resolved, not accepted",
            id="pause-when-resolved",
        ),
        pytest.param(
            dispatched,
            Resume(unit_id=GRID),
            f"cannot resume incident {ID}: it is dispatched, not paused",
            id="resume-when-dispatched",
        ),
        pytest.param(
            accepted,
            Resume(unit_id=GRID),
            f"cannot resume incident {ID}: it is accepted, not paused",
            id="resume-when-accepted",
        ),
        pytest.param(
            resolved,
            Resume(unit_id=GRID),
            f"cannot resume incident {ID}: it is resolved, not paused",
            id="resume-when-resolved",
        ),
        pytest.param(
            dispatched,
            Feedback(rating=Rating.SATISFIED),
            f"cannot take feedback on incident {ID}: it is dispatched, not resolved",
            id="feedback-when-dispatched",
        ),
        pytest.param(
            accepted,
            Feedback(rating=Rating.UNSATISFIED),
            f"cannot take feedback on incident {ID}: it is accepted, not resolved",
            id="feedback-when-accepted",
        ),
        pytest.param(
            paused,
            Feedback(rating=Rating.BASICALLY_SATISFIED),
            f"cannot take feedback on incident {ID}: it is paused, not resolved",
            id="feedback-when-paused",
        ),
        pytest.param(
            dispatched,
            Progress(unit_id=GRID, note="x"),
            f"cannot note progress on incident {ID}: it is dispatched, not accepted or paused",
            id="progress-when-dispatched",
        ),
        pytest.param(
            resolved,
            Progress(unit_id=GRID, note="x"),
            f"cannot note progress on incident {ID}: it is resolved, not accepted or paused",
            id="progress-when-resolved",
        ),
        pytest.param(
            resolved,
            RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
            f"cannot escalate incident {ID}: it is resolved, not dispatched or accepted or paused",
            id="escalate-when-resolved",
        ),
    ],
)
def test_a_command_in_the_wrong_status_is_refused(
    situation: Callable[[], Situation], command: LifecycleCommand, reason: str
) -> None:
    state, incident = situation()

    assert_refused(state, incident, command, reason)


# ---------------------------------------------------------------------- limits of the ladder and the pause


@pytest.mark.parametrize("status", [Status.DISPATCHED, Status.ACCEPTED, Status.PAUSED], ids=str)
def test_an_escalation_requested_at_the_top_level_is_refused(status: Status) -> None:
    state, incident = at_the_top(status)

    assert_refused(
        state,
        incident,
        RequestEscalation(unit_id=CITY, reason=EscalationRequestReason.REQUESTED),
        f"incident {ID} is at the top level (city): nothing is above",
    )


def test_an_escalation_at_the_top_level_of_a_one_level_ladder_names_that_level() -> None:
    rules = BUILTIN.model_copy(
        update={
            "rules": [
                BUILTIN.rules[-1].model_copy(update={"ladder": {"grid": BUILTIN.rules[-1].ladder["grid"]}})
            ]
        }
    )
    incident = make_incident(incident_id=ID)
    state, _ = report(incident, T0)
    start(state, incident, rules.snapshot_for(incident), T0)

    assert_refused(
        state,
        incident,
        RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.NOT_RESPONSIBLE),
        f"incident {ID} is at the top level (grid): nothing is above",
    )


def test_a_pause_is_refused_once_the_whole_allowance_is_used() -> None:
    state, incident = allowance_used()

    assert_refused(state, incident, Pause(unit_id=GRID), f"incident {ID} has used its whole pause allowance")


# ---------------------------------------------------------------------- closed incidents


@pytest.mark.parametrize("command", [*EVERY_COMMAND, *UNIT_COMMANDS], ids=_name)
def test_anything_sent_to_a_closed_incident_is_refused(command: LifecycleCommand) -> None:
    state, incident = withdrawn()

    assert_refused(
        state, incident, command, f"incident {ID} is closed (withdrawn); nothing more can happen to it"
    )


@pytest.mark.parametrize(
    ("situation", "outcome"),
    [
        pytest.param(lambda: rated(Rating.SATISFIED), "resolved", id="resolved"),
        pytest.param(lambda: rated(Rating.UNSATISFIED), "resolved_unsatisfied", id="resolved_unsatisfied"),
        pytest.param(unrated, "resolved_unrated", id="resolved_unrated"),
    ],
)
def test_the_refusal_of_a_closed_incident_names_how_it_ended(
    situation: Callable[[], Situation], outcome: str
) -> None:
    state, incident = situation()

    for command in (Feedback(rating=Rating.SATISFIED), Withdraw(), Accept(unit_id=GRID)):
        assert_refused(
            state, incident, command, f"incident {ID} is closed ({outcome}); nothing more can happen to it"
        )


# ---------------------------------------------------------------------- which reason comes first


def test_a_wrong_unit_in_a_wrong_status_hears_that_it_does_not_hold_the_incident() -> None:
    state, incident = dispatched()

    assert_refused(
        state,
        incident,
        Resolve(unit_id=STREET, resolution="x"),
        f"unit s-nanjing-east does not hold incident {ID} (held by {GRID} at level grid)",
    )


def test_a_wrong_unit_at_the_top_level_hears_that_it_does_not_hold_the_incident() -> None:
    state, incident = at_the_top(Status.DISPATCHED)

    assert_refused(
        state,
        incident,
        RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
        f"unit {GRID} does not hold incident {ID} (held by {CITY} at level city)",
    )


# ---------------------------------------------------------------------- what is allowed


@pytest.mark.parametrize(
    ("situation", "command"),
    [
        pytest.param(dispatched, Accept(unit_id=GRID), id="accept-when-dispatched"),
        pytest.param(
            dispatched,
            RequestEscalation(unit_id=GRID, reason=EscalationRequestReason.REQUESTED),
            id="escalate-when-dispatched",
        ),
        pytest.param(accepted, Progress(unit_id=GRID), id="progress-when-accepted"),
        pytest.param(paused, Progress(unit_id=GRID), id="progress-when-paused"),
        pytest.param(accepted, Pause(unit_id=GRID), id="pause-when-accepted"),
        pytest.param(paused, Resume(unit_id=GRID), id="resume-when-paused"),
        pytest.param(paused, Resolve(unit_id=GRID, resolution="x"), id="resolve-when-paused"),
        pytest.param(resolved, Feedback(rating=Rating.UNSATISFIED), id="feedback-when-resolved"),
        pytest.param(resolved, Withdraw(), id="withdraw-when-resolved"),
        pytest.param(lambda: at_the_top(Status.DISPATCHED), Accept(unit_id=CITY), id="accept-at-the-top"),
    ],
)
def test_a_legal_command_has_no_refusal_and_applies(
    situation: Callable[[], Situation], command: LifecycleCommand
) -> None:
    state, incident = situation()

    assert refusal(state, command) is None
    assert apply(state, incident, command, T0 + 3 * HOUR) != []
