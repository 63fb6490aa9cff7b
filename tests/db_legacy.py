"""A populated first-revision database (before the record-integrity revision 0003), written with plain SQL: the
service's models are at head, so they cannot write an older schema. Used by tests/test_db_migrations.py."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect, text

from annotations_db.engine import make_engine
from annotations_db.migrations import upgrade

LEGACY_REVISION = "0001"
T0 = "2026-11-30 10:00:00.000000"
T1 = "2026-11-30 10:05:00.250000"


def _bundle(uid: str) -> str:
    sentences = [{"id": f"s{i}", "section": "findings", "text": f"Sentence {i} of {uid}.", "confidence": 0.9,
                  "observation_box": {"x_min": 0.1, "y_min": 0.1, "x_max": 0.5, "y_max": 0.5} if i < 3 else None,
                  "trajectory": []} for i in (1, 2, 3)]
    return json.dumps({"schema": "gazex.evidence/1", "sentences": sentences, "findings": []})


ROWS: list[tuple[str, dict[str, Any]]] = [
    ("readers", {"id": 1, "username": "chief", "role": "admin", "password_hash": "x", "created_at": T0}),
    ("readers", {"id": 2, "username": "alice", "role": "reader", "password_hash": "x", "created_at": T0}),
    ("readers", {"id": 3, "username": "bob", "role": "reader", "password_hash": "x", "created_at": T0}),
    ("model_versions", {"id": 1, "name": "gazex", "version": "v1", "weights_hash": "h", "metrics": "{}",
                        "status": "active", "active_slot": 1, "created_at": T0}),
    *[("studies", {"id": i, "study_uid": f"1.2.{i}", "meta": "{}", "created_at": T0}) for i in (1, 2, 3)],
    *[("images", {"id": i, "study_id": i, "file_path": f"/data/{i}.dcm", "meta": "{}"}) for i in (1, 2, 3)],
    *[("drafts", {"id": i, "study_id": i, "model_version_id": 1, "bundle": _bundle(f"1.2.{i}"), "created_at": T0})
      for i in (1, 2, 3)],
    ("review_sessions", {"id": 1, "reader_id": 2, "study_id": 1, "draft_id": 1, "status": "signed", "last_seq": 4,
                         "opened_at": T0, "closed_at": T1}),
    ("review_sessions", {"id": 2, "reader_id": 3, "study_id": 1, "draft_id": 1, "status": "signed", "last_seq": 1,
                         "opened_at": T0, "closed_at": T1}),
    ("review_sessions", {"id": 3, "reader_id": 2, "study_id": 2, "draft_id": 2, "status": "open", "last_seq": 0,
                         "opened_at": T0}),
    ("interaction_events", {"id": 1, "session_id": 1, "seq": 1, "event_type": "view", "payload": "{}",
                            "client_ts": 1.7e12, "server_ts": T0}),
    ("sentence_decisions", {"id": 1, "session_id": 1, "seq": 2, "sentence_id": "s1", "decision": "edited",
                            "original_text": "Sentence 1 of 1.2.1.", "final_text": "Edited.", "edit_distance": 17,
                            "error_category": "finding", "clinically_significant": True, "duration_ms": 812.0,
                            "client_ts": 1.7e12, "server_ts": T0}),
    ("box_decisions", {"id": 1, "session_id": 1, "seq": 3, "box_id": "s1", "decision": "resized", "x_min": 0.1,
                       "y_min": 0.1, "x_max": 0.9, "y_max": 0.9, "linked_sentence_id": "s1", "server_ts": T1}),
    ("signoffs", {"id": 1, "session_id": 1, "decision": "modify", "final_report": "FINDINGS: Edited.",
                  "total_ms": 300250.0, "active_ms": 4000.0, "idle_ms": 0.0, "hidden_ms": 0.0, "signed_at": T1}),
    ("signoffs", {"id": 2, "session_id": 2, "decision": "accept", "final_report": "FINDINGS: as drafted.",
                  "total_ms": 300250.0, "active_ms": 1000.0, "idle_ms": 0.0, "hidden_ms": 0.0, "signed_at": T1}),
    ("amendments", {"id": 1, "signoff_id": 1, "reader_id": 2, "final_report": "FINDINGS: Edited again.",
                    "reason": "typo", "amended_at": T1}),
]


def legacy_database(url: str) -> dict[str, list[dict[str, Any]]]:
    """Creates the database at the first revision with ROWS; returns every row of every table as dicts."""
    assert upgrade(url, LEGACY_REVISION) == LEGACY_REVISION
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for table, values in ROWS:
                names = ", ".join(values)
                marks = ", ".join(f":{name}" for name in values)
                connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), values)
            if engine.dialect.name == "postgresql":
                for table in {t for t, _ in ROWS}:
                    connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                            f"(SELECT MAX(id) FROM {table}))"))
        return raw_rows(engine)
    finally:
        engine.dispose()


def raw_rows(engine: Any, columns: dict[str, list[str]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (or only the given columns), ordered by the first column."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        result = {}
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            names = (columns or {}).get(table) or [c["name"] for c in inspector.get_columns(table)]
            rows = connection.execute(text(f"SELECT {', '.join(names)} FROM {table} ORDER BY {names[0]}"))
            result[table] = [dict(row._mapping) for row in rows]
        return result
