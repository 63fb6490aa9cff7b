"""Record integrity: append-only protection for signed reviews, sign-off hash chain, viewed sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# --- decision kind "accepted_at_signoff" (viewer, issue 9: sign-off with pending items) ---------------------
_SENTENCE_OLD = "decision IN ('accepted', 'edited', 'deleted', 'added')"
_SENTENCE_NEW = "decision IN ('accepted', 'edited', 'deleted', 'added', 'accepted_at_signoff')"
_BOX_OLD = "decision IN ('accepted', 'moved', 'resized', 'rejected', 'added')"
_BOX_NEW = "decision IN ('accepted', 'moved', 'resized', 'rejected', 'added', 'accepted_at_signoff')"


def _decision_kinds(table: str, constraint: str, check: str, width: int) -> None:
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(constraint, type_="check")
        batch.alter_column("decision", type_=sa.String(width), existing_nullable=False)
        batch.create_check_constraint(constraint, check)
    if op.get_context().dialect.name == "sqlite":  # SQLite rebuilt the table: its append-only triggers went with it
        message = f"{table} is append-only (provenance); record an amendment or a new decision instead"
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def upgrade() -> None:
    _decision_kinds("sentence_decisions", "ck_sentence_decision", _SENTENCE_NEW, 24)
    _decision_kinds("box_decisions", "ck_box_decision", _BOX_NEW, 24)


def downgrade() -> None:
    _decision_kinds("sentence_decisions", "ck_sentence_decision", _SENTENCE_OLD, 16)
    _decision_kinds("box_decisions", "ck_box_decision", _BOX_OLD, 16)
