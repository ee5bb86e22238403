"""What the command groups share: exit codes, CommandError, the option groups, adding a command or a
group of commands, Temporal's and Kafka's errors as one line each, tables."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import logging
import os
import re
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, NoReturn

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from events.kafka import client_config
from gridflow.app.logs import FORMATS, LEVELS, configure_logging
from gridflow.app.settings import Settings, add_setting_flag, env_name
from gridflow.app.temporal import connect
from gridflow.domain.rules import builtin_rule_set, load_rule_set
from gridflow.domain.rules.model import RuleSet
from workflows.client import TemporalErrorKind, classify_temporal_error

#: A command's handler: its exit code, or a coroutine that ends with it (main runs it).
Handler = Callable[[argparse.Namespace, Settings], int | Coroutine[Any, Any, int]]

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The log level of a one-shot command when the user sets none: its answer, and problems only.
ONE_SHOT_LOG_LEVEL = "warning"


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


def _set_it(field: str, flag: str | None) -> str:
    """`(set GRIDFLOW_X or --x)`: what to change, for the end of a message."""
    return f"(set {env_name(field)}{f' or {flag}' if flag else ''})"


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
        fail(
            f"cannot connect to Temporal at {settings.temporal_address}: {_connect_failure(str(exc))} "
            + _set_it("temporal_address", "--temporal-address")
        )


# The SDK's connect error is a Rust debug dump (`tonic::transport::Error(Transport, ConnectError(...
# message: "Connection refused" ...`); its first quoted message or error is what a person needs.
_QUOTED_REASON = re.compile(r'\b(?:message|error): "([^"]+)"')


def _connect_failure(text: str) -> str:
    """The essence of the SDK's connect error: `connection refused`, `Timeout expired`, ..."""
    match = _QUOTED_REASON.search(text)
    reason = match[1] if match else text.removeprefix("Failed client connect: ")
    return reason[:1].lower() + reason[1:]


async def connect_to_temporal(settings: Settings) -> Client:
    """A client of the settings' Temporal; an unreachable server is a CommandError."""
    with temporal_errors(settings):
        client = await connect(settings)
    return client


# ---------------------------------------------------------------------- Kafka

#: How long a command waits for a broker to answer before it says it cannot reach one.
KAFKA_CONNECT_TIMEOUT_S = 5.0
_KAFKA_FLAG = "--kafka-bootstrap-servers"


def _kafka_unreachable(settings: Settings, reason: str, flag: bool) -> str:
    return f"cannot connect to Kafka at {settings.kafka_bootstrap_servers}: {reason} " + _set_it(
        "kafka_bootstrap_servers", _KAFKA_FLAG if flag else None
    )


@contextlib.contextmanager
def kafka_errors(settings: Settings, *, flag: bool = True) -> Iterator[None]:
    """Turn kafka-python's errors into one line each; an unreachable broker names the setting to change
    (and `--kafka-bootstrap-servers` when `flag`: the command has it)."""
    try:
        yield
    except KafkaConnectionError as exc:
        fail(_kafka_unreachable(settings, _kafka_reason(exc), flag))
    except KafkaTimeoutError as exc:
        # kafka-python 3 says a missing broker so (2.x raised NoBrokersAvailable, gone in 3).
        if "Unable to bootstrap" in str(exc):
            fail(_kafka_unreachable(settings, "no broker answered", flag))
        fail(f"Kafka at {settings.kafka_bootstrap_servers} did not answer in time: {_kafka_text(exc)}")
    except KafkaError as exc:
        fail(f"Kafka at {settings.kafka_bootstrap_servers} answered: {_kafka_text(exc)}")


def reach_kafka(settings: Settings, *, flag: bool = True) -> None:
    """Return once a broker of the settings answers; fail in one line within KAFKA_CONNECT_TIMEOUT_S.

    Left to themselves, kafka-python's clients retry a missing broker for 30 s (some calls for ever
    once an API version is set) and log every attempt. Commands ask this first, with kafka-python's
    lines held back (unless --log-level debug), and say why in one line: refused, no such host, ...
    """
    with _kafka_attempts(quiet=settings.log_level != "debug") as attempts:
        try:
            admin = KafkaAdminClient(
                **client_config(settings), bootstrap_timeout_ms=int(KAFKA_CONNECT_TIMEOUT_S * 1000)
            )
        except KafkaError as exc:
            # A timeout says only that it gave up; the last attempt's error says why.
            why = attempts.failure or (None if isinstance(exc, KafkaTimeoutError) else exc)
            fail(_kafka_unreachable(settings, _kafka_reason(why) if why else "no broker answered", flag))
        admin.close()


