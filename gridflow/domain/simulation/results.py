"""What a simulation tells a rule author: the rates overall and per district, category and rule, and for a
comparison the difference and the incidents whose outcome changed. Tables for people, JSON for machines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from gridflow.domain.lifecycle import IncidentState, StepKind
from gridflow.domain.rates import RateReport
from gridflow.domain.rules.model import RuleSet

EXAMPLES = 5  # incident ids kept per kind of change, to look at with `rules explain`


def ladder_levels(rules: RuleSet) -> list[str]:
    """Every level of a rule set's ladders, bottom to top."""
    return sorted(
        {level for rule in rules.rules for level in rule.levels},
        key=lambda level: min(rule.levels.index(level) for rule in rules.rules if level in rule.levels),
    )


@dataclass
class Breakdown:
    """The rates of one rule set over a stream: overall, and per district, category and rule."""

    by_district: dict[str, RateReport] = field(default_factory=dict)
    by_category: dict[str, RateReport] = field(default_factory=dict)
    by_rule: dict[str, RateReport] = field(default_factory=dict)

    @property
    def overall(self) -> RateReport:
        """The rates over every incident (the districts' together: each incident is in one)."""
        report = RateReport()
        for part in self.by_district.values():
            report.merge(part)
        return report

    def add(self, state: IncidentState) -> None:
        """Count one incident in, wherever it belongs."""
        one = RateReport()
        one.add(state)
        rule = state.rule.rule.name if state.rule else "-"
        for parts, key in (
            (self.by_district, state.district_id),
            (self.by_category, state.category),
            (self.by_rule, rule),
        ):
            report = parts.get(key)
            if report is None:
                report = parts[key] = RateReport()
            report.merge(one)


@dataclass
class SimulationResult:
    """What one rule set did with the stream."""

    name: str  # the rules file (or "built-in")
    rules_version: str
    levels: list[str]
    breakdown: Breakdown
    simulated: timedelta  # from the first report to the last thing that happened

    @cached_property
    def report(self) -> RateReport:
        """The overall rates (the result is made once its simulation is over)."""
        return self.breakdown.overall

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        parts = self.breakdown
        return {
            "rules_version": self.rules_version,
            "incidents": self.report.incidents,
            "simulated_seconds": self.simulated.total_seconds(),
            **self.report.as_dict(self.levels),
            "by_district": {k: v.as_dict(self.levels) for k, v in sorted(parts.by_district.items())},
            "by_category": {k: v.as_dict(self.levels) for k, v in sorted(parts.by_category.items())},
            "by_rule": {k: v.as_dict(self.levels) for k, v in sorted(parts.by_rule.items())},
        }


@dataclass(frozen=True)
class Fate:
    """How one incident ended under one rule set, as far as a comparison cares."""

    outcome: str  # the closing outcome, or "open" at the horizon
    escalated: bool
    breached: bool

    @classmethod
    def of(cls, state: IncidentState) -> Fate:
        """The fate of a finished simulated incident."""
        return cls(
            outcome=state.outcome.value if state.outcome else "open",
            escalated=state.escalations > 0,
            breached=any(step.kind is StepKind.SLA_BREACHED for step in state.timeline),
        )


@dataclass
class Changes:
    """Incidents whose fate under the rules tried differs from their fate under the rules compared with."""

    compared: int = 0
    changed: int = 0
    escalated_now: int = 0  # escalated under the rules tried, not under the others
    no_longer_escalated: int = 0
    breached_now: int = 0  # an SLA clock ran out under the rules tried, not under the others
    no_longer_breached: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # "resolved -> resolved_unrated": count
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, incident_id: str, tried: Fate, other: Fate) -> None:
        """Compare one incident's two fates."""
        self.compared += 1
        kinds = []
        if tried.escalated != other.escalated:
            kinds.append("escalated_now" if tried.escalated else "no_longer_escalated")
        if tried.breached != other.breached:
            kinds.append("breached_now" if tried.breached else "no_longer_breached")
        if tried.outcome != other.outcome:
            move = f"{other.outcome} -> {tried.outcome}"
            self.outcomes[move] = self.outcomes.get(move, 0) + 1
            kinds.append(f"outcome {move}")
        if not kinds:
            return
        self.changed += 1
        for kind in kinds:
            if not kind.startswith("outcome "):
                setattr(self, kind, getattr(self, kind) + 1)
            examples = self.examples.setdefault(kind, [])
            if len(examples) < EXAMPLES:
                examples.append(incident_id)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "compared": self.compared,
            "changed": self.changed,
            "escalated_now": self.escalated_now,
            "no_longer_escalated": self.no_longer_escalated,
            "breached_now": self.breached_now,
            "no_longer_breached": self.no_longer_breached,
            "outcomes": dict(sorted(self.outcomes.items())),
            "examples": self.examples,
        }


