"""CLI handlers for rule authors: explain an incident, simulate a stream, generate a stream."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from gridflow.app.settings import Settings
from gridflow.app.simulate import Engine, Progress, simulate_discrete, simulate_temporal
from gridflow.domain.incident import Incident
from gridflow.domain.rules import builtin_rule_set, format_duration, load_rule_set
from gridflow.domain.rules.explain import explain
from gridflow.domain.rules.model import RuleSet
from gridflow.domain.simulation.generator import generate
from gridflow.domain.simulation.results import Simulation, format_simulation, write_json
from gridflow.domain.simulation.stream import load_stream
from gridflow.domain.step_text import step_details, when


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
    rules = _rules(settings.rules_file)
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


def run_simulation(args: argparse.Namespace, settings: Settings) -> int | Coroutine[Any, Any, int]:
    """`gridflow simulate --incidents FILE`: the stream on the rules (and --compare), the rates printed."""
    path = Path(args.incidents)
    rule_sets = [(settings.rules_file or "built-in", _rules(settings.rules_file))]
    if args.compare:
        rule_sets.append((args.compare, _rules(args.compare)))
    engine = Engine(args.engine)
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    if engine is Engine.DISCRETE:
        with _progress_bar(show_progress, "simulating") as progress:
            simulation = simulate_discrete(path, rule_sets, progress=progress)
        return _report(simulation, args)
    return _simulate_on_temporal(path, rule_sets, show_progress, args)


async def _simulate_on_temporal(
    path: Path, rule_sets: list[tuple[str, RuleSet]], show_progress: bool, args: argparse.Namespace
) -> int:
    stream = load_stream(path)
    # Thousands of simulated incidents would flood the console with their workflows' log lines.
    for noisy in ("temporalio", "gridflow.steps"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Ctrl-C or SIGTERM cancels the run, so the test server it started is stopped with it.
    with _progress_bar(show_progress, "simulating on Temporal") as progress:
        run = asyncio.ensure_future(simulate_temporal(stream, rule_sets, progress=progress))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, run.cancel)
        try:
            simulation = await run
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return _report(simulation, args)


def _report(simulation: Simulation, args: argparse.Namespace) -> int:
    print(format_simulation(simulation))
    if args.json:
        write_json(Path(args.json), simulation)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _progress_bar(show: bool, title: str) -> Iterator[Progress | None]:
    """A progress bar on the terminal (simulated date, incidents done, rate), or nothing."""
    if not show:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("incidents"),
        TextColumn("{task.fields[date]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
    )
    with RichProgress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(title, total=None, date="", rate="")
        started = time.monotonic()

        def progress(at: datetime | None, done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            bar.update(
                task,
                completed=done,
                total=total,
                date=f"simulated {at:%Y-%m-%d %H:%M}" if at is not None else "",
                rate=f"{done / elapsed:,.0f}/s" if elapsed > 0 else "",
            )

        yield progress


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
