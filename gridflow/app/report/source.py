"""The report of a period, from the archive: the period's steps and the previous period's, in one read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from gridflow.domain.lifecycle import IncidentStep
from gridflow.domain.report import Grouping, Period, PeriodReport, Weights, build_report


class StepSource(Protocol):
    """Where steps come from: gridflow.archive.store.Archive, or anything that reads steps by period."""

    def steps(self, start: datetime, end: datetime) -> Iterator[IncidentStep]:
        """The steps with start <= at < end."""
        ...


def read_report(source: StepSource, period: Period, grouping: Grouping, weights: Weights) -> PeriodReport:
    """Read the steps of `period` and of the one before it, and build the report (streamed: the steps
    are counted as they are read, never all held)."""
    previous = period.previous()
    return build_report(source.steps(previous.start, period.end), period, grouping, weights)
