"""A record that proves itself: the sign-off hash chain and the database triggers that protect signed reviews.

Hash chain. Every sign-off stores ``record_sha256`` = SHA-256 over canonical JSON of: the sign-off (decision,
final report, times), its session row (reader, study, draft, status, times), the SHA-256 of the draft bundle
shown, every sentence and box decision row of the session, and ``prev_sha256`` = the ``record_sha256`` of the
sign-off before it (by id; :data:`GENESIS` for the first). An amendment stores the same over its own row,
chained to the previous amendment of that sign-off (or to the sign-off). Drafts store ``bundle_sha256``.
The material is always read back from the database (:func:`signoff_material`), by the service when it signs
and by ``gazex db check`` when it verifies, so both compute over the same values on SQLite and PostgreSQL.

A chain without a secret cannot stop someone who rewrites the file AND recomputes every later hash; ``db check``
prints the chain head (count and hash) so a site can note it elsewhere and compare.

Triggers (created by migration 0003, verified by ``gazex db check``): append-only tables refuse UPDATE/DELETE;
a session refuses any change once it is no longer open and is never deleted; decisions are inserted only into
an open session; an amendment is inserted only by the session's own reader.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from .models import Amendment, BoxDecisionRow, Draft, ReviewSession, SentenceDecisionRow, SignOff

GENESIS = "0" * 64
CHAIN_LOCK_KEY = 0x6A7A6579  # PostgreSQL advisory lock: one sign-off extends the chain at a time

APPEND_ONLY = ("interaction_events", "sentence_decisions", "box_decisions", "signoffs", "amendments",
               "model_version_events", "frozen_splits", "drafts")
_SESSION_COLUMNS = ("id", "reader_id", "study_id", "draft_id", "experiment_id", "assignment_id", "arm", "status",
                    "opened_at", "closed_at", "first_decision_at")
_SIGNOFF_COLUMNS = ("session_id", "decision", "final_report", "total_ms", "active_ms", "idle_ms", "hidden_ms",
                    "client_ts", "signed_at", "decision_id", "prev_sha256")
_AMENDMENT_COLUMNS = ("signoff_id", "reader_id", "final_report", "reason", "amended_at", "prev_sha256")
_COMMON_DECISION_COLUMNS = ("id", "session_id", "seq", "decision", "duration_ms", "client_ts", "server_ts",
                            "decision_id")
_DECISION_COLUMNS = {
    "sentence_decisions": _COMMON_DECISION_COLUMNS + ("sentence_id", "section", "after_sentence_id", "original_text",
                                                      "final_text", "edit_distance", "error_category",
                                                      "clinically_significant"),
    "box_decisions": _COMMON_DECISION_COLUMNS + ("box_id", "x_min", "y_min", "x_max", "y_max", "linked_sentence_id"),
}


# --- hashing ---------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                      default=_plain).encode("ascii")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not hashable record material")


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def bundle_sha256(bundle: Any) -> str:
    return sha256_hex(bundle)


def _row(mapping: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: _normal(mapping[name]) for name in columns}


def _normal(value: Any) -> Any:
    """12000 and 12000.0 hash alike (a Float column may be given an int and read back a float)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _decision_rows(connection: Connection, model: type, session_id: int) -> list[dict[str, Any]]:
    table = model.__table__
    columns = _DECISION_COLUMNS[table.name]
    rows = connection.execute(select(*(table.c[name] for name in columns))
                              .where(table.c.session_id == session_id).order_by(table.c.id))
    return [_row(row._mapping, columns) for row in rows]


