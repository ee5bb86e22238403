"""Logging: structlog for gridflow's own lines and stdlib logging (temporalio's) through the same renderer.

Every line goes to stderr, so a command's output on stdout (`incident show --json`) stays clean; a
long-running process can also write every line as JSON to a file (the dev stack does, in its state
directory). The libraries' INFO chatter (kafka-python's connection steps, the Temporal SDK's worker
notices) is held at WARNING unless the level is debug.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import structlog
from structlog.typing import Processor

FORMATS = ("console", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

_HANDLER_NAME = "gridflow"


class _Stderr:
    """Whatever `sys.stderr` is at the moment of writing (test runners and tools swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return _isatty(sys.stderr)


def resolve_format(format: str | None, stream: TextIO | _Stderr) -> str:
    """The format to use: the one asked for, else `console` on a terminal and `json` otherwise."""
    if format:
        if format not in FORMATS:
            raise ValueError(f"log format {format!r} is not one of {', '.join(FORMATS)}")
        return format
    return "console" if _isatty(stream) else "json"


def _isatty(stream: TextIO | _Stderr) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream (pytest's capture) is no terminal
        return False


def _level_number(level: str) -> int:
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[name.upper()]


def _renderer(format: str, stream: TextIO | _Stderr | None) -> Processor:
    if format == "json" or stream is None:
        return structlog.processors.JSONRenderer()
    # Colour only where it will be seen as colour: a terminal, and no NO_COLOR (https://no-color.org).
    colors = _isatty(stream) and "NO_COLOR" not in os.environ
    return structlog.dev.ConsoleRenderer(colors=colors)


#: Libraries whose INFO lines are chatter for gridflow's users: held at WARNING unless the level is debug.
QUIET_LIBRARIES = ("kafka", "temporalio")
#: The Temporal SDK's workflow and activity loggers carry gridflow's own lines: they follow the level.
_SDK_LOGGERS_OF_OURS = ("temporalio.workflow", "temporalio.activity")


def configure_logging(
    format: str | None,
    level: str,
    *,
    stream: TextIO | _Stderr | None = None,
    stream_level: str | None = None,
    libraries_on_stream: str | None = None,
    file: Path | None = None,
) -> str:
    """Set up structlog and stdlib logging to write `format` lines at `level` and above to `stream`.

    `format` is `console`, `json`, or None to choose by whether the stream is a terminal. Timestamps are
    ISO 8601 in UTC. `stream_level` raises the stream's threshold above `level` (a live view keeps the
    terminal for itself and only problems), and `libraries_on_stream` the libraries' threshold on the
    stream (a live view shows their errors, not their passing warnings); `file`, when given, gets every
    line at `level` as JSON (started afresh). Calling it again replaces the previous set-up. Returns
    the stream's format.
    """
    stream = stream if stream is not None else _Stderr()
    chosen = resolve_format(format, stream)
    threshold = _level_number(level)

    # Processors both structlog's and stdlib's records go through before rendering.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: loggers made at import time must follow a later configure_logging call.
        cache_logger_on_first_use=False,
    )

    stream_handler = logging.StreamHandler(stream)
    stream_handler.setLevel(max(threshold, _level_number(stream_level or level)))
    if libraries_on_stream is not None:
        stream_handler.addFilter(_LibrariesAtLeast(_level_number(libraries_on_stream)))
    handlers: list[logging.Handler] = [stream_handler]
    stream_handler.setFormatter(_formatter(shared, chosen, stream))
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(file, mode="w", encoding="utf-8")
        file_handler.setFormatter(_formatter(shared, "json", None))
        handlers.append(file_handler)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    root.setLevel(threshold)
    _quiet_libraries(threshold)
    _workflow_ids_as_fields()
    return chosen


class _LibrariesAtLeast(logging.Filter):
    """Lets the quiet libraries' records through only at `threshold` and above; all others pass."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        library = any(record.name == name or record.name.startswith(f"{name}.") for name in QUIET_LIBRARIES)
        ours = any(record.name.startswith(name) for name in _SDK_LOGGERS_OF_OURS)
        return not library or ours or record.levelno >= self.threshold


def _formatter(shared: list[Processor], format: str, stream: TextIO | _Stderr | None) -> logging.Formatter:
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if format == "json":
        # The console renderer prints tracebacks itself; JSON needs them as data, without frame locals
        # (they may hold a reporter's personal data).
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        final.append(structlog.processors.ExceptionRenderer(transformer))
    final.append(_renderer(format, stream))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()], processors=final
    )


def _quiet_libraries(threshold: int) -> None:
    debug = threshold <= logging.DEBUG
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if debug else max(threshold, logging.WARNING))
    # kafka-python's debug lines print whole messages, reporters' names and phones included: even at
    # debug its loggers stay at info (above).
    for name in _SDK_LOGGERS_OF_OURS:
        logging.getLogger(name).setLevel(threshold)


def _workflow_ids_as_fields() -> None:
    """The SDK appends its workflow (activity) info dict to every message by default; keep the ids as
    fields (`temporal_workflow`, `temporal_activity`) and the message as written."""
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    workflow.logger.workflow_info_on_extra = True
    activity.logger.activity_info_on_message = False
    activity.logger.activity_info_on_extra = True


def forward_temporal_core_logs() -> None:
    """Send the Temporal SDK core's (Rust) log lines through stdlib logging, so they share our format.

    Only for long-running processes (worker, dev): it must run before any Temporal client is created,
    and it installs a new default runtime for the whole process.
    """
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding
        )
    )
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)
