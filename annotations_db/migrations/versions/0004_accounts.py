"""Accounts: lockout, disabled readers, password changes, login sessions with expiry.

- ``login_throttles``: failed sign-ins per username and per client address in the current window, and the
  time a lock lifts (shared by every process on the database, kept across restarts);
- ``login_sessions``: one row per sign-in (SHA-256 of the cookie token, never the token), last activity, and
  when and why it ended (logout, idle, expired, disabled, password);
- ``account_events``: append-only log of disable / enable / password changes and who made them; a reader is
  disabled while their latest disable/enable event is a disable.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_started_at", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime),
        sa.CheckConstraint("scope IN ('user', 'client')", name="ck_login_throttle_scope"),
        sa.CheckConstraint("failures >= 0", name="ck_login_throttle_failures"),
    )
    op.create_index("ix_login_throttles_window", "login_throttles", ["window_started_at"])
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False, index=True),
        sa.Column("client", sa.String(255)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("end_reason", sa.String(16)),
        sa.CheckConstraint("(ended_at IS NULL AND end_reason IS NULL) OR "
                           "(ended_at IS NOT NULL AND end_reason IN "
                           "('logout', 'idle', 'expired', 'disabled', 'password'))",
                           name="ck_login_session_end"),
    )
    op.create_table(
        "account_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("acting_reader_id", sa.Integer, sa.ForeignKey("readers.id")),
        sa.Column("acting", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.CheckConstraint("action IN ('disabled', 'enabled', 'password')", name="ck_account_event_action"),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER account_events_append_only BEFORE UPDATE OR DELETE ON account_events "
                   "FOR EACH ROW EXECUTE FUNCTION gazex_refuse_change()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER account_events_no_{action.lower()} BEFORE {action} ON account_events "
                       "BEGIN SELECT RAISE(ABORT, 'account_events is append-only'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS account_events_append_only ON account_events")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS account_events_no_{action}")
    op.drop_table("account_events")
    op.drop_table("login_sessions")
    op.drop_index("ix_login_throttles_window", "login_throttles")
    op.drop_table("login_throttles")
