"""Re-fine-tuning: fine-tune runs (one job at a time), the frozen train/val split; indexes for exports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "finetune_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("base_model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("candidate_model_version_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        *(sa.Column(name, JSON, nullable=False) for name in ("inputs", "split", "params", "metrics")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_slot", sa.Integer, unique=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        *(sa.Column(name, sa.DateTime) for name in ("started_at", "finished_at", "heartbeat_at")),
        sa.CheckConstraint("status IN ('pending', 'running', 'succeeded', 'failed')", name="ck_finetune_status"),
        sa.CheckConstraint("(status IN ('pending', 'running') AND active_slot = 1) OR "
                           "(status IN ('succeeded', 'failed') AND active_slot IS NULL)",
                           name="ck_finetune_active_slot"),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="ck_finetune_progress"),
    )
    op.create_table(
        "frozen_splits",
        sa.Column("study_uid", sa.String(128), primary_key=True),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("val_fraction", sa.Float, nullable=False),
        sa.Column("assigned_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("split IN ('train', 'val')", name="ck_frozen_split"),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER frozen_splits_append_only BEFORE UPDATE OR DELETE ON frozen_splits "
                   "FOR EACH ROW EXECUTE FUNCTION gazex_refuse_change()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER frozen_splits_no_{action.lower()} BEFORE {action} ON frozen_splits "
                       "BEGIN SELECT RAISE(ABORT, 'frozen_splits never change (first assignment wins)'); END")
    op.create_index("ix_signoffs_signed_at", "signoffs", ["signed_at"])
    op.create_index("ix_sentence_decisions_session_sentence", "sentence_decisions", ["session_id", "sentence_id"])
    op.create_index("ix_drafts_model_version", "drafts", ["model_version_id"])
    op.create_index("ix_assignments_experiment_reader", "experiment_assignments",
                    ["experiment_id", "reader_id", "period", "position"])


def downgrade() -> None:
    op.drop_index("ix_assignments_experiment_reader", "experiment_assignments")
    op.drop_index("ix_drafts_model_version", "drafts")
    op.drop_index("ix_sentence_decisions_session_sentence", "sentence_decisions")
    op.drop_index("ix_signoffs_signed_at", "signoffs")
    op.drop_table("frozen_splits")
    op.drop_table("finetune_runs")
