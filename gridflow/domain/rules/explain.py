"""Tools for rule authors: warnings about a rule set, and the explanation of what an incident would do.

`explain` runs the lifecycle core (gridflow.domain.lifecycle), the same functions IncidentWorkflow runs,
so the timeline it prints is the one an incident follows when nobody acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gridflow.domain import lifecycle
from gridflow.domain.incident import Incident
from gridflow.domain.lifecycle import Step, StepKind
from gridflow.domain.rules.durations import WorkingDays, format_limit
from gridflow.domain.rules.model import Match, Rule, RuleSet


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


def _shrinks(below: timedelta | WorkingDays, above: timedelta | WorkingDays) -> bool:
    # Working days and hours do not compare without a start instant: only like is checked with like.
    if isinstance(below, WorkingDays) and isinstance(above, WorkingDays):
        return above.days < below.days
    if isinstance(below, timedelta) and isinstance(above, timedelta):
        return above < below
    return False


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
                if _shrinks(below, above):
                    warnings.append(
                        RuleWarning(
                            rule.name,
                            f"{clock} limit shrinks going up: {lower} {format_limit(below)}, "
                            f"{upper} {format_limit(above)}",
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


@dataclass
class Explanation:
    """Which rule an incident matches, why the earlier ones do not, and its timeline if nobody acts."""

    rule: Rule
    rules_version: str
    skipped: list[tuple[str, list[str]]] = field(default_factory=list)  # earlier rules and why not
    timeline: list[Step] = field(default_factory=list)


# A calendar-bound ladder always ends in reminders; the cap only guards against a rule that never does.
_MOST_STEPS = 1000


def explain(
    rules: RuleSet, incident: Incident, *, start: datetime | None = None, reminders: int = 3
) -> Explanation:
    """Explain the incident's rule, and the timeline the lifecycle core gives it from `start` (default:
    its report time) when nobody acts, up to its `reminders`-th overdue reminder."""
    skipped = []
    for rule in rules.rules:
        reasons = rule.match.mismatches(incident)
        if not reasons:
            break
        skipped.append((rule.name, reasons))
    snapshot = rules.snapshot_for(incident)
    now = (start or incident.reported_at).astimezone(UTC)
    state, _ = lifecycle.report(incident, now)
    lifecycle.start(state, incident, snapshot, now)
    while (
        (due := lifecycle.next_due(state)) is not None
        and sum(step.kind is StepKind.OVERDUE_REMINDER for step in state.timeline) < reminders
        and len(state.timeline) < _MOST_STEPS
    ):
        lifecycle.fire_due(state, incident, due)
    return Explanation(
        rule=snapshot.rule, rules_version=rules.version, skipped=skipped, timeline=state.timeline
    )