class Pairing:
    """Pairs the two fates of each incident of a comparison as they come, whatever the order."""

    def __init__(self) -> None:
        self.changes = Changes()
        self._waiting: dict[str, tuple[int, Fate]] = {}

    def add(self, lane: int, incident_id: str, fate: Fate) -> None:
        """One rule set's fate of an incident (lane 0: the rules tried; 1: the rules compared with)."""
        other = self._waiting.pop(incident_id, None)
        if other is None:
            self._waiting[incident_id] = (lane, fate)
            return
        tried, compared = (fate, other[1]) if lane == 0 else (other[1], fate)
        self.changes.add(incident_id, tried, compared)


@dataclass
class Simulation:
    """A simulation run: one result per rule set, and for a comparison what changed."""

    engine: str
    incidents: int
    wall_seconds: float
    results: list[SimulationResult]
    changes: Changes | None = None

    @property
    def incidents_per_second(self) -> float:
        """Simulated incidents (one per rule set per stream line) per wall-clock second."""
        cases = self.incidents * len(self.results)
        return cases / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def days_per_second(self) -> float:
        """Simulated days per wall-clock second."""
        longest = max((r.simulated for r in self.results), default=timedelta(0))
        return longest / timedelta(days=1) / self.wall_seconds if self.wall_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the run, each rule set's rates, and the difference."""
        document: dict[str, Any] = {
            "engine": self.engine,
            "incidents": self.incidents,
            "wall_seconds": round(self.wall_seconds, 3),
            "incidents_per_second": round(self.incidents_per_second, 1),
            "simulated_days_per_second": round(self.days_per_second, 2),
            "rule_sets": {result.name: result.as_dict() for result in self.results},
        }
        if len(self.results) == 2:
            tried, other = self.results
            document["difference"] = {
                name: _minus(value(tried.report), value(other.report)) for name, value in RATES
            }
        if self.changes is not None:
            document["changes"] = self.changes.as_dict()
        return document


# The headline rates, in the order the tables show them.
RATES: list[tuple[str, Callable[[RateReport], float | None]]] = [
    ("response", lambda r: r.response_rate),
    ("resolution", lambda r: r.resolution_rate),
    ("satisfaction", lambda r: r.satisfaction_rate),
    ("resident_resolution", lambda r: r.resident_resolution_rate),
    ("on_time", lambda r: r.on_time_rate),
    ("escalation", lambda r: r.escalation_rate),
    ("dispatch_accuracy", lambda r: r.dispatch_accuracy_rate),
    ("extension", lambda r: r.extension_rate),
    ("rework", lambda r: r.rework_rate),
    ("on_time_closure", lambda r: r.on_time_closure_rate),
]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pt"


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]


