"""The return visit's second answer: whether the resident says the problem was solved.

incident_steps.solved (on feedback steps) and incidents.solved (the last answer). Null where the
question was not asked, and for everything archived before this revision.

Revision ID: 0003
Revises: 0002
Created: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns, null for the rows already there."""
    op.add_column("incident_steps", sa.Column("solved", sa.Boolean()))
    op.add_column("incidents", sa.Column("solved", sa.Boolean()))


def downgrade() -> None:
    """Drop them (SQLite rebuilds the tables to drop a column)."""
    for table in ("incidents", "incident_steps"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("solved")
