"""The `gridflow` command: the dev stack, the worker, rules, incidents and the event schemas.

Every setting comes from the environment (`GRIDFLOW_*`, see gridflow.app.settings) and can be overridden by
a flag, before or after the command's name. Exit codes: 0 done, 1 error, 2 a command the incident
refused (or a usage error), 130 interrupted.

One module per command group, each with its parsers and handlers: processes (dev, worker, bridge),
incidents, rules, simulation (simulate, generate-stream), events (publish, dlq, schema) and codec
(codec, codec-server); shared holds what they share, inputs reads their JSON input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import ValidationError

from gridflow.app.cli import archive, codec, events, incidents, processes, report, rules, simulation
from gridflow.app.cli.shared import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    LOGGING,
    RULES,
    TEMPORAL,
    CommandError,
    Formatter,
    Handler,
    validation_problems,
)
from gridflow.app.devstack import DevStackError
from gridflow.app.logs import configure_logging, forward_temporal_core_logs
from gridflow.app.settings import Settings
from gridflow.domain.rules import RulesFileError
from gridflow.domain.simulation.stream import StreamError

__all__ = ["build_parser", "main", "run"]

#: Each top-level command (or group) in the order `gridflow --help` lists them.
_COMMANDS: list[Callable[[Any], None]] = [
    processes.add_dev,
    processes.add_worker,
    rules.add_rules,
    incidents.add_incident,
    simulation.add_simulate,
    simulation.add_generate_stream,
    report.add_report,
    processes.add_bridge,
    archive.add_archiver,
    events.add_publish,
    events.add_dlq,
    codec.add_codec,
    codec.add_codec_server,
    events.add_schema,
]


def build_parser() -> argparse.ArgumentParser:
    """The `gridflow` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="gridflow",
        description=(
            "Civic incident escalation: incidents start Temporal workflows that escalate\n"
            "grid -> street -> district -> city on timers, until resolved and rated.\n\n"
            "Settings come from GRIDFLOW_* environment variables; flags override them."
        ),
        epilog="Start here: gridflow dev --demo",
        parents=[LOGGING, TEMPORAL, RULES],
        formatter_class=Formatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `gridflow` command with `argv` (default: the process's arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env().with_overrides(**vars(args))
        configure_logging(settings.log_format, settings.log_level)
        if getattr(args, "core_logs", False):
            forward_temporal_core_logs()
        handler: Handler = args.run_command
        code = handler(args, settings)
        return code if isinstance(code, int) else asyncio.run(code)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except RulesFileError as exc:
        print(f"{exc.source}: invalid rules file", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:
        print(validation_problems(exc), file=sys.stderr)
        return EXIT_ERROR
    except StreamError as exc:  # a bad simulation stream: each line's problem
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # a malformed setting (GRIDFLOW_* or flag)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (DevStackError, FileNotFoundError) as exc:  # the dev stack, or a missing server binary
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run() -> NoReturn:
    """The `gridflow` command: main(), then out without the interpreter's teardown.

    The Temporal SDK's native threads can outlive the interpreter's teardown and abort it ("Fatal Python
    error: PyGILState_Release", temporalio/sdk-python#300): once everything is flushed, leave at once.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
