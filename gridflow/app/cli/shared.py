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
import ssl
import threading
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
from gridflow.app.temporal import KeysRequiredError, connect, require_keys
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


def refuse_without_keys(settings: Settings, what: str) -> None:
    """Fail in one line, before reaching any server, when `what` would write payloads into Temporal in
    clear (`require_keys`)."""
    try:
        require_keys(settings, what)
    except KeysRequiredError as exc:
        fail(str(exc))


async def connect_to_temporal(settings: Settings, *, writes: str | None = None) -> Client:
    """A client of the settings' Temporal; an unreachable server is a CommandError. A command that
    `writes` incident payloads (its name) is refused without encryption keys (`require_keys`)."""
    if writes is not None:
        refuse_without_keys(settings, writes)
    with temporal_errors(settings):
        client = await connect(settings)
    return client


# ---------------------------------------------------------------------- Kafka

#: How long a command waits for a broker to answer before it says it cannot reach one.
KAFKA_CONNECT_TIMEOUT_S = 5.0
#: How much longer reach_kafka waits for kafka-python to give up, before it stops waiting for it.
_KAFKA_GIVE_UP_GRACE_S = 2.0
_KAFKA_FLAG = "--kafka-bootstrap-servers"
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


def _kafka_unreachable(settings: Settings, error: KafkaError | None, flag: bool) -> str:
    """`cannot connect to Kafka at ...: why (what to set)`: a TLS refusal names the TLS setting to check,
    anything else the bootstrap servers."""
    where = f"cannot connect to Kafka at {settings.kafka_bootstrap_servers}: "
    text = str(error.args[0]) if error is not None and error.args else ""
    if refusal := _tls_refusal(settings, text, flag):
        return where + refusal
    reason = _kafka_reason(error) if error is not None else "no broker answered"
    to_set = _set_it("kafka_bootstrap_servers", _KAFKA_FLAG if flag else None)
    if reason == "socket disconnected":  # closed at once: often one side speaks TLS and the other not
        to_set = f"({_disconnect_hint(settings)}; else {to_set[1:-1]})"
    return f"{where}{reason} {to_set}"


# kafka-python's `Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: <why>
# (_ssl.c:1006)`: <why> is what a person needs.
_SSL_NOISE = re.compile(r"^(?:Handshake failed: )?(?:\[\w+: \w+\] )?(?:certificate verify failed: )?")
_SSL_WHERE = re.compile(r" \(_ssl\.c:\d+\)$")
_NOT_VALID_FOR = re.compile(r"not valid for '([^']+)'")
# OpenSSL's words for a certificate that no trusted CA signed (another CA, none given, a CA remade).
_UNTRUSTED = ("local issuer", "issuer certificate", "signature failure", "self-signed", "self signed")
# TLS alerts a broker sends about the client's certificate (mutual TLS).
_CLIENT_CERT_ALERTS = ("certificate required", "bad certificate", "unknown ca", "certificate unknown")


def _tls_refusal(settings: Settings, text: str, flag: bool) -> str | None:
    """Why a TLS handshake failed and which setting to check, or None when `text` is no TLS error."""
    if "Handshake failed" not in text and "[SSL" not in text:
        return None
    reason = _SSL_WHERE.sub("", _SSL_NOISE.sub("", text))
    cafile = settings.kafka_ssl_cafile
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if match := _NOT_VALID_FOR.search(reason):
            return (
                f"certificate verification failed: the broker's certificate is not for host name "
                f"{match[1]} (connect by a name it is for: "
                f"{_set_it('kafka_bootstrap_servers', _KAFKA_FLAG if flag else None)[1:-1]}, "
                "and the brokers' advertised listeners)"
            )
        if any(words in reason for words in _UNTRUSTED):
            trusted = f"the CA in {cafile}" if cafile else "a CA this system trusts"
            return (
                f"certificate verification failed: the broker's certificate is not signed by {trusted} "
                f"({reason}) (set {env_name('kafka_ssl_cafile')} to the CA that signed it)"
            )
        return (
            f"certificate verification failed: {reason} "
            f"(check the broker's certificate and {env_name('kafka_ssl_cafile')})"
        )
    if any(alert in reason.lower() for alert in _CLIENT_CERT_ALERTS):
        return (
            f"the broker refused the client certificate: {reason} (set {env_name('kafka_ssl_certfile')} "
            f"and {env_name('kafka_ssl_keyfile')} to one its CA signed)"
        )
    return f"TLS handshake failed: {reason} (check {env_name('kafka_security_protocol')} and the TLS files)"


def _disconnect_hint(settings: Settings) -> str:
    if settings.kafka_security_protocol not in _TLS_PROTOCOLS:
        return f"if the brokers speak TLS: set {env_name('kafka_security_protocol')}=SSL"
    if not settings.kafka_ssl_certfile:
        return (
            f"if the brokers require a client certificate: set {env_name('kafka_ssl_certfile')} "
            f"and {env_name('kafka_ssl_keyfile')}"
        )
    return f"the brokers may not accept the client certificate in {settings.kafka_ssl_certfile}"


