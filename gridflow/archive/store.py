"""The archive: incident steps and case files in a SQL database (PostgreSQL, or SQLite for development).

`Archive.open` connects and brings the schema to the newest version; `write` keeps a batch of steps in
one transaction, idempotently (a step is one row however often it is written, keyed by its event id
`<incident_id>:<seq>`) and only forward (an incident's row moves on only with a later step); `steps`
streams a period's steps back, in order, for reports.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from alembic.util import CommandError as AlembicError
from sqlalchemy import Engine, Row, String, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from gridflow.archive import migrate
from gridflow.archive.case_file import ArchiveCounts, ArchivedIncident, advance
from gridflow.archive.schema import ID_LENGTH, incident_steps, incidents
from gridflow.domain.lifecycle import IncidentContext, IncidentStep

#: Rows fetched at a time while streaming steps (a server-side cursor on PostgreSQL).
STREAM_ROWS: Final = 1000
#: Incidents looked up in one query while writing (well under SQLite's limit of bound parameters).
LOOKUP_CHUNK: Final = 500
#: How long SQLite waits for another connection's write (the report reading while the archiver writes).
SQLITE_BUSY_SECONDS: Final = 30
#: How long connecting to PostgreSQL may take, unless the URL says (`?connect_timeout=`).
CONNECT_TIMEOUT_SECONDS: Final = 10

_CONTEXT_COLUMNS: Final = tuple(IncidentContext.model_fields)
_STEP_COLUMNS: Final = tuple(
    column.name for column in incident_steps.columns if column.name not in ("event_id", "incident_id")
)
_INCIDENT_COLUMNS: Final = tuple(column.name for column in incidents.columns)
_MOMENTS: Final = tuple(
    name for name, info in IncidentStep.model_fields.items() if info.annotation in (datetime, datetime | None)
)
#: The longest text each field of a step may have, from its column (the incident's columns for context).
_LIMITS: Final = {
    column.name: column.type.length
    for table in (incidents, incident_steps)
    for column in table.columns
    if column.name in IncidentStep.model_fields and isinstance(column.type, String) and column.type.length
}


class ArchiveError(RuntimeError):
    """The archive cannot be opened or written; the message says which database and why (no password).

    `transient` when the database is away or busy (try again later), not when it refused the data.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def step_event_id(incident_id: str, seq: int) -> str:
    """A step's id in the archive, the id of its lifecycle event: `<incident_id>:<seq>`."""
    return f"{incident_id}:{seq}"


