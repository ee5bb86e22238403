"""How instants and timeline steps read on a terminal (`incident show`, `rules explain`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridflow.domain.lifecycle import Step
from gridflow.domain.rules import format_duration


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """`2026-11-23 08:00:00Z`, with how far off it is when `now` is given; `-` for nothing."""
    if moment is None:
        return "-"
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if now is not None:
        delta = moment - now
        text += (
            f" (in {format_duration(delta)})"
            if delta >= timedelta(0)
            else f" ({format_duration(-delta)} ago)"
        )
    return text


def step_details(step: Step) -> str:
    """What a step says beyond its kind, level and unit: levels moved, reason, clock, deadline, note."""
    details = []
    if step.from_level and step.to_level:
        details.append(f"{step.from_level} -> {step.to_level}")
    if step.from_unit:
        details.append(f"from {step.from_unit}")
    if step.extension:
        details.append(f"{step.extension} more")
    if step.actor:
        details.append(f"by {step.actor}")
    for name in ("reason", "clock", "rating", "outcome"):
        value = getattr(step, name)
        if value is not None:
            details.append(f"{name}={getattr(value, 'value', value)}")
    if step.solved is not None:
        details.append("solved" if step.solved else "not solved")
    if step.fraction is not None:
        details.append(f"at {step.fraction:.0%}")
    if step.within_limit is not None:
        details.append("within limit" if step.within_limit else "after the limit")
    if step.deadline is not None:
        details.append(f"deadline {when(step.deadline)}")
    if step.note:
        details.append(f"note: {step.note}")
    return ", ".join(details)
