"""Reading a simulation stream (JSON lines) without holding it: every line is checked as it is read."""

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


@dataclass
class StreamInfo:
    """What reading a stream found so far: how many incidents, and the span of their reports."""

    incidents: int = 0
    first_report: datetime | None = None
    last_report: datetime | None = None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line


class _Checker:
    """The checks of a stream's lines (schema, unique incident ids, report order), one line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.info = StreamInfo()
        self.problems: list[str] = []
        self._seen: set[str] = set()

    def read(self, number: int, line: str) -> SimulatedIncident | None:
        """The line's incident, or None (and a problem noted) when the line is bad."""
        try:
            item = SimulatedIncident.model_validate_json(line)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "line"
            self.problems.append(f"{self.path}:{number}: {where}: {error['msg']}")
            return None
        incident, info, bad = item.incident, self.info, False
        if incident.incident_id in self._seen:
            self.problems.append(f"{self.path}:{number}: incident id {incident.incident_id!r} appears twice")
            bad = True
        self._seen.add(incident.incident_id)
        if info.last_report is not None and incident.reported_at < info.last_report:
            self.problems.append(
                f"{self.path}:{number}: reported at {incident.reported_at.isoformat()}, before the line "
                "above: a stream must be in report order (generate-stream writes it so)"
            )
            bad = True
        else:
            info.last_report = incident.reported_at
        if info.first_report is None:
            info.first_report = incident.reported_at
        info.incidents += 1
        return None if bad else item

    def error(self) -> StreamError:
        """Every problem found (the first 20), or that the stream is empty."""
        if not self.problems:
            return StreamError(f"{self.path}: no incidents")
        more = len(self.problems) - MOST_PROBLEMS
        return StreamError(
            "\n".join(self.problems[:MOST_PROBLEMS]) + (f"\n... and {more} more" if more > 0 else "")
        )


def check_stream(path: Path) -> StreamInfo:
    """Check every line; raise StreamError naming each bad line (the first 20), or say how many incidents
    there are and when they were reported."""
    checker = _Checker(path)
    try:
        for number, line in _lines(path):
            checker.read(number, line)
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamError(f"{path}: {exc}") from exc
    if checker.problems or not checker.info.incidents:
        raise checker.error()
    return checker.info


def count_incidents(path: Path) -> int:
    """The stream's non-blank lines, without reading them as incidents (for a progress bar's total)."""
    try:
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())
    except OSError as exc:
        raise StreamError(f"{path}: {exc}") from exc


def read_stream(path: Path, info: StreamInfo | None = None) -> Iterator[SimulatedIncident]:
    """The stream's incidents one at a time, each line checked as it is read, counted into `info`.

    At the first bad line the rest of the file is checked too, and StreamError names every bad line:
    a simulation stops at once, with the whole list to fix.
    """
    checker = _Checker(path)
    if info is not None:
        checker.info = info
    try:
        lines = _lines(path)
        for number, line in lines:
            item = checker.read(number, line)
            if item is None:
                for number_after, line_after in lines:  # the rest, for the whole list
                    checker.read(number_after, line_after)
                raise checker.error()
            yield item
    except (OSError, UnicodeDecodeError) as exc:
        raise StreamError(f"{path}: {exc}") from exc
    if not checker.info.incidents:
        raise checker.error()


def load_stream(path: Path) -> list[SimulatedIncident]:
    """The whole stream, checked (for the Temporal engine, which needs every incident at once)."""
    return list(read_stream(path))
