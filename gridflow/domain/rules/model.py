"""The escalation rules: which incidents a rule matches, its ladder of levels and the limits at each."""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gridflow.domain.incident import DEFAULT_CITY_UNIT, DEFAULT_LEVELS, Incident, Priority
from gridflow.domain.rules.calendar import BusinessCalendar, SlaClock, clock_for
from gridflow.domain.rules.durations import Duration, Limit, WorkingDays, format_limit

Fraction = Annotated[float, Field(gt=0, lt=1)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

#: What a unit template may refer to: the incident's location ids, category and priority.
TEMPLATE_FIELDS = ("grid_id", "street_id", "district_id", "city_id", "category", "priority")

#: How the default hierarchy finds each level's unit.
DEFAULT_UNITS = {
    "grid": "{grid_id}",
    "street": "{street_id}",
    "district": "{district_id}",
    "city": "{city_id}",
}


def _template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a unit template ({exc})") from exc


def _checked_template(template: str) -> str:
    for name in _template_fields(template):
        if name not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unit template {template!r} refers to {{{name}}}; it may use {', '.join(TEMPLATE_FIELDS)}"
            )
    return template


UnitTemplate = Annotated[str, Field(min_length=1, max_length=200)]


def fill_unit(template: str, incident: Incident) -> str:
    """The unit id a template gives for an incident (`mediation-{district_id}` -> `mediation-d-huangpu`)."""
    location = incident.location
    values = {
        "grid_id": location.grid_id,
        "street_id": location.street_id,
        "district_id": location.district_id,
        "city_id": location.city_id or DEFAULT_CITY_UNIT,
        "category": incident.category,
        "priority": incident.priority.value,
    }
    return template.format(**values)


def _check_ladder(ladder: dict[str, Any], custom: set[str]) -> None:
    positions = []
    for level in ladder:
        if level in custom:
            continue
        if level not in DEFAULT_LEVELS:
            known = ", ".join([*DEFAULT_LEVELS, *sorted(custom)])
            raise ValueError(f"unknown level {level!r} (levels are {known}; define others under `levels:`)")
        positions.append(DEFAULT_LEVELS.index(level))
    if positions != sorted(positions):
        raise ValueError(f"levels must go up in the order {' -> '.join(DEFAULT_LEVELS)}")


class LevelDefinition(BaseModel):
    """A level of a custom ladder: how its unit is found (a template over the incident's fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: UnitTemplate
    description: str | None = Field(default=None, max_length=500)

    @field_validator("unit")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return _checked_template(value)


class OnUnsatisfied(StrEnum):
    """What an unsatisfied rating does to a resolved incident."""

    REOPEN_SAME_LEVEL = "reopen_same_level"
    ESCALATE = "escalate"


class LevelLimits(BaseModel):
    """The two clocks of one level (accept within `accept`, then resolve within `resolve`), and what
    this level does differently from its rule: warnings, pause allowance, reminders, calendar, and
    extra departments notified when the incident reaches it (the "whistle")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept: Limit
    resolve: Limit
    warn_at: list[Fraction] | None = None
    max_pause: Duration | None = None
    overdue_reminder: Duration | None = None
    calendar: Name | None = None
    notify: list[UnitTemplate] = Field(default_factory=list, max_length=20)

    @field_validator("warn_at", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int | float) else value

    @field_validator("warn_at")
    @classmethod
    def _sorted_unique(cls, value: list[float] | None) -> list[float] | None:
        return sorted(set(value)) if value is not None else None

    @field_validator("notify")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        return [_checked_template(template) for template in value]


class FeedbackPolicy(BaseModel):
    """How long the resident may rate, and what an unsatisfied rating does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: Duration = timedelta(hours=72)
    on_unsatisfied: OnUnsatisfied = OnUnsatisfied.REOPEN_SAME_LEVEL
    max_reopens: int = Field(default=2, ge=0, le=20)


class TransferClocks(StrEnum):
    """What a transfer to another unit at the same level does to the level's accept clock."""

    RESTART = "restart"  # the new unit gets the whole accept limit from the transfer
    CONTINUE = "continue"  # it gets what is left of it since the incident reached the level


