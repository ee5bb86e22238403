"""Escalation rules: the model, durations, and loading rules files."""

from gridflow.domain.rules.calendar import WALL_CLOCK, BusinessCalendar, PublicHolidays, SlaClock, clock_for
from gridflow.domain.rules.durations import (
    Duration,
    Limit,
    WorkingDays,
    format_duration,
    format_limit,
    parse_duration,
    parse_limit,
)
from gridflow.domain.rules.loader import (
    RulesFileError,
    RulesSource,
    builtin_rule_set,
    load_rule_set,
    parse_rule_set,
)
from gridflow.domain.rules.model import (
    ExtensionPolicy,
    FeedbackPolicy,
    LevelLimits,
    Match,
    OnUnsatisfied,
    Rule,
    RuleSet,
    RuleSnapshot,
    TransferClocks,
    TransferPolicy,
    VerificationPolicy,
)

__all__ = [
    "WALL_CLOCK",
    "BusinessCalendar",
    "Duration",
    "ExtensionPolicy",
    "FeedbackPolicy",
    "LevelLimits",
    "Limit",
    "Match",
    "OnUnsatisfied",
    "PublicHolidays",
    "Rule",
    "RuleSet",
    "RuleSnapshot",
    "RulesFileError",
    "RulesSource",
    "SlaClock",
    "TransferClocks",
    "TransferPolicy",
    "VerificationPolicy",
    "WorkingDays",
    "builtin_rule_set",
    "clock_for",
    "format_duration",
    "format_limit",
    "load_rule_set",
    "parse_duration",
    "parse_limit",
    "parse_rule_set",
]
