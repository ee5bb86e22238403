"""Alembic's environment for the archive: run by gridflow.archive.migrate on the connection it is given.

No alembic.ini and no URL here: the archive opens the database (with its password from the settings)
and hands its connection over in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gridflow.archive.schema import metadata

#: Two archivers starting together on one PostgreSQL database migrate one after the other.
_PG_LOCK = 0x67726964  # "grid"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: later migrations need batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the archive's migrations run from gridflow.archive.migrate, on its connection")
_run(connection)
