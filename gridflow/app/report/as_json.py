"""The report as JSON: PeriodReport.as_dict(), format `gridflow-report/1` (README: Monthly report for
supervisors, which documents every field). Rates and scores are fractions, changes points; a figure
without a value is null."""

from __future__ import annotations

import json

from gridflow.domain.report import PeriodReport


def render(report: PeriodReport) -> str:
    """The JSON document, indented, with a final newline."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
