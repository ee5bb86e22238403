"""`gridflow rules`: check a rules file, and explain which rule an incident matches and what follows."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gridflow.app.cli.inputs import read_incident
from gridflow.app.cli.shared import EXIT_OK, RULES, add_command, add_group, rules_or_builtin
from gridflow.app.settings import Settings
from gridflow.domain.rules import Rule, format_duration, format_limit
from gridflow.domain.rules.explain import explain, lint
from gridflow.domain.step_text import step_details, when


def _rule_text(rule: Rule) -> list[str]:
    match = rule.match
    conditions = [
        f"{name} in {', '.join(str(v) for v in values)}"
        for name, values in (
            ("category", match.category),
            ("priority", match.priority),
            ("district", match.district),
            ("street", match.street),
            ("channel", match.channel),
        )
        if values
    ]
    feedback, extension = rule.feedback, rule.extension
    lines = [
        f"rule {rule.name}",
        f"  match     {'; '.join(conditions) if conditions else 'every incident (default)'}",
        "  ladder",
        *(
            f"    {level:<10} accept within {format_limit(rule.limits(level).accept):<8} "
            f"resolve within {format_limit(rule.limits(level).resolve)}"
            for level in rule.levels
        ),
        f"  warn at   {', '.join(f'{fraction:.0%}' for fraction in rule.warn_at)} of each clock",
        f"  pause     up to {format_duration(rule.max_pause)} in all",
        f"  overdue   reminded every {format_duration(rule.overdue_reminder)} at the top level",
        f"  feedback  within {format_duration(feedback.window)}; unsatisfied: {feedback.on_unsatisfied.value}"
        f", at most {feedback.max_reopens} reopens",
        f"  transfer  accept clock {rule.transfer.clocks.value}s, "
        f"at most {rule.transfer.max_per_level} per level",
        f"  extension approved by {extension.approver} within {format_duration(extension.decide_within)}"
        f", at most {extension.max_count} of up to {format_limit(extension.max_extra)}",
    ]
    if (check := rule.verification) is not None:
        levels = ", ".join(check.levels) if check.levels else "every level"
        lines.append(
            f"  verify    by {check.inspector} within {format_limit(check.within)} ({levels}); "
            f"late: {check.on_timeout.value}"
        )
    return lines


def check(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow rules check [FILE]`: validate a rules file and show each rule."""
    path = args.file or settings.rules_file
    rules = rules_or_builtin(path)
    source = path or "built-in rules"
    print(f"{source}: valid, version {rules.version}, {len(rules.rules)} rules (the first match wins)")
    for warning in lint(rules):
        print(f"{source}: warning: {warning}", file=sys.stderr)
    for rule in rules.rules:
        print()
        print("\n".join(_rule_text(rule)))
    return EXIT_OK


def explain_incident(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow rules explain EVENT_FILE`: the matching rule, and the timeline if nobody acts."""
    rules = rules_or_builtin(settings.rules_file)
    incident = read_incident(args.file)
    explanation = explain(rules, incident, reminders=args.reminders)
    print(
        f"incident {incident.incident_id}: {incident.category}, priority {incident.priority.value}, "
        f"district {incident.location.district_id}"
    )
    for name, reasons in explanation.skipped:
        print(f"  rule {name}: does not match ({'; '.join(reasons)})")
    print(f"  rule {explanation.rule.name}: matches (rules version {explanation.rules_version})")
    print()
    print("timeline if nobody acts")
    start = explanation.timeline[0].at if explanation.timeline else None
    for step in explanation.timeline:
        offset = format_duration(step.at - start) if start else "0s"
        print(
            f"  {when(step.at)}  +{offset:<8} {step.kind.value:<17} "
            f"{step.level or '-':<10} {step.unit_id or '-':<24} {step_details(step)}".rstrip()
        )
    return EXIT_OK


def add_rules(commands: Any) -> None:
    """`gridflow rules check|explain`."""
    rules = add_group(commands, "rules", "check escalation rules", "Work with escalation rules files.")
    add_command(
        rules,
        "check",
        check,
        "validate a rules file and show its rules",
        "Validate a rules file (default: GRIDFLOW_RULES_FILE, else the built-in rules) and show each\n"
        "rule's match and ladder. Exits 1 listing every problem, with the path to the bad field.",
        [RULES],
        one_shot=True,
    ).add_argument("file", nargs="?", metavar="FILE", help="the rules file (YAML)")
    explainer = add_command(
        rules,
        "explain",
        explain_incident,
        "which rule an incident matches, and its timeline",
        "Show which rule the incident in EVENT_FILE matches (and why the earlier rules do not), and the\n"
        "timeline it would follow if nobody acted: every warning, breach and escalation with its time,\n"
        "calendar-aware. EVENT_FILE is a reported event's data or a whole CloudEvent envelope.",
        [RULES],
        one_shot=True,
    )
    explainer.add_argument("file", metavar="EVENT_FILE", help="the incident JSON, or - for standard input")
    explainer.add_argument(
        "--reminders", type=int, default=3, metavar="N", help="overdue reminders to show (3)"
    )