def _overall(simulation: Simulation) -> list[str]:
    results = simulation.results
    levels: list[str] = []
    for result in results:
        levels += [level for level in result.levels if level not in levels]
    two = len(results) == 2

    def row(label: str, cells: list[str], difference: str = "") -> list[str]:
        return [label, *cells, *([difference] if two else [])]

    def rate(label: str, value: Callable[[RateReport], float | None]) -> list[str]:
        values = [value(r.report) for r in results]
        return row(label, [_percent(v) for v in values], _points(_minus(*values)) if two else "")

    rows = [
        row("incidents", [str(r.report.incidents) for r in results]),
        row("closed", [str(r.report.closed) for r in results]),
        *(rate(f"{name.replace('_', '-')} rate", value) for name, value in RATES),
        row("escalations", [str(r.report.escalations) for r in results]),
        row("reopens", [str(r.report.reopens) for r in results]),
        *(rate(f"contained by {level}", _contained_by(levels, level)) for level in levels),
        row("time to resolve p50", [_duration(r.report.time_to_resolve(0.5)) for r in results]),
        row("time to resolve p90", [_duration(r.report.time_to_resolve(0.9)) for r in results]),
        row("simulated days", [f"{r.simulated / timedelta(days=1):.1f}" for r in results]),
    ]
    header = ["", *(r.name for r in results), *(["difference"] if two else [])]
    return _table(header, rows)


def _contained_by(levels: list[str], level: str) -> Callable[[RateReport], float | None]:
    def value(report: RateReport) -> float | None:
        return report.containment(levels).get(level)

    return value


def _parts(
    simulation: Simulation, title: str, part: Callable[[Breakdown], dict[str, RateReport]]
) -> list[str]:
    """One line per district (category, rule): incidents and the headline rates; for a comparison, the
    rates of the rules tried and the difference in points from the rules compared with."""
    results = simulation.results
    tried = part(results[0].breakdown)
    other = part(results[1].breakdown) if len(results) == 2 else None
    keys = sorted(set(tried) | set(other or {}))
    header = [title, "incidents"]
    for name, _ in RATES:
        header += [name.replace("_", "-"), *(["diff"] if other is not None else [])]
    rows = []
    for key in keys:
        mine = tried.get(key)
        theirs = other.get(key) if other is not None else None
        count = max(report.incidents for report in (mine, theirs) if report is not None)
        cells = [key, str(count)]
        for _, value in RATES:
            a = value(mine) if mine is not None else None
            cells.append(_percent(a))
            if other is not None:
                cells.append(_points(_minus(a, value(theirs) if theirs is not None else None)))
        rows.append(cells)
    lines = _table(header, rows)
    if other is not None:
        lines.insert(0, f"by {title}: {results[0].name}, and the difference from {results[1].name}")
    else:
        lines.insert(0, f"by {title}")
    return lines


def _changes(changes: Changes, tried: str, other: str) -> list[str]:
    lines = [
        f"incidents whose fate changed, {tried} against {other}: {changes.changed} of {changes.compared}",
        f"  escalated where they were not: {changes.escalated_now}; no longer escalated: "
        f"{changes.no_longer_escalated}",
        f"  breached where they were not: {changes.breached_now}; "
        f"no longer breached: {changes.no_longer_breached}",
    ]
    for move, count in sorted(changes.outcomes.items(), key=lambda pair: -pair[1]):
        lines.append(f"  outcome {move}: {count}")
    for kind, ids in sorted(changes.examples.items()):
        lines.append(f"  e.g. {kind}: {', '.join(ids)}")
    return lines


def format_simulation(simulation: Simulation) -> str:
    """The whole simulation as text tables: overall, per district, category and rule, and the changes."""
    lines = _overall(simulation)
    for title, part in (
        ("district", lambda b: b.by_district),
        ("category", lambda b: b.by_category),
        ("rule", lambda b: b.by_rule),
    ):
        lines += ["", *_parts(simulation, title, part)]
    if simulation.changes is not None and len(simulation.results) == 2:
        lines += ["", *_changes(simulation.changes, simulation.results[0].name, simulation.results[1].name)]
    lines += [
        "",
        f"{simulation.engine} engine: {simulation.incidents} incidents x {len(simulation.results)} "
        f"rule set(s) in {simulation.wall_seconds:.1f} s "
        f"({simulation.incidents_per_second:,.0f} simulated incidents/s, "
        f"{simulation.days_per_second:,.1f} simulated days/s)",
    ]
    return "\n".join(lines)


def write_json(path: Path, simulation: Simulation) -> None:
    """Write the simulation as JSON."""
    path.write_text(json.dumps(simulation.as_dict(), indent=2) + "\n")
