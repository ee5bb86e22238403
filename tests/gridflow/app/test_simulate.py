"""`gridflow simulate`: both engines give the rates computed by hand; comparisons say what changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflow.app.simulate import simulate_discrete, simulate_temporal
from gridflow.domain.incident import Rating
from gridflow.domain.lifecycle import IncidentState
from gridflow.domain.rates import RateReport, rate_report
from gridflow.domain.rules import builtin_rule_set, parse_rule_set
from gridflow.domain.simulation.generator import generate
from gridflow.domain.simulation.model import Behaviour, SimulatedExtension, SimulatedIncident
from gridflow.domain.simulation.results import format_simulation, write_json
from gridflow.domain.simulation.stream import StreamError, load_stream
from tests.conftest import make_incident
from tests.rule_texts import VERIFYING

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


def write(tmp_path: Path, items: list[SimulatedIncident], name: str = "stream.jsonl") -> Path:
    """The stream as a JSON-lines file."""
    path = tmp_path / name
    path.write_text("".join(item.model_dump_json() + "\n" for item in items))
    return path


def assert_hand_computed(report: RateReport) -> None:
    """The rates of `stream()`, worked out by hand."""
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


def test_the_discrete_engine_gives_the_rates_computed_by_hand(tmp_path: Path) -> None:
    simulation = simulate_discrete(write(tmp_path, stream()), [("built-in", builtin_rule_set())])

    assert simulation.engine == "discrete"
    assert_hand_computed(simulation.results[0].report)
    parts = simulation.results[0].breakdown
    assert set(parts.by_district) == {"d-huangpu"} and parts.by_district["d-huangpu"].incidents == 5
    assert set(parts.by_category) == {"street_lamp"} and set(parts.by_rule) == {"default"}


def test_each_part_of_a_breakdown_counts_what_its_incidents_alone_would(tmp_path: Path) -> None:
    items = generate(400, days=3, seed=5, start=START)
    states: dict[str, IncidentState] = {}
    simulation = simulate_discrete(
        write(tmp_path, items),
        [("built-in", builtin_rule_set())],
        finished=lambda _, item, state: states.__setitem__(item.incident.incident_id, state),
    )

    parts, levels = simulation.results[0].breakdown, simulation.results[0].levels
    assert parts.overall.as_dict(levels) == rate_report(states.values()).as_dict(levels)
    for district, report in parts.by_district.items():
        assert report == rate_report(s for s in states.values() if s.district_id == district)
    for category, report in parts.by_category.items():
        assert report == rate_report(s for s in states.values() if s.category == category)
    assert sum(report.incidents for report in parts.by_category.values()) == 400
    assert len(parts.by_district) > 1 and len(parts.by_category) > 1


async def test_the_real_workflow_on_the_temporal_engine_gives_the_same_rates() -> None:
    simulation = await simulate_temporal(stream(), [("built-in", builtin_rule_set())])

    assert simulation.engine == "temporal"
    assert_hand_computed(simulation.results[0].report)


def not_solved_once() -> list[SimulatedIncident]:
    """One resident, basically satisfied but saying the problem is not solved, then satisfied and solved."""
    behaviour = Behaviour(
        accept_after=timedelta(minutes=30),
        ratings=[Rating.BASICALLY_SATISFIED, Rating.SATISFIED],
        solved=[False, True],
    )
    incident = make_incident(incident_id="hand-not-solved").model_copy(update={"reported_at": START})
    return [SimulatedIncident(incident=incident, behaviour=behaviour)]


def assert_reopened_once_then_solved(report: RateReport) -> None:
    assert (report.reopens, report.ratings, report.satisfied_ratings) == (1, 2, 2)
    assert (report.return_visits, report.solved_visits, report.resident_resolution_rate) == (2, 1, 0.5)
    assert (report.satisfaction_rate, report.closures_by_outcome) == (1.0, {"resolved": 1})


def test_a_not_solved_answer_reopens_a_simulated_incident_however_kindly_rated(tmp_path: Path) -> None:
    simulation = simulate_discrete(write(tmp_path, not_solved_once()), [("built-in", builtin_rule_set())])

    assert_reopened_once_then_solved(simulation.results[0].report)
    assert "resident-resolution rate" in format_simulation(simulation)


async def test_the_temporal_engine_reopens_on_not_solved_too() -> None:
    simulation = await simulate_temporal(not_solved_once(), [("built-in", builtin_rule_set())])

    assert_reopened_once_then_solved(simulation.results[0].report)


def misdispatched_once() -> list[SimulatedIncident]:
    """One incident sent to the wrong grid, which passes it to the right one after 20 minutes."""
    behaviour = Behaviour(accept_after=timedelta(minutes=20), transfer_to={"grid": "g-nanjing-08"})
    incident = make_incident(incident_id="hand-misdispatched").model_copy(update={"reported_at": START})
    return [SimulatedIncident(incident=incident, behaviour=behaviour)]


def assert_transferred_once(report: RateReport) -> None:
    assert (report.dispatches, report.transfers, report.dispatch_accuracy_rate) == (2, 1, 0.5)
    assert (report.escalations, report.response_rate, report.closures_by_outcome) == (0, 1.0, {"resolved": 1})


def test_a_simulated_misdispatch_is_transferred_and_counted_against_dispatch_accuracy(tmp_path: Path) -> None:
    simulation = simulate_discrete(write(tmp_path, misdispatched_once()), [("built-in", builtin_rule_set())])

    assert_transferred_once(simulation.results[0].report)
    assert "dispatch-accuracy rate" in format_simulation(simulation)


async def test_the_temporal_engine_transfers_the_misdispatch_too() -> None:
    simulation = await simulate_temporal(misdispatched_once(), [("built-in", builtin_rule_set())])

    assert_transferred_once(simulation.results[0].report)


def extended_once(decision: str | None) -> list[SimulatedIncident]:
    """A grid holder that needs 30h, past its 24h resolve limit, and asks for 8h more after an hour."""
    extension = SimulatedExtension(extra="8h", decision=decision)
    behaviour = Behaviour(
        accept_after=timedelta(minutes=30), resolve_after=timedelta(hours=30), extension=extension
    )
    incident = make_incident(incident_id="hand-extended").model_copy(update={"reported_at": START})
    return [SimulatedIncident(incident=incident, behaviour=behaviour)]


def test_a_granted_extension_keeps_a_slow_simulated_resolution_in_time_and_a_refused_one_does_not(
    tmp_path: Path,
) -> None:
    rules = [("built-in", builtin_rule_set())]
    granted = simulate_discrete(write(tmp_path, extended_once("grant"), "granted.jsonl"), rules)
    refused = simulate_discrete(write(tmp_path, extended_once("refuse"), "refused.jsonl"), rules)

    kept, missed = granted.results[0].report, refused.results[0].report
    assert (kept.extension_requests, kept.extensions_granted, kept.extension_rate) == (1, 1, 1.0)
    assert (kept.escalations, kept.on_time_rate) == (0, 1.0)
    assert (missed.extension_requests, missed.extensions_granted, missed.escalations) == (1, 0, 1)
    assert "extension rate" in format_simulation(granted)


async def test_the_temporal_engine_grants_the_simulated_extension_too() -> None:
    simulation = await simulate_temporal(extended_once("grant"), [("built-in", builtin_rule_set())])

    report = simulation.results[0].report
    assert (report.extensions_granted, report.escalations, report.on_time_rate) == (1, 0, 1.0)


def checked_twice() -> list[SimulatedIncident]:
    """An inspector who sends the first fix back and verifies the second."""
    behaviour = Behaviour(accept_after=timedelta(minutes=20), checks=["reject", "verify"])
    incident = make_incident(incident_id="hand-checked").model_copy(update={"reported_at": START})
    return [SimulatedIncident(incident=incident, behaviour=behaviour)]


def assert_reworked_once(report: RateReport) -> None:
    assert (report.verifications, report.rejections, report.rework_rate) == (2, 1, 0.5)
    assert (report.resolutions, report.ratings, report.closures_by_outcome) == (2, 1, {"resolved": 1})


def test_a_simulated_inspector_sends_a_fix_back_once_and_the_rework_is_counted(tmp_path: Path) -> None:
    rules = [("verifying", parse_rule_set(VERIFYING, "verify.yaml"))]
    simulation = simulate_discrete(write(tmp_path, checked_twice()), rules)

    assert_reworked_once(simulation.results[0].report)
    assert "rework rate" in format_simulation(simulation)


async def test_the_temporal_engine_verifies_and_reworks_too() -> None:
    simulation = await simulate_temporal(
        checked_twice(), [("verifying", parse_rule_set(VERIFYING, "verify.yaml"))]
    )

    assert_reworked_once(simulation.results[0].report)


STRICT = """
version: strict-1
rules:
  - name: strict
    ladder:
      grid:     {accept: 15m, resolve: 24h}
      street:   {accept: 4h, resolve: 48h}
      district: {accept: 8h, resolve: 5d}