class TransferPolicy(BaseModel):
    """How transfers between units of one level work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clocks: TransferClocks = TransferClocks.RESTART
    max_per_level: int = Field(default=3, ge=0, le=20)


#: An extension's approver written as this: the unit of the next level up.
APPROVER_ABOVE = "above"


class ExtensionPolicy(BaseModel):
    """Who may give a holder more time to resolve, how fast, how often and how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approver: UnitTemplate = APPROVER_ABOVE  # `above`, or a unit template (`supervision-{district_id}`)
    decide_within: Duration = timedelta(hours=4)  # undecided by then: refused
    max_count: int = Field(default=1, ge=0, le=10)  # extensions granted per incident; 0: none
    max_extra: Limit = timedelta(hours=72)  # the most one extension may add

    @field_validator("approver")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return value if value == APPROVER_ABOVE else _checked_template(value)


class VerifyTimeout(StrEnum):
    """What a verification that runs out does."""

    REMIND = "remind"  # overdue, reminded every overdue_reminder until the inspector acts
    ESCALATE = "escalate"  # the case goes up a level, like any clock that runs out


class VerificationPolicy(BaseModel):
    """Verification before closure: an inspector checks a reported fix before the resident is asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inspector: UnitTemplate  # e.g. `inspector-{grid_id}`
    within: Limit = timedelta(hours=24)  # the inspector's clock
    levels: list[Name] | None = Field(default=None, min_length=1)  # None: every level of the ladder
    on_timeout: VerifyTimeout = VerifyTimeout.REMIND

    @field_validator("inspector")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return _checked_template(value)


class Match(BaseModel):
    """Which incidents a rule is for; an absent field matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: list[str] | None = Field(default=None, min_length=1)
    priority: list[Priority] | None = Field(default=None, min_length=1)
    district: list[str] | None = Field(default=None, min_length=1)
    street: list[str] | None = Field(default=None, min_length=1)
    channel: list[str] | None = Field(default=None, min_length=1)

    @property
    def is_catch_all(self) -> bool:
        """Whether this match accepts every incident."""
        return all(value is None for value in self.conditions().values())

    def conditions(self) -> dict[str, list[str] | None]:
        """Each field of the match and the values it accepts (None: anything)."""
        return {
            "category": self.category,
            "priority": [p.value for p in self.priority] if self.priority else None,
            "district": self.district,
            "street": self.street,
            "channel": self.channel,
        }

    def mismatches(self, incident: Incident) -> list[str]:
        """The fields of this match the incident does not fit (empty: it matches)."""
        channel = incident.reporter.channel if incident.reporter else None
        actual = {
            "category": incident.category,
            "priority": incident.priority.value,
            "district": incident.location.district_id,
            "street": incident.location.street_id,
            "channel": channel,
        }
        return [
            f"{name} is {actual[name]!r}, not one of {accepted}"
            for name, accepted in self.conditions().items()
            if accepted is not None and actual[name] not in accepted
        ]

    def matches(self, incident: Incident) -> bool:
        """Whether the incident fits every field this match names (`mismatches` is empty)."""
        # Asked for every incident of a simulation: the same test as `mismatches`, without the words.
        location, reporter = incident.location, incident.reporter
        return (
            (self.category is None or incident.category in self.category)
            and (not self.priority or incident.priority in self.priority)
            and (self.district is None or location.district_id in self.district)
            and (self.street is None or location.street_id in self.street)
            and (self.channel is None or (reporter.channel if reporter else None) in self.channel)
        )


