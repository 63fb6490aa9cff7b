"""Database health and diagnostics: integrity check, record verification (triggers, hash chain, forged or
altered rows), row snapshot (used by tests to prove "changed nothing")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select, text
from tqdm import tqdm

from . import integrity
from .models import Amendment, Base, Draft, ReviewSession, SignOff


def integrity_check(engine: Engine) -> str:
    """'ok' when the database is sound: SQLite PRAGMA integrity_check + foreign_key_check; on PostgreSQL a
    full read of every table (the server itself guarantees page integrity)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            result = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            return result if not broken else f"foreign key violations: {broken[:5]}"
        for table in Base.metadata.sorted_tables:
            connection.execute(select(table)).fetchall()
        return "ok"


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every existing table (ordered by primary key): compare two snapshots to prove nothing
    changed. Tables of later revisions that the database does not have yet are left out."""
    with engine.connect() as connection:
        present = set(inspect(connection).get_table_names())
        return {table.name: [tuple(row) for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables if table.name in present}


def checkpoint(engine: Engine) -> None:
    """SQLite: fold the WAL back into the main file (useful before copying the file)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


# --- the record proves itself (gazex db check) ----------------------------------------------------------------


def verify_record(engine: Engine, *, progress: bool = False) -> list[str]:
    """One line per protection trigger missing/altered and per tampered record: drafts whose bundle changed,
    sign-offs whose hash or chain link does not verify, signed sessions that changed, amendments forged or
    altered. [] when the record is intact."""
    with engine.connect() as connection:
        problems = integrity.trigger_problems(connection)
        problems += _draft_problems(connection)
        problems += _signoff_problems(connection, progress)
        problems += _amendment_problems(connection)
        problems += _signed_session_problems(connection)
    return problems


def chain_summary(engine: Engine) -> str:
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(SignOff.__table__)).scalar_one()
        return f"{count} sign-offs chained, head {integrity.chain_head(connection)}"


def _draft_problems(connection: Connection) -> list[str]:
    drafts = Draft.__table__
    problems = []
    for row in connection.execute(select(drafts.c.id, drafts.c.study_id, drafts.c.bundle, drafts.c.bundle_sha256)
                                  .order_by(drafts.c.id)):
        if row.bundle_sha256 != integrity.bundle_sha256(row.bundle):
            problems.append(f"draft {row.id} (study {row.study_id}): its bundle changed after it was saved")
    return problems


def _signoff_problems(connection: Connection, progress: bool) -> list[str]:
    signoffs = SignOff.__table__
    rows = connection.execute(select(signoffs).order_by(signoffs.c.id)).all()
    problems, previous, previous_id = [], integrity.GENESIS, None
    for row in tqdm(rows, desc="sign-offs", unit="sign-off", disable=not progress or None):
        name = f"signoff {row.id} (session {row.session_id})"
        if row.prev_sha256 != previous:
            after = f"sign-off {previous_id}" if previous_id else "the start of the chain"
            problems.append(f"{name}: chain link does not match {after} (a sign-off was removed, inserted or edited)")
        if row.record_sha256 != integrity.signoff_sha256(connection, row._mapping):
            problems.append(f"{name}: hash mismatch: its report, session, draft or decisions changed after signing")
        previous, previous_id = row.record_sha256, row.id
    return problems


def _amendment_problems(connection: Connection) -> list[str]:
    amendments, signoffs, sessions = Amendment.__table__, SignOff.__table__, ReviewSession.__table__
    query = (select(amendments, signoffs.c.record_sha256.label("signoff_sha256"), sessions.c.id.label("sid"),
                    sessions.c.reader_id.label("owner_id"))
             .join(signoffs, signoffs.c.id == amendments.c.signoff_id)
             .join(sessions, sessions.c.id == signoffs.c.session_id).order_by(amendments.c.id))
    problems, latest = [], {}
    for row in connection.execute(query):
        name = f"amendment {row.id} (signoff {row.signoff_id}, session {row.sid})"
        if row.reader_id != row.owner_id:
            problems.append(f"{name}: written as reader {row.reader_id}, but the review belongs to reader "
                            f"{row.owner_id} (forged)")
        expected_prev = latest.get(row.signoff_id, row.signoff_sha256)
        if row.prev_sha256 != expected_prev or row.record_sha256 != integrity.amendment_sha256(row._mapping):
            problems.append(f"{name}: hash mismatch: altered, or inserted outside the service")
        latest[row.signoff_id] = row.record_sha256
    return problems


def _signed_session_problems(connection: Connection) -> list[str]:
    sessions, signoffs = ReviewSession.__table__, SignOff.__table__
    query = (select(sessions.c.id, sessions.c.status, signoffs.c.id.label("signoff_id"))
             .outerjoin(signoffs, signoffs.c.session_id == sessions.c.id)
             .where((sessions.c.status == "signed") | signoffs.c.id.is_not(None)).order_by(sessions.c.id))
    problems = []
    for row in connection.execute(query):
        if row.signoff_id is None:
            problems.append(f"review session {row.id}: status signed, but its sign-off is missing")
        elif row.status != "signed":
            problems.append(f"review session {row.id}: status {row.status!r}, but it was signed "
                            f"(signoff {row.signoff_id})")
    return problems
