"""Imported studies: named study sets, their members, and one row per import run (counts only).

No original identifier is stored: the de-identified study's UIDs are the study's own (interop/deid.py);
the optional linkage file that maps back to the originals is written outside the database on request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "study_sets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "study_set_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_set_id", sa.Integer, sa.ForeignKey("study_sets.id"), nullable=False),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("study_set_id", "study_id", name="uq_study_set_member"),
    )
    op.create_index("ix_study_set_members_study", "study_set_members", ["study_id"])
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_set_id", sa.Integer, sa.ForeignKey("study_sets.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("imported", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("reasons", JSON, nullable=False),  # {reason: count}; never file names (they may name patients)
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_runs")
    op.drop_index("ix_study_set_members_study", table_name="study_set_members")
    op.drop_table("study_set_members")
    op.drop_table("study_sets")
