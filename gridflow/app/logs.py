"""Logging: structlog for gridflow's own lines and stdlib logging (temporalio's) through the same renderer.

Every line goes to stderr, so a command's output on stdout (`incident show --json`) stays clean.
"""

from __future__ import annotations

import logging
import os
import sys
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


def _renderer(format: str, stream: TextIO | _Stderr) -> Processor:
    if format == "json":
        return structlog.processors.JSONRenderer()
    # Colour only where it will be seen as colour: a terminal, and no NO_COLOR (https://no-color.org).
    colors = _isatty(stream) and "NO_COLOR" not in os.environ
    return structlog.dev.ConsoleRenderer(colors=colors)


def configure_logging(format: str | None, level: str, *, stream: TextIO | _Stderr | None = None) -> str:
    """Set up structlog and stdlib logging to write `format` lines at `level` and above to `stream`.

    `format` is `console`, `json`, or None to choose by whether the stream is a terminal. Timestamps are
    ISO 8601 in UTC. Calling it again replaces the previous set-up. Returns the format chosen.
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
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if chosen == "json":
        # The console renderer prints tracebacks itself; JSON needs them as data, without frame locals
        # (they may hold a reporter's personal data).
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        final.append(structlog.processors.ExceptionRenderer(transformer))
    final.append(_renderer(chosen, stream))

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

    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=final,
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    # kafka-python's debug lines print whole messages, reporters' names and phones included: its
    # loggers stay at info whatever gridflow's level.
    logging.getLogger("kafka").setLevel(max(threshold, logging.INFO))
    return chosen


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
