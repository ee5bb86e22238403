"""A benchmark's figures: each measured number with its raw baseline, ratio and target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured number, with the raw capability it is compared with (if any) and its target (if any).

    A target is recorded with whether the figure met it; a figure that misses it fails nothing.
    """

    name: str
    value: float
    unit: str
    meaning: str
    baseline: float | None = None
    target: float | None = None
    at_most: bool = False  # the target is an upper bound (memory), not a lower one (a rate)

    @property
    def ratio(self) -> float | None:
        """gridflow's figure over the raw one."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def target_met(self) -> bool | None:
        """Whether the figure reached its target (None: it has none)."""
        if self.target is None:
            return None
        return self.value <= self.target if self.at_most else self.value >= self.target


@dataclass
class Benchmark:
    """The figures of one benchmark, what it was run with and how to read it."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        """Add a figure."""
        self.figures.append(figure)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: `results` maps every figure (and its baseline and ratio, its target and 1 or 0 for
        whether it met it) to a number."""
        results: dict[str, float] = {}
        for figure in self.figures:
            results[figure.name] = round(figure.value, 6)
            if figure.baseline is not None:
                results[f"{figure.name}_raw"] = round(figure.baseline, 6)
            if figure.ratio is not None:
                results[f"{figure.name}_ratio"] = round(figure.ratio, 6)
            if figure.target is not None:
                results[f"{figure.name}_target"] = figure.target
                results[f"{figure.name}_target_met"] = 1 if figure.target_met else 0
        return {
            "params": self.params,
            "results": results,
            "figures": [
                {**asdict(figure), "ratio": figure.ratio, "target_met": figure.target_met}
                for figure in self.figures
            ],
            "notes": self.notes,
        }
