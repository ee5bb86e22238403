"""The report as CSV for a spreadsheet: one line for every group together, then one per group in
ranking order; rates and scores as fractions, changes in points, empty cells for figures without a value.
A `period` column lets the files of several months be put one under the other."""

from __future__ import annotations

import csv
import io
from typing import Any

from gridflow.domain.report import COUNT_FIELDS, RATES, Change, Figures, PeriodReport

COLUMNS = (
    "period",
    "by",
    "scope",
    "group",
    "rank",
    "previous_rank",
    "rank_change",
    "score",
    "previous_score",
    "score_change_points",
    *COUNT_FIELDS,
    *RATES,
    *(f"{name}_change_points" for name in RATES),
    "time_to_resolve_p50_seconds",
    "time_to_resolve_p90_seconds",
)


def render(report: PeriodReport) -> str:
    """The CSV text (RFC 4180, a header line first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    base = [report.period.label, report.grouping.value]
    overall = report.overall_change
    writer.writerow(
        [*base, "overall", "", "", "", "", *_figures(report.overall, report.previous_overall, overall)]
    )
    for row in report.rows:
        writer.writerow(
            [
                *base,
                "group",
                row.name,
                _cell(row.rank),
                _cell(row.previous_rank),
                _cell(row.change.rank),
                *_figures(row.figures, row.previous, row.change),
            ]
        )
    return out.getvalue()


def _figures(figures: Figures, previous: Figures | None, change: Change) -> list[str]:
    document = figures.as_dict()
    times = document["time_to_resolve_seconds"]
    return [
        _cell(figures.score),
        _cell(previous.score if previous is not None else None),
        _cell(change.score),
        *(_cell(document["counts"][name]) for name in COUNT_FIELDS),
        *(_cell(value) for value in figures.rates().values()),
        *(_cell(change.rates[name]) for name in RATES),
        _cell(times["p50"]),
        _cell(times["p90"]),
    ]


def _cell(value: Any) -> str:
    """As JSON writes it (repr of floats, so both files carry the same figures); empty for None."""
    return "" if value is None else str(value)
