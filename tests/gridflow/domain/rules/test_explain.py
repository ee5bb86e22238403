"""Rule authors' tools: warnings about a rule set, and explain's timeline against the real workflow."""

from __future__ import annotations

from gridflow.domain.incident import Priority
from gridflow.domain.rules import builtin_rule_set, parse_rule_set
from gridflow.domain.rules.explain import explain, lint
from tests.conftest import make_incident

SUSPICIOUS = """
version: lint-1
calendars:
  never:
    timezone: Asia/Shanghai
    working_hours: {}
rules:
  - name: lamps
    match: {category: [street_lamp]}
    ladder:
      grid:   {accept: 2h, resolve: 1d}
      street: {accept: 1h, resolve: 2d}
  - name: lamps-in-huangpu
    match: {category: [street_lamp], district: [d-huangpu]}
    ladder:
      grid: {accept: 2h, resolve: 1d}
  - name: idle
    calendar: never
    match: {category: [drain]}
    ladder:
      grid: {accept: 2h, resolve: 1d}
  - name: default
    ladder:
      grid: {accept: 2h, resolve: 1d}
"""


def test_the_built_in_rules_raise_no_warnings() -> None:
    assert lint(builtin_rule_set()) == []


def test_shadowed_rules_shrinking_limits_and_idle_calendars_are_warned_about() -> None:
    warnings = [str(w) for w in lint(parse_rule_set(SUSPICIOUS, "suspicious.yaml"))]
    assert warnings == [
        "rule 'lamps': accept limit shrinks going up: grid 2h, street 1h",
        "rule 'lamps-in-huangpu': is unreachable: rule 'lamps' before it matches all it does",
        "rule 'idle': calendar 'never' has no working time: its clocks never run out",
    ]


def test_explain_names_the_rule_and_why_earlier_rules_did_not_match() -> None:
    explanation = explain(builtin_rule_set(), make_incident(priority=Priority.NORMAL))
    assert explanation.rule.name == "default"
    assert explanation.skipped == [("urgent", ["priority is 'normal', not one of ['urgent']"])]
