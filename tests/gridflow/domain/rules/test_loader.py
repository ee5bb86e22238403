"""Reading rules files: errors that name the file, the rule and the field; reloading on change."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from gridflow.domain.incident import Priority
from gridflow.domain.rules.loader import (
    RulesFileError,
    RulesSource,
    builtin_rule_set,
    load_rule_set,
    parse_rule_set,
)
from tests.conftest import make_incident

SOURCE = "rules/city.yaml"
HINT = "(write e.g. 90s, 15m, 2h, 5d or 1h30m)"
LIMIT_HINT = "(write a duration such as 90s, 15m, 2h or 5d, or working days such as 7wd)"

GOOD = """\
version: "v1"
rules:
  - name: urgent
    match: {priority: [urgent]}
    ladder:
      grid:     {accept: 15m, resolve: 2h}
      street:   {accept: 15m, resolve: 4h}
    warn_at: [0.75, 0.5]
  - name: default
    match: {}
    ladder:
      grid:     {accept: 2h, resolve: 24h}
      street:   {accept: 4h, resolve: 48h}
"""

NOISE_WITH_BAD_DURATION = """\
rules:
  - name: urgent
    match: {priority: [urgent]}
    ladder:
      grid: {accept: 15m, resolve: 2h}
  - name: lamps
    match: {category: [street_lamp]}
    ladder:
      grid: {accept: 1h, resolve: 8h}
  - name: noise
    match: {category: [noise]}
    ladder:
      grid:   {accept: 1h, resolve: 8h}
      street: {accept: 2h, resolve: 3x}
  - name: default
    ladder:
      grid: {accept: 2h, resolve: 24h}
"""


def _problems(text: str, source: str = SOURCE) -> list[str]:
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set(text, source)
    assert caught.value.source == source
    assert caught.value.problems, "a refused file must list at least one problem"
    return caught.value.problems


def _one_rule(body: str) -> str:
    """A rules file with one default rule; `body` holds the rule's fields, indented by four spaces."""
    return "rules:\n  - name: default\n" + body


