"""The archive's schema versions: Alembic migrations shipped inside the package, run from code.

No alembic.ini is needed: the configuration is built here, pointing at gridflow/archive/migrations,
and the migrations run on a connection the archive opened (so its password never leaves the settings).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

#: Where the migrations are, in the checkout and in an installed gridflow alike.
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
_ONE_AT_A_TIME: Final = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the archive, with the connection to run on (if any)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema version the migrations reach."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "the archive has no migrations"
    return revision


def current(engine: Engine) -> str | None:
    """The database's schema version (None: no archive there yet)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database's schema to the newest version; nothing happens when it is there already.
    Returns the version it had (None: none, a new archive) and the one it has now."""
    # Alembic narrates every connection at INFO ("Context impl", "Will assume transactional DDL"); the
    # archiver logs what matters, the versions before and after.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    # Alembic's `context` is one per process: archives opened on several threads migrate in turn.
    # (Processes on one PostgreSQL database take turns on an advisory lock: migrations/env.py.)
    with _ONE_AT_A_TIME, engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), "head")
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    return before, after


__all__ = ["MIGRATIONS", "alembic_config", "current", "head", "upgrade"]
