"""A report over a period: each step whose `at` falls in the period counted in the rates of its group
(as Prometheus counts its increase), the groups ranked by score, the change from the previous period,
the weekly trend and the SLA breaches by district and category."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from gridflow.domain.lifecycle import IncidentStep, StepKind
from gridflow.domain.rates import RateReport
from gridflow.domain.report.period import Period
from gridflow.domain.report.score import RATES, Weights

#: The group of a step that names none (no street on incidents reported before streets were kept, no
#: unit on a report).
UNKNOWN: Final = "unknown"
#: Score places compared for a tie: the same rates reached by different sums are the same score.
_TIE_DIGITS: Final = 9
#: Decimals kept of a change in points.
_POINT_DIGITS: Final = 9


class Grouping(StrEnum):
    """What a report ranks: each step is counted in the group its context (or its unit) names."""

    DISTRICT = "district"
    STREET = "street"
    UNIT = "unit"  # the unit that held the incident at the step
    CATEGORY = "category"
    RULE = "rule"

    def key(self, step: IncidentStep) -> str:
        """The group a step is counted in."""
        value = {
            Grouping.DISTRICT: step.district_id,
            Grouping.STREET: step.street_id,
            Grouping.UNIT: step.unit_id,
            Grouping.CATEGORY: step.category,
            Grouping.RULE: step.rule_name,
        }[self]
        return value or UNKNOWN


def _minus_points(now: float | None, before: float | None) -> float | None:
    # Rounded: a difference of floats carries noise in its last digits (1.2500000000000067).
    return None if now is None or before is None else round((now - before) * 100, _POINT_DIGITS)


#: A report's counts as its outputs name them, in their order, and the RateReport field of each.
COUNT_FIELDS: Final = {
    "reported": "incidents",
    "dispatches": "dispatches",
    "transfers": "transfers",
    "extension_requests": "extension_requests",
    "extensions_granted": "extensions_granted",
    "closures_due": "closures_due",
    "closures_on_time": "closures_on_time",
    "verifications": "verifications",
    "rejections": "rejections",
    "accepted_in_time": "accepted_in_time",
    "accept_breaches": "accept_breaches",
    "sla_breaches": "sla_breaches",
    "resolutions": "resolutions",
    "resolutions_in_time": "resolutions_in_time",
    "ratings": "ratings",
    "satisfied_ratings": "satisfied_ratings",
    "return_visits": "return_visits",
    "solved_visits": "solved_visits",
    "closed": "closed",
    "resolved_closures": "resolved_closures",
    "escalated_closures": "escalated_closures",
    "escalations": "escalations",
    "reopens": "reopens",
}


@dataclass(frozen=True)
class Figures:
    """The counts, rates and score of one group (or all, or a week) in one period."""

    counts: RateReport
    score: float | None

    @classmethod
    def of(cls, counts: RateReport, weights: Weights) -> Figures:
        """The figures of the counts, scored with the weights."""
        return cls(counts, weights.score(counts))

    def rate(self, name: str) -> float | None:
        """One of the rates of gridflow.domain.report.score.RATES."""
        return RATES[name](self.counts)

    def rates(self) -> dict[str, float | None]:
        """Every rate, by name."""
        return {name: rate(self.counts) for name, rate in RATES.items()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, rates (fractions, null without a value), score, time to resolve."""
        report = self.counts
        p50, p90 = report.time_to_resolve(0.5), report.time_to_resolve(0.9)
        return {
            "counts": {
                **{name: getattr(report, field) for name, field in COUNT_FIELDS.items()},
                "closures_by_outcome": dict(sorted(report.closures_by_outcome.items())),
            },
            "rates": self.rates(),
            "score": self.score,
            "time_to_resolve_seconds": {
                "p50": p50.total_seconds() if p50 is not None else None,
                "p90": p90.total_seconds() if p90 is not None else None,
            },
        }


@dataclass(frozen=True)
class Change:
    """From the previous period to this one: points per rate and of the score, places moved up."""

    rates: dict[str, float | None]
    score: float | None
    rank: int | None  # positive: up the ranking; None when either period has no rank

    @classmethod
    def between(
        cls, now: Figures, before: Figures | None, rank: int | None = None, previous_rank: int | None = None
    ) -> Change:
        """The change from `before` (None: nothing then) to `now`."""
        if before is None:
            return cls({name: None for name in RATES}, None, None)
        return cls(
            {name: _minus_points(now.rate(name), before.rate(name)) for name in RATES},
            _minus_points(now.score, before.score),
            previous_rank - rank if rank is not None and previous_rank is not None else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: `rates` and `score` in points, `rank` in places."""
        return {"rates": self.rates, "score": self.score, "rank": self.rank}


@dataclass(frozen=True)
class GroupRow:
    """One line of the ranking: a group's figures now and in the previous period, and the change."""

    name: str
    rank: int | None  # None: no score (none of the weighted rates has a value)
    figures: Figures
    previous: Figures | None  # None: the group counted nothing in the previous period
    previous_rank: int | None
    change: Change

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "group": self.name,
            "rank": self.rank,
            **self.figures.as_dict(),
            "previous": None if self.previous is None else self.previous.as_dict(),
            "previous_rank": self.previous_rank,
            "change": self.change.as_dict(),
        }


