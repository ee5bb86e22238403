"""Known answers: a scripted day of incidents through Kafka, the bridge and the workflows, judged by a
real Prometheus scraping gridflow with the shipped recording rules.

Ten incidents in one district, each with a scripted handler and resident:
  A1-A4  accepted, resolved, satisfied                      -> closed resolved at grid
  B      accepted, resolved, basically satisfied            -> closed resolved at grid
  C      accepted, resolved, unsatisfied; reopened at grid; accepted, resolved, satisfied
  D      not accepted in time at grid (accept_timeout) -> street accepts, resolves, satisfied
  E      grid asks to escalate (requested) -> street; then withdrawn
  F      accepted, resolved, no feedback within the window  -> closed resolved_unrated
  G      accepted, resolved, unsatisfied; reopened; resolved; unsatisfied again -> resolved_unsatisfied
By hand:
  response      = accepted in time / (accepted in time + accept breaches) = 11 / (11 + 1)
  satisfaction  = (satisfied + basically) / ratings = 7 / 10
  resolution    = resolved closures / closures = 9 / 10
  containment   = resolved closures at grid / resolved closures = 8 / 9 (street and district: 9 / 9)
  on-time       = resolutions within the resolve limit / resolutions = 11 / 11
  escalation    = closed incidents escalated at least once / closures = 2 / 10 (D and E)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from temporalio.testing import WorkflowEnvironment

from activities.metrics import LifecycleMetrics
from events import contract
from gridflow.app.compose import process_registry
from gridflow.app.metrics_server import serve_metrics
from gridflow.app.settings import Settings
from gridflow.domain.incident import Outcome, Status
from gridflow.domain.rules import RulesSource, parse_rule_set
from tests.conftest import free_port
from tests.events.conftest import Pipeline, open_pipeline
from tests.prometheus import district_rate, running_prometheus, scraping_gridflow, until_seen

SCENARIO_RULES = """
version: scenario-1
rules:
  - name: scenario
    ladder:
      grid:     {accept: 8s, resolve: 2m}
      street:   {accept: 8s, resolve: 2m}
      district: {accept: 8s, resolve: 2m}
    warn_at: 0.9
    feedback: {window: 8s, on_unsatisfied: reopen_same_level, max_reopens: 1}
"""


@pytest.fixture
def registry() -> CollectorRegistry:
    """The registry of the process under test (it is both worker and bridge)."""
    return process_registry()


@pytest.fixture
async def scenario_pipeline(
    kafka_bootstrap: str, dev_server_env: WorkflowEnvironment, registry: CollectorRegistry
) -> AsyncIterator[Pipeline]:
    rules = RulesSource()
    rules.replace(parse_rule_set(SCENARIO_RULES, "scenario.yaml"))
    metrics = LifecycleMetrics(registry)
    async with open_pipeline(kafka_bootstrap, dev_server_env, rules, metrics=metrics) as pipeline:
        yield pipeline


async def test_each_rate_prometheus_reports_equals_the_hand_computed_value(
    scenario_pipeline: Pipeline, registry: CollectorRegistry
) -> None:
    pipeline = scenario_pipeline
    district = f"d-scenario-{uuid.uuid4().hex[:6]}"
    metrics_port = free_port()
    endpoint = serve_metrics(Settings(metrics_port=metrics_port), registry)
    with endpoint, running_prometheus(scraping_gridflow(metrics_port)) as prometheus:
        pipeline.start_bridge()
        ids = {
            name: f"inc-{district}-{name}" for name in ("A1", "A2", "A3", "A4", "B", "C", "D", "E", "F", "G")
        }
        grid, street = "g-nanjing-07", "s-nanjing-east"

        def send(event_type: str, who: str, **data: object) -> None:
            pipeline.publish(pipeline.event(event_type, ids[who], **data))

        for who in ids:
            location = {
                "grid_id": grid,
                "street_id": street,
                "district_id": district,
                "city_id": "c-shanghai",
            }
            send(contract.REPORTED, who, location=location, priority="normal")
        for who in ids:
            await pipeline.wait_for(ids[who], lambda s: s.status is Status.DISPATCHED)
        # The worker created the district's series at zero with its first incident; the handlers act
        # once Prometheus has seen them, as in any live system after a district's first incident.
        await until_seen(prometheus, f'gridflow_incidents_accepted_total{{district="{district}"}}')
        await asyncio.sleep(1.5)

        for who in ("A1", "A2", "A3", "A4", "B", "C", "F", "G"):
            send(contract.ACCEPTED, who, unit_id=grid)
            send(contract.RESOLVED, who, unit_id=grid)
        send(contract.ESCALATION_REQUESTED, "E", unit_id=grid, reason="requested")
        for who in ("A1", "A2", "A3", "A4"):
            send(contract.FEEDBACK, who, rating="satisfied")
        send(contract.FEEDBACK, "B", rating="basically_satisfied")
        send(contract.FEEDBACK, "C", rating="unsatisfied")
        send(contract.FEEDBACK, "G", rating="unsatisfied")
        for who in ("C", "G"):
            await pipeline.wait_for(ids[who], lambda s: s.reopen_count == 1 and s.status is Status.DISPATCHED)
            send(contract.ACCEPTED, who, unit_id=grid)
            send(contract.RESOLVED, who, unit_id=grid)
        send(contract.FEEDBACK, "C", rating="satisfied")
        send(contract.FEEDBACK, "G", rating="unsatisfied")
        await pipeline.wait_for(ids["E"], lambda s: s.level == "street")
        send(contract.WITHDRAWN, "E")
        await pipeline.wait_for(ids["D"], lambda s: s.level == "street")  # its accept limit ran out
        send(contract.ACCEPTED, "D", unit_id=street)
        send(contract.RESOLVED, "D", unit_id=street)
        send(contract.FEEDBACK, "D", rating="satisfied")

        outcomes = {}
        for who in ids:
            state = await pipeline.wait_for(ids[who], lambda s: s.status is Status.CLOSED, within=60)
            outcomes[who] = (state.outcome, state.level)
        assert outcomes["F"] == (Outcome.RESOLVED_UNRATED, "grid")
        assert outcomes["G"] == (Outcome.RESOLVED_UNSATISFIED, "grid")
        assert outcomes["E"] == (Outcome.WITHDRAWN, "street")
        assert outcomes["D"] == (Outcome.RESOLVED, "street")
        assert pipeline.dead_letters() == []

        # Wait until Prometheus has scraped the last step and evaluated the rules on it.
        await until_seen(prometheus, f'sum(gridflow_incidents_closed_total{{district="{district}"}})', 10)
        await asyncio.sleep(3)

        def rate(name: str) -> float:
            return district_rate(prometheus, name, district)

        assert rate("response") == pytest.approx(11 / 12, rel=1e-9)
        assert rate("satisfaction") == pytest.approx(7 / 10, rel=1e-9)
        assert rate("resolution") == pytest.approx(9 / 10, rel=1e-9)
        assert rate("grid_containment") == pytest.approx(8 / 9, rel=1e-9)
        assert rate("street_containment") == pytest.approx(1.0, rel=1e-9)
        assert rate("district_containment") == pytest.approx(1.0, rel=1e-9)
        assert rate("on_time") == pytest.approx(1.0, rel=1e-9)
        assert rate("escalation") == pytest.approx(2 / 10, rel=1e-9)
