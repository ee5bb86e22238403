"""The report's rates are the Prometheus recording rules' rates: the scenario of
tests/gridflow/domain/test_report.py counted by the worker's LifecycleMetrics, its counters given to
`promtool test rules` as input series, and the shipped rules' 1-day ratios (overall, per district and
per category) evaluated over November equal the report's November figures.

The recording rules' longest window is a day, a report's period a month: the test runs the scenario's
clock thirty times faster (a real day is 48 Prometheus minutes), so the rules' 1-day window at the end
of November holds November's steps, exactly those the report counts. The counters are sampled every
4 real hours (8 Prometheus minutes), on the period's bounds, and no step falls on a bound; promtool
(Prometheus 2.x) takes a window's samples at both ends, so rate() is the increase over the window
divided by its length, without extrapolation, and a ratio of rates is the ratio of the counts.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from activities.metrics import LifecycleMetrics
from gridflow.domain.lifecycle import IncidentContext, IncidentStep, StepBatch
from gridflow.domain.report import CONTAINMENT_LEVELS, Grouping, Period, PeriodReport, Weights, build_report
from gridflow.domain.rules import builtin_rule_set
from tests.gridflow.domain.test_report import scenario_steps
from tests.prometheus import binary

RECORDING_RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "recording_rules.yml"
NOVEMBER = Period.month("2026-11")
SAMPLE = timedelta(hours=4)  # in the scenario's time
SPEED = 30  # scenario seconds per Prometheus second
ORIGIN = NOVEMBER.start  # Prometheus time 0 (the counters then hold October's steps)
DAILY = "gridflow-rates-1d"  # the shipped rules' group of 1-day rates
WEIGHTS = Weights.parse("response=30,resolution=35,satisfaction=35")

# The report's rate, and its recording rules (overall, then per label).
RULES = {
    "response": ("gridflow:response_rate:ratio_rate1d", "gridflow_response:ratio_rate1d"),
    "resolution": ("gridflow:resolution_rate:ratio_rate1d", "gridflow_resolution:ratio_rate1d"),
    "satisfaction": ("gridflow:satisfaction_rate:ratio_rate1d", "gridflow_satisfaction:ratio_rate1d"),
    "resident_resolution": (
        "gridflow:resident_resolution_rate:ratio_rate1d",
        "gridflow_resident_resolution:ratio_rate1d",
    ),
    "on_time": ("gridflow:on_time_rate:ratio_rate1d", "gridflow_on_time:ratio_rate1d"),
    "escalation": ("gridflow:escalation_rate:ratio_rate1d", "gridflow_escalation:ratio_rate1d"),
    "dispatch_accuracy": (
        "gridflow:dispatch_accuracy_rate:ratio_rate1d",
        "gridflow_dispatch_accuracy:ratio_rate1d",
    ),
    "extension": ("gridflow:extension_rate:ratio_rate1d", "gridflow_extension:ratio_rate1d"),
    "rework": ("gridflow:rework_rate:ratio_rate1d", "gridflow_rework:ratio_rate1d"),
    "on_time_closure": (
        "gridflow:on_time_closure_rate:ratio_rate1d",
        "gridflow_on_time_closure:ratio_rate1d",
    ),
    **{
        f"{level}_containment": (
            f"gridflow:{level}_containment_rate:ratio_rate1d",
            f"gridflow_{level}_containment:ratio_rate1d",
        )
        for level in CONTAINMENT_LEVELS
    },
}


def prometheus_minutes(moment: datetime) -> int:
    """A moment of the scenario on Prometheus's (faster) clock, in whole minutes from the origin."""
    minutes = (moment - ORIGIN) / timedelta(minutes=1) / SPEED
    assert minutes == int(minutes), moment
    return int(minutes)


def sample_times() -> Iterator[datetime]:
    """Every SAMPLE from November 1st to December 1st, both included."""
    moment = ORIGIN
    while moment <= NOVEMBER.end:
        yield moment
        moment += SAMPLE


