"""What a simulated incident's people do: the lines of a `gridflow simulate` stream."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridflow.incident import Incident, Rating
from gridflow.rules.durations import Delay


class Behaviour(BaseModel):
    """How the handlers and the resident of one incident behave.

    `accept_after` is one duration for every level or a duration per level (a level left out, or
    null, never accepts); below `solvable_from` the handlers pass the incident up (`requested`)
    instead of accepting it. Each resolution takes the next of `ratings`; when they run out the
    resident gives no feedback.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_after: Delay | dict[str, Delay | None] | None = timedelta(minutes=30)
    solvable_from: str | None = None
    resolve_after: Delay = timedelta(hours=4)
    ratings: list[Rating] = Field(default_factory=lambda: [Rating.SATISFIED])
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
    """A simulated incident with the delay from the start of the simulation to its report."""

    incident: Incident
    behaviour: Behaviour
    delay: timedelta
    horizon: timedelta = timedelta(days=30)  # how long after its report the incident is followed


class Action(BaseModel):
    """One thing a simulated person does to an incident."""

    kind: Literal["accept", "escalate", "resolve", "feedback", "withdraw"]
    unit_id: str | None = None
    rating: Rating | None = None