class _Attempts(logging.Handler):
    """kafka-python raises only "Unable to bootstrap" and logs each attempt's error: keep the last."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failure: KafkaConnectionError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, KafkaConnectionError):
                self.failure = arg


@contextlib.contextmanager
def _kafka_attempts(*, quiet: bool) -> Iterator[_Attempts]:
    logger = logging.getLogger("kafka")
    attempts, propagate = _Attempts(), logger.propagate
    logger.addHandler(attempts)
    logger.propagate = propagate and not quiet
    try:
        yield attempts
    finally:
        logger.removeHandler(attempts)
        logger.propagate = propagate


_ERRNO_NAME = re.compile(r"^(\d+) E[A-Z]+$")  # kafka-python's `111 ECONNREFUSED`


def _kafka_reason(error: KafkaError) -> str:
    """Why a connection failed, as a person says it: `connection refused`, `no such host`, ..."""
    cause = error.args[0] if error.args else None
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    text = str(cause) if cause is not None else ""
    if match := _ERRNO_NAME.match(text):
        return os.strerror(int(match[1])).lower()
    if "DNS" in text:
        return "no such host"
    return text or "no broker answered"


def _kafka_text(error: KafkaError) -> str:
    # str() of a kafka-python error repeats its class name (`KafkaTimeoutError: ...`).
    return " ".join(str(arg) for arg in error.args) or type(error).__name__


# ---------------------------------------------------------------------- the metrics ports


@contextlib.contextmanager
def metrics_port_errors(settings: Settings) -> Iterator[None]:
    """A metrics port already taken (by `gridflow dev`, which serves on the same defaults) as one line
    naming the setting to change."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        fail(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: the port is in use "
            + _set_it("metrics_port", None)
        )
    except ValueError as exc:  # the SDK's own exporter says it in its words
        if "Prometheus exporter" not in str(exc) or "in use" not in str(exc):
            raise
        fail(
            f"cannot serve the SDK's metrics on {settings.metrics_host}:{settings.sdk_metrics_port}: "
            f"the port is in use (set {env_name('sdk_metrics_port')}, or 0 for none)"
        )


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


def _logging_options(parser: argparse.ArgumentParser, *, one_shot: bool = False) -> None:
    group = parser.add_argument_group("logging")
    # Flags default to SUPPRESS (add_setting_flag): one given before the command is not reset by it.
    add_setting_flag(group, "log_format", choices=FORMATS)
    add_setting_flag(group, "log_level", choices=LEVELS)
    if one_shot:  # --help says this command's default, not the setting's
        (level,) = (action for action in group._group_actions if action.dest == "log_level")
        description = Settings.model_fields["log_level"].description
        level.help = (
            f"{description}: {env_name('log_level')}; default {ONE_SHOT_LOG_LEVEL} for this command "
            "(info for the processes)"
        )


def _temporal_options(parser: argparse.ArgumentParser, *, address: bool = True) -> None:
    group = parser.add_argument_group("Temporal")
    if address:
        add_setting_flag(group, "temporal_address", metavar="HOST:PORT")
    add_setting_flag(group, "temporal_namespace", "--namespace", metavar="NAME")
    add_setting_flag(group, "task_queue", metavar="NAME")


def _rules_options(parser: argparse.ArgumentParser) -> None:
    add_setting_flag(parser.add_argument_group("rules"), "rules_file", "--rules", metavar="FILE")


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    add_setting_flag(parser.add_argument_group("Kafka"), "kafka_bootstrap_servers", metavar="HOST:PORT,...")


# The option groups, as parents of the parsers that take them.
LOGGING = _options(_logging_options)
LOGGING_ONE_SHOT = _options(functools.partial(_logging_options, one_shot=True))
TEMPORAL = _options(_temporal_options)
TEMPORAL_LOCAL = _options(functools.partial(_temporal_options, address=False))  # the dev stack's own server
RULES = _options(_rules_options)
KAFKA = _options(_kafka_options)


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
    *,
    one_shot: bool = False,
) -> argparse.ArgumentParser:
    """A command run by `handler`, with the logging options and those of `parents`.

    A `one_shot` command (it answers and ends, unlike the processes) logs at warning unless the user
    sets a level.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        parents=[*parents, LOGGING_ONE_SHOT if one_shot else LOGGING],
        formatter_class=Formatter,
    )
    # Not `handler`: `incident accept --handler` has that name.
    parser.set_defaults(run_command=_quiet_unless_asked(handler) if one_shot else handler)
    return parser


def _quiet_unless_asked(handler: Handler) -> Handler:
    """`handler` at ONE_SHOT_LOG_LEVEL when neither --log-level nor GRIDFLOW_LOG_LEVEL sets a level.

    A one-shot command prints its answer; its info lines (the long-running processes' normal
    chatter) would only bury it. A parser default cannot do this: it would override the environment,
    and a subcommand's default resets a --log-level given before the command's name.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace, settings: Settings) -> int | Coroutine[Any, Any, int]:
        # The flag's default is SUPPRESS: present only when given. An empty variable means unset.
        if "log_level" not in vars(args) and not os.environ.get(env_name("log_level")):
            settings = settings.model_copy(update={"log_level": ONE_SHOT_LOG_LEVEL})
            configure_logging(settings.log_format, settings.log_level)
        return handler(args, settings)

    return run
