"""The discrete engine of `gridflow simulate` against the real workflow: the same timelines, step for step.

The stream and the rules come from tests/simulation_fidelity.py: every rule feature (calendar, custom
ladder, whistle, urgent ladder with reminders, reopen by escalation) and every path of the people.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflow.domain.rules import builtin_rule_set
from tests.simulation_fidelity import (
    FIDELITY_RESOLUTION,
    REQUIRED_PATHS,
    SCENARIOS,
    FidelityReport,
    clock_ties,
    compare_engines,
    count_paths,
    fidelity_rules,
    fidelity_start,
    fidelity_stream,
    fraction_minutes_are_whole,
    missing_paths,
    off_the_grid,
    run_discrete_engine,
    write_stream,
)

# Three rounds of the scenarios, each at three different rules: every path, in under a minute on two cores
# (the real workflow plays some 25 steps a second here).
INCIDENTS = 3 * len(SCENARIOS)
SEED = 11


@pytest.fixture(scope="module")
async def report(tmp_path_factory: pytest.TempPathFactory) -> FidelityReport:
    """The fidelity stream on the fidelity rules and the built-in ones, through both engines (once)."""
    start = fidelity_start()
    stream = fidelity_stream(INCIDENTS, SEED, start, open_at_horizon=True)
    rule_sets = [("fidelity", fidelity_rules(start)), ("built-in", builtin_rule_set())]
    return await compare_engines(stream, rule_sets, tmp_path_factory.mktemp("fidelity"))


async def test_the_discrete_engine_gives_the_real_workflows_timelines_step_for_step(
    report: FidelityReport,
) -> None:
    assert report.incidents == INCIDENTS
    assert report.ties == []  # nobody acted just as a clock fired: the comparison is deterministic
    assert report.rounded == []  # every instant is a whole second: the grid changed nothing
    assert report.differences == [], "\n".join(report.differences)
    assert report.rates_equal, "\n".join(report.rate_differences)
    assert report.steps > 10 * INCIDENTS
    # The comparison covered every path the people and the rules can take.
    assert report.missing(REQUIRED_PATHS) == [], report.behaviours
    assert report.behaviours["open_at_horizon"] > 0  # and those left open at the horizon match too
    for rule in ("urgent-city", "office-hours", "disputes", "pudong-patrol", "default"):
        assert report.behaviours[f"rule:fidelity-1:{rule}"] >= 3
    for rule in ("urgent", "default"):
        assert report.behaviours[f"rule:2026-11-1:{rule}"] >= 3


async def test_both_engines_report_the_same_simulated_span_for_each_rule_set(report: FidelityReport) -> None:
    assert report.span_differences == []


def test_the_fidelity_stream_is_the_same_for_a_seed_in_report_order_and_in_the_future() -> None:
    start = fidelity_start()
    first = fidelity_stream(INCIDENTS, SEED, start)

    assert first == fidelity_stream(INCIDENTS, SEED, start)
    assert first != fidelity_stream(INCIDENTS, SEED + 1, start)
    times = [item.incident.reported_at for item in first]
    assert times == sorted(times)
    assert len({item.incident.incident_id for item in first}) == INCIDENTS
    assert start.weekday() == 0 and start - datetime.now(UTC) > timedelta(days=59) and min(times) >= start
    assert all(moment.second % 30 == 0 and moment.microsecond == 0 for moment in times)
    assert fraction_minutes_are_whole(fidelity_rules(start))


# Not every seed is tie-free: the built-in urgent rule warns at 11 min 15 s, off the stream's parity, and
# with seed 1 that lands on a person's instant once. Seeds used for a comparison are checked here first.
@pytest.mark.parametrize("seed", [SEED, 2, 3])
def test_any_seed_of_the_fidelity_stream_takes_every_path_with_nobody_acting_as_a_clock_fires(
    tmp_path: Path, seed: int
) -> None:
    start = fidelity_start()
    path = write_stream(fidelity_stream(INCIDENTS, seed, start), tmp_path / "stream.jsonl")
    rule_sets = [("fidelity", fidelity_rules(start)), ("built-in", builtin_rule_set())]

    _, on_grid = run_discrete_engine(path, rule_sets, FIDELITY_RESOLUTION)
    _, exact = run_discrete_engine(path, rule_sets, None)

    assert clock_ties(on_grid.values()) == []
    assert off_the_grid(on_grid, exact) == []
    assert missing_paths(count_paths(on_grid.values()), REQUIRED_PATHS) == []
