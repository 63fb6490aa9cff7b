"""Record integrity: append-only protection for signed reviews, sign-off hash chain, viewed sessions.

- columns: ``drafts.bundle_sha256``; ``review_sessions.first_decision_at`` (NULL = only viewed);
  ``decision_id`` (client idempotency key, UNIQUE per session) on sentence/box decisions and sign-offs;
  ``prev_sha256``/``record_sha256`` on sign-offs and amendments (the hash chain, annotations_db/integrity.py);
- decision kind ``accepted_at_signoff`` (pending items accepted by "accept the rest" at sign-off; the decision
  columns widen from 16 to 24 characters for it);
- triggers: every protection trigger of annotations_db/integrity.py (replacing those of 0001/0002);
- backfill: bundle hashes, first decision times, and the chain over existing sign-offs and amendments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from annotations_db import integrity

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACCEPTED_AT_SIGNOFF = "accepted_at_signoff"
SENTENCE_KINDS = ("accepted", "edited", "deleted", "added", ACCEPTED_AT_SIGNOFF)
BOX_KINDS = ("accepted", "moved", "resized", "rejected", "added", ACCEPTED_AT_SIGNOFF)


def upgrade() -> None:
    connection = op.get_bind()
    integrity.drop_triggers(connection)
    _add_columns()
    _widen_decision_kinds(SENTENCE_KINDS, BOX_KINDS)
    for table in ("sentence_decisions", "box_decisions"):
        op.create_index(f"ux_{table}_decision_id", table, ["session_id", "decision_id"], unique=True)
    _backfill(connection)
    integrity.create_triggers(connection)


def _add_columns() -> None:
    hash_column = lambda name: sa.Column(name, sa.String(64))  # noqa: E731
    op.add_column("drafts", hash_column("bundle_sha256"))
    op.add_column("review_sessions", sa.Column("first_decision_at", sa.DateTime))
    for table in ("sentence_decisions", "box_decisions", "signoffs"):
        op.add_column(table, sa.Column("decision_id", sa.String(64)))
    for table in ("signoffs", "amendments"):
        op.add_column(table, hash_column("prev_sha256"))
        op.add_column(table, hash_column("record_sha256"))


def _widen_decision_kinds(sentence_kinds: tuple[str, ...], box_kinds: tuple[str, ...]) -> None:
    for table, name, kinds in (("sentence_decisions", "ck_sentence_decision", sentence_kinds),
                               ("box_decisions", "ck_box_decision", box_kinds)):
        condition = "decision IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"
        width = 24 if ACCEPTED_AT_SIGNOFF in kinds else 16
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(name, type_="check")
            batch.alter_column("decision", type_=sa.String(width), existing_type=sa.String(16), existing_nullable=False)
            batch.create_check_constraint(name, condition)


def _backfill(connection: sa.Connection) -> None:
    drafts = sa.table("drafts", sa.column("id"), sa.column("bundle", sa.JSON))
    for draft_id, bundle in connection.execute(sa.select(drafts.c.id, drafts.c.bundle)).all():
        connection.execute(sa.text("UPDATE drafts SET bundle_sha256 = :sha WHERE id = :id"),
                           {"sha": integrity.bundle_sha256(bundle), "id": draft_id})
    connection.execute(sa.text(
        "UPDATE review_sessions SET first_decision_at = (SELECT MIN(t.server_ts) FROM ("
        "SELECT server_ts FROM sentence_decisions d WHERE d.session_id = review_sessions.id UNION ALL "
        "SELECT server_ts FROM box_decisions b WHERE b.session_id = review_sessions.id) t)"))
    _backfill_chain(connection)


def _backfill_chain(connection: sa.Connection) -> None:
    from annotations_db.models import Amendment, SignOff

    previous = integrity.GENESIS
    signoffs = SignOff.__table__
    columns = [signoffs.c.id] + [signoffs.c[name] for name in integrity._SIGNOFF_COLUMNS if name != "prev_sha256"]
    for row in connection.execute(sa.select(*columns).order_by(signoffs.c.id)).all():
        values = {**row._mapping, "prev_sha256": previous}
        record = integrity.signoff_sha256(connection, values)
        connection.execute(sa.text("UPDATE signoffs SET prev_sha256 = :prev, record_sha256 = :sha WHERE id = :id"),
                           {"prev": previous, "sha": record, "id": row.id})
        _backfill_amendments(connection, Amendment.__table__, row.id, record)
        previous = record


def _backfill_amendments(connection: sa.Connection, amendments: sa.Table, signoff_id: int, previous: str) -> None:
    columns = [amendments.c.id] + [amendments.c[name] for name in integrity._AMENDMENT_COLUMNS
                                   if name != "prev_sha256"]
    for row in connection.execute(sa.select(*columns).where(amendments.c.signoff_id == signoff_id)
                                  .order_by(amendments.c.id)).all():
        record = integrity.amendment_sha256({**row._mapping, "prev_sha256": previous})
        connection.execute(sa.text("UPDATE amendments SET prev_sha256 = :prev, record_sha256 = :sha WHERE id = :id"),
                           {"prev": previous, "sha": record, "id": row.id})
        previous = record


def downgrade() -> None:
    connection = op.get_bind()
    integrity.drop_triggers(connection)
    for table in ("sentence_decisions", "box_decisions"):
        op.drop_index(f"ux_{table}_decision_id", table)
    _widen_decision_kinds(SENTENCE_KINDS[:-1], BOX_KINDS[:-1])
    for table, columns in (("amendments", ("prev_sha256", "record_sha256")),
                           ("signoffs", ("decision_id", "prev_sha256", "record_sha256")),
                           ("box_decisions", ("decision_id",)), ("sentence_decisions", ("decision_id",)),
                           ("review_sessions", ("first_decision_at",)), ("drafts", ("bundle_sha256",))):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
    _restore_first_revision_triggers(connection)


def _restore_first_revision_triggers(connection: sa.Connection) -> None:
    """0001/0002's append-only triggers (0003 replaced them with its own set)."""
    tables = [t for t in integrity.APPEND_ONLY if t != "drafts"]
    if connection.dialect.name == "postgresql":
        for table in tables:
            connection.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                       "FOR EACH ROW EXECUTE FUNCTION gazex_refuse_change()")
        return
    statements = integrity.sqlite_triggers()
    for table in tables:
        for action in ("update", "delete"):
            connection.exec_driver_sql(statements[f"{table}_no_{action}"])
