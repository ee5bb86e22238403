"""`gridflow simulate`: the real workflow in accelerated time gives the rates computed by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflow.incident import Rating
from gridflow.rules import builtin_rule_set, parse_rule_set
from gridflow.simulate import StreamError, format_results, load_stream, simulate, write_json
from gridflow.simulation_generator import generate
from gridflow.simulation_model import Behaviour, SimulatedIncident
from tests.conftest import make_incident

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def stream() -> list[SimulatedIncident]:
    """Five incidents whose fates are known in advance (default rules: grid accept 2h, resolve 24h)."""

    def one(name: str, minutes: int, behaviour: Behaviour) -> SimulatedIncident:
        incident = make_incident(incident_id=f"hand-{name}").model_copy(
            update={"reported_at": START + timedelta(minutes=minutes)}
        )
        return SimulatedIncident(incident=incident, behaviour=behaviour)

    hour = timedelta(hours=1)
    return [
        # accepted, resolved and satisfied at the grid
        one("1", 0, Behaviour(accept_after=30 * timedelta(minutes=1), resolve_after=4 * hour)),
        # the grid does not accept within 2h: the street accepts and the resident is basically satisfied
        one(
            "2",
            10,
            Behaviour(
                accept_after={"grid": 3 * hour, "street": 0.5 * hour}, ratings=[Rating.BASICALLY_SATISFIED]
            ),
        ),
        # only the street can solve it: the grid passes it up; unsatisfied once, then satisfied
        one(
            "3",
            20,
            Behaviour(
                accept_after=timedelta(minutes=20),
                solvable_from="street",
                ratings=[Rating.UNSATISFIED, Rating.SATISFIED],
            ),
        ),
        # resolving takes 30h, past the grid's 24h: up to the street, which resolves it; no feedback
        one("4", 30, Behaviour(accept_after=timedelta(minutes=30), resolve_after=30 * hour, ratings=[])),
        # withdrawn after an hour, before anybody accepted
        one("5", 40, Behaviour(accept_after=3 * hour, withdraw_after=hour)),
    ]


async def test_simulating_a_small_stream_gives_the_rates_computed_by_hand() -> None:
    result = await simulate(stream(), builtin_rule_set())
    report = result.report

    assert (report.incidents, report.closed, report.open) == (5, 5, 0)
    assert report.closures_by_outcome == {"resolved": 3, "resolved_unrated": 1, "withdrawn": 1}
    assert report.response_rate == pytest.approx(6 / 7)  # 6 accepted in time, 1 accept breach
    assert report.resolution_rate == pytest.approx(4 / 5)
    assert report.satisfaction_rate == pytest.approx(3 / 4)
    assert report.on_time_rate == pytest.approx(5 / 5)
    assert report.escalation_rate == pytest.approx(3 / 5)
    assert (report.escalations, report.reopens) == (3, 1)
    assert report.containment(["grid", "street", "district"]) == {
        "grid": 0.25,
        "street": 1.0,
        "district": 1.0,
    }
    # Incident 1 resolves 4h30m after its report (30m to accept, 4h to resolve).
    assert min(report.resolve_seconds) == pytest.approx(4.5 * 3600, abs=1)


async def test_compare_shows_what_a_stricter_grid_limit_does(tmp_path: Path) -> None:
    strict = parse_rule_set(
        """
version: strict-1
rules:
  - name: strict
    ladder:
      grid:     {accept: 15m, resolve: 24h}
      street:   {accept: 4h, resolve: 48h}
      district: {accept: 8h, resolve: 5d}
""",
        "strict.yaml",
    )
    baseline = await simulate(stream(), builtin_rule_set())
    stricter = await simulate(stream(), strict)

    assert (
        stricter.report.escalations > baseline.report.escalations
    )  # the grid's 20-30 minute accepts are late now
    assert stricter.report.containment(["grid"])["grid"] == 0.0
    table = format_results([("built-in", baseline), ("strict", stricter)])
    assert "built-in" in table and "strict" in table and "escalation rate" in table
    out = tmp_path / "results.json"
    write_json(out, [("built-in", baseline), ("strict", stricter)])
    saved = json.loads(out.read_text())
    assert saved["strict"]["rates"]["containment"]["grid"] == 0.0
    assert saved["built-in"]["incidents"] == 5


def test_a_generated_stream_is_realistic_and_the_same_for_the_same_seed(tmp_path: Path) -> None:
    first = generate(300, days=7, seed=7, start=START)
    assert first == generate(300, days=7, seed=7, start=START)
    assert first != generate(300, days=7, seed=8, start=START)
    assert len({item.incident.incident_id for item in first}) == 300
    hours = [item.incident.reported_at.hour for item in first]
    assert sum(9 <= h < 18 for h in hours) > sum(h < 6 for h in hours) * 3  # days are busier than nights
    urgent = sum(item.incident.priority.value == "urgent" for item in first)
    assert 3 <= urgent <= 35
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(item.model_dump_json() for item in first) + "\n")
    assert load_stream(path) == first


def test_a_bad_stream_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    good = stream()[0].model_dump_json()
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + '{"incident": {"incident_id": "x"}}\n')
    with pytest.raises(StreamError, match=r"bad.jsonl:2: incident\.category: Field required"):
        load_stream(path)