class Rule(BaseModel):
    """One escalation rule: a match, a ladder of levels with their limits, warnings and feedback."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    match: Match = Match()
    ladder: dict[str, LevelLimits] = Field(min_length=1)
    warn_at: list[Fraction] = Field(default_factory=lambda: [0.75])
    max_pause: Duration = timedelta(hours=72)
    overdue_reminder: Duration = timedelta(hours=4)
    calendar: Name | None = None  # a calendar of the rules file; None: wall-clock time
    feedback: FeedbackPolicy = FeedbackPolicy()
    transfer: TransferPolicy = TransferPolicy()
    extension: ExtensionPolicy = ExtensionPolicy()
    verification: VerificationPolicy | None = None  # None: resolutions go straight to the resident

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
    def _known_levels_in_order(
        cls, ladder: dict[str, LevelLimits], info: ValidationInfo
    ) -> dict[str, LevelLimits]:
        # Custom levels come from the rules file's `levels:` (passed as validation context by the
        # loader, for an error that points at the field). Without context (a snapshot read back in a
        # workflow, a rule built in Python) the rule set checks its ladders as a whole.
        if info.context is not None:
            _check_ladder(ladder, set(info.context.get("levels", ())))
        return ladder

    @property
    def levels(self) -> list[str]:
        """The ladder's levels, bottom to top."""
        return list(self.ladder)

    def limits(self, level: str) -> LevelLimits:
        """The accept and resolve limits at a level of this rule's ladder."""
        return self.ladder[level]

    def warn_at_for(self, level: str) -> list[float]:
        """The warning fractions at a level (its own, or the rule's)."""
        own = self.ladder[level].warn_at
        return own if own is not None else self.warn_at

    def max_pause_for(self, level: str) -> timedelta:
        """The pause allowance at a level."""
        return self.ladder[level].max_pause or self.max_pause

    def overdue_reminder_for(self, level: str) -> timedelta:
        """How often an overdue incident is reminded at a level."""
        return self.ladder[level].overdue_reminder or self.overdue_reminder

    def calendar_for(self, level: str) -> str | None:
        """The calendar a level's clocks run on (None: wall-clock time)."""
        return self.ladder[level].calendar or self.calendar


class RuleSet(BaseModel):
    """An ordered list of rules: the first whose match fits an incident wins; the last catches all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1, max_length=64)] = "1"
    levels: dict[Name, LevelDefinition] = Field(default_factory=dict)
    calendars: dict[Name, BusinessCalendar] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _names_unique_and_default_last(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            try:
                _check_ladder(rule.ladder, set(self.levels))
            except ValueError as exc:
                raise ValueError(f"rule {rule.name!r}: {exc}") from exc
            for level in rule.levels:
                calendar = rule.calendar_for(level)
                if calendar is not None and calendar not in self.calendars:
                    known = ", ".join(sorted(self.calendars)) or "none defined"
                    raise ValueError(
                        f"rule {rule.name!r}, level {level!r}: unknown calendar {calendar!r} "
                        f"(calendars: {known}; define it under `calendars:`)"
                    )
                check = rule.verification
                if check is not None and isinstance(check.within, WorkingDays) and calendar is None:
                    raise ValueError(
                        f"rule {rule.name!r}, level {level!r}: verification within "
                        f"{format_limit(check.within)} counts working days, which needs a calendar"
                    )
                extra = rule.extension.max_extra
                if isinstance(extra, WorkingDays) and calendar is None:
                    raise ValueError(
                        f"rule {rule.name!r}, level {level!r}: the extension's max_extra "
                        f"{format_limit(extra)} counts working days, which needs a calendar"
                    )
                for clock in ("accept", "resolve"):
                    limit = getattr(rule.limits(level), clock)
                    # Working days are days of a calendar: on the wall clock there is no such thing.
                    if isinstance(limit, WorkingDays) and calendar is None:
                        raise ValueError(
                            f"rule {rule.name!r}, level {level!r}: the {clock} limit {format_limit(limit)} "
                            "counts working days, which needs a calendar (set `calendar:` on the rule or "
                            "the level)"
                        )
            check = rule.verification
            if check is not None and check.levels is not None:
                unknown = [level for level in check.levels if level not in rule.ladder]
                if unknown:
                    raise ValueError(
                        f"rule {rule.name!r}: verification levels {unknown} are not on its ladder "
                        f"({', '.join(rule.levels)})"
                    )
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        if not self.rules[-1].match.is_catch_all:
            raise ValueError(
                "the last rule must be a default that matches every incident (`match: {}`), "
                f"but {self.rules[-1].name!r} has a match"
            )
        return self

    @model_validator(mode="after")
    def _public_holidays_known(self) -> RuleSet:
        # Checked on the rule set, not on the calendar: a snapshot's calendar is read back in workflow
        # code, which must not load the holidays library.
        for name, calendar in self.calendars.items():
            if calendar.public_holidays is not None:
                from gridflow.domain.rules.public_holidays import check_country

                try:
                    check_country(calendar.public_holidays.country, calendar.public_holidays.subdivision)
                except ValueError as exc:
                    raise ValueError(f"calendar {name!r}: public_holidays: {exc}") from exc
        return self

    def rule_for(self, incident: Incident) -> Rule:
        """The first rule whose match fits the incident (the default when none other does)."""
        for rule in self.rules:
            if rule.match.matches(incident):
                return rule
        raise AssertionError("unreachable: the last rule matches every incident")

    def unit_template(self, level: str) -> str:
        """How a level's unit is found: the file's own definition, or the default hierarchy's."""
        if level in self.levels:
            return self.levels[level].unit
        return DEFAULT_UNITS[level]

    def snapshot_for(self, incident: Incident) -> RuleSnapshot:
        """The matching rule with everything it needs frozen in (unit templates of its levels)."""
        rule = self.rule_for(incident)
        used = sorted({name for level in rule.levels if (name := rule.calendar_for(level)) is not None})
        # Public holidays of the report's year and the next: enough for any limit of a first pass up
        # the ladder, and the snapshot stays small. Later years count weekly hours only.
        year = incident.reported_at.year
        return RuleSnapshot(
            rules_version=self.version,
            rule=rule,
            units={level: self.unit_template(level) for level in rule.levels},
            calendars={name: self.calendars[name].for_years(year, year + 1) for name in used},
        )

    def snapshot_key(self, incident: Incident) -> tuple[str, int]:
        """What `snapshot_for` depends on: the matching rule and the report's year."""
        return self.rule_for(incident).name, incident.reported_at.year


