"""Reading a simulation stream (JSON lines) without holding it: one pass to check it, one to run it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from gridflow.domain.simulation.model import SimulatedIncident

MOST_PROBLEMS = 20


class StreamError(ValueError):
    """A simulation stream with bad lines (the message names the file and each line)."""


@dataclass(frozen=True)
class StreamInfo:
    """What the check of a stream found: how many incidents, and the span of their reports."""

    incidents: int
    first_report: datetime
    last_report: datetime


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line


def check_stream(path: Path) -> StreamInfo:
    """Check every line (schema, unique incident ids, report order); raise StreamError naming each bad
    line (the first 20), or say how many incidents there are."""
    problems: list[str] = []
    seen: set[str] = set()
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    try:
        for number, line in _lines(path):
            try:
                item = SimulatedIncident.model_validate_json(line)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"]) or "line"
                problems.append(f"{path}:{number}: {where}: {error['msg']}")
                continue
            incident = item.incident
            if incident.incident_id in seen:
                problems.append(f"{path}:{number}: incident id {incident.incident_id!r} appears twice")
            seen.add(incident.incident_id)
            if last is not None and incident.reported_at < last:
                problems.append(
                    f"{path}:{number}: reported at {incident.reported_at.isoformat()}, before the line "
                    "above: a stream must be in report order (generate-stream writes it so)"
                )
            first = incident.reported_at if first is None else first
            last = incident.reported_at if last is None else max(last, incident.reported_at)
            count += 1
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamError(f"{path}: {exc}") from exc
    if problems:
        more = len(problems) - MOST_PROBLEMS
        raise StreamError(
            "\n".join(problems[:MOST_PROBLEMS]) + (f"\n... and {more} more" if more > 0 else "")
        )
    if first is None or last is None:
        raise StreamError(f"{path}: no incidents")
    return StreamInfo(incidents=count, first_report=first, last_report=last)


def read_stream(path: Path) -> Iterator[SimulatedIncident]:
    """The stream's incidents one at a time (check it first: this stops at the first bad line)."""
    for _, line in _lines(path):
        yield SimulatedIncident.model_validate_json(line)


def load_stream(path: Path) -> list[SimulatedIncident]:
    """The whole stream, checked (for the Temporal engine, which needs every incident at once)."""
    check_stream(path)
    return list(read_stream(path))