@dataclass(frozen=True)
class Week:
    """One week of the trend: every step of the week, whatever its group."""

    period: Period
    figures: Figures

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "week": self.period.week_label,
            "first": self.period.first.isoformat(),
            "last": self.period.last.isoformat(),
            **self.figures.as_dict(),
        }


@dataclass(frozen=True)
class PeriodReport:
    """The evaluation report of one period, by one grouping."""

    period: Period
    previous_period: Period
    grouping: Grouping
    weights: Weights
    overall: Figures
    previous_overall: Figures
    rows: list[GroupRow]  # ranked: score descending, ties and unscored groups by name
    weeks: list[Week]
    breaches: dict[tuple[str, str], int]  # (district, category): SLA clocks that ran out

    @property
    def empty(self) -> bool:
        """Whether nothing at all happened in the period."""
        return self.overall.counts == RateReport()

    @property
    def overall_change(self) -> Change:
        """The change of the figures over all groups."""
        return Change.between(self.overall, self.previous_overall)

    @property
    def districts(self) -> list[str]:
        """The districts of the breach heat map, by name."""
        return sorted({district for district, _ in self.breaches})

    @property
    def categories(self) -> list[str]:
        """The categories of the breach heat map, by name."""
        return sorted({category for _, category in self.breaches})

    def as_dict(self) -> dict[str, Any]:
        """The report's JSON (format `gridflow-report/1`; README: Monthly report for supervisors)."""
        return {
            "format": "gridflow-report/1",
            "period": _period(self.period),
            "previous_period": _period(self.previous_period),
            "by": self.grouping.value,
            "weights": self.weights.as_dict(),
            "overall": {
                **self.overall.as_dict(),
                "previous": self.previous_overall.as_dict(),
                "change": self.overall_change.as_dict(),
            },
            "groups": [row.as_dict() for row in self.rows],
            "weeks": [week.as_dict() for week in self.weeks],
            "breaches": [
                {"district": district, "category": category, "sla_breaches": count}
                for (district, category), count in sorted(self.breaches.items())
            ],
        }


def _period(period: Period) -> dict[str, str]:
    return {
        "label": period.label,
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
    }


@dataclass
class _Tally:
    """The counts of one period while the steps go by."""

    overall: RateReport = field(default_factory=RateReport)
    groups: dict[str, RateReport] = field(default_factory=dict)

    def add(self, step: IncidentStep, group: str) -> None:
        self.overall.add_step(step)
        report = self.groups.get(group)
        if report is None:
            report = self.groups[group] = RateReport()
        report.add_step(step)

    def ranked(self, weights: Weights) -> list[tuple[str, int | None, Figures]]:
        """The groups that counted something, best score first (ties by name), unscored last."""
        figures = [
            (name, Figures.of(report, weights))
            for name, report in self.groups.items()
            if report != RateReport()  # a group only of steps that count nothing (a progress note)
        ]
        figures.sort(key=lambda pair: _rank_key(*pair))
        return [
            (name, place if one.score is not None else None, one)
            for place, (name, one) in enumerate(figures, start=1)
        ]


def _rank_key(name: str, figures: Figures) -> tuple[bool, float, str]:
    score = figures.score
    return (score is None, -round(score or 0.0, _TIE_DIGITS), name)


def build_report(
    steps: Iterable[IncidentStep], period: Period, grouping: Grouping, weights: Weights
) -> PeriodReport:
    """The report of `period` by `grouping`, from steps of it and of the previous period (any other
    step is left out; the order does not matter)."""
    previous = period.previous()
    now, before = _Tally(), _Tally()
    weeks = period.weeks()
    week_starts = [week.start for week in weeks]
    week_counts = [RateReport() for _ in weeks]
    breaches: dict[tuple[str, str], int] = {}
    start, end, previous_start = period.start, period.end, previous.start  # once, not per step
    for step in steps:
        if start <= step.at < end:
            now.add(step, grouping.key(step))
            week_counts[bisect.bisect_right(week_starts, step.at) - 1].add_step(step)
            if step.kind is StepKind.SLA_BREACHED:
                cell = (step.district_id, step.category)
                breaches[cell] = breaches.get(cell, 0) + 1
        elif previous_start <= step.at < start:
            before.add(step, grouping.key(step))
    earlier = {name: (rank, figures) for name, rank, figures in before.ranked(weights)}
    rows = []
    for name, rank, figures in now.ranked(weights):
        previous_rank, previous_figures = earlier.get(name, (None, None))
        rows.append(
            GroupRow(
                name=name,
                rank=rank,
                figures=figures,
                previous=previous_figures,
                previous_rank=previous_rank,
                change=Change.between(figures, previous_figures, rank, previous_rank),
            )
        )
    return PeriodReport(
        period=period,
        previous_period=previous,
        grouping=grouping,
        weights=weights,
        overall=Figures.of(now.overall, weights),
        previous_overall=Figures.of(before.overall, weights),
        rows=rows,
        weeks=[
            Week(week, Figures.of(counts, weights)) for week, counts in zip(weeks, week_counts, strict=True)
        ],
        breaches=breaches,
    )
