"""Review record: readers, studies/images, model versions, drafts, experiments, sessions, decisions,
events, sign-offs, amendments; append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
APPEND_ONLY = ("interaction_events", "sentence_decisions", "box_decisions", "signoffs", "amendments",
               "model_version_events")


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime, nullable=nullable)


def upgrade() -> None:
    _create_people_and_studies()
    _create_models_and_drafts()
    _create_experiments()
    _create_sessions()
    _create_decisions_and_events()
    _create_signoffs()
    for table in APPEND_ONLY:
        _forbid_update_and_delete(table)


def _create_people_and_studies() -> None:
    op.create_table(
        "readers", _id(),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("role IN ('reader', 'admin')", name="ck_readers_role"),
    )
    op.create_table(
        "studies", _id(),
        sa.Column("study_uid", sa.String(128), nullable=False, unique=True),
        sa.Column("meta", JSON, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "images", _id(),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
        sa.Column("series_uid", sa.String(128)),
        sa.Column("sop_instance_uid", sa.String(128)),
        sa.Column("file_path", sa.Text, nullable=False),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("meta", JSON, nullable=False),
    )


def _create_models_and_drafts() -> None:
    op.create_table(
        "model_versions", _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("weights_hash", sa.String(128), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_slot", sa.Integer, unique=True),
        _ts("created_at"),
        sa.UniqueConstraint("name", "version"),
        sa.CheckConstraint("status IN ('active', 'candidate', 'retired')", name="ck_model_versions_status"),
        sa.CheckConstraint("(status = 'active' AND active_slot = 1) OR (status <> 'active' AND active_slot IS NULL)",
                           name="ck_model_versions_active_slot"),
    )
    op.create_table(
        "model_version_events", _id(),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("previous_active_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        _ts("at"),
    )
    op.create_table(
        "drafts", _id(),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("bundle", JSON, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("study_id", "model_version_id"),
    )


def _create_experiments() -> None:
    op.create_table(
        "experiments", _id(),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("design", sa.String(32), nullable=False),
        sa.Column("arms", JSON, nullable=False),
        sa.Column("washout_days", sa.Integer, nullable=False),
        sa.Column("blinded", sa.Boolean, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "experiment_assignments", _id(),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False, index=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.UniqueConstraint("experiment_id", "reader_id", "study_id", "period"),
    )


def _create_sessions() -> None:
    op.create_table(
        "review_sessions", _id(),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False, index=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
        sa.Column("draft_id", sa.Integer, sa.ForeignKey("drafts.id")),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id")),
        sa.Column("assignment_id", sa.Integer, sa.ForeignKey("experiment_assignments.id"), unique=True),
        sa.Column("arm", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        _ts("opened_at"),
        _ts("closed_at", nullable=True),
        sa.CheckConstraint("status IN ('open', 'signed', 'closed')", name="ck_review_sessions_status"),
    )


def _create_decisions_and_events() -> None:
    op.create_table(
        "sentence_decisions", _id(),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("review_sessions.id"), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("sentence_id", sa.String(40), nullable=False),
        sa.Column("section", sa.String(32)),
        sa.Column("after_sentence_id", sa.String(40)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("original_text", sa.Text),
        sa.Column("final_text", sa.Text),
        sa.Column("edit_distance", sa.Integer, nullable=False),
        sa.Column("error_category", sa.String(16)),
        sa.Column("clinically_significant", sa.Boolean),
        sa.Column("duration_ms", sa.Float),
        sa.Column("client_ts", sa.Float),
        _ts("server_ts"),
        sa.CheckConstraint("decision IN ('accepted', 'edited', 'deleted', 'added')", name="ck_sentence_decision"),
    )
    op.create_table(
        "box_decisions", _id(),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("review_sessions.id"), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("box_id", sa.String(40), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        *(sa.Column(name, sa.Float) for name in ("x_min", "y_min", "x_max", "y_max")),
        sa.Column("linked_sentence_id", sa.String(40)),
        sa.Column("duration_ms", sa.Float),
        sa.Column("client_ts", sa.Float),
        _ts("server_ts"),
        sa.CheckConstraint("decision IN ('accepted', 'moved', 'resized', 'rejected', 'added')",
                           name="ck_box_decision"),
    )
    op.create_table(
        "interaction_events", _id(),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("review_sessions.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("client_ts", sa.Float),
        _ts("server_ts"),
        sa.UniqueConstraint("session_id", "seq"),
    )


def _create_signoffs() -> None:
    op.create_table(
        "signoffs", _id(),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("review_sessions.id"), nullable=False, unique=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("final_report", sa.Text, nullable=False),
        *(sa.Column(name, sa.Float, nullable=False) for name in ("total_ms", "active_ms", "idle_ms", "hidden_ms")),
        sa.Column("client_ts", sa.Float),
        _ts("signed_at"),
        sa.CheckConstraint("decision IN ('accept', 'modify', 'reject')", name="ck_signoff_decision"),
    )
    op.create_table(
        "amendments", _id(),
        sa.Column("signoff_id", sa.Integer, sa.ForeignKey("signoffs.id"), nullable=False, index=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("final_report", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _ts("amended_at"),
    )


def _forbid_update_and_delete(table: str) -> None:
    """Append-only tables: the database itself refuses UPDATE and DELETE."""
    message = f"{table} is append-only (provenance); record an amendment or a new decision instead"
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION gazex_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only (provenance); record an amendment or a new decision instead', "
            "TG_TABLE_NAME; END $$")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION gazex_refuse_change()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    for table in APPEND_ONLY:
        if op.get_context().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    for table in ("amendments", "signoffs", "interaction_events", "box_decisions", "sentence_decisions",
                  "review_sessions", "experiment_assignments", "experiments", "drafts", "model_version_events",
                  "model_versions", "images", "studies", "readers"):
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS gazex_refuse_change()")