def signoff_material(connection: Connection, signoff: dict[str, Any]) -> dict[str, Any]:
    """What a sign-off's hash covers, read from the database (the sign-off's own values are given)."""
    sessions = ReviewSession.__table__
    session_row = connection.execute(select(*(sessions.c[name] for name in _SESSION_COLUMNS))
                                     .where(sessions.c.id == signoff["session_id"])).first()
    draft_sha = None
    if session_row is not None and session_row.draft_id is not None:
        bundle = connection.execute(select(Draft.__table__.c.bundle)
                                    .where(Draft.__table__.c.id == session_row.draft_id)).scalar()
        draft_sha = bundle_sha256(bundle) if bundle is not None else None
    return {"signoff": _row(signoff, _SIGNOFF_COLUMNS),
            "session": _row(session_row._mapping, _SESSION_COLUMNS) if session_row is not None else None,
            "draft_sha256": draft_sha,
            "sentence_decisions": _decision_rows(connection, SentenceDecisionRow, signoff["session_id"]),
            "box_decisions": _decision_rows(connection, BoxDecisionRow, signoff["session_id"])}


def signoff_sha256(connection: Connection, signoff: dict[str, Any]) -> str:
    return sha256_hex(signoff_material(connection, signoff))


def amendment_sha256(amendment: dict[str, Any]) -> str:
    return sha256_hex(_row(amendment, _AMENDMENT_COLUMNS))


def chain_head(connection: Connection) -> str:
    """record_sha256 of the latest sign-off (GENESIS when there is none)."""
    table = SignOff.__table__
    head = connection.execute(select(table.c.record_sha256).order_by(table.c.id.desc()).limit(1)).scalar()
    return head or GENESIS


