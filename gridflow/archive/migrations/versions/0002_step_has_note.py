"""Whether a step had a note: incident_steps.has_note (the note's words are still never kept).

Lifecycle events leave the note's text out unless the operator publishes notes, and say whether there
was one; the archive keeps that. Steps archived before this are null: not known.

Revision ID: 0002
Revises: 0001
Created: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column, null for the steps already there."""
    op.add_column("incident_steps", sa.Column("has_note", sa.Boolean()))


def downgrade() -> None:
    """Drop it (SQLite rebuilds the table to drop a column)."""
    with op.batch_alter_table("incident_steps") as batch:
        batch.drop_column("has_note")
