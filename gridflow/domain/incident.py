"""The incident as upstream apps report it, and the vocabulary of its life: levels, statuses, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Ids end up in workflow ids, search attributes and Kafka keys: keep them to a safe, printable alphabet.
# ASCII only, on purpose: Temporal, Kafka and the archive compare ids byte for byte, so a non-ASCII id
# could exist twice, once per Unicode normalisation form ("café" in NFC and in NFD), as two incidents
# that print the same. Refusing non-ASCII ids makes that impossible instead of normalising behind the
# upstream app's back (its own database would still hold the other form).
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (e.g. 2026-11-23T08:00:00Z)")
    # 9999-12-31T23:59:59-12:00 is year 10000 in UTC, 0001-01-01T00:00:00+01:00 year 0: Python cannot
    # convert them, so every later comparison or conversion (the archive keeps UTC) would fail.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp must fall within the years 1 to 9999 in UTC") from None
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]

#: The default administrative hierarchy, bottom to top.
DEFAULT_LEVELS: tuple[str, ...] = ("grid", "street", "district", "city")

#: The unit id used at city level when the location names no city.
DEFAULT_CITY_UNIT = "city"


class Priority(StrEnum):
    """How urgent the reporter or the hotline judged the incident."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Rating(StrEnum):
    """The resident's verdict after resolution."""

    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"

    @property
    def is_satisfied(self) -> bool:
        """Satisfied and basically satisfied both count towards the satisfaction rate."""
        return self is not Rating.UNSATISFIED


class Status(StrEnum):
    """Where an incident stands in its loop."""

    REPORTED = "reported"  # received, rule not yet matched
    DISPATCHED = "dispatched"  # waiting for the holding unit to accept
    ACCEPTED = "accepted"  # being handled; the resolve clock runs
    PAUSED = "paused"  # being handled; the resolve clock is stopped
    VERIFYING = "verifying"  # reported solved; the rule's inspector checks it before the resident is asked
    RESOLVED = "resolved"  # waiting for the resident's feedback
    CLOSED = "closed"


#: The statuses in which an SLA clock runs (accept, resolve, verify): those an incident can be due in.
CLOCK_STATUSES: tuple[Status, ...] = (Status.DISPATCHED, Status.ACCEPTED, Status.VERIFYING)


class Outcome(StrEnum):
    """How a closed incident ended."""

    RESOLVED = "resolved"  # the resident was satisfied or basically satisfied
    RESOLVED_UNRATED = "resolved_unrated"  # no feedback within the window
    # Still unsatisfied, or still not solved, after the last allowed reopen: the resident did not accept.
    RESOLVED_UNSATISFIED = "resolved_unsatisfied"
    WITHDRAWN = "withdrawn"

    @property
    def is_resolved(self) -> bool:
        """Whether the incident was actually resolved (the numerator of the resolution rate)."""
        return self is not Outcome.WITHDRAWN


class EscalationReason(StrEnum):
    """Why an incident went up a level."""

    ACCEPT_TIMEOUT = "accept_timeout"
    RESOLVE_TIMEOUT = "resolve_timeout"
    REQUESTED = "requested"
    NOT_RESPONSIBLE = "not_responsible"
    UNSATISFIED = "unsatisfied"
    NOT_SOLVED = "not_solved"  # the resident says the problem is not solved (rule: on_unsatisfied)
    VERIFY_TIMEOUT = "verify_timeout"  # the inspector did not check in time (verification: escalate)


class Location(BaseModel):
    """Where the incident is, as the ids of the units responsible at each level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grid_id: Identifier
    street_id: Identifier
    district_id: Identifier
    city_id: Identifier | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)


class Reporter(BaseModel):
    """Who reported the incident. Personal data: never in logs, metrics or search attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    channel: str | None = Field(default=None, max_length=50)


class Incident(BaseModel):
    """An incident as reported (the data of a `gridflow.incident.reported.v1` event)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: Identifier
    category: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = Field(default=None, max_length=4000)
    priority: Priority
    location: Location
    reported_at: AwareDatetime
    reporter: Reporter | None = None

    @property
    def workflow_id(self) -> str:
        """The id of the workflow that carries this incident."""
        return workflow_id_for(self.incident_id)


def workflow_id_for(incident_id: str) -> str:
    """The workflow id of an incident: `incident-<incident_id>`."""
    return f"incident-{incident_id}"
