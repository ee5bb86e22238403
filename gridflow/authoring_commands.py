"""CLI handlers for rule authors: explain an incident, simulate a stream, generate a stream."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from gridflow.incident import Incident
from gridflow.rules import builtin_rule_set, format_duration, load_rule_set
from gridflow.rules.explain import explain
from gridflow.rules.model import RuleSet
from gridflow.settings import Settings
from gridflow.simulate import format_results, load_stream, simulate, write_json
from gridflow.simulation_generator import generate
from gridflow.step_text import step_details, when


def _rules(path: str | None) -> RuleSet:
    return load_rule_set(path) if path else builtin_rule_set()


def _incident(path: str) -> Incident:
    """An incident from a reported event's data, or from a whole CloudEvent envelope."""
    document = json.loads(sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8"))
    if isinstance(document, dict) and "specversion" in document:
        document = document.get("data")
    return Incident.model_validate(document)


def rules_explain(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow rules explain EVENT_FILE`: the matching rule, and the timeline if nobody acts."""
    rules = _rules(args.rules_file or settings.rules_file)
    incident = _incident(args.file)
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
    return 0


async def run_simulation(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow simulate --incidents FILE`: the stream through the real workflow, the rates printed."""
    stream = load_stream(Path(args.incidents))
    # Thousands of simulated incidents would flood the console with their workflows' log lines.
    for noisy in ("temporalio", "gridflow.steps"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    runs = [
        (args.rules_file or settings.rules_file or "built-in", _rules(args.rules_file or settings.rules_file))
    ]
    if args.compare:
        runs.append((args.compare, _rules(args.compare)))
    results = []
    for name, rules in runs:
        print(
            f"simulating {len(stream)} incidents on {name} (rules version {rules.version})", file=sys.stderr
        )

        def progress(done: int, total: int) -> None:
            print(f"\r  {done}/{total} incidents followed to the end", end="", file=sys.stderr, flush=True)

        results.append((name, await simulate(stream, rules, progress=progress)))
        print(file=sys.stderr)
    print(format_results(results))
    if args.json:
        write_json(Path(args.json), results)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def generate_stream(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow generate-stream`: a realistic synthetic stream for `gridflow simulate`."""
    start = (
        datetime.fromisoformat(args.start)
        if args.start
        else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    stream = generate(args.count, days=args.days, seed=args.seed, start=start, districts=args.districts)
    lines = "\n".join(item.model_dump_json() for item in stream) + "\n"
    if args.out == "-":
        sys.stdout.write(lines)
    else:
        Path(args.out).write_text(lines, encoding="utf-8")
        print(f"{len(stream)} incidents over {args.days} days written to {args.out}", file=sys.stderr)
    return 0
