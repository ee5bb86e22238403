"""The archive's tables: every step of every incident, and each incident's current state.

This is the schema the migrations (gridflow/archive/migrations/) build; a test holds the two equal.
No free text is kept: a step's `note` (handlers' names, resolutions, residents' comments) never reaches
the archive, only whether there was one (`has_note`), and nothing about the reporter ever does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

#: Constraint and index names spelled out, so migrations name them the same on every database.
NAMING: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH: Final = 128  # the domain's Identifier
EVENT_ID_LENGTH: Final = ID_LENGTH + 12  # `<incident_id>:<seq>`
NAME_LENGTH: Final = 64  # categories, levels, statuses, outcomes, rules
TEXT_LENGTH: Final = 500  # reasons (a pause's or a withdrawal's up to 500); unit ids filled from templates


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in UTC: `timestamptz` on PostgreSQL, ISO text in UTC on SQLite; always read back aware.

    SQLite has no time zones: the moment is turned to UTC on the way in (so text order is time order)
    and given UTC back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive moments (their zone is a guess); store the rest in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the archive keeps aware moments only, not {value.isoformat()}")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """An aware moment in UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING)

#: One row per incident: its context (what every one of its steps says about it) and where it stands,
#: as of its step `last_seq`. Moved only forward: an older step delivered again changes nothing.
incidents = Table(
    "incidents",
    metadata,
    Column("incident_id", String(ID_LENGTH), primary_key=True),
    Column("category", String(NAME_LENGTH), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("district_id", String(ID_LENGTH), nullable=False),
    Column("street_id", String(ID_LENGTH)),  # null for incidents reported before events carried it
    Column("rule_name", String(NAME_LENGTH)),
    Column("rules_version", String(NAME_LENGTH)),
    # The `reported` step's event_at (when the upstream app says) or at; null if it was never archived.
    Column("reported_at", UTCDateTime()),
    Column("level", String(NAME_LENGTH)),
    Column("status", String(16), nullable=False),
    Column("holder_unit", String(TEXT_LENGTH)),
    Column("outcome", String(32)),
    Column("rating", String(32)),  # the last rating given
    Column("escalations", Integer, nullable=False),
    Column("reopens", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),  # the instant of step `last_seq`
    Column("solved", Boolean),  # the last answer to "was it solved?"; null: not asked (or before 0003)
    Index(None, "district_id", "category"),
    Index(None, "category"),
    Index(None, "reported_at"),
)

#: One row per step: every field of the step but its free-text `note` (`has_note` says whether it had
#: one); the context is the incident's.
incident_steps = Table(
    "incident_steps",
    metadata,
    Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),  # `<incident_id>:<seq>`
    Column("incident_id", String(ID_LENGTH), ForeignKey("incidents.incident_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("level", String(NAME_LENGTH)),
    Column("unit_id", String(TEXT_LENGTH)),
    Column("status", String(16), nullable=False),
    Column("reason", String(TEXT_LENGTH)),
    Column("clock", String(16)),
    Column("fraction", Float),
    Column("deadline", UTCDateTime()),
    Column("within_limit", Boolean),
    Column("from_level", String(NAME_LENGTH)),
    Column("to_level", String(NAME_LENGTH)),
    Column("rating", String(32)),
    Column("outcome", String(32)),
    Column("elapsed_seconds", Float),  # accepted: since dispatch at the level; resolved: since reported
    Column("escalations", Integer),  # closed: how many times the incident went up a level
    Column("event_at", UTCDateTime()),  # when the upstream app says it happened, if it said
    # Whether someone wrote a note with the step (its words are never kept); null: archived before 0002.
    Column("has_note", Boolean),
    # Feedback: whether the resident says the problem was solved; null: not asked (or before 0003).
    Column("solved", Boolean),
    Column("from_unit", String(TEXT_LENGTH)),  # transferred: the unit that held it before (0004)
    Column("actor", String(TEXT_LENGTH)),  # extension decided: the approver (0004)
    Column("extension", String(16)),  # extension steps: the extra time asked for, `8h` or `2wd` (0004)
    Column("deferred", Boolean),  # closed: whether the incident was ever paused (0004)
    UniqueConstraint("incident_id", "seq"),
    # The report reads a period's steps in this order.
    Index(None, "at", "incident_id", "seq"),
    Index(None, "kind", "at"),
)

__all__ = ["UTCDateTime", "incident_steps", "incidents", "metadata"]