class Archive:
    """Incident steps and case files in one database. Thread-safe; `close()` when done."""

    def __init__(self, engine: Engine, migrated_from: str | None = None) -> None:
        self._engine = engine
        #: The schema version the database had before `open` migrated it (None: it was empty).
        self.migrated_from = migrated_from

    @classmethod
    def open(cls, url: str, password: str | None = None) -> Archive:
        """Connect to the database at `url` (a SQLAlchemy URL; the password apart, never logged) and
        migrate its schema to the newest version. A SQLite file's directory is created.

        Raises ArchiveError when the URL is not one gridflow can use or the database cannot be reached.
        """
        parsed = _parse(url, password)
        shown = _shown(parsed._replace(password=None))  # set() takes None as "unchanged"
        try:
            engine = _engine(parsed)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ArchiveError(f"the archive URL {shown!r} is not usable: {exc}") from None
        except OSError as exc:  # the SQLite file's directory cannot be made
            raise ArchiveError(
                f"cannot open the archive at {shown}: {exc.strerror}: {exc.filename}"
            ) from None
        try:
            before, _ = migrate.upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise ArchiveError(f"cannot open the archive at {shown}: {_why_not(exc, parsed)}") from None
        except AlembicError as exc:  # a schema version this gridflow does not know: a newer one's
            engine.dispose()
            raise ArchiveError(
                f"the archive at {shown} has a schema this gridflow does not know ({exc}); "
                f"it knows up to {migrate.head()}: run a gridflow as new as the one that wrote it"
            ) from None
        return cls(engine, before)

    @property
    def url(self) -> str:
        """The database's URL, without its password."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """`postgresql` or `sqlite`."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for queries of one's own (the schema is gridflow.archive.schema)."""
        return self._engine

    def close(self) -> None:
        """Close every connection."""
        self._engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def write(self, steps: Sequence[IncidentStep]) -> int:
        """Keep `steps` in one transaction: each step once (by its event id), each incident's row moved
        forward to its latest step. Returns how many steps were new. Raises ArchiveError when the
        database refuses or is away; then nothing of the batch is kept."""
        unique = list({step_event_id(step.incident_id, step.seq): step for step in reversed(steps)}.values())
        for step in unique:
            if (problem := unstorable(step)) is not None:
                raise ArchiveError(f"step {step.seq} of incident {step.incident_id[:ID_LENGTH]}: {problem}")
        if not unique:
            return 0
        by_incident: dict[str, list[IncidentStep]] = defaultdict(list)
        for step in unique:
            by_incident[step.incident_id].append(step)
        try:
            with self._engine.begin() as connection:
                # Incidents first: a step's row refers to its incident's.
                self._advance_incidents(connection, by_incident)
                return self._insert_steps(connection, unique)
        except SQLAlchemyError as exc:
            raise ArchiveError(
                f"the archive at {self.url} did not take the batch: {_first_line(exc)}",
                transient=isinstance(exc, OperationalError | InterfaceError | DisconnectionError),
            ) from exc

    def _advance_incidents(
        self, connection: Connection, by_incident: Mapping[str, list[IncidentStep]]
    ) -> None:
        known = self._incidents(connection, list(by_incident))
        rows = []
        for incident_id, steps in by_incident.items():
            current = known.get(incident_id)
            moved = advance(current, steps)
            if moved is not None and moved != current:
                rows.append(moved.model_dump())
        if not rows:
            return
        insert = _insert(connection)(incidents)
        # Only forward: a row already at a later step (another archiver got there first) is left alone.
        upsert = insert.on_conflict_do_update(
            index_elements=[incidents.c.incident_id],
            set_={name: insert.excluded[name] for name in _INCIDENT_COLUMNS if name != "incident_id"},
            where=incidents.c.last_seq < insert.excluded.last_seq,
        )
        connection.execute(upsert, rows)

    def _insert_steps(self, connection: Connection, steps: Sequence[IncidentStep]) -> int:
        rows = [_step_row(step) for step in steps]
        insert = _insert(connection)(incident_steps).on_conflict_do_nothing()
        # RETURNING names the rows actually inserted; rowcount is not reliable over executemany.
        inserted = connection.execute(insert.returning(incident_steps.c.event_id), rows)
        return len(inserted.all())

    @staticmethod
    def _incidents(connection: Connection, ids: list[str]) -> dict[str, ArchivedIncident]:
        found: dict[str, ArchivedIncident] = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            query = select(incidents).where(incidents.c.incident_id.in_(chunk))
            for row in connection.execute(query):
                found[row.incident_id] = ArchivedIncident.model_validate(row._mapping)
        return found

    # ------------------------------------------------------------------ reading

    def steps(self, start: datetime, end: datetime) -> Iterator[IncidentStep]:
        """The steps with start <= at < end, by at, incident and seq, each with its incident's context;
        streamed (a few rows in memory at a time). Their `note` is always None: it is never kept."""
        query = (
            select(incident_steps, *(incidents.c[name] for name in _CONTEXT_COLUMNS if name != "incident_id"))
            .join(incidents, incidents.c.incident_id == incident_steps.c.incident_id)
            .where(incident_steps.c.at >= start, incident_steps.c.at < end)
            .order_by(incident_steps.c.at, incident_steps.c.incident_id, incident_steps.c.seq)
        )
        with self._engine.connect() as connection:
            result = connection.execution_options(yield_per=STREAM_ROWS).execute(query)
            for row in result:
                yield _step(row)

    def timeline(self, incident_id: str) -> list[IncidentStep]:
        """Every archived step of one incident, in order (empty when the archive has none)."""
        query = (
            select(incident_steps, *(incidents.c[name] for name in _CONTEXT_COLUMNS if name != "incident_id"))
            .join(incidents, incidents.c.incident_id == incident_steps.c.incident_id)
            .where(incident_steps.c.incident_id == incident_id)
            .order_by(incident_steps.c.seq)
        )
        with self._engine.connect() as connection:
            return [_step(row) for row in connection.execute(query)]

    def incident(self, incident_id: str) -> ArchivedIncident | None:
        """An incident's case file as of its last archived step, or None."""
        with self._engine.connect() as connection:
            return self._incidents(connection, [incident_id]).get(incident_id)

    def counts(self) -> ArchiveCounts:
        """How many incidents and steps the archive holds."""
        with self._engine.connect() as connection:
            held = connection.execute(
                select(
                    select(func.count()).select_from(incidents).scalar_subquery(),
                    select(func.count()).select_from(incident_steps).scalar_subquery(),
                )
            ).one()
        return ArchiveCounts(incidents=held[0], steps=held[1])

    def schema_version(self) -> str | None:
        """The database's schema version (the newest migration's, once open)."""
        return migrate.current(self._engine)