def counters(registry: CollectorRegistry) -> dict[str, float]:
    """Every counter's value, by its series in PromQL notation."""
    values = {}
    for family in registry.collect():
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def input_series(steps: list[IncidentStep]) -> list[dict[str, str]]:
    """The scenario's steps counted by LifecycleMetrics (each step in a batch of its own, as the worker
    publishes them), its counters sampled every SAMPLE, as promtool input series."""
    ladders = {rule.name: rule.levels for rule in builtin_rule_set().rules}
    metrics = LifecycleMetrics(CollectorRegistry())
    # A step at a bound would count at the sample before the window (a sample counts at <= it).
    assert not any(step.at in (NOVEMBER.start, NOVEMBER.end) for step in steps), "a step on a bound"
    pending = iter(sorted(steps, key=lambda step: step.at))
    step: IncidentStep | None = next(pending)
    samples: list[dict[str, float]] = []
    for moment in sample_times():
        while step is not None and step.at <= moment:
            context = IncidentContext.model_validate(step, from_attributes=True)
            metrics.observe(
                StepBatch(**context.model_dump(), levels=ladders[step.rule_name or ""], steps=[step])
            )
            step = next(pending, None)
        samples.append(counters(metrics.registry))
    # What is left happened in December (J3's rating and closure): after the window, never sampled.
    assert step is not None and step.at > NOVEMBER.end
    # A series not created yet counts 0 (LifecycleMetrics creates them at zero with a first incident).
    return [
        {"series": name, "values": runs([sample.get(name, 0.0) for sample in samples])}
        for name in sorted({name for sample in samples for name in sample})
    ]


def runs(values: list[float]) -> str:
    """Values in promtool's expanding notation: `0x5 1x3 2` is six 0s, four 1s and a 2."""
    parts, start = [], 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[start]:
            length = index - start
            value = f"{values[start]:g}"
            parts.append(value if length == 1 else f"{value}x{length - 1}")
            start = index
    return " ".join(parts)


def nano(rate: float) -> int:
    """A rate in billionths, rounded as PromQL's round() does (half up): exact to compare."""
    return math.floor(rate * 1e9 + 0.5)


def expectations(report: PeriodReport, label: str) -> list[dict[str, Any]]:
    """A promtool test of each rate over all groups and per group, against the report's figures."""
    tests = []
    for name, (overall, by) in RULES.items():
        rate = report.overall.rate(name)
        if label == "district":  # the overall figure once
            tests.append(
                {
                    "expr": f"round({overall} * 1e9)",
                    "eval_time": f"{prometheus_minutes(NOVEMBER.end)}m",
                    "exp_samples": [] if rate is None else [{"labels": "{}", "value": nano(rate)}],
                }
            )
        samples = [
            {"labels": f'{{{label}="{row.name}"}}', "value": nano(value)}
            for row in report.rows
            if (value := row.figures.rate(name)) is not None
        ]
        tests.append(
            {
                "expr": f"round({label}:{by} * 1e9)",
                "eval_time": f"{prometheus_minutes(NOVEMBER.end)}m",
                "exp_samples": samples,
            }
        )
    return tests


def test_the_recording_rules_give_the_reports_rates_for_the_same_incidents_and_period(
    tmp_path: Path,
) -> None:
    steps = scenario_steps()
    by_district = build_report(steps, NOVEMBER, Grouping.DISTRICT, WEIGHTS)
    by_category = build_report(steps, NOVEMBER, Grouping.CATEGORY, WEIGHTS)
    # The report's figures the rules must give (worked out by hand in the domain test).
    huangpu, jingan = by_district.rows
    assert (huangpu.figures.rate("response"), huangpu.figures.rate("satisfaction")) == (3 / 4, 3 / 4)
    assert (jingan.figures.rate("resolution"), jingan.figures.rate("satisfaction")) == (1 / 2, None)
    assert by_district.overall.rate("response") == 7 / 8

    interval = SAMPLE / SPEED
    # November is the rules' 1-day window at its end.
    assert interval == timedelta(minutes=8) and prometheus_minutes(NOVEMBER.end) == 24 * 60
    tests = [*expectations(by_district, "district"), *expectations(by_category, "category")]
    # 12 rates with a value overall (no rework: nothing verified), per district (d-jingan has no
    # satisfaction and no resident-stated resolution: no return visit) and per category.
    assert sum(len(test["exp_samples"]) for test in tests) == 12 + (12 + 10) + (12 + 12)
    # The shipped rules' daily group alone: the others (5m, 1h windows) would only slow promtool down.
    shipped = yaml.safe_load(RECORDING_RULES.read_text())
    rules_file = tmp_path / "daily_rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [g for g in shipped["groups"] if g["name"] == DAILY]}))
    test_file = tmp_path / "report_rules_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules_file)],
                "evaluation_interval": "8m",
                "tests": [
                    {
                        "name": "the report's November, compressed into the rules' 1-day window",
                        "interval": "8m",
                        "input_series": input_series(steps),
                        "promql_expr_test": tests,
                    }
                ],
            },
            width=1000,
        )
    )

    result = subprocess.run(
        [binary("promtool"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "SUCCESS" in result.stdout
