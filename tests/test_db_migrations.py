"""Alembic migrations shipped in the package: upgrade a populated first-revision database to head."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import inspect

from annotations_db import ReviewService
from annotations_db.engine import make_engine
from annotations_db.integrity import GENESIS
from annotations_db.maintenance import integrity_check, verify_record
from annotations_db.migrations import FIRST_REVISION, current_revision, head_revision, upgrade
from db_legacy import legacy_database, raw_rows
from db_support import gazex_db as gazex


def test_upgrade_from_first_revision_to_head_keeps_the_data(db_url):
    before = legacy_database(db_url)
    assert "finetune_runs" not in before and before["signoffs"] and before["interaction_events"]

    service = ReviewService.open(db_url)  # runs the migrations to head
    try:
        assert current_revision(service.engine) == head_revision() != FIRST_REVISION
        after = raw_rows(service.engine, {table: list(rows[0]) for table, rows in before.items() if rows})
        assert {table: after[table] for table in before if before[table]} == {t: r for t, r in before.items() if r}
        assert after["finetune_runs"] == [] and after["frozen_splits"] == []
        indexes = {ix["name"] for ix in inspect(service.engine).get_indexes("signoffs")}
        assert "ix_signoffs_signed_at" in indexes
        reviews = service.signed_reviews_since()
        assert [r["final_report"] for r in reviews] == ["FINDINGS: Edited again.", "FINDINGS: as drafted."]
        run = service.start_finetune_run(base_model_version_id=reviews[0]["model_version_id"], params={})
        assert service.finetune_runs()[0]["id"] == run
        assert integrity_check(service.engine) == "ok"
        _assert_upgrade_backfilled(service)
    finally:
        service.close()


def _assert_upgrade_backfilled(service: ReviewService) -> None:
    """0003: every existing sign-off and amendment is in the hash chain, the chain verifies, the triggers are in
    place, first-decision times are filled (a signed review without decisions stays "viewed"-only)."""
    rows = raw_rows(service.engine)
    chain = [(r["prev_sha256"], r["record_sha256"]) for r in rows["signoffs"]]
    assert chain[0][0] == GENESIS and chain[1][0] == chain[0][1] and all(len(sha) == 64 for _, sha in chain)
    assert rows["amendments"][0]["prev_sha256"] == chain[0][1]
    assert all(len(r["bundle_sha256"]) == 64 for r in rows["drafts"])
    assert [r["first_decision_at"] is not None for r in rows["review_sessions"]] == [True, False, False]
    assert verify_record(service.engine) == []
    service.decide_sentence("alice", 3, "s1", "accepted")  # the open legacy session takes decisions
    assert [i.status for i in service.worklist("alice")][:2] == ["signed", "in_progress"]


def test_gazex_db_upgrade_command(db_url, capsys):
    assert upgrade(db_url, FIRST_REVISION) == FIRST_REVISION
    assert gazex(["db", "upgrade", "--url", db_url]) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
    assert gazex(["db", "upgrade", "--url", db_url]) == 0  # idempotent


def _open_and_close(url: str) -> None:
    ReviewService.open(url).close()


def test_concurrent_first_opens_migrate_once(db_url):
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_open_and_close, args=(db_url,)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * 4
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