@contextlib.contextmanager
def kafka_errors(settings: Settings, *, flag: bool = True) -> Iterator[None]:
    """Turn kafka-python's errors into one line each; an unreachable broker names the setting to change
    (and `--kafka-bootstrap-servers` when `flag`: the command has it)."""
    try:
        yield
    except KafkaConnectionError as exc:
        fail(_kafka_unreachable(settings, exc, flag))
    except KafkaTimeoutError as exc:
        # kafka-python 3 says a missing broker so (2.x raised NoBrokersAvailable, gone in 3).
        if "Unable to bootstrap" in str(exc):
            fail(_kafka_unreachable(settings, None, flag))
        fail(f"Kafka at {settings.kafka_bootstrap_servers} did not answer in time: {_kafka_text(exc)}")
    except KafkaError as exc:
        fail(f"Kafka at {settings.kafka_bootstrap_servers} answered: {_kafka_text(exc)}")


def reach_kafka(settings: Settings, *, flag: bool = True) -> None:
    """Return once a broker of the settings answers; fail in one line within KAFKA_CONNECT_TIMEOUT_S.

    Left to themselves, kafka-python's clients retry a missing broker for 30 s (some calls for ever
    once an API version is set) and log every attempt. Commands ask this first, with kafka-python's
    lines held back (unless --log-level debug), and say why in one line: refused, no such host, a
    certificate that does not verify, ...
    """
    _check_tls_files(settings)
    with _kafka_attempts(quiet=settings.log_level != "debug") as attempts:
        try:
            admin = _within(
                KAFKA_CONNECT_TIMEOUT_S + _KAFKA_GIVE_UP_GRACE_S,
                lambda: KafkaAdminClient(
                    **client_config(settings), bootstrap_timeout_ms=int(KAFKA_CONNECT_TIMEOUT_S * 1000)
                ),
            )
        except KafkaError as exc:
            # A timeout says only that it gave up; the last attempt's error says why.
            why = attempts.failure or (None if isinstance(exc, KafkaTimeoutError) else exc)
            fail(_kafka_unreachable(settings, why, flag))
        if admin is None:
            fail(_kafka_stuck(settings, attempts.failure, flag))
        admin.close()


def _within(seconds: float, make: Callable[[], KafkaAdminClient]) -> KafkaAdminClient | None:
    """`make()`, or None when it has not returned within `seconds` (its error raised here).

    kafka-python 3 bounds the TCP connect and the bootstrap, not the TLS handshake: a TLS client on a
    plaintext port waits for the broker's handshake for ever. The call runs in a daemon thread, left
    behind when it hangs (the command then ends).
    """
    outcome: list[KafkaAdminClient | BaseException] = []

    def run() -> None:
        try:
            outcome.append(make())
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="reach-kafka", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        return None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _kafka_stuck(settings: Settings, failure: KafkaConnectionError | None, flag: bool) -> str:
    if failure is not None:  # an earlier attempt failed for a reason: that one
        return _kafka_unreachable(settings, failure, flag)
    where = f"cannot connect to Kafka at {settings.kafka_bootstrap_servers}: "
    if settings.kafka_security_protocol in _TLS_PROTOCOLS:
        return where + (
            f"no TLS handshake within {KAFKA_CONNECT_TIMEOUT_S:.0f} s: does the broker speak TLS on this "
            f"port? (check {env_name('kafka_security_protocol')}, and "
            f"{_set_it('kafka_bootstrap_servers', _KAFKA_FLAG if flag else None)[1:-1]})"
        )
    return _kafka_unreachable(settings, None, flag)


def _check_tls_files(settings: Settings) -> None:
    """The TLS files, loaded as kafka-python will: a missing or unusable one named here, in one line.

    Left to kafka-python, a CA file that cannot be read fails each attempt before it is logged, and
    the command could only say that no broker answered.
    """
    if settings.kafka_security_protocol not in _TLS_PROTOCOLS:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cafile, certfile, keyfile = (
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
    )
    if cafile:
        with _tls_file_errors(f"the CA file {cafile}", env_name("kafka_ssl_cafile")):
            context.load_verify_locations(cafile)
    if certfile:
        files = f"{certfile} and {keyfile}" if keyfile else certfile
        to_set = f"{env_name('kafka_ssl_certfile')} and {env_name('kafka_ssl_keyfile')}"
        with _tls_file_errors(f"the client certificate {files}", to_set):
            context.load_cert_chain(certfile, keyfile)


@contextlib.contextmanager
def _tls_file_errors(what: str, to_set: str) -> Iterator[None]:
    try:
        yield
    except ssl.SSLError as exc:  # not PEM, a key that does not match, ...
        reason = _SSL_WHERE.sub("", _SSL_NOISE.sub("", str(exc)))
        fail(f"cannot use {what} for Kafka TLS: {reason} (set {to_set})")
    except OSError as exc:
        fail(f"cannot use {what} for Kafka TLS: {(exc.strerror or str(exc)).lower()} (set {to_set})")


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
