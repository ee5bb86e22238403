"""`gridflow archiver`: the process that keeps every lifecycle step in the archive database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from gridflow.app.archiver import open_archive, run_archiver
from gridflow.app.cli.shared import (
    EXIT_OK,
    KAFKA,
    add_command,
    fail,
    kafka_errors,
    metrics_port_errors,
    reach_kafka,
)
from gridflow.app.compose import stop_on_signals
from gridflow.app.settings import Settings, add_setting_flag, env_name
from gridflow.archive.store import ArchiveError


@contextlib.contextmanager
def archive_errors() -> Iterator[None]:
    """A database that cannot be opened as one line naming the setting to change."""
    try:
        yield
    except ArchiveError as exc:
        fail(f"{exc} (set {env_name('archive_url')} or --archive-url)")


async def archiver(args: argparse.Namespace, settings: Settings) -> int:
    """`gridflow archiver`: consume the events topic into the archive until SIGINT or SIGTERM."""
    with archive_errors():
        archive = await asyncio.to_thread(open_archive, settings)
    try:
        await asyncio.to_thread(reach_kafka, settings)
    except BaseException:
        archive.close()
        raise
    with kafka_errors(settings), metrics_port_errors(settings):
        await run_archiver(settings, stop_on_signals(), archive=archive)
    return EXIT_OK


def add_archiver(commands: Any) -> None:
    """`gridflow archiver`."""
    parser = add_command(
        commands,
        "archiver",
        archiver,
        "keep every lifecycle step in the archive database",
        "Consume the incident-events topic in its own consumer group (GRIDFLOW_ARCHIVER_GROUP) and write\n"
        "every step, and each incident's current state, to the archive: PostgreSQL in production, a\n"
        "SQLite file for development. The schema is migrated at start-up. Each batch (up to\n"
        "GRIDFLOW_ARCHIVER_BATCH steps) is one transaction, and its offsets are committed only after it;\n"
        "a step delivered again is kept once. Records that are not lifecycle events are logged, counted\n"
        "and skipped. Serves metrics on GRIDFLOW_METRICS_PORT (give each process its own). Stops cleanly\n"
        "on SIGINT or SIGTERM, after the batch in hand.",
        [KAFKA],
    )
    group = parser.add_argument_group("archive")
    add_setting_flag(group, "archive_url", metavar="URL")
    add_setting_flag(group, "archiver_group", "--group", metavar="NAME")
    add_setting_flag(group, "archiver_batch", "--batch", metavar="N")
    add_setting_flag(group, "metrics_port", metavar="PORT")
