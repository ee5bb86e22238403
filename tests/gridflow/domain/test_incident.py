"""The incident model's ids and timestamps: what may become a workflow id, a Kafka key, a search attribute."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from gridflow.domain.incident import Incident, Location
from tests.events.samples import reported_data


def report(**changes: Any) -> dict[str, Any]:
    return {**reported_data("inc-2026-000042"), **changes}


def located(**changes: Any) -> dict[str, Any]:
    return report(location={**reported_data()["location"], **changes})


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Incident.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors(include_url=False)]


@pytest.mark.parametrize(
    "bad",
    ["g\x00", "g\x1b[31m", "g-7\n", "\ng-7", "g 7", "-g7", "u" * 129, "u" * 10_000, "g\u00e9", "g\u0441"],
    ids=[
        "NUL",
        "ANSI escape",
        "trailing newline",
        "leading newline",
        "space",
        "leading dash",
        "129",
        "10k",
        "accent",
        "Cyrillic",
    ],
)
def test_an_id_is_ascii_letters_digits_and_dot_underscore_colon_dash_up_to_128(bad: str) -> None:
    (where, message), *_ = problems(located(grid_id=bad))
    assert where == "location.grid_id"
    assert message.startswith(("String should match pattern", "String should have at most 128 characters"))


def test_an_id_in_either_unicode_normalisation_form_is_refused_so_both_can_never_exist() -> None:
    nfc, nfd = (unicodedata.normalize(form, "inc-café") for form in ("NFC", "NFD"))
    assert nfc != nfd
    for incident_id in (nfc, nfd):
        assert problems(report(incident_id=incident_id))[0][0] == "incident_id"


def test_the_longest_and_oddest_ids_allowed_are_kept_byte_for_byte() -> None:
    grid = "G9._:-" + "x" * 122
    incident = Incident.model_validate(located(grid_id=grid, city_id="c:1.2_3"))
    assert incident.location == Location(
        **{**reported_data()["location"], "grid_id": grid, "city_id": "c:1.2_3"}
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12))),  # year 10000 in UTC
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # year 0 in UTC
    ],
)
def test_a_reported_at_outside_the_years_utc_can_hold_is_refused(moment: datetime) -> None:
    assert problems(report(reported_at=moment)) == [
        ("reported_at", "Value error, timestamp must fall within the years 1 to 9999 in UTC")
    ]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 11, 59, 59, tzinfo=timezone(timedelta(hours=-12))),
        datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(2300, 1, 1, tzinfo=UTC),  # the model has no clock: the event contract compares with now
    ],
)
def test_a_reported_at_utc_can_hold_is_kept_as_given(moment: datetime) -> None:
    assert Incident.model_validate(report(reported_at=moment)).reported_at == moment


def test_a_reported_at_without_a_zone_is_refused() -> None:
    assert problems(report(reported_at=datetime(2026, 11, 23, 8))) == [
        ("reported_at", "Value error, timestamp must carry a time zone (e.g. 2026-11-23T08:00:00Z)")
    ]