# ---------------------------------------------------------------------- rows


def unstorable(step: IncidentStep) -> str | None:
    """Why the archive cannot keep a step as it is (a moment without a zone, an id or a name longer
    than its column), or None. Names the field, never its value."""
    for name in _MOMENTS:
        moment = getattr(step, name)
        if moment is not None and moment.tzinfo is None:
            return f"{name} has no time zone (the archive keeps aware moments only)"
    for name, limit in _LIMITS.items():
        value = getattr(step, name)
        if isinstance(value, str) and len(value) > limit:
            return f"{name} is longer than {limit} characters"
    return None


def _step_row(step: IncidentStep) -> dict[str, Any]:
    values = step.model_dump(include=set(_STEP_COLUMNS) - {"elapsed_seconds", "has_note"})
    values["elapsed_seconds"] = step.elapsed.total_seconds() if step.elapsed is not None else None
    # A lifecycle event says whether its step has a note even when the words were not published
    # (`has_note`); a step of the domain's says it by its note.
    values["has_note"] = bool(getattr(step, "has_note", False)) or step.note is not None
    values["event_id"] = step_event_id(step.incident_id, step.seq)
    values["incident_id"] = step.incident_id
    return values


def _step(row: Row[Any]) -> IncidentStep:
    values = dict(row._mapping)
    seconds = values.pop("elapsed_seconds")
    values.pop("event_id")
    values.pop("has_note")  # the words are not kept: the step reads back with no note either way
    values["elapsed"] = timedelta(seconds=seconds) if seconds is not None else None
    return IncidentStep.model_validate(values)


# ---------------------------------------------------------------------- connecting


def _parse(url: str, password: str | None) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ArchiveError(
            f"the archive URL {url.split('@')[-1]!r} is not a database URL "
            "(postgresql+psycopg://USER@HOST/DB or sqlite:///FILE)"
        ) from None
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ArchiveError(
            f"the archive is PostgreSQL or SQLite, not {parsed.get_backend_name()!r} "
            f"({parsed.render_as_string(hide_password=True)})"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver gridflow ships
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError("the archive must be a file (sqlite:///PATH), not an in-memory database")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database behind a silent firewall must not hang the archiver for minutes at start-up.
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(connection: sqlite3.Connection, _record: object) -> None:
    # WAL: the report reads while the archiver writes; foreign keys: a step's incident must exist.
    # synchronous stays FULL: a commit is on disk before the archiver commits its Kafka offsets.
    with contextlib.closing(connection.cursor()) as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")


def _insert(connection: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite both)."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _shown(url: URL) -> str:
    """A URL as the operator wrote it (query values not percent-encoded), without a password."""
    return urllib.parse.unquote(url.render_as_string(hide_password=True))


#: psycopg's prefix to a failed connection: the host and port the message already names.
_CONNECTION_FAILED = re.compile(r'^connection failed: connection to server at "[^"]*", port \d+ failed: ')


def _why_not(exc: BaseException, url: URL) -> str:
    """Why the database could not be opened, in one line; a certificate that fails verification says
    which CA it was checked against (OpenSSL's own words are not always plain)."""
    line = _CONNECTION_FAILED.sub("", _first_line(exc))
    if "certificate verify failed" in line or "signature failure" in line:
        ca = url.query.get("sslrootcert") or "~/.postgresql/root.crt"
        return f"the server's certificate could not be verified with the CA in {ca} ({line})"
    return line


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


__all__ = ["Archive", "ArchiveError", "step_event_id", "unstorable"]
