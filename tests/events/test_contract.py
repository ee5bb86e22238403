"""The inbound contract: its types, the models of their data, and the commands they become."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from events import contract
from events.contract import (
    DATA_MODELS,
    INBOUND_TYPES,
    AcceptedData,
    EscalationRequestedData,
    ExtensionGrantedData,
    ExtensionRefusedData,
    ExtensionRequestedData,
    FeedbackData,
    LifecycleData,
    PausedData,
    ProgressData,
    RejectedData,
    ResolvedData,
    ResumedData,
    TransferredData,
    VerifiedData,
    WithdrawnData,
    event_type_of,
    to_command,
    validate_data,
)
from events.errors import EventRejected
from gridflow.domain.incident import Incident, Rating
from gridflow.domain.lifecycle import (
    Accept,
    EscalationRequestReason,
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
from tests.events.samples import INCIDENT_ID, UNIT_ID, sample_data

AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def test_the_contract_knows_the_fifteen_types_of_the_product_table() -> None:
    assert INBOUND_TYPES == (
        "gridflow.incident.reported.v1",
        "gridflow.incident.accepted.v1",
        "gridflow.incident.progress.v1",
        "gridflow.incident.escalation_requested.v1",
        "gridflow.incident.transferred.v1",
        "gridflow.incident.extension_requested.v1",
        "gridflow.incident.extension_granted.v1",
        "gridflow.incident.extension_refused.v1",
        "gridflow.incident.paused.v1",
        "gridflow.incident.resumed.v1",
        "gridflow.incident.resolved.v1",
        "gridflow.incident.verified.v1",
        "gridflow.incident.rejected.v1",
        "gridflow.incident.feedback.v1",
        "gridflow.incident.withdrawn.v1",
    )
    assert INBOUND_TYPES[1:] == contract.LIFECYCLE_TYPES


def test_reported_data_is_the_incident_model_itself() -> None:
    assert DATA_MODELS[contract.REPORTED] is Incident
    assert contract.ReportedData is Incident


@pytest.mark.parametrize("event_type", INBOUND_TYPES)
def test_every_data_model_forbids_unknown_fields(event_type: str) -> None:
    assert DATA_MODELS[event_type].model_config.get("extra") == "forbid"
    with pytest.raises(EventRejected) as caught:
        validate_data(event_type, {**sample_data(event_type), "surprise": 1})
    assert caught.value.error_type == "invalid_data"
    assert "data.surprise: Extra inputs are not permitted" in caught.value.message


@pytest.mark.parametrize("event_type", INBOUND_TYPES)
def test_sample_data_of_every_type_validates_and_knows_its_type(event_type: str) -> None:
    data = validate_data(event_type, sample_data(event_type))
    assert isinstance(data, DATA_MODELS[event_type])
    assert data.incident_id == INCIDENT_ID
    assert event_type_of(data) == event_type


@pytest.mark.parametrize(
    ("data", "command"),
    [
        (
            AcceptedData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, handler="Zhang San", at=AT),
            Accept(unit_id=UNIT_ID, handler="Zhang San", at=AT),
        ),
        (
            ProgressData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, note="on the way", at=AT),
            Progress(unit_id=UNIT_ID, note="on the way", at=AT),
        ),
        (
            EscalationRequestedData(
                incident_id=INCIDENT_ID, unit_id=UNIT_ID, reason=EscalationRequestReason.REQUESTED, note="n"
            ),
            RequestEscalation(unit_id=UNIT_ID, reason=EscalationRequestReason.REQUESTED, note="n"),
        ),
        (
            TransferredData(incident_id=INCIDENT_ID, to_unit="g-08", reason="next grid's", at=AT),
            Transfer(to_unit="g-08", reason="next grid's", at=AT),
        ),
        (
            ExtensionRequestedData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, extra="2wd", reason="crane"),
            RequestExtension(unit_id=UNIT_ID, extra="2wd", reason="crane"),
        ),
        (
            ExtensionGrantedData(incident_id=INCIDENT_ID, unit_id="s-1", note="ok", at=AT),
            GrantExtension(unit_id="s-1", note="ok", at=AT),
        ),
        (
            ExtensionRefusedData(incident_id=INCIDENT_ID, unit_id="s-1", reason="no", at=AT),
            RefuseExtension(unit_id="s-1", reason="no", at=AT),
        ),
        (
            PausedData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, reason="weather", at=AT),
            Pause(unit_id=UNIT_ID, reason="weather", at=AT),
        ),
        (
            ResumedData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, reason="parts arrived", at=AT),
            Resume(unit_id=UNIT_ID, at=AT),
        ),
        (
            ResolvedData(incident_id=INCIDENT_ID, unit_id=UNIT_ID, resolution="Lamp replaced.", at=AT),
            Resolve(unit_id=UNIT_ID, resolution="Lamp replaced.", at=AT),
        ),
        (
            VerifiedData(incident_id=INCIDENT_ID, unit_id="i-1", note="lit", at=AT),
            Verify(unit_id="i-1", note="lit", at=AT),
        ),
        (
            RejectedData(incident_id=INCIDENT_ID, unit_id="i-1", reason="dark"),
            Reject(unit_id="i-1", reason="dark"),
        ),
        (
            FeedbackData(incident_id=INCIDENT_ID, rating=Rating.UNSATISFIED, comment="still dark", at=AT),
            Feedback(rating=Rating.UNSATISFIED, comment="still dark", at=AT),
        ),
        (
            WithdrawnData(incident_id=INCIDENT_ID, reason="duplicate"),
            Withdraw(reason="duplicate"),
        ),
    ],
    ids=lambda value: type(value).__name__,
)
def test_lifecycle_data_becomes_the_matching_workflow_command(
    data: LifecycleData, command: LifecycleCommand
) -> None:
    assert to_command(data) == command


_COMMAND_OF: dict[type[BaseModel], type[BaseModel]] = {
    AcceptedData: Accept,
    ProgressData: Progress,
    EscalationRequestedData: RequestEscalation,
    TransferredData: Transfer,
    ExtensionRequestedData: RequestExtension,
    ExtensionGrantedData: GrantExtension,
    ExtensionRefusedData: RefuseExtension,
    VerifiedData: Verify,
    RejectedData: Reject,
    PausedData: Pause,
    ResumedData: Resume,
    ResolvedData: Resolve,
    FeedbackData: Feedback,
    WithdrawnData: Withdraw,
}


def _property(model: type[BaseModel], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()["properties"][name]
    schema.pop("title", None)
    return schema


@pytest.mark.parametrize("data_model", list(_COMMAND_OF), ids=lambda model: model.__name__)
def test_lifecycle_data_accepts_exactly_what_its_command_accepts(data_model: type[BaseModel]) -> None:
    command = _COMMAND_OF[data_model]
    assert set(command.model_fields) <= set(data_model.model_fields)
    for name in command.model_fields:
        if name != "at":  # the event insists on a time zone; the command takes what the event gives
            assert _property(data_model, name) == _property(command, name), name


@pytest.mark.parametrize("event_type", contract.LIFECYCLE_TYPES)
def test_every_lifecycle_type_maps_to_a_command(event_type: str) -> None:
    data = validate_data(event_type, sample_data(event_type))
    assert not isinstance(data, Incident)
    command = to_command(data)
    assert isinstance(command, _COMMAND_OF[type(data)])
    assert command.at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "at",
    [
        "2026-11-23T09:30:00",  # no zone
        "2026-11-23T09:30Z",  # no seconds
        "2026-11-23T09:30:00+0800",  # zone without colon
        "2026-11-23",
        1795000000,  # a Unix time
    ],
)
def test_lifecycle_times_must_be_rfc3339_with_a_zone(at: object) -> None:
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.ACCEPTED, {**sample_data(contract.ACCEPTED), "at": at})
    assert caught.value.error_type == "invalid_data"
    assert caught.value.message.startswith("data.at: ")


def test_reported_at_must_be_rfc3339_with_a_zone_too() -> None:
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.REPORTED, {**sample_data(contract.REPORTED), "reported_at": 1795000000})
    assert caught.value.message.startswith("data.reported_at: ")
    with pytest.raises(EventRejected) as caught:
        validate_data(
            contract.REPORTED, {**sample_data(contract.REPORTED), "reported_at": "2026-11-23T08:00"}
        )
    assert caught.value.message.startswith("data.reported_at: ")


def test_validation_is_strict_about_json_types() -> None:
    data = sample_data(contract.REPORTED)
    data["location"] = {**data["location"], "lat": "31.2"}
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.REPORTED, data)
    assert caught.value.message == "data.location.lat: Input should be a valid number"


def test_invalid_data_lists_every_field_path_and_problem_without_the_input() -> None:
    data = sample_data(contract.REPORTED)
    data["priority"] = "whenever"
    data["location"] = {"street_id": "s-1", "district_id": "d-1"}
    data["reporter"] = {"name": "Li Wei", "phone": "x" * 60}
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.REPORTED, data)
    problems = caught.value.message.split("; ")
    assert "data.location.grid_id: Field required" in problems
    assert "data.priority: Input should be 'low', 'normal', 'high' or 'urgent'" in problems
    assert "data.reporter.phone: String should have at most 50 characters" in problems
    assert "x" * 60 not in caught.value.message


def test_escalation_request_reason_is_requested_or_not_responsible() -> None:
    assert EscalationRequestedData.model_fields["reason"].annotation is EscalationRequestReason
    with pytest.raises(EventRejected) as caught:
        validate_data(
            contract.ESCALATION_REQUESTED, {"incident_id": INCIDENT_ID, "unit_id": UNIT_ID, "reason": "bored"}
        )
    assert caught.value.message == "data.reason: Input should be 'requested' or 'not_responsible'"


def test_an_unknown_type_is_rejected_as_such() -> None:
    with pytest.raises(EventRejected) as caught:
        validate_data("gridflow.incident.teleported.v1", {"incident_id": INCIDENT_ID})
    assert caught.value.error_type == "unknown_type"


NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("event_type", INBOUND_TYPES)
def test_a_timestamp_more_than_max_ahead_of_the_clock_is_refused_naming_its_field(event_type: str) -> None:
    name = "reported_at" if event_type == contract.REPORTED else "at"
    late = (NOW + contract.MAX_AHEAD + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8)))
    with pytest.raises(EventRejected) as caught:
        validate_data(event_type, {**sample_data(event_type), name: late.isoformat()}, now=NOW)
    assert caught.value.error_type == "invalid_data"
    assert caught.value.message == (
        f"data.{name}: more than 15 minutes ahead of gridflow's clock "
        "(check the producer's clock and time zone)"
    )


@pytest.mark.parametrize("event_type", INBOUND_TYPES)
def test_a_timestamp_up_to_max_ahead_of_the_clock_is_taken_as_it_is(event_type: str) -> None:
    name = "reported_at" if event_type == contract.REPORTED else "at"
    edge = NOW + contract.MAX_AHEAD
    validated = validate_data(event_type, {**sample_data(event_type), name: edge.isoformat()}, now=NOW)
    assert getattr(validated, name) == edge


def test_a_lifecycle_event_without_at_is_never_ahead() -> None:
    data = {key: value for key, value in sample_data(contract.PROGRESS).items() if key != "at"}
    validated = validate_data(contract.PROGRESS, data, now=datetime(2000, 1, 1, tzinfo=UTC))
    assert isinstance(validated, ProgressData) and validated.at is None


def test_without_now_the_limit_is_on_this_machines_clock() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    later = datetime.now(UTC) + timedelta(hours=1)
    data = sample_data(contract.ACCEPTED)
    validated = validate_data(contract.ACCEPTED, {**data, "at": soon.isoformat()})
    assert isinstance(validated, AcceptedData) and validated.at == soon
    with pytest.raises(EventRejected, match=r"^invalid_data: data\.at: more than 15 minutes ahead"):
        validate_data(contract.ACCEPTED, {**data, "at": later.isoformat()})


def test_a_timestamp_far_ahead_and_a_bad_field_are_both_reported_only_when_the_rest_validates() -> None:
    # Model problems come first; the clock is compared only for data that validates.
    data = {**sample_data(contract.REPORTED), "reported_at": "2300-01-01T00:00:00Z", "priority": "asap"}
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.REPORTED, data, now=NOW)
    assert caught.value.message == "data.priority: Input should be 'low', 'normal', 'high' or 'urgent'"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+12:00"])
def test_a_timestamp_outside_the_years_utc_can_hold_is_refused(moment: str) -> None:
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.REPORTED, {**sample_data(contract.REPORTED), "reported_at": moment}, now=NOW)
    assert caught.value.message == (
        "data.reported_at: Value error, timestamp must fall within the years 1 to 9999 in UTC"
    )


def test_feedback_may_say_whether_the_problem_was_solved_and_events_without_it_stay_valid() -> None:
    answered = validate_data(contract.FEEDBACK, {**sample_data(contract.FEEDBACK), "solved": False})
    unasked = validate_data(contract.FEEDBACK, sample_data(contract.FEEDBACK))

    assert isinstance(answered, FeedbackData) and isinstance(unasked, FeedbackData)
    assert to_command(answered) == Feedback(
        rating=answered.rating, solved=False, comment=answered.comment, at=answered.at
    )
    assert to_command(unasked) == Feedback(
        rating=unasked.rating, solved=None, comment=unasked.comment, at=unasked.at
    )


def test_a_solved_answer_that_is_not_yes_or_no_is_refused_naming_the_field() -> None:
    with pytest.raises(EventRejected) as caught:
        validate_data(contract.FEEDBACK, {**sample_data(contract.FEEDBACK), "solved": "maybe"})
    assert caught.value.error_type == "invalid_data"
    assert "data.solved" in caught.value.message
