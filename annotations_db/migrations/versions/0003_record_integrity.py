"""Record integrity: append-only protection for signed reviews, sign-off hash chain, viewed sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the change that introduces it


def downgrade() -> None:
    pass
