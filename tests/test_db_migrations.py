"""Alembic migrations shipped in the package: upgrade a populated first-revision database to head."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import inspect

from annotations_db import ReviewService
from annotations_db.engine import make_engine
from annotations_db.maintenance import integrity_check, snapshot
from annotations_db.migrations import FIRST_REVISION, current_revision, head_revision, upgrade
from db_support import ADMIN, READERS, gazex_db as gazex, populate

ALICE = READERS[0][0]


def _populate_first_revision(url: str) -> dict:
    """Fills every first-revision table through the service, on a database left at the first revision."""
    assert upgrade(url, FIRST_REVISION) == FIRST_REVISION
    engine = make_engine(url)
    service = ReviewService(engine)  # no automatic upgrade
    study_ids, model_id = populate(service, 3)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.record_event(ALICE, sid, "view", {"zoom": 2}, 1_700_000_000_000)
    service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Edited.", error_category="finding",
                            clinically_significant=True)
    service.decide_box(ALICE, sid, "s1", "resized", box=(0.1, 0.1, 0.9, 0.9))
    service.sign_off(ALICE, sid, "modify", "FINDINGS: Edited.", active_ms=4_000)
    service.amend(ALICE, sid, "FINDINGS: Edited again.", "typo")
    service.create_experiment("pilot", design="crossover", arms=["ai_draft", "no_ai"], readers=[ALICE],
                              study_ids=study_ids, washout_days=28, acting=ADMIN[0])
    service.promote_model_version(service.register_model_version("gazex", "v2", "h2", parent_id=model_id).id)
    before = snapshot(engine)
    engine.dispose()
    return before


def test_upgrade_from_first_revision_to_head_keeps_the_data(db_url):
    before = _populate_first_revision(db_url)
    assert "finetune_runs" not in before and before["signoffs"] and before["interaction_events"]

    service = ReviewService.open(db_url)  # runs the migrations to head
    try:
        assert current_revision(service.engine) == head_revision() != FIRST_REVISION
        after = snapshot(service.engine)
        assert {table: after[table] for table in before} == before
        assert after["finetune_runs"] == [] and after["frozen_splits"] == []
        indexes = {ix["name"] for ix in inspect(service.engine).get_indexes("signoffs")}
        assert "ix_signoffs_signed_at" in indexes
        (review,) = service.signed_reviews_since()
        assert review["final_report"] == "FINDINGS: Edited again."
        run = service.start_finetune_run(base_model_version_id=review["model_version_id"], params={})
        assert service.finetune_runs()[0]["id"] == run
        assert integrity_check(service.engine) == "ok"
    finally:
        service.close()


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
