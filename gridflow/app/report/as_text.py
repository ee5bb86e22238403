"""The report on a terminal: a heading, then one line per group in ranking order and one for all."""

from __future__ import annotations

from gridflow.app.report import formats
from gridflow.domain.report import Figures, PeriodReport

#: The rates the table shows (the CSV, JSON and HTML have every one).
TABLE_RATES = ("response", "resolution", "satisfaction", "on_time", "escalation", "grid_containment")
ALL = "(all)"  # the line of every group together: no group id has parentheses


def heading(report: PeriodReport) -> list[str]:
    """What the table is: the period, the grouping, the period compared with, the score's weights."""
    period = report.period
    weights = ", ".join(f"{name} {weight:g}" for name, weight in report.weights.weights)
    return [
        f"Evaluation report {period.label} by {report.grouping.value} "
        f"({period.first} to {period.last}, {period.tz}), against {report.previous_period.label}",
        f"score: weighted mean of {weights} (rates without a value left out); change in points",
    ]


def rows(report: PeriodReport) -> list[list[str]]:
    """The table's header and lines (the CLI lays them out in columns)."""
    header = [
        "rank",
        "moved",
        report.grouping.value,
        "score",
        "change",
        "reported",
        "closed",
        *(formats.RATE_TITLES[name] for name in TABLE_RATES),
        "breaches",
    ]
    lines = [header]
    for row in report.rows:
        lines.append(
            [
                formats.rank(row.rank),
                formats.places(row.change.rank, row.previous_rank),
                row.name,
                *_figures(row.figures, row.change.score),
            ]
        )
    lines.append(["", "", ALL, *_figures(report.overall, report.overall_change.score)])
    return lines


def _figures(figures: Figures, change: float | None) -> list[str]:
    counts = figures.counts
    return [
        formats.score(figures.score),
        formats.points(change),
        str(counts.incidents),
        str(counts.closed),
        *(formats.percent(figures.rate(name)) for name in TABLE_RATES),
        str(counts.sla_breaches),
    ]
