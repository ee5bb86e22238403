"""Tools for rule authors: warnings about a rule set, and the explanation of what an incident would do.

`explain` uses the same clock arithmetic as the workflow (workflows.state.Clock), so the timeline it
prints is the one the workflow follows when nobody acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gridflow.incident import Incident
from gridflow.rules.durations import format_duration
from gridflow.rules.model import Match, Rule, RuleSet, RuleSnapshot
from workflows.state import Clock, ClockKind


@dataclass(frozen=True)
class RuleWarning:
    """Something legal but probably wrong in a rule set."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"rule {self.rule!r}: {self.message}"


def _covers(earlier: Match, later: Match) -> bool:
    """Whether every incident `later` matches is also matched by `earlier`."""
    wide, narrow = earlier.conditions(), later.conditions()
    return all(
        accepted is None or (narrow[name] is not None and set(narrow[name] or ()) <= set(accepted))
        for name, accepted in wide.items()
    )


def lint(rules: RuleSet) -> list[RuleWarning]:
    """Warnings: rules shadowed by an earlier one, limits that shrink going up, calendars with no time."""
    warnings: list[RuleWarning] = []
    for index, rule in enumerate(rules.rules):
        for earlier in rules.rules[:index]:
            if _covers(earlier.match, rule.match):
                warnings.append(
                    RuleWarning(
                        rule.name, f"is unreachable: rule {earlier.name!r} before it matches all it does"
                    )
                )
                break
        for lower, upper in zip(rule.levels, rule.levels[1:], strict=False):
            for clock in ("accept", "resolve"):
                below = getattr(rule.limits(lower), clock)
                above = getattr(rule.limits(upper), clock)
                if above < below:
                    warnings.append(
                        RuleWarning(
                            rule.name,
                            f"{clock} limit shrinks going up: {lower} {format_duration(below)}, "
                            f"{upper} {format_duration(above)}",
                        )
                    )
    for name, calendar in rules.calendars.items():
        if not calendar.has_working_time():
            users = [r.name for r in rules.rules if name in {r.calendar_for(level) for level in r.levels}]
            for user in users or ["-"]:
                warnings.append(
                    RuleWarning(user, f"calendar {name!r} has no working time: its clocks never run out")
                )
    return warnings


@dataclass(frozen=True)
class PlannedStep:
    """A step of the timeline an incident follows when nobody acts."""

    at: datetime
    kind: str
    level: str
    unit_id: str
    detail: str = ""


@dataclass
class Explanation:
    """Which rule an incident matches, why the earlier ones do not, and its timeline if nobody acts."""

    rule: Rule
    rules_version: str
    skipped: list[tuple[str, list[str]]] = field(default_factory=list)  # earlier rules and why not
    timeline: list[PlannedStep] = field(default_factory=list)


def explain(
    rules: RuleSet, incident: Incident, *, start: datetime | None = None, reminders: int = 3
) -> Explanation:
    """Explain the incident's rule and timeline from `start` (default: its report time)."""
    skipped = []
    for rule in rules.rules:
        reasons = rule.match.mismatches(incident)
        if not reasons:
            break
        skipped.append((rule.name, reasons))
    snapshot = rules.snapshot_for(incident)
    explanation = Explanation(rule=snapshot.rule, rules_version=rules.version, skipped=skipped)
    explanation.timeline = _timeline(
        snapshot, incident, (start or incident.reported_at).astimezone(UTC), reminders
    )
    return explanation


def _timeline(
    snapshot: RuleSnapshot, incident: Incident, start: datetime, reminders: int
) -> list[PlannedStep]:
    rule = snapshot.rule
    steps: list[PlannedStep] = []
    now = start
    for index, level in enumerate(rule.levels):
        unit = snapshot.unit_for(level, incident)
        clock = Clock.start(
            ClockKind.ACCEPT,
            now,
            rule.limits(level).accept,
            rule.warn_at_for(level),
            snapshot.sla_clock(level),
        )
        steps.append(PlannedStep(now, "dispatched", level, unit, f"accept by {clock.deadline.isoformat()}"))
        for department in snapshot.notified_units(level, incident):
            steps.append(PlannedStep(now, "notified", level, department, "level_reached"))
        while (warning := clock.warning_due()) is not None:
            fraction, at = warning
            clock.warned.append(fraction)
            steps.append(PlannedStep(at, "sla_warning", level, unit, f"accept clock at {fraction:.0%}"))
        now = clock.deadline
        steps.append(PlannedStep(now, "sla_breached", level, unit, "accept clock ran out"))
        if index + 1 < len(rule.levels):
            steps.append(
                PlannedStep(now, "escalated", level, unit, f"accept_timeout -> {rule.levels[index + 1]}")
            )
            continue
        steps.append(PlannedStep(now, "overdue", level, unit, "accept_timeout at the top level"))
        every: timedelta = rule.overdue_reminder_for(level)
        for number in range(1, reminders + 1):
            steps.append(
                PlannedStep(
                    now + every * number, "overdue_reminder", level, unit, f"every {format_duration(every)}"
                )
            )
    return steps