def lock_chain(connection: Connection) -> None:
    """Serialises chain extension (PostgreSQL; SQLite writers are serialised already)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})


def amendment_prev(connection: Connection, signoff_id: int, signoff_sha: str | None) -> str:
    table = Amendment.__table__
    previous = connection.execute(select(table.c.record_sha256).where(table.c.signoff_id == signoff_id)
                                  .order_by(table.c.id.desc()).limit(1)).scalar()
    return previous or signoff_sha or GENESIS


# --- triggers --------------------------------------------------------------------------------------------

_APPEND_ONLY_MESSAGE = "is append-only (provenance); record an amendment or a new decision instead"
SESSION_MESSAGE = "review_sessions: a signed or closed review never changes and no review is deleted"
OPEN_ONLY_MESSAGE = "decisions are recorded only in an open review session"
AMENDMENT_MESSAGE = "amendments: only the reader of the signed review amends it, through the service"


def sqlite_triggers() -> dict[str, str]:
    """name -> CREATE TRIGGER statement."""
    triggers = {}
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            triggers[f"{table}_no_{action.lower()}"] = (
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} {_APPEND_ONLY_MESSAGE}'); END")
    triggers["review_sessions_final"] = (
        "CREATE TRIGGER review_sessions_final BEFORE UPDATE ON review_sessions WHEN OLD.status <> 'open' "
        f"BEGIN SELECT RAISE(ABORT, '{SESSION_MESSAGE}'); END")
    triggers["review_sessions_no_delete"] = (
        f"CREATE TRIGGER review_sessions_no_delete BEFORE DELETE ON review_sessions "
        f"BEGIN SELECT RAISE(ABORT, '{SESSION_MESSAGE}'); END")
    for table in ("sentence_decisions", "box_decisions"):
        triggers[f"{table}_open_only"] = (
            f"CREATE TRIGGER {table}_open_only BEFORE INSERT ON {table} "
            "WHEN (SELECT status FROM review_sessions WHERE id = NEW.session_id) IS NOT 'open' "
            f"BEGIN SELECT RAISE(ABORT, '{OPEN_ONLY_MESSAGE}'); END")
    triggers["amendments_own_reader"] = (
        "CREATE TRIGGER amendments_own_reader BEFORE INSERT ON amendments "
        "WHEN NEW.reader_id IS NOT (SELECT r.reader_id FROM signoffs s JOIN review_sessions r ON r.id = s.session_id "
        "WHERE s.id = NEW.signoff_id) "
        f"BEGIN SELECT RAISE(ABORT, '{AMENDMENT_MESSAGE}'); END")
    return triggers


def postgres_functions() -> dict[str, str]:
    """function name -> plpgsql body (between the $$)."""
    return {
        "gazex_refuse_change": (
            f"BEGIN RAISE EXCEPTION '% {_APPEND_ONLY_MESSAGE}', TG_TABLE_NAME; END"),
        "gazex_protect_session": (
            f"BEGIN IF TG_OP = 'DELETE' OR OLD.status <> 'open' THEN RAISE EXCEPTION '{SESSION_MESSAGE}'; END IF; "
            "RETURN NEW; END"),
        "gazex_decision_open_only": (
            "BEGIN IF (SELECT status FROM review_sessions WHERE id = NEW.session_id) IS DISTINCT FROM 'open' THEN "
            f"RAISE EXCEPTION '{OPEN_ONLY_MESSAGE}'; END IF; RETURN NEW; END"),
        "gazex_amendment_own_reader": (
            "BEGIN IF NEW.reader_id IS DISTINCT FROM (SELECT r.reader_id FROM signoffs s JOIN review_sessions r "
            "ON r.id = s.session_id WHERE s.id = NEW.signoff_id) THEN "
            f"RAISE EXCEPTION '{AMENDMENT_MESSAGE}'; END IF; RETURN NEW; END"),
    }


def postgres_triggers() -> dict[str, tuple[str, str, str]]:
    """name -> (table, timing/events, function)."""
    triggers = {f"{table}_append_only": (table, "BEFORE UPDATE OR DELETE", "gazex_refuse_change")
                for table in APPEND_ONLY}
    triggers["review_sessions_final"] = ("review_sessions", "BEFORE UPDATE OR DELETE", "gazex_protect_session")
    for table in ("sentence_decisions", "box_decisions"):
        triggers[f"{table}_open_only"] = (table, "BEFORE INSERT", "gazex_decision_open_only")
    triggers["amendments_own_reader"] = ("amendments", "BEFORE INSERT", "gazex_amendment_own_reader")
    return triggers


def create_triggers(connection: Connection) -> None:
    """(Re)creates every protection trigger of this module (idempotent)."""
    if connection.dialect.name == "postgresql":
        for name, body in postgres_functions().items():
            connection.execute(text(  # text(): psycopg would read the % in a body as a placeholder
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$"))
        for name, (table, events, function) in postgres_triggers().items():
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            connection.exec_driver_sql(f"CREATE TRIGGER {name} {events} ON {table} FOR EACH ROW "
                                       f"EXECUTE FUNCTION {function}()")
        return
    for name, statement in sqlite_triggers().items():
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        connection.exec_driver_sql(statement)


def drop_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        for name, (table, _, _) in postgres_triggers().items():
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        return
    for name in sqlite_triggers():
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def trigger_problems(connection: Connection) -> list[str]:
    """One line per protection trigger (or trigger function) that is missing, disabled or altered."""
    if connection.dialect.name == "postgresql":
        return _postgres_trigger_problems(connection)
    present = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all())
    problems = []
    for name, statement in sqlite_triggers().items():
        if name not in present:
            problems.append(f"trigger {name} is missing")
        elif _squash(present[name]) != _squash(statement):
            problems.append(f"trigger {name} was altered")
    return problems


def _postgres_trigger_problems(connection: Connection) -> list[str]:
    rows = connection.exec_driver_sql(
        "SELECT t.tgname, c.relname, t.tgenabled, p.proname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal").all()
    present = {name: (table, enabled, function) for name, table, enabled, function in rows}
    problems = []
    for name, (table, _, function) in postgres_triggers().items():
        found = present.get(name)
        if found is None or found[0] != table:
            problems.append(f"trigger {name} on {table} is missing")
        elif found[1] == "D":
            problems.append(f"trigger {name} on {table} is disabled")
        elif found[2] != function:
            problems.append(f"trigger {name} on {table} calls {found[2]}() instead of {function}()")
    bodies = dict(connection.execute(text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'gazex_%'")).all())
    for name, body in postgres_functions().items():
        if name not in bodies:
            problems.append(f"trigger function {name}() is missing")
        elif _squash(bodies[name]) != _squash(body):
            problems.append(f"trigger function {name}() was altered")
    return problems


def _squash(sql: str) -> str:
    return re.sub(r"\s+", " ", sql or "").strip()
