"""What the command groups share: exit codes, CommandError, the option groups, adding a command or a
group of commands, Temporal's errors as one line each, tables."""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from gridflow.app.logs import FORMATS, LEVELS
from gridflow.app.settings import Settings, add_setting_flag
from gridflow.app.temporal import connect
from gridflow.domain.rules import builtin_rule_set, load_rule_set
from gridflow.domain.rules.model import RuleSet
from workflows.client import TemporalErrorKind, classify_temporal_error

#: A command's handler: its exit code, or a coroutine that ends with it (main runs it).
Handler = Callable[[argparse.Namespace, Settings], int | Coroutine[Any, Any, int]]

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A failure to report to the user in one message, with the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """End the command with `message` on standard error and exit code `code`."""
    raise CommandError(message, code)


def validation_problems(error: ValidationError) -> str:
    """A pydantic error as the user reads it: what was invalid, then each field's problem."""
    lines = [f"invalid {error.title}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(input)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def rules_or_builtin(path: str | None) -> RuleSet:
    """The rules file at `path`, or the built-in rules without one."""
    return load_rule_set(path) if path else builtin_rule_set()


# ---------------------------------------------------------------------- Temporal


@contextlib.contextmanager
def temporal_errors(settings: Settings, incident_id: str | None = None) -> Iterator[None]:
    """Turn Temporal's errors into one clear line each: unreachable, missing, closed, refused."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        fail(f"refused: {classify_temporal_error(exc).detail}", EXIT_REFUSED)
    except WorkflowQueryFailedError as exc:
        fail(f"the query on incident {incident_id} failed: {exc}")
    except RPCError as exc:
        failure = classify_temporal_error(exc)
        if incident_id is not None and failure.kind is TemporalErrorKind.CLOSED:
            fail(f"refused: incident {incident_id} is closed; nothing more can happen to it", EXIT_REFUSED)
        if incident_id is not None and failure.kind is TemporalErrorKind.NO_INCIDENT:
            fail(f"no incident {incident_id} in namespace {settings.temporal_namespace}")
        if incident_id is not None and exc.status is RPCStatusCode.DEADLINE_EXCEEDED:
            # Queries and updates are answered by a worker: without one, the server times out.
            fail(f"incident {incident_id} did not answer ({exc.message}): is a worker running on its queue?")
        fail(f"Temporal at {settings.temporal_address} answered: {exc.message}")
    except RuntimeError as exc:
        if "client connect" not in str(exc):
            raise
        fail(f"cannot connect to Temporal at {settings.temporal_address}: {exc}")


async def connect_to_temporal(settings: Settings) -> Client:
    """A client of the settings' Temporal; an unreachable server is a CommandError."""
    with temporal_errors(settings):
        client = await connect(settings)
    return client


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# ---------------------------------------------------------------------- the parsers


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (their line breaks kept), option help in a column of its own."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _options(*adders: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(parser)
    return parser


def _logging_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging")
    # Flags default to SUPPRESS (add_setting_flag): one given before the command is not reset by it.
    add_setting_flag(group, "log_format", choices=FORMATS)
    add_setting_flag(group, "log_level", choices=LEVELS)


def _temporal_options(parser: argparse.ArgumentParser, *, address: bool = True) -> None:
    group = parser.add_argument_group("Temporal")
    if address:
        add_setting_flag(group, "temporal_address", metavar="HOST:PORT")
    add_setting_flag(group, "temporal_namespace", "--namespace", metavar="NAME")
    add_setting_flag(group, "task_queue", metavar="NAME")


def _rules_options(parser: argparse.ArgumentParser) -> None:
    add_setting_flag(parser.add_argument_group("rules"), "rules_file", "--rules", metavar="FILE")


# The option groups, as parents of the parsers that take them.
LOGGING = _options(_logging_options)
TEMPORAL = _options(_temporal_options)
TEMPORAL_LOCAL = _options(functools.partial(_temporal_options, address=False))  # the dev stack's own server
RULES = _options(_rules_options)


def add_group(subparsers: Any, name: str, help: str, description: str) -> Any:
    """A command group (`gridflow NAME COMMAND`); returns the subparsers to add its commands to."""
    parser = subparsers.add_parser(name, help=help, description=description, formatter_class=Formatter)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def add_command(
    subparsers: Any,
    name: str,
    handler: Handler,
    help: str,
    description: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """A command run by `handler`, with the logging options and those of `parents`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        parents=[*parents, LOGGING],
        formatter_class=Formatter,
    )
    # Not `handler`: `incident accept --handler` has that name.
    parser.set_defaults(run_command=handler)
    return parser
