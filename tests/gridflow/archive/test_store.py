"""The archive on both of its databases: a real PostgreSQL (started for the session) and a SQLite file.

Each test gets an empty database of its own; the steps are real timelines played on the lifecycle core.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from gridflow.archive import migrate
from gridflow.archive.schema import incident_steps, incidents, metadata
from gridflow.archive.store import Archive, ArchiveError
from gridflow.domain.incident import Outcome, Rating, Status
from gridflow.domain.lifecycle import IncidentStep, StepKind
from tests.gridflow.archive.cases import HOUR, T0, archived, climbed, reopened_and_closed
from tests.postgres import Database, PostgresServer
from tests.postgres import archive_database as archive_database  # the fixture
from tests.postgres import postgresql_server as postgresql_server  # the fixture

#: The tables as the README shows them, column by column.
README_TABLES = {
    "incident_steps": [
        "event_id", "incident_id", "seq", "kind", "at", "level", "unit_id", "status", "reason", "clock",
        "fraction", "deadline", "within_limit", "from_level", "to_level", "rating", "outcome",
        "elapsed_seconds", "escalations", "event_at", "has_note", "solved", "from_unit", "actor", "extension",
        "deferred",
    ],
    "incidents": [
        "incident_id", "category", "priority", "district_id", "street_id", "rule_name", "rules_version",
        "reported_at", "level", "status", "holder_unit", "outcome", "rating", "escalations", "reopens",
        "last_seq", "closed_at", "updated_at", "solved",
    ],
}  # fmt: skip

#: Words of people in the timelines' commands (handlers' names, resolutions, residents' comments).
PERSONAL = ("Zhang Min", "Mr Li", "138 0000", "Dark again", "Rewired", "Thank you")


@pytest.fixture
def archive(database: Database) -> Iterator[Archive]:
    """The archive, opened (and so migrated) on the empty database."""
    with Archive.open(database.url, database.password) as opened:
        yield opened


def test_opening_migrates_to_the_newest_schema_and_opening_again_changes_nothing(database: Database) -> None:
    with Archive.open(database.url, database.password) as first:
        assert (first.migrated_from, first.schema_version()) == (None, migrate.head())
        first.write(archived(reopened_and_closed("inc-1")))
        before = first.counts()
    with Archive.open(database.url, database.password) as second:
        assert (second.migrated_from, second.schema_version()) == (migrate.head(), migrate.head())
        assert second.counts() == before
        assert set(inspect(second.engine).get_table_names()) == {"alembic_version", *README_TABLES}


def test_the_migrations_build_exactly_the_schema_the_code_uses(archive: Archive) -> None:
    with archive.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_the_tables_are_the_ones_the_readme_shows(archive: Archive) -> None:
    inspector = inspect(archive.engine)
    shown = {table: [column["name"] for column in inspector.get_columns(table)] for table in README_TABLES}
    assert shown == README_TABLES
    assert {tuple(index["column_names"]) for index in inspector.get_indexes("incident_steps")} >= {
        ("at", "incident_id", "seq")
    }
    assert {tuple(index["column_names"]) for index in inspector.get_indexes("incidents")} >= {
        ("district_id", "category")
    }


def test_no_free_text_or_reporter_reaches_the_archive(archive: Archive) -> None:
    steps = archived(reopened_and_closed("inc-words"))
    assert any(step.note for step in steps)  # the handlers' and the resident's words are in the steps
    archive.write(steps)
    columns = {
        column["name"] for table in README_TABLES for column in inspect(archive.engine).get_columns(table)
    }
    assert not columns & {"note", "reporter", "name", "phone", "comment", "resolution", "handler"}
    with archive.engine.connect() as connection:
        everything = repr(
            [*connection.execute(select(incident_steps)).all(), *connection.execute(select(incidents)).all()]
        )
    assert [word for word in PERSONAL if word in everything] == []
    assert all(step.note is None for step in archive.timeline("inc-words"))


def test_a_step_written_twice_is_one_row(archive: Archive) -> None:
    steps = archived(reopened_and_closed("inc-twice"))
    assert archive.write(steps) == len(steps)
    assert archive.write(steps) == 0
    assert archive.write([*steps[:3], *steps[:3]]) == 0
    assert archive.counts().steps == len(steps)
    assert archive.counts().incidents == 1
    assert archive.timeline("inc-twice") == [step.model_copy(update={"note": None}) for step in steps]


def test_a_step_twice_in_one_batch_is_one_row(archive: Archive) -> None:
    steps = archived(reopened_and_closed("inc-same-batch"))
    assert archive.write([*steps, *steps[:4]]) == len(steps)
    assert archive.counts().steps == len(steps)


def test_a_step_the_archive_cannot_keep_is_refused_whole(archive: Archive) -> None:
    steps = archived(climbed("inc-long-id", levels=1))
    too_long = [step.model_copy(update={"incident_id": "inc-" + "x" * 130}) for step in steps]
    with pytest.raises(ArchiveError, match="incident_id is longer than 128 characters"):
        archive.write(too_long)
    assert archive.counts().steps == 0


def test_a_batch_with_new_and_known_steps_keeps_only_the_new_ones(archive: Archive) -> None:
    steps = archived(reopened_and_closed("inc-overlap"))
    assert archive.write(steps[:5]) == 5
    assert archive.write(steps[3:9]) == 4
    assert [step.seq for step in archive.timeline("inc-overlap")] == list(range(1, 10))


def test_the_case_file_follows_the_incident_to_its_close(archive: Archive) -> None:
    state = reopened_and_closed("inc-life")
    steps = archived(state)
    archive.write(steps[:3])  # reported, dispatched, accepted
    so_far = archive.incident("inc-life")
    assert so_far is not None
    assert (so_far.status, so_far.level, so_far.holder_unit, so_far.last_seq) == (
        Status.ACCEPTED,
        "grid",
        "g-nanjing-07",
        3,
    )
    archive.write(steps[3:])
    case = archive.incident("inc-life")
    assert case is not None
    assert case.model_dump(exclude={"updated_at"}) == {
        "incident_id": "inc-life",
        "category": "street_lamp",
        "priority": state.priority,
        "district_id": "d-huangpu",
        "street_id": "s-nanjing-east",
        "rule_name": "default",
        "rules_version": state.rule.rules_version if state.rule else None,
        "reported_at": T0,
        "level": "grid",
        "status": Status.CLOSED,
        "holder_unit": "g-nanjing-07",
        "outcome": Outcome.RESOLVED,
        "rating": Rating.SATISFIED,
        "solved": True,
        "escalations": 0,
        "reopens": 1,
        "last_seq": len(steps),
        "closed_at": state.closed_at,
    }
    assert case.updated_at == steps[-1].at


def test_an_older_batch_delivered_again_does_not_move_the_incident_back(archive: Archive) -> None:
    steps = archived(climbed("inc-climb", levels=2))
    archive.write(steps)
    latest = archive.incident("inc-climb")
    assert latest is not None and latest.level == "district" and latest.escalations == 2
    assert archive.write(steps[:3]) == 0  # the start of its life, redelivered after a crash
    assert archive.incident("inc-climb") == latest


def test_steps_come_back_in_their_period_in_order(archive: Archive) -> None:
    early = archived(reopened_and_closed("inc-b", at=T0))
    late = archived(reopened_and_closed("inc-a", at=T0 + timedelta(minutes=10)))
    later = archived(climbed("inc-c", at=T0 + 30 * timedelta(days=1)))
    archive.write([*later, *late, *early])
    start, end = T0 + timedelta(minutes=10), T0 + 6 * HOUR
    got = list(archive.steps(start, end))
    expected = sorted(
        (step for step in [*early, *late, *later] if start <= step.at < end),
        key=lambda step: (step.at, step.incident_id, step.seq),
    )
    assert [(step.incident_id, step.seq) for step in got] == [(s.incident_id, s.seq) for s in expected]
    assert got == [step.model_copy(update={"note": None}) for step in expected]
    assert got[0].at == start  # the start is in the period
    assert all(step.at < end for step in got) and any(s.at == end for s in early)  # the end is not
    assert list(archive.steps(T0 - timedelta(days=1), T0)) == []


def test_moments_come_back_aware_and_equal_whatever_their_zone(archive: Archive) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    steps = [
        step.model_copy(update={"at": step.at.astimezone(shanghai)})
        for step in archived(reopened_and_closed("inc-zone"))
    ]
    archive.write(steps)
    back = archive.timeline("inc-zone")
    assert [step.at for step in back] == [step.at for step in steps]
    assert all(step.at.utcoffset() == timedelta(0) for step in back)
    deadlines = [step.deadline for step in back if step.deadline is not None]
    assert deadlines and all(moment.tzinfo is not None for moment in deadlines)
    accepted = next(step for step in back if step.kind is StepKind.ACCEPTED)
    assert accepted.elapsed == timedelta(minutes=10)
    # Periods given in another zone mean the same instants.
    in_shanghai = list(
        archive.steps(T0.astimezone(shanghai), (T0 + timedelta(minutes=11)).astimezone(shanghai))
    )
    assert [step.seq for step in in_shanghai] == [1, 2, 3]


def test_postgresql_keeps_moments_as_timestamptz(postgresql: PostgresServer) -> None:
    query = text(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'incident_steps' AND column_name IN ('at', 'deadline', 'event_at')"
    )
    opened = Archive.open(postgresql.create_database(), postgresql.password)
    with opened as archive, archive.engine.connect() as connection:
        kinds = connection.execute(query).all()
    assert sorted(kinds) == [(name, "timestamp with time zone") for name in ("at", "deadline", "event_at")]


#: An archive opened by a process of its own once told to (a line on its input), all of them together.
OPEN_ON_CUE = (
    "import sys; from gridflow.archive.store import Archive; print('ready', flush=True); "
    "sys.stdin.readline(); Archive.open(sys.argv[1], sys.argv[2]).close()"
)


def test_archivers_opening_one_new_postgresql_database_together_migrate_it_once(
    postgresql: PostgresServer,
) -> None:
    url = postgresql.create_database()
    # Processes, as archivers are: each takes its turn on the database's advisory lock.
    command = [sys.executable, "-c", OPEN_ON_CUE, url, postgresql.password]
    starting = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for process in starting:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    for process in starting:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.flush()
    # Threads of one process too: Alembic's context is one per process.
    with ThreadPoolExecutor(3) as pool:
        opened = list(pool.map(lambda _: Archive.open(url, postgresql.password), range(3)))
    try:
        for process in starting:
            _, errors = process.communicate(timeout=60)
            assert process.returncode == 0, errors.decode()
        assert {archive.schema_version() for archive in opened} == {migrate.head()}
        with opened[0].engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [migrate.head()]
    finally:
        for archive in opened:
            archive.close()


def test_a_naive_moment_is_refused_and_nothing_of_its_batch_is_kept(archive: Archive) -> None:
    steps = archived(reopened_and_closed("inc-naive"))
    naive = steps[2].model_copy(update={"at": datetime(2026, 11, 23, 8, 10)})
    with pytest.raises(ArchiveError, match="aware"):
        archive.write([*steps[:2], naive])
    assert archive.counts().steps == 0 and archive.incident("inc-naive") is None


def test_an_unusable_url_or_an_absent_server_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="PostgreSQL or SQLite, not 'mysql'"):
        Archive.open("mysql://archiver@127.0.0.1/archive")
    with pytest.raises(ArchiveError, match="not a database URL"):
        Archive.open("archive.db")
    # The password given apart (GRIDFLOW_ARCHIVE_PASSWORD) is not hinted at in the URL shown.
    with pytest.raises(ArchiveError) as absent:
        Archive.open("postgresql+psycopg://archiver@127.0.0.1:1/archive?connect_timeout=2", "secret")
    message = str(absent.value)
    assert message.startswith("cannot open the archive at postgresql+psycopg://archiver@127.0.0.1:1/archive")
    assert "secret" not in message and "\n" not in message


def test_a_wrong_password_is_refused_without_showing_it(postgresql: PostgresServer) -> None:
    with pytest.raises(ArchiveError) as refused:
        Archive.open(postgresql.create_database(), "not-the-password")
    assert "password authentication failed" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_a_schema_newer_than_this_gridflow_is_refused_in_one_line(database: Database) -> None:
    with Archive.open(database.url, database.password) as archive, archive.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ArchiveError, match=r"does not know .*'9999'.* knows up to 0004"):
        Archive.open(database.url, database.password)


def test_the_sqlite_file_and_its_directory_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "archive.db"
    with Archive.open(f"sqlite:///{path}") as archive:
        archive.write(archived(climbed("inc-file", levels=1)))
    assert path.is_file()
    with Archive.open(f"sqlite:///{path}") as again:
        assert again.counts().incidents == 1


def test_many_steps_stream_back_across_fetches(archive: Archive) -> None:
    # More steps than one fetch of the stream, so the stream goes on past its first fetch.
    steps = [step for n in range(120) for step in archived(reopened_and_closed(f"inc-many-{n:03}"))]
    assert len(steps) > 1000
    for start in range(0, len(steps), 500):
        archive.write(steps[start : start + 500])
    got = archive.steps(T0, T0 + timedelta(days=1))
    assert sum(1 for _ in got) == len(steps)


def test_each_step_keeps_every_field_but_its_note(archive: Archive) -> None:
    steps: list[IncidentStep] = archived(reopened_and_closed("inc-fields"))
    archive.write(steps)
    back = {step.seq: step for step in archive.timeline("inc-fields")}
    for step in steps:
        assert back[step.seq].model_dump() == {**step.model_dump(), "note": None}