"""


def test_compare_shows_what_a_stricter_grid_limit_does_and_which_incidents_changed(tmp_path: Path) -> None:
    strict = parse_rule_set(STRICT, "strict.yaml")
    simulation = simulate_discrete(
        write(tmp_path, stream()), [("strict", strict), ("built-in", builtin_rule_set())]
    )
    tried, baseline = (result.report for result in simulation.results)

    assert tried.escalations > baseline.escalations  # the grid's 20-30 minute accepts are late now
    assert tried.containment(["grid"])["grid"] == 0.0
    changes = simulation.changes
    assert changes is not None
    # Now the grid's accept clock runs out at 15 minutes: incident 1 (accepted at 30) and incident 5
    # (withdrawn at an hour) go to the street; incident 3 was passed up at 20 minutes anyway, but now by
    # a breach; incidents 2 and 4 breached and escalated under both.
    assert (changes.compared, changes.escalated_now, changes.no_longer_escalated) == (5, 2, 0)
    assert (changes.breached_now, changes.no_longer_breached) == (3, 0)
    assert sorted(changes.examples["escalated_now"]) == ["hand-1", "hand-5"]
    assert sorted(changes.examples["breached_now"]) == ["hand-1", "hand-3", "hand-5"]
    table = format_simulation(simulation)
    assert "strict" in table and "built-in" in table and "escalation rate" in table and "difference" in table
    assert "escalated where they were not: 2" in table
    out = tmp_path / "results.json"
    write_json(out, simulation)
    saved = json.loads(out.read_text())
    assert saved["rule_sets"]["strict"]["rates"]["containment"]["grid"] == 0.0
    assert saved["rule_sets"]["built-in"]["incidents"] == 5
    assert saved["rule_sets"]["strict"]["by_district"]["d-huangpu"]["counts"]["incidents"] == 5
    assert tried.escalation_rate is not None and baseline.escalation_rate is not None
    difference = tried.escalation_rate - baseline.escalation_rate
    assert saved["difference"]["escalation"] == pytest.approx(difference)
    assert saved["changes"]["escalated_now"] == 2


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


def test_a_stream_out_of_report_order_or_with_a_repeated_id_is_refused_line_by_line(tmp_path: Path) -> None:
    first, second, *_ = stream()
    path = write(tmp_path, [second, first, second], "shuffled.jsonl")
    with pytest.raises(StreamError) as refused:
        load_stream(path)
    assert str(refused.value).splitlines() == [
        f"{path}:2: reported at {first.incident.reported_at.isoformat()}, before the line above: "
        "a stream must be in report order (generate-stream writes it so)",
        f"{path}:3: incident id 'hand-2' appears twice",
    ]


def test_a_bad_line_deep_in_a_stream_stops_the_simulation_and_every_bad_line_is_named(tmp_path: Path) -> None:
    items = generate(400, days=3, seed=5, start=START)
    lines = [item.model_dump_json() for item in items]
    lines[250] = '{"incident": {"incident_id": "x"}}'
    lines[390] = lines[10]  # an id seen before
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done: list[str] = []

    with pytest.raises(StreamError) as refused:
        simulate_discrete(
            path,
            [("built-in", builtin_rule_set())],
            finished=lambda _, item, state: done.append(item.incident.incident_id),
        )

    problems = str(refused.value).splitlines()
    assert problems[0] == f"{path}:251: incident.category: Field required"
    assert problems[1].startswith(f"{path}:391: ")
    # It stopped at the first bad line: no incident reported after it was run.
    assert len(done) < 251
