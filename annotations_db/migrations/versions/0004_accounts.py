"""Accounts: lockout, disabled readers, password changes, login sessions with expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the change that introduces it


def downgrade() -> None:
    pass