class RuleSnapshot(BaseModel):
    """The rule an incident runs on, frozen at its start so rule changes never alter it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules_version: str
    rule: Rule
    units: dict[str, str] = Field(default_factory=dict)  # level -> unit template
    calendars: dict[str, BusinessCalendar] = Field(default_factory=dict)  # frozen with the incident

    def sla_clock(self, level: str) -> SlaClock:
        """What a level's accept and resolve limits count: its business calendar, or wall-clock time."""
        name = self.rule.calendar_for(level)
        return clock_for(self.calendars[name] if name is not None else None)

    def working_time(self, level: str, limit: timedelta | WorkingDays, start: datetime) -> timedelta:
        """How much of the level's counted time a limit gives a clock that starts at `start`: a duration
        as it is; working days as the working time up to the end of the last of them."""
        if not isinstance(limit, WorkingDays):
            return limit
        name = self.rule.calendar_for(level)
        assert name is not None, "a rule set refuses working days without a calendar"
        calendar = self.calendars[name]
        return calendar.working_between(start, calendar.working_day_end(start, limit.days))

    def unit_for(self, level: str, incident: Incident) -> str:
        """The id of the unit that handles the incident at a level of this rule."""
        return fill_unit(self.units.get(level) or DEFAULT_UNITS[level], incident)

    def inspector_for(self, level: str, incident: Incident) -> str | None:
        """The unit that verifies a resolution at a level (None: the level is not verified)."""
        check = self.rule.verification
        if check is None or (check.levels is not None and level not in check.levels):
            return None
        return fill_unit(check.inspector, incident)

    def approver_for(self, level: str, incident: Incident) -> str | None:
        """The unit that decides a holder's extension request at a level (None: nobody is above)."""
        template = self.rule.extension.approver
        if template != APPROVER_ABOVE:
            return fill_unit(template, incident)
        levels = self.rule.levels
        index = levels.index(level)
        return self.unit_for(levels[index + 1], incident) if index + 1 < len(levels) else None

    def notified_units(self, level: str, incident: Incident) -> list[str]:
        """Extra departments told when the incident reaches a level (the whistle)."""
        return [fill_unit(template, incident) for template in self.rule.limits(level).notify]
