"""Which rule an incident runs on, and what a rule holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from gridflow.domain.incident import Priority
from gridflow.domain.rules.loader import builtin_rule_set
from gridflow.domain.rules.model import Match, OnUnsatisfied, Rule, RuleSet
from gridflow.domain.simulation.generator import generate
from tests.conftest import make_incident

_LADDER: dict[str, Any] = {"grid": {"accept": "1h", "resolve": "2h"}}


def _rule(name: str, **match: list[str]) -> dict[str, Any]:
    return {"name": name, "match": match, "ladder": _LADDER}


def _rule_set(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({"version": "test", "rules": list(rules)})


def test_the_first_matching_rule_wins() -> None:
    rules = _rule_set(
        _rule("lamps-first", category=["street_lamp"]),
        _rule("lamps-second", category=["street_lamp"]),
        _rule("default"),
    )
    assert rules.rule_for(make_incident(category="street_lamp")).name == "lamps-first"


def test_a_rule_earlier_in_the_list_wins_even_when_a_later_one_is_more_specific() -> None:
    rules = _rule_set(
        _rule("urgent", priority=["urgent"]),
        _rule(
            "urgent-lamps-in-huangpu", priority=["urgent"], category=["street_lamp"], district=["d-huangpu"]
        ),
        _rule("default"),
    )
    incident = make_incident(priority=Priority.URGENT, category="street_lamp", district="d-huangpu")
    assert rules.rule_for(incident).name == "urgent"


def test_an_incident_no_other_rule_fits_falls_to_the_default() -> None:
    rules = _rule_set(_rule("noise", category=["noise"]), _rule("default"))
    assert rules.rule_for(make_incident(category="street_lamp")).name == "default"


def test_an_empty_match_matches_anything() -> None:
    match = Match()
    assert match.is_catch_all
    for priority in Priority:
        assert match.matches(make_incident(priority=priority, category="anything", district="d-elsewhere"))


def test_a_match_that_names_only_the_category_ignores_priority_and_district() -> None:
    match = Match(category=["street_lamp"])
    assert not match.is_catch_all
    assert match.matches(make_incident(category="street_lamp", priority=Priority.LOW, district="d-a"))
    assert match.matches(make_incident(category="street_lamp", priority=Priority.URGENT, district="d-b"))
    assert not match.matches(make_incident(category="noise"))


def test_a_category_list_matches_any_of_its_categories() -> None:
    match = Match(category=["noise", "street_lamp"])
    assert match.matches(make_incident(category="noise"))
    assert match.matches(make_incident(category="street_lamp"))
    assert not match.matches(make_incident(category="pothole"))


def test_a_priority_list_matches_any_of_its_priorities() -> None:
    match = Match.model_validate({"priority": ["high", "urgent"]})
    assert match.priority == [Priority.HIGH, Priority.URGENT]
    assert match.matches(make_incident(priority=Priority.HIGH))
    assert match.matches(make_incident(priority=Priority.URGENT))
    assert not match.matches(make_incident(priority=Priority.NORMAL))
    assert not match.matches(make_incident(priority=Priority.LOW))


def test_a_district_list_matches_the_incidents_district() -> None:
    match = Match(district=["d-huangpu", "d-jingan"])
    assert match.matches(make_incident(district="d-huangpu"))
    assert match.matches(make_incident(district="d-jingan"))
    assert not match.matches(make_incident(district="d-pudong"))


def test_a_match_on_several_fields_needs_every_one_to_fit() -> None:
    match = Match.model_validate(
        {"category": ["street_lamp"], "priority": ["urgent"], "district": ["d-huangpu"]}
    )
    assert match.matches(
        make_incident(category="street_lamp", priority=Priority.URGENT, district="d-huangpu")
    )
    assert not match.matches(make_incident(category="noise", priority=Priority.URGENT, district="d-huangpu"))
    assert not match.matches(
        make_incident(category="street_lamp", priority=Priority.NORMAL, district="d-huangpu")
    )
    assert not match.matches(
        make_incident(category="street_lamp", priority=Priority.URGENT, district="d-pudong")
    )


def test_a_match_fits_exactly_the_incidents_it_finds_no_mismatch_in() -> None:
    matches = [
        Match(),
        Match(category=["pothole", "street_lamp"]),
        Match(priority=[Priority.URGENT]),
        Match(district=["d-huangpu"], channel=["hotline"]),
        Match(street=["s-huangpu-1"], priority=[Priority.HIGH, Priority.NORMAL]),
        Match(channel=["app"]),
    ]
    incidents = [
        item.incident for item in generate(300, days=2, seed=3, start=datetime(2026, 11, 2, tzinfo=UTC))
    ]
    incidents.append(make_incident().model_copy(update={"reporter": None}))
    for match in matches:
        fits = [match.matches(incident) for incident in incidents]
        assert fits == [not match.mismatches(incident) for incident in incidents]
        assert any(fits) and (match == Match() or not all(fits))


def test_an_empty_list_in_a_match_is_refused() -> None:
    with pytest.raises(ValidationError):
        Match(category=[])


def test_an_unknown_priority_in_a_match_is_refused() -> None:
    with pytest.raises(ValidationError):
        Match.model_validate({"priority": ["critical"]})


def test_the_builtin_rules_send_an_urgent_incident_to_the_urgent_rule() -> None:
    rule = builtin_rule_set().rule_for(make_incident(priority=Priority.URGENT))
    assert rule.name == "urgent"
    assert rule.levels == ["grid", "street", "district", "city"]
    assert rule.limits("grid").accept == timedelta(minutes=15)
    assert rule.limits("grid").resolve == timedelta(hours=2)


@pytest.mark.parametrize("priority", [Priority.LOW, Priority.NORMAL, Priority.HIGH])
def test_the_builtin_rules_send_any_other_incident_to_the_default_rule(priority: Priority) -> None:
    rule = builtin_rule_set().rule_for(make_incident(priority=priority))
    assert rule.name == "default"
    assert rule.levels == ["grid", "street", "district"]
    assert rule.limits("district").resolve == timedelta(days=5)


def test_the_builtin_rules_carry_their_version_and_feedback_policy() -> None:
    rules = builtin_rule_set()
    assert rules.version == "2026-11-1"
    assert [rule.name for rule in rules.rules] == ["urgent", "default"]
    feedback = rules.rules[0].feedback
    assert feedback.window == timedelta(hours=72)
    assert feedback.on_unsatisfied is OnUnsatisfied.REOPEN_SAME_LEVEL
    assert feedback.max_reopens == 2


def test_a_single_warn_at_fraction_becomes_a_list() -> None:
    rule = Rule.model_validate({"name": "r", "ladder": _LADDER, "warn_at": 0.75})
    assert rule.warn_at == [0.75]


def test_several_warn_at_fractions_are_sorted() -> None:
    rule = Rule.model_validate({"name": "r", "ladder": _LADDER, "warn_at": [0.75, 0.5]})
    assert rule.warn_at == [0.5, 0.75]


def test_repeated_warn_at_fractions_count_once() -> None:
    rule = Rule.model_validate({"name": "r", "ladder": _LADDER, "warn_at": [0.9, 0.5, 0.9]})
    assert rule.warn_at == [0.5, 0.9]


def test_a_rule_warns_at_three_quarters_by_default() -> None:
    assert Rule.model_validate({"name": "r", "ladder": _LADDER}).warn_at == [0.75]


def test_a_rule_may_skip_levels_as_long_as_they_go_up() -> None:
    ladder = {"grid": {"accept": "1h", "resolve": "2h"}, "city": {"accept": "1h", "resolve": "2h"}}
    assert Rule.model_validate({"name": "r", "ladder": ladder}).levels == ["grid", "city"]


def test_a_rule_set_reads_a_numeric_version_as_text() -> None:
    rules = RuleSet.model_validate({"version": 7, "rules": [_rule("default")]})
    assert rules.version == "7"
