"""Case files: incident_steps (every step but its free text) and incidents (each one's current state).

Revision ID: 0001
Revises:
Created: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create both tables and the indexes the reports read by."""
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("district_id", sa.String(128), nullable=False),
        sa.Column("street_id", sa.String(128)),
        sa.Column("rule_name", sa.String(64)),
        sa.Column("rules_version", sa.String(64)),
        sa.Column("reported_at", sa.DateTime(timezone=True)),
        sa.Column("level", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder_unit", sa.String(500)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("rating", sa.String(32)),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("reopens", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_district_id_category", "incidents", ["district_id", "category"])
    op.create_index("ix_incidents_category", "incidents", ["category"])
    op.create_index("ix_incidents_reported_at", "incidents", ["reported_at"])
    op.create_table(
        "incident_steps",
        sa.Column("event_id", sa.String(140), nullable=False),
        sa.Column("incident_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(64)),
        sa.Column("unit_id", sa.String(500)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("clock", sa.String(16)),
        sa.Column("fraction", sa.Float()),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("within_limit", sa.Boolean()),
        sa.Column("from_level", sa.String(64)),
        sa.Column("to_level", sa.String(64)),
        sa.Column("rating", sa.String(32)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("elapsed_seconds", sa.Float()),
        sa.Column("escalations", sa.Integer()),
        sa.Column("event_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("event_id", name="pk_incident_steps"),
        sa.UniqueConstraint("incident_id", "seq", name="uq_incident_steps_incident_id_seq"),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.incident_id"], name="fk_incident_steps_incident_id_incidents"
        ),
    )
    op.create_index("ix_incident_steps_at_incident_id_seq", "incident_steps", ["at", "incident_id", "seq"])
    op.create_index("ix_incident_steps_kind_at", "incident_steps", ["kind", "at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("incident_steps")
    op.drop_table("incidents")
