"""Experiments: settings (status, reader order, questionnaires), injected draft errors, questionnaire answers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ERROR_KINDS = ("missed_finding", "false_finding", "wrong_side", "wrong_severity", "misplaced_box")
APPEND_ONLY = ("experiment_injected_errors", "questionnaire_responses")


def upgrade() -> None:
    op.create_table(
        "experiment_settings",
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("closed_at", sa.DateTime),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_experiment_status"),
    )
    kinds = ", ".join(f"'{kind}'" for kind in ERROR_KINDS)
    op.create_table(
        "experiment_injected_errors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sentence_id", sa.String(40), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("experiment_id", "study_id"),
        sa.CheckConstraint(f"kind IN ({kinds})", name="ck_injected_error_kind"),
    )
    op.create_table(
        "questionnaire_responses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("review_sessions.id")),
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("period", sa.Integer),
        sa.Column("answers", JSON, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("submitted_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("experiment_id", "reader_id", "instrument", "session_id", "period"),
    )
    op.create_index("ix_questionnaire_experiment", "questionnaire_responses", ["experiment_id"])
    for table in APPEND_ONLY:
        _append_only(table)


def _append_only(table: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION gazex_refuse_change()")
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only (study record)'); END")


def downgrade() -> None:
    for table in APPEND_ONLY:
        if op.get_context().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_index("ix_questionnaire_experiment", "questionnaire_responses")
    op.drop_table("questionnaire_responses")
    op.drop_table("experiment_injected_errors")
    op.drop_table("experiment_settings")
