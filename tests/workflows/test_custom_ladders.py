"""Ladders a rules file defines itself: a five-step mediation ladder, levels skipped, the whistle."""

from __future__ import annotations

from datetime import timedelta

from gridflow.domain.incident import Priority
from gridflow.domain.lifecycle import StepKind
from gridflow.domain.rules import parse_rule_set
from tests.conftest import make_incident
from tests.workflows.conftest import Incidents

MEDIATION = """
version: mediation-1
levels:
  grid_mediator: {unit: "mediator-{grid_id}", description: grid mediator}
  elders:        {unit: "elders-{street_id}", description: respected elders of the street}
  stations:      {unit: "stations-{district_id}", description: "police, judicial and court stations"}
  industry:      {unit: "industry-{category}-{district_id}", description: industry mediation committee}
  panel:         {unit: "panel-{district_id}", description: district expert panel}
rules:
  - name: disputes
    match: {category: [neighbour_dispute]}
    ladder:
      grid_mediator: {accept: 1h, resolve: 1d}
      elders:        {accept: 2h, resolve: 2d}
      stations:      {accept: 2h, resolve: 3d, notify: ["justice-{district_id}"]}
      industry:      {accept: 4h, resolve: 5d}
      panel:         {accept: 8h, resolve: 10d}
  - name: enterprise
    match: {category: [enterprise]}
    ladder:
      district: {accept: 1h, resolve: 1d, notify: ["market-supervision-{district_id}"]}
      city:     {accept: 2h, resolve: 2d}
  - name: default
    ladder:
      grid: {accept: 2h, resolve: 1d}
"""


async def test_a_five_step_mediation_ladder_climbs_through_every_step_with_units_from_its_templates(
    incidents: Incidents,
) -> None:
    incidents.rules.replace(parse_rule_set(MEDIATION, "mediation.yaml"))
    handle = await incidents.report(make_incident(category="neighbour_dispute"))

    state = await incidents.state(handle)
    assert (state.level, state.holder_unit) == ("grid_mediator", "mediator-g-nanjing-07")
    holders = [state.holder_unit]
    for wait in (timedelta(hours=1, minutes=1), timedelta(hours=2, minutes=1), timedelta(hours=2, minutes=1)):
        state = await incidents.advance(handle, wait)
        holders.append(state.holder_unit)
    state = await incidents.advance(handle, timedelta(hours=4, minutes=1))
    holders.append(state.holder_unit)
    state = await incidents.advance(handle, timedelta(hours=8, minutes=1))

    assert holders == [
        "mediator-g-nanjing-07",
        "elders-s-nanjing-east",
        "stations-d-huangpu",
        "industry-neighbour_dispute-d-huangpu",
        "panel-d-huangpu",
    ]
    assert state.level == "panel" and state.overdue
    notified = [s.unit_id for s in state.timeline if s.kind is StepKind.NOTIFIED]
    assert notified == ["justice-d-huangpu"]  # the whistle blew when the stations got it


async def test_enterprise_problems_go_straight_to_the_district_and_blow_the_whistle(
    incidents: Incidents,
) -> None:
    incidents.rules.replace(parse_rule_set(MEDIATION, "mediation.yaml"))
    handle = await incidents.report(make_incident(category="enterprise", priority=Priority.HIGH))

    state = await incidents.state(handle)
    assert (state.level, state.holder_unit) == ("district", "d-huangpu")
    notified = [(s.kind, s.unit_id) for s in state.timeline if s.kind is StepKind.NOTIFIED]
    assert notified == [(StepKind.NOTIFIED, "market-supervision-d-huangpu")]
    published = incidents.published(state.incident_id)
    assert [s.kind for s in published][-2:] == [StepKind.DISPATCHED, StepKind.NOTIFIED]

    state = await incidents.advance(handle, timedelta(hours=1, minutes=1))
    assert (state.level, state.holder_unit) == ("city", "c-shanghai")
