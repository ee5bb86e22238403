"""Rule authors' what-ifs: `gridflow simulate` (a rules file on a stream) and `generate-stream`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from rich.progress import Progress as ProgressBar

from gridflow.app.cli.shared import EXIT_OK, RULES, add_command, rules_or_builtin
from gridflow.app.settings import Settings
from gridflow.app.simulate import Engine, OnProgress, simulate_discrete, simulate_temporal
from gridflow.domain.rules.model import RuleSet
from gridflow.domain.simulation.generator import generate
from gridflow.domain.simulation.results import Simulation, format_simulation, write_json
from gridflow.domain.simulation.stream import load_stream


def simulate(args: argparse.Namespace, settings: Settings) -> int | Coroutine[Any, Any, int]:
    """`gridflow simulate --incidents FILE`: the stream on the rules (and --compare), the rates printed."""
    path = Path(args.incidents)
    rule_sets = [(settings.rules_file or "built-in", rules_or_builtin(settings.rules_file))]
    if args.compare:
        rule_sets.append((args.compare, rules_or_builtin(args.compare)))
    engine = Engine(args.engine)
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    if engine is Engine.DISCRETE:
        with _progress_bar(show_progress, "simulating") as on_progress:
            simulation = simulate_discrete(path, rule_sets, progress=on_progress)
        return _print_results(simulation, args)
    return _simulate_on_temporal(path, rule_sets, show_progress, args)


async def _simulate_on_temporal(
    path: Path, rule_sets: list[tuple[str, RuleSet]], show_progress: bool, args: argparse.Namespace
) -> int:
    stream = load_stream(path)
    # Thousands of simulated incidents would flood the console with their workflows' log lines. The
    # SDK's workflow and activity loggers carry a level of their own (gridflow.app.logs): name them too.
    for noisy in ("temporalio", "temporalio.workflow", "temporalio.activity", "gridflow.steps"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Ctrl-C or SIGTERM cancels the run, so the test server it started is stopped with it.
    with _progress_bar(show_progress, "simulating on Temporal") as on_progress:
        run = asyncio.ensure_future(simulate_temporal(stream, rule_sets, progress=on_progress))
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
    return _print_results(simulation, args)


def _print_results(simulation: Simulation, args: argparse.Namespace) -> int:
    print(format_simulation(simulation))
    if args.json:
        write_json(Path(args.json), simulation)
        print(f"results written to {args.json}", file=sys.stderr)
    return EXIT_OK


@contextlib.contextmanager
def _progress_bar(show: bool, title: str) -> Iterator[OnProgress | None]:
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
    with ProgressBar(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(title, total=None, date="", rate="")
        started = time.monotonic()

        def on_progress(at: datetime | None, done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            bar.update(
                task,
                completed=done,
                total=total,
                date=f"simulated {at:%Y-%m-%d %H:%M}" if at is not None else "",
                rate=f"{done / elapsed:,.0f}/s" if elapsed > 0 else "",
            )

        yield on_progress


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
    return EXIT_OK


def add_simulate(commands: Any) -> None:
    """`gridflow simulate`."""
    parser = add_command(
        commands,
        "simulate",
        simulate,
        "what a rules file does to the rates, on a stream of incidents",
        "Replay a stream of incidents (JSON lines: an incident and how its handlers and resident behave,\n"
        "in report order) through the rules of the incident loop and print the rates: response,\n"
        "resolution, satisfaction, on-time, escalation, containment per level and time to resolve,\n"
        "overall and per district, category and rule. With --compare, a second rules file side by side,\n"
        "the difference, and the incidents whose fate changed (escalated or breached where they were not,\n"
        "another outcome).\n\n"
        "engines:\n"
        "  discrete  (default) a discrete-event engine on the lifecycle core, the code IncidentWorkflow\n"
        "            runs: thousands of incidents per second, the stream read as it goes\n"
        "  temporal  the real IncidentWorkflow on a time-skipping Temporal test server (whole seconds);\n"
        "            slow (a few incidents per second): a fidelity check of the discrete engine",
        [RULES],
        one_shot=True,
    )
    parser.add_argument("--incidents", required=True, metavar="FILE.jsonl", help="the stream")
    parser.add_argument("--compare", metavar="OTHER_RULES", help="a second rules file to compare with")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--engine", choices=["discrete", "temporal"], default="discrete", help="the engine (discrete)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar: simulated date, incidents done, rate (default: on a terminal)",
    )


def add_generate_stream(commands: Any) -> None:
    """`gridflow generate-stream`."""
    parser = add_command(
        commands,
        "generate-stream",
        generate_stream,
        "write a realistic synthetic stream for simulate",
        "Write COUNT synthetic incidents over DAYS days as JSON lines: categories and priorities in\n"
        "hotline proportions, a daily arrival rhythm, and handlers whose speed and reach depend on the\n"
        "level. The same seed gives the same stream.",
        one_shot=True,
    )
    parser.add_argument("--count", type=int, default=1000, metavar="N", help="incidents (1000)")
    parser.add_argument("--days", type=int, default=7, metavar="N", help="days they arrive over (7)")
    parser.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (1)")
    parser.add_argument("--districts", type=int, default=4, metavar="N", help="districts (4)")
    parser.add_argument("--start", metavar="ISO-TIME", help="the first day (default: today, UTC)")
    parser.add_argument("--out", default="-", metavar="FILE", help="where to write (default: stdout)")
