"""Transfers and extensions: incident_steps.from_unit (the unit that held the incident before a
transfer), actor (the approver who decided an extension), extension (the extra time asked for) and
deferred (on a closure: whether the incident was ever paused, for the on-time closure rate).

Null on the steps they do not concern, and for everything archived before this revision.

Revision ID: 0004
Revises: 0003
Created: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns, null for the steps already there."""
    op.add_column("incident_steps", sa.Column("from_unit", sa.String(500)))
    op.add_column("incident_steps", sa.Column("actor", sa.String(500)))
    op.add_column("incident_steps", sa.Column("extension", sa.String(16)))
    op.add_column("incident_steps", sa.Column("deferred", sa.Boolean()))


def downgrade() -> None:
    """Drop them (SQLite rebuilds the table to drop a column)."""
    with op.batch_alter_table("incident_steps") as batch:
        for column in ("deferred", "extension", "actor", "from_unit"):
            batch.drop_column(column)
