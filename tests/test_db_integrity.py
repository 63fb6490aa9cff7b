"""A record that proves itself, on SQLite AND PostgreSQL: every direct-SQL edit of a signed review is refused by the
database's triggers, or -- with the triggers dropped first -- named by `gazex db check`."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from annotations_db import integrity
from annotations_db.maintenance import snapshot, verify_record
from db_support import READERS, gazex_db, populate

ALICE, BOB = READERS[0][0], READERS[1][0]


def _signed_review(service) -> dict:
    """Alice edits s1, resizes its box, signs ("accept the rest") and amends; a second review is signed after it."""
    study_ids, _ = populate(service, 2)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Edited.", error_category="finding")
    service.decide_box(ALICE, sid, "s1", "resized", box=(0.1, 0.1, 0.6, 0.6))
    signoff = service.sign_off(ALICE, sid, "modify", "FINDINGS: Edited.", active_ms=5_000, accept_rest=True)
    service.amend(ALICE, sid, "FINDINGS: Edited again.", "typo")
    later = service.open_session(BOB, study_ids[1]).session_id
    service.sign_off(BOB, later, "reject", "Rejected.", active_ms=1_000)
    ids = {"sid": sid, "signoff": signoff["signoff_id"], "later": later, "bob": _reader_id(service, BOB)}
    ids["draft"] = service.session_state(ALICE, sid).draft_id
    return ids


def _reader_id(service, username: str) -> int:
    return next(r.id for r in service.list_readers() if r.username == username)


# each edit: (name, SQL, what `db check` must name once the triggers are gone)
EDITS = [
    ("reopen a signed review", "UPDATE review_sessions SET status = 'open' WHERE id = :sid",
     ["review session {sid}: status 'open', but it was signed", "signoff {signoff} (session {sid}): hash mismatch"]),
    ("rewrite a draft's bundle", "UPDATE drafts SET bundle = :bundle WHERE id = :draft",
     ["draft {draft} (study", "signoff {signoff} (session {sid}): hash mismatch"]),
    ("forge an amendment with another reader's id",
     "INSERT INTO amendments (signoff_id, reader_id, final_report, reason, amended_at, prev_sha256, record_sha256) "
     "VALUES (:signoff, :bob, 'FINDINGS: forged.', 'forged', '2026-12-01 12:00:00', :zero, :zero)",
     ["(signoff {signoff}, session {sid}): written as reader {bob}", "inserted outside the service"]),
    ("edit a decision row", "UPDATE sentence_decisions SET final_text = 'Tampered.' WHERE session_id = :sid",
     ["signoff {signoff} (session {sid}): hash mismatch"]),
    ("add a decision to a signed review",
     "INSERT INTO sentence_decisions (session_id, seq, sentence_id, decision, original_text, final_text, "
     "edit_distance, server_ts) VALUES (:sid, 99, 's2', 'deleted', 'x', NULL, 1, '2026-12-01 12:00:00')",
     ["signoff {signoff} (session {sid}): hash mismatch"]),
    ("edit a sign-off row", "UPDATE signoffs SET final_report = 'FINDINGS: tampered.' WHERE id = :signoff",
     ["signoff {signoff} (session {sid}): hash mismatch"]),
    ("delete a sign-off", "DELETE FROM signoffs WHERE session_id = :later",
     ["review session {later}: status signed, but its sign-off is missing"]),
]


def _run(service, statement: str, ids: dict) -> None:
    bundle = json.dumps({"sentences": [{"id": "s1", "text": "Tampered AI text."}]})
    params = {**ids, "bundle": bundle, "zero": integrity.GENESIS}
    with service.engine.begin() as connection:
        connection.execute(text(statement), {k: v for k, v in params.items() if f":{k}" in statement})


@pytest.mark.parametrize("name,statement,named", EDITS, ids=[e[0] for e in EDITS])
def test_the_database_refuses_each_direct_edit_of_a_signed_review(service, name, statement, named):
    ids = _signed_review(service)
    assert verify_record(service.engine) == []
    before = snapshot(service.engine)
    with pytest.raises(DBAPIError):
        _run(service, statement, ids)
    assert snapshot(service.engine) == before
    assert verify_record(service.engine) == []


@pytest.mark.parametrize("name,statement,named", EDITS, ids=[e[0] for e in EDITS])
def test_with_the_triggers_dropped_db_check_names_each_tampered_record(service, db_url, capsys, name, statement,
                                                                       named):
    ids = _signed_review(service)
    if "amendments" in statement:
        service.amend(ALICE, ids["sid"], "FINDINGS: third.", "another")  # a forged row between genuine ones
    with service.engine.begin() as connection:
        integrity.drop_triggers(connection)
    _run(service, statement, ids)
    capsys.readouterr()
    assert gazex_db(["db", "check", "--url", db_url]) == 1
    out = capsys.readouterr().out
    assert "trigger signoffs_" in out and "missing" in out
    for line in named:
        assert line.format(**ids) in out, (line, out)


def test_dropping_or_disabling_or_altering_one_trigger_is_named(service, db_url, capsys):
    _signed_review(service)
    assert gazex_db(["db", "check", "--url", db_url]) == 0
    assert "ok: 2 sign-offs chained, head " in capsys.readouterr().out
    postgres = service.engine.dialect.name == "postgresql"
    with service.engine.begin() as connection:
        if postgres:
            connection.execute(text("DROP TRIGGER amendments_own_reader ON amendments"))
            connection.execute(text("ALTER TABLE signoffs DISABLE TRIGGER signoffs_append_only"))
            connection.execute(text("CREATE OR REPLACE FUNCTION gazex_protect_session() RETURNS trigger "
                                    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"))
        else:
            connection.execute(text("DROP TRIGGER amendments_own_reader"))
            connection.execute(text("DROP TRIGGER signoffs_no_update"))
            connection.execute(text("DROP TRIGGER review_sessions_final"))
            connection.execute(text("CREATE TRIGGER review_sessions_final BEFORE UPDATE ON review_sessions "
                                    "BEGIN SELECT 1; END"))
    assert gazex_db(["db", "check", "--url", db_url]) == 1
    lines = capsys.readouterr().out.splitlines()
    if postgres:
        assert "trigger amendments_own_reader on amendments is missing" in lines
        assert "trigger signoffs_append_only on signoffs is disabled" in lines
        assert "trigger function gazex_protect_session() was altered" in lines
    else:
        assert {"trigger amendments_own_reader is missing", "trigger signoffs_no_update is missing",
                "trigger review_sessions_final was altered"} <= set(lines)
    assert lines[-1] == f"{len(lines) - 1} problem(s) found"


def test_every_signoff_is_chained_over_draft_decisions_and_report(service):
    ids = _signed_review(service)
    with service.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, prev_sha256, record_sha256 FROM signoffs ORDER BY id")).all()
        amendment = connection.execute(text("SELECT prev_sha256, record_sha256 FROM amendments")).one()
    assert [r.prev_sha256 for r in rows] == [integrity.GENESIS, rows[0].record_sha256]
    assert len({r.record_sha256 for r in rows}) == 2 and all(len(r.record_sha256) == 64 for r in rows)
    assert amendment.prev_sha256 == rows[0].record_sha256
    state = service.session_state(ALICE, ids["sid"])
    assert state.signoff["record_sha256"] == rows[0].record_sha256


def test_db_check_refuses_a_missing_file_and_a_corrupt_one_in_one_line_and_creates_nothing(tmp_path, capsys):
    typo = tmp_path / "gazex.sqlite3-typo"
    assert gazex_db(["db", "check", "--url", f"sqlite:///{typo}"]) == 2
    assert gazex_db(["db", "check", "--data-dir", str(tmp_path / "no-such-dir")]) == 2
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"SQLite format 2\x00" + bytes(range(256)) * 40)
    assert gazex_db(["db", "check", "--url", f"sqlite:///{corrupt}"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"no database file at {typo}") and "no-such-dir" in lines[1]
    assert lines[2] == f"{corrupt} is not a readable SQLite database: file is not a database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.sqlite3"]


@pytest.mark.postgres
def test_db_check_on_a_postgres_database_that_does_not_exist_says_so_in_one_line(postgres_server_url, capsys):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_server_url).set(database=f"gazex_typo_{uuid.uuid4().hex[:8]}")
    assert gazex_db(["db", "check", "--url", url.render_as_string(hide_password=False)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot check ") and "does not exist" in lines[0]
