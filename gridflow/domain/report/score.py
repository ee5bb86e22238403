"""The rates a report shows, and the ranking score: a weighted mean of some of them.

score = sum(weight x rate) / sum(weight), over the weighted rates that have a value (a rate has none
when nothing was counted for it, e.g. no rating in the period); no score when none of them has one.
The weights are the setting GRIDFLOW_REPORT_WEIGHTS, e.g. `response=30,resolution=35,satisfaction=35`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gridflow.domain.rates import RateReport

#: The levels whose containment a report shows: those of the Prometheus recording rules.
CONTAINMENT_LEVELS: Final = ("grid", "street", "district")


def _containment(level: str) -> Callable[[RateReport], float | None]:
    def rate(report: RateReport) -> float | None:
        return report.containment(list(CONTAINMENT_LEVELS))[level]

    return rate


#: Every rate a report shows, by name, in the order tables show them (gridflow.domain.rates defines them).
RATES: Final[dict[str, Callable[[RateReport], float | None]]] = {
    "response": lambda r: r.response_rate,
    "resolution": lambda r: r.resolution_rate,
    "satisfaction": lambda r: r.satisfaction_rate,
    "resident_resolution": lambda r: r.resident_resolution_rate,
    "on_time": lambda r: r.on_time_rate,
    "escalation": lambda r: r.escalation_rate,
    "dispatch_accuracy": lambda r: r.dispatch_accuracy_rate,
    "extension": lambda r: r.extension_rate,
    "rework": lambda r: r.rework_rate,
    "on_time_closure": lambda r: r.on_time_closure_rate,
    **{f"{level}_containment": _containment(level) for level in CONTAINMENT_LEVELS},
}

#: Rates where less is better: a weight would reward them, so none may be given.
LOWER_IS_BETTER: Final = frozenset({"escalation", "extension", "rework"})
#: The rates a weight can be given to.
SCORED: Final = tuple(name for name in RATES if name not in LOWER_IS_BETTER)

WEIGHTS_SETTING: Final = "GRIDFLOW_REPORT_WEIGHTS"
DEFAULT_WEIGHTS: Final = "response=30,resolution=35,satisfaction=35"


class WeightsError(ValueError):
    """Weights that cannot be used; the message names where they came from and the bad part."""


@dataclass(frozen=True)
class Weights:
    """How much each rate counts in the score, e.g. response 30, resolution 35, satisfaction 35."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str, source: str = WEIGHTS_SETTING) -> Weights:
        """Read `rate=weight,...`; `source` (the setting or flag) is named in the error."""
        weights: dict[str, float] = {}
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            name, equals, value = (piece.strip() for piece in part.partition("="))
            if not equals or not name or not value:
                raise WeightsError(f"{source}: {part!r} is not rate=weight (e.g. response=30)")
            if name in LOWER_IS_BETTER:
                raise WeightsError(
                    f"{source}: {part!r}: the {name} rate is better lower, a weight would reward it; "
                    f"weighted rates are {', '.join(SCORED)}"
                )
            if name not in SCORED:
                raise WeightsError(f"{source}: {part!r} names no rate; the rates are {', '.join(SCORED)}")
            if name in weights:
                raise WeightsError(f"{source}: {part!r}: {name} is weighted twice")
            try:
                weight = float(value)
            except ValueError:
                raise WeightsError(f"{source}: {part!r}: {value!r} is not a number") from None
            if not math.isfinite(weight) or weight < 0:
                raise WeightsError(f"{source}: {part!r}: a weight is a number of 0 or more")
            weights[name] = weight
        if sum(weights.values()) <= 0:
            raise WeightsError(f"{source}: {text!r} gives no rate a weight (e.g. {DEFAULT_WEIGHTS})")
        return cls(tuple(weights.items()))

    def score(self, report: RateReport) -> float | None:
        """The weighted mean of the weighted rates that have a value, or None when none has."""
        total = weighted = 0.0
        for name, weight in self.weights:
            rate = RATES[name](report)
            if rate is not None and weight > 0:
                total += weight * rate
                weighted += weight
        return total / weighted if weighted else None

    def as_dict(self) -> dict[str, float]:
        """`{"response": 30.0, ...}`, in the order given."""
        return dict(self.weights)

    def __str__(self) -> str:
        return ",".join(f"{name}={weight:g}" for name, weight in self.weights)
