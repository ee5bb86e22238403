"""The escalation rules: which incidents a rule matches, its ladder of levels and the limits at each."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridflow.incident import DEFAULT_LEVELS, Incident, Priority
from gridflow.rules.durations import Duration

Fraction = Annotated[float, Field(gt=0, lt=1)]


class OnUnsatisfied(StrEnum):
    """What an unsatisfied rating does to a resolved incident."""

    REOPEN_SAME_LEVEL = "reopen_same_level"
    ESCALATE = "escalate"


class LevelLimits(BaseModel):
    """The two clocks of one level: accept within `accept`, then resolve within `resolve`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept: Duration
    resolve: Duration


class FeedbackPolicy(BaseModel):
    """How long the resident may rate, and what an unsatisfied rating does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Duration = timedelta(hours=72)
    on_unsatisfied: OnUnsatisfied = OnUnsatisfied.REOPEN_SAME_LEVEL
    max_reopens: int = Field(default=2, ge=0, le=20)


class Match(BaseModel):
    """Which incidents a rule is for; an absent field matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: list[str] | None = Field(default=None, min_length=1)
    priority: list[Priority] | None = Field(default=None, min_length=1)
    district: list[str] | None = Field(default=None, min_length=1)

    @property
    def is_catch_all(self) -> bool:
        """Whether this match accepts every incident."""
        return self.category is None and self.priority is None and self.district is None

    def matches(self, incident: Incident) -> bool:
        """Whether the incident fits every field this match names."""
        return (
            (self.category is None or incident.category in self.category)
            and (self.priority is None or incident.priority in self.priority)
            and (self.district is None or incident.location.district_id in self.district)
        )


class Rule(BaseModel):
    """One escalation rule: a match, a ladder of levels with their limits, warnings and feedback."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    match: Match = Match()
    ladder: dict[str, LevelLimits] = Field(min_length=1)
    warn_at: list[Fraction] = Field(default_factory=lambda: [0.75])
    max_pause: Duration = timedelta(hours=72)
    overdue_reminder: Duration = timedelta(hours=4)
    feedback: FeedbackPolicy = FeedbackPolicy()

    @field_validator("warn_at", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `warn_at: 0.75` and `warn_at: [0.5, 0.75]` are both natural to write.
        return [value] if isinstance(value, int | float) else value

    @field_validator("warn_at")
    @classmethod
    def _sorted_unique(cls, value: list[float]) -> list[float]:
        return sorted(set(value))

    @field_validator("ladder")
    @classmethod
    def _known_levels_in_order(cls, ladder: dict[str, LevelLimits]) -> dict[str, LevelLimits]:
        positions = []
        for level in ladder:
            if level not in DEFAULT_LEVELS:
                raise ValueError(f"unknown level {level!r} (levels are {', '.join(DEFAULT_LEVELS)})")
            positions.append(DEFAULT_LEVELS.index(level))
        if positions != sorted(positions):
            raise ValueError(f"levels must go up in the order {' -> '.join(DEFAULT_LEVELS)}")
        return ladder

    @property
    def levels(self) -> list[str]:
        """The ladder's levels, bottom to top."""
        return list(self.ladder)

    def limits(self, level: str) -> LevelLimits:
        """The accept and resolve limits at a level of this rule's ladder."""
        return self.ladder[level]


class RuleSet(BaseModel):
    """An ordered list of rules: the first whose match fits an incident wins; the last catches all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)] = "1"
    rules: list[Rule] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _names_unique_and_default_last(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        if not self.rules[-1].match.is_catch_all:
            raise ValueError(
                "the last rule must be a default that matches every incident (`match: {}`), "
                f"but {self.rules[-1].name!r} has a match"
            )
        return self

    def rule_for(self, incident: Incident) -> Rule:
        """The first rule whose match fits the incident (the default when none other does)."""
        for rule in self.rules:
            if rule.match.matches(incident):
                return rule
        raise AssertionError("unreachable: the last rule matches every incident")


class RuleSnapshot(BaseModel):
    """The rule an incident runs on, frozen at its start so rule changes never alter it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules_version: str
    rule: Rule