def _write(path: Path, text: str, *, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


# --- reading good files ----------------------------------------------------------------------------


def test_a_good_rules_file_is_read_in_order() -> None:
    rules = parse_rule_set(GOOD, SOURCE)
    assert rules.version == "v1"
    assert [rule.name for rule in rules.rules] == ["urgent", "default"]
    assert rules.rules[0].warn_at == [0.5, 0.75]
    assert rules.rules[1].limits("street").resolve == timedelta(hours=48)


def test_a_rules_file_is_loaded_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    rules = load_rule_set(path)
    assert rules == parse_rule_set(GOOD, SOURCE)
    assert load_rule_set(str(path)) == rules


def test_the_builtin_rules_are_valid() -> None:
    rules = builtin_rule_set()
    assert rules.rules[-1].match.is_catch_all


# --- the example from the brief: file, rule, field path and message ---------------------------------


def test_a_bad_duration_names_the_file_the_rule_and_the_field() -> None:
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set(NOISE_WITH_BAD_DURATION, SOURCE)
    error = caught.value
    assert error.source == SOURCE
    assert error.problems == [
        f"rule 'noise': rules[2].ladder.street.resolve: '3x' is not a limit {LIMIT_HINT}"
    ]
    message = str(error)
    assert message.startswith(f"{SOURCE}: invalid rules file\n")
    assert "rule 'noise'" in message
    assert "rules[2].ladder.street.resolve" in message
    assert "'3x' is not a limit" in message


def test_a_bad_duration_read_from_disk_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(NOISE_WITH_BAD_DURATION, encoding="utf-8")
    with pytest.raises(RulesFileError) as caught:
        load_rule_set(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}: invalid rules file")
    assert "rule 'noise': rules[2].ladder.street.resolve: '3x' is not a limit" in caught.value.problems[0]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = """\
rules:
  - name: urgent
    match: {priority: [urgent]}
    ladder:
      grid: {accept: soon, resolve: 2h}
    warn_at: 1.5
  - name: default
    ladder:
      grid: {accept: 2h}
    feedback: {max_reopens: -1}
"""
    problems = _problems(text)
    assert len(problems) == 4
    joined = "\n".join(problems)
    assert "rule 'urgent': rules[0].ladder.grid.accept: 'soon' is not a limit" in joined
    assert "rule 'urgent': rules[0].warn_at[0]: " in joined
    assert "rule 'default': rules[1].ladder.grid.resolve: is required" in joined
    assert "rule 'default': rules[1].feedback.max_reopens: " in joined


def test_a_rule_without_a_name_is_named_by_its_position() -> None:
    text = "rules:\n  - ladder:\n      grid: {accept: 2h, resolve: 1x}\n"
    problems = _problems(text)
    assert "rule '#0': rules[0].name: is required" in problems
    assert any(p.startswith("rule '#0': rules[0].ladder.grid.resolve: '1x' is not a limit") for p in problems)


# --- each kind of problem --------------------------------------------------------------------------


def test_an_unknown_level_is_refused() -> None:
    problems = _problems(_one_rule("    ladder:\n      ward: {accept: 1h, resolve: 2h}\n"))
    assert len(problems) == 1
    assert problems[0].startswith("rule 'default': rules[0].ladder: unknown level 'ward'")
    assert "grid, street, district, city" in problems[0]


def test_levels_out_of_order_are_refused() -> None:
    ladder = "    ladder:\n      street: {accept: 1h, resolve: 2h}\n      grid: {accept: 1h, resolve: 2h}\n"
    problems = _problems(_one_rule(ladder))
    assert problems == [
        "rule 'default': rules[0].ladder: levels must go up in the order grid -> street -> district -> city"
    ]


def test_an_empty_ladder_is_refused() -> None:
    problems = _problems(_one_rule("    ladder: {}\n"))
    assert len(problems) == 1
    assert problems[0].startswith("rule 'default': rules[0].ladder: ")


def test_a_missing_required_field_is_reported_as_required() -> None:
    problems = _problems(_one_rule("    match: {}\n"))
    assert problems == ["rule 'default': rules[0].ladder: is required"]


def test_a_missing_rules_list_is_reported_as_required() -> None:
    assert _problems("version: '1'\n") == ["rules: is required"]


def test_an_unknown_field_is_reported_as_not_known() -> None:
    text = _one_rule("    ladder:\n      grid: {accept: 1h, resolve: 2h, escalate: 3h}\n    colour: red\n")
    problems = _problems(text)
    assert sorted(problems) == [
        "rule 'default': rules[0].colour: is not a known field",
        "rule 'default': rules[0].ladder.grid.escalate: is not a known field",
    ]


def test_an_unknown_field_at_the_top_of_the_file_is_reported_without_a_rule() -> None:
    text = "rulez: []\n" + _one_rule("    ladder: {grid: {accept: 1h, resolve: 2h}}\n")
    assert _problems(text) == ["rulez: is not a known field"]


def test_an_unknown_match_field_is_reported() -> None:
    text = _one_rule("    match: {colour: [red]}\n    ladder: {grid: {accept: 1h, resolve: 2h}}\n")
    assert _problems(text) == ["rule 'default': rules[0].match.colour: is not a known field"]


def test_two_rules_with_the_same_name_are_refused() -> None:
    text = """\
rules:
  - name: lamps
    match: {category: [street_lamp]}
    ladder: {grid: {accept: 1h, resolve: 2h}}
  - name: lamps
    ladder: {grid: {accept: 1h, resolve: 2h}}
"""
    problems = _problems(text)
    assert len(problems) == 1
    assert "rule name 'lamps' is used twice" in problems[0]


def test_a_last_rule_that_is_not_a_catch_all_is_refused() -> None:
    text = """\
rules:
  - name: urgent
    match: {priority: [urgent]}
    ladder: {grid: {accept: 1h, resolve: 2h}}
  - name: lamps
    match: {category: [street_lamp]}
    ladder: {grid: {accept: 1h, resolve: 2h}}
"""
    problems = _problems(text)
    assert len(problems) == 1
    assert "the last rule must be a default that matches every incident" in problems[0]
    assert "'lamps' has a match" in problems[0]


@pytest.mark.parametrize("warn_at", ["0", "1", "1.5", "-0.25", "[0.5, 1.0]"])
def test_warn_at_outside_zero_and_one_is_refused(warn_at: str) -> None:
    problems = _problems(
        _one_rule(f"    ladder: {{grid: {{accept: 1h, resolve: 2h}}}}\n    warn_at: {warn_at}\n")
    )
    assert len(problems) == 1
    assert problems[0].startswith("rule 'default': rules[0].warn_at[")


def test_a_negative_max_reopens_is_refused() -> None:
    text = _one_rule("    ladder: {grid: {accept: 1h, resolve: 2h}}\n    feedback: {max_reopens: -1}\n")
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith("rule 'default': rules[0].feedback.max_reopens: ")
    assert "greater than or equal to 0" in problems[0]


def test_an_unknown_on_unsatisfied_action_is_refused() -> None:
    text = _one_rule("    ladder: {grid: {accept: 1h, resolve: 2h}}\n    feedback: {on_unsatisfied: shrug}\n")
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith("rule 'default': rules[0].feedback.on_unsatisfied: ")


def test_a_zero_duration_is_refused_with_its_path() -> None:
    text = _one_rule("    ladder: {grid: {accept: 1h, resolve: 2h}}\n    max_pause: 0s\n")
    assert _problems(text) == ["rule 'default': rules[0].max_pause: a duration must be longer than zero"]


def test_a_duration_written_as_a_bare_number_is_refused() -> None:
    text = _one_rule("    ladder: {grid: {accept: 1h, resolve: 2h}}\n    overdue_reminder: 5\n")
    assert _problems(text) == [f"rule 'default': rules[0].overdue_reminder: 5 is not a duration {HINT}"]


def test_a_rule_that_is_not_a_mapping_is_refused_with_its_position() -> None:
    text = "rules:\n  - just a string\n  - name: default\n    ladder: {grid: {accept: 1h, resolve: 2h}}\n"
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith("rules[0]: ")


def test_an_empty_rules_list_is_refused() -> None:
    problems = _problems("rules: []\n")
    assert len(problems) == 1
    assert problems[0].startswith("rules: ")


# --- files that are not rules at all ---------------------------------------------------------------


def test_invalid_yaml_is_refused_and_names_the_file() -> None:
    with pytest.raises(RulesFileError) as caught:
        parse_rule_set("rules: [unclosed\n", SOURCE)
    assert caught.value.source == SOURCE
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("not valid YAML: ")
    assert str(caught.value).startswith(f"{SOURCE}: invalid rules file")


@pytest.mark.parametrize("text", ["- name: default\n", "just words\n", "42\n", ""])
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    assert _problems(text) == ["(file): must be a mapping with a `rules:` list"]


def test_a_missing_file_is_refused_and_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "rules.yaml"
    with pytest.raises(RulesFileError) as caught:
        load_rule_set(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    assert caught.value.problems[0].startswith("cannot be read: ")
    assert "No such file or directory" in caught.value.problems[0]


def test_a_directory_is_refused_as_unreadable(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError) as caught:
        load_rule_set(tmp_path)
    assert caught.value.source == str(tmp_path)
    assert caught.value.problems[0].startswith("cannot be read: ")


# --- durations and encodings that once escaped as raw exceptions ---------------------------------------


def test_a_duration_too_long_for_a_timedelta_is_reported_as_a_problem() -> None:
    text = _one_rule("    ladder: {grid: {accept: 1h, resolve: 1000000000d}}\n")
    problems = _problems(text)
    assert problems[0].startswith("rule 'default': rules[0].ladder.grid.resolve: ")


def test_a_file_that_is_not_utf8_is_refused_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(RulesFileError) as caught:
        load_rule_set(path)
    assert caught.value.source == str(path)


# --- RulesSource ------------------------------------------------------------------------------------


def test_a_rules_source_uses_the_builtin_rules_by_default() -> None:
    source = RulesSource()
    assert source.path is None
    assert source.current() == builtin_rule_set()
    assert source.current().rule_for(make_incident(priority=Priority.URGENT)).name == "urgent"


def test_a_rules_source_can_use_another_builtin_file() -> None:
    assert RulesSource(builtin="demo.yaml").current() == builtin_rule_set("demo.yaml")


def test_a_rules_source_reads_its_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = RulesSource(path)
    assert source.path == path
    assert source.current().version == "v1"


def test_a_rules_source_keeps_its_rules_while_the_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = RulesSource(path)
    first = source.current()
    assert source.current() is first


def test_a_rules_source_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)
    assert source.current().version == "v1"

    _write(path, GOOD.replace('"v1"', '"v2"'), mtime_ns=1_700_000_100_000_000_000)
    assert source.current().version == "v2"


def test_a_reloaded_file_changes_which_rule_an_incident_gets(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)
    urgent = make_incident(priority=Priority.URGENT)
    assert source.current().rule_for(urgent).name == "urgent"

    _write(path, GOOD.replace("priority: [urgent]", "priority: [low]"), mtime_ns=1_700_000_100_000_000_000)
    assert source.current().rule_for(urgent).name == "default"


def test_a_broken_new_version_is_refused_and_the_last_good_rules_stay(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)
    good = source.current()

    _write(path, NOISE_WITH_BAD_DURATION, mtime_ns=1_700_000_100_000_000_000)
    assert source.current() is good
    assert source.current() is good

    _write(path, "rules: [unclosed\n", mtime_ns=1_700_000_200_000_000_000)
    assert source.current() is good


def test_a_fixed_version_after_a_broken_one_is_taken_up(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)

    _write(path, NOISE_WITH_BAD_DURATION, mtime_ns=1_700_000_100_000_000_000)
    assert source.current().version == "v1"

    _write(path, GOOD.replace('"v1"', '"v3"'), mtime_ns=1_700_000_200_000_000_000)
    assert source.current().version == "v3"


def test_a_deleted_file_leaves_the_last_good_rules_in_force(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    source = RulesSource(path)
    good = source.current()
    path.unlink()
    assert source.current() is good


def test_a_new_version_with_an_overlong_duration_is_refused_like_any_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)
    good = source.current()
    _write(path, GOOD.replace("resolve: 24h", "resolve: 1000000000d"), mtime_ns=1_700_000_100_000_000_000)
    assert source.current() is good


def test_a_rules_source_refuses_to_start_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(NOISE_WITH_BAD_DURATION, encoding="utf-8")
    with pytest.raises(RulesFileError) as caught:
        RulesSource(path)
    assert caught.value.source == str(path)
    assert "rules[2].ladder.street.resolve" in str(caught.value)


def test_a_rules_source_refuses_to_start_on_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(RulesFileError) as caught:
        RulesSource(path)
    assert caught.value.source == str(path)


def test_replaced_rules_are_in_force_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, GOOD, mtime_ns=1_700_000_000_000_000_000)
    source = RulesSource(path)
    builtin = builtin_rule_set()
    source.replace(builtin)
    assert source.current() is builtin

    _write(path, GOOD.replace('"v1"', '"v2"'), mtime_ns=1_700_000_100_000_000_000)
    assert source.current().version == "v2"
