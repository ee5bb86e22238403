"""The lifecycle core stands alone: importing and running it (and `rules explain`) loads no Temporal,
Kafka, Prometheus or structlog, so the workflow, explain and the simulations share it without a server."""

from __future__ import annotations

import subprocess
import sys

SHELL_LIBRARIES = ("temporalio", "kafka", "prometheus_client", "structlog")

# Run in a fresh interpreter: this test process has every library loaded already.
PROGRAM = f"""
import sys
from datetime import UTC, datetime, timedelta

from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident
from gridflow.domain.rules import builtin_rule_set
from gridflow.domain.rules.explain import explain

incident = Incident.model_validate({{
    "incident_id": "inc-1", "category": "street_lamp", "title": "Lamp dark", "priority": "normal",
    "reported_at": "2026-11-23T08:00:00Z",
    "location": {{"grid_id": "g-1", "street_id": "s-1", "district_id": "d-1"}},
}})
rules = builtin_rule_set()
explain(rules, incident)
now = datetime(2026, 11, 23, 8, tzinfo=UTC)
state, _ = lifecycle.report(incident, now)
lifecycle.start(state, incident, rules.snapshot_for(incident), now)
while not state.overdue and (due := lifecycle.next_due(state)) is not None:
    lifecycle.fire_due(state, incident, due)
assert state.level == "district" and state.timeline[-1].at - now == timedelta(hours=14)
print(",".join(sorted({{name.split(".")[0] for name in sys.modules}} & set({SHELL_LIBRARIES!r}))))
"""


def test_running_the_core_and_explain_loads_none_of_the_shells_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
