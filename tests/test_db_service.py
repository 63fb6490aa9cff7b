"""ReviewService behaviour on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from annotations_db import AccessDenied, InvalidInput, InvalidTransition, NotFound, ReviewService
from annotations_db.maintenance import snapshot
from annotations_db.models import InteractionEvent, SentenceDecisionRow, SignOff
from db_support import ADMIN, READERS, bundle, populate

ALICE, BOB = READERS[0][0], READERS[1][0]


def test_open_creates_sqlite_file_under_data_dir_with_wal_and_foreign_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("GAZEX_DATABASE_URL", raising=False)
    monkeypatch.setenv("GAZEX_DATA_DIR", str(tmp_path / "home"))
    svc = ReviewService.open()
    try:
        assert (tmp_path / "home" / "gazex.sqlite3").exists()
        with svc.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        svc.close()


def test_readers_passwords_are_salted_hashes_and_only_admins_create_readers(service):
    populate(service)
    assert service.authenticate(*READERS[0]).username == ALICE
    assert service.authenticate(ALICE, "wrong-password") is None
    assert service.authenticate("nobody", "whatever-1") is None
    with pytest.raises(AccessDenied):
        service.create_reader("carol", "carol-pass-1", acting=ALICE)
    with pytest.raises(AccessDenied):
        service.create_reader("carol", "carol-pass-1")
    with pytest.raises(InvalidTransition):
        service.create_reader(ALICE, "another-pass", acting=ADMIN[0])
    with pytest.raises(InvalidInput):
        service.create_reader("carol", "short", acting=ADMIN[0])
    with pytest.raises(InvalidInput):
        service.create_reader("carol", "carol-pass-1", "superuser", acting=ADMIN[0])
    assert [r.username for r in service.list_readers()] == [ADMIN[0], ALICE, BOB]


def test_study_registration_is_idempotent(service):
    first = service.register_study("1.2.3", "/a.dcm", width=10, height=20, meta={"view": "PA"})
    again = service.register_study("1.2.3", "/other.dcm")
    assert again == first and first.image_path == "/a.dcm" and first.meta == {"view": "PA"}
    assert service.get_study(first.id) == first
    with pytest.raises(NotFound):
        service.get_study(999)


def test_exactly_one_active_model_version_promote_and_rollback(service):
    v1 = service.register_model_version("gazex", "v1", "h1", status="active")
    v2 = service.register_model_version("gazex", "v2", "h2", parent_id=v1.id)
    assert service.active_model_version().id == v1.id and v2.status == "candidate"
    assert service.promote_model_version(v2.id).status == "active"
    statuses = {m.version: m.status for m in service.list_model_versions()}
    assert statuses == {"v1": "retired", "v2": "active"}
    assert service.rollback_model_version().id == v1.id
    assert [m.status for m in service.list_model_versions()] == ["active", "retired"]
    v3 = service.register_model_version("gazex", "v3", "h3", status="active")  # no parent
    assert service.rollback_model_version().id == v1.id  # back to the previously active one
    assert sum(m.status == "active" for m in service.list_model_versions()) == 1
    with pytest.raises(InvalidTransition):
        service.register_model_version("gazex", "v3", "h3")
    with pytest.raises(InvalidTransition):
        service.set_model_version_status(v1.id, "retired")
    assert service.set_model_version_status(v3.id, "candidate").status == "candidate"


def test_drafts_one_per_study_and_model_version_and_never_change(service):
    study_ids, model_id = populate(service, 1)
    draft_id, stored = service.get_draft(study_ids[0])
    assert stored == bundle("1.2.826.0.1.0")
    assert service.save_draft(study_ids[0], model_id, bundle("1.2.826.0.1.0")) == draft_id
    with pytest.raises(InvalidTransition):
        service.save_draft(study_ids[0], model_id, bundle("1.2.826.0.1.0", 2))
    with pytest.raises(InvalidInput):
        service.save_draft(study_ids[0], model_id, {"sentences": [{"id": "s1"}, {"id": "s1"}]})


def test_worklist_and_session_lifecycle_restores_state(service):
    study_ids, _ = populate(service, 3)
    items = service.worklist(ALICE)
    assert [i.study.id for i in items] == study_ids and {i.status for i in items} == {"unread"}
    assert all(i.has_draft for i in items) and [i.position for i in items] == [1, 2, 3]

    state = service.open_session(ALICE, study_ids[0])
    sid = state.session_id
    assert state.status == "open" and state.draft["sentences"][0]["id"] == "s1" and state.last_seq == 0
    assert service.record_event(ALICE, sid, "view", {"zoom": 1}, 1_700_000_000_000).seq == 1
    edited = service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Sentence one, edited.",
                                     error_category="location", clinically_significant=True, duration_ms=900.0)
    assert edited.edit_distance > 0 and edited.original_text == "Sentence 1 of 1.2.826.0.1.0."
    added = service.add_sentence(ALICE, sid, "A human sentence.", section="impression", after_sentence_id="s2")
    assert added.sentence_id == "h1" and added.decision == "added"
    drawn = service.decide_box(ALICE, sid, None, "added", box=(0.1, 0.1, 0.2, 0.2), linked_sentence_id="h1")
    assert drawn.box_id == "b1"
    moved = service.decide_box(ALICE, sid, "s1", "moved", box=(0.2, 0.2, 0.4, 0.4))
    assert moved.linked_sentence_id == "s1"
    accepted = service.decide_box(ALICE, sid, "s2", "accepted")
    assert (accepted.x_min, accepted.x_max) == pytest.approx((0.2, 0.4))  # the draft box

    assert service.open_session(ALICE, study_ids[0]).session_id == sid  # reopen, same session
    restored = service.session_state(ALICE, sid)
    assert restored.last_seq == 6
    assert {d.sentence_id: d.decision for d in restored.sentences} == {"s1": "edited", "h1": "added"}
    assert {b.box_id: b.decision for b in restored.boxes} == {"b1": "added", "s1": "moved", "s2": "accepted"}
    assert [i.status for i in service.worklist(ALICE)] == ["in_progress", "unread", "unread"]
    assert [i.status for i in service.worklist(BOB)] == ["unread"] * 3


def test_later_decision_supersedes_but_both_rows_remain(service):
    study_ids, _ = populate(service, 1)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.decide_sentence(ALICE, sid, "s1", "accepted")
    service.decide_sentence(ALICE, sid, "s1", "deleted", error_category="finding", clinically_significant=True)
    service.add_sentence(ALICE, sid, "First text.")
    service.decide_sentence(ALICE, sid, "h1", "edited", final_text="Second text.")
    state = service.session_state(ALICE, sid)
    current = {d.sentence_id: d for d in state.sentences}
    assert current["s1"].decision == "deleted" and current["s1"].final_text is None
    assert current["h1"].decision == "added" and current["h1"].final_text == "Second text."
    history = snapshot(service.engine)["sentence_decisions"]
    assert len(history) == 4


def test_sign_off_is_immutable_and_amendments_are_new_rows(service):
    study_ids, _ = populate(service, 1)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    signed = service.sign_off(ALICE, sid, "accept", "FINDINGS: normal.", active_ms=12_000, idle_ms=3_000, accept_rest=True,
                              hidden_ms=500, client_ts=1_700_000_009_000)
    assert signed["decision"] == "accept" and signed["total_ms"] >= 0 and signed["active_ms"] == 12_000
    before = snapshot(service.engine)
    with pytest.raises(InvalidTransition):
        service.sign_off(ALICE, sid, "modify", "again", active_ms=1)
    assert snapshot(service.engine) == before
    amended = service.amend(ALICE, sid, "FINDINGS: small effusion.", "missed finding")
    assert amended["final_report"] == "FINDINGS: normal." and amended["current_report"] == "FINDINGS: small effusion."
    assert service.session_state(ALICE, sid).signoff["amendments"][0]["reason"] == "missed finding"
    assert [i.status for i in service.worklist(ALICE)] == ["signed"]
    assert service.open_session(ALICE, study_ids[0]).status == "signed"  # reopening shows the signed case


@pytest.mark.parametrize("table", [SignOff, InteractionEvent, SentenceDecisionRow])
def test_database_triggers_refuse_update_and_delete_of_the_audit_record(service, table):
    study_ids, _ = populate(service, 1)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.record_event(ALICE, sid, "view", {}, None)
    service.decide_sentence(ALICE, sid, "s1", "accepted")
    service.sign_off(ALICE, sid, "accept", "report", active_ms=1.0, accept_rest=True)
    before = snapshot(service.engine)
    for statement in (update(table).values(session_id=sid), delete(table)):
        with pytest.raises((DBAPIError, IntegrityError), match="append-only"):
            with service.engine.begin() as connection:
                connection.execute(statement)
    assert snapshot(service.engine) == before


def test_invalid_transitions_and_bad_input_are_refused_and_change_nothing(service):
    study_ids, _ = populate(service, 2)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.decide_sentence(ALICE, sid, "s1", "accepted")
    signed = service.open_session(ALICE, study_ids[1]).session_id
    service.sign_off(ALICE, signed, "accept", "report", active_ms=1.0, accept_rest=True)
    refusals = [
        (InvalidTransition, lambda: service.decide_sentence(ALICE, sid, "s99", "accepted")),
        (InvalidTransition, lambda: service.decide_box(ALICE, sid, "b7", "rejected")),
        (InvalidTransition, lambda: service.decide_box(ALICE, sid, "s3", "accepted")),  # sentence without a box
        (InvalidTransition, lambda: service.add_sentence(ALICE, sid, "x", after_sentence_id="s42")),
        (InvalidTransition, lambda: service.sign_off(ALICE, signed, "accept", "again", active_ms=1.0)),
        (InvalidTransition, lambda: service.record_event(ALICE, signed, "view", {}, None)),
        (InvalidTransition, lambda: service.decide_sentence(ALICE, signed, "s1", "deleted")),
        (InvalidTransition, lambda: service.amend(ALICE, sid, "new report", "reason")),
        (AccessDenied, lambda: service.record_event(BOB, sid, "view", {}, None)),
        (AccessDenied, lambda: service.decide_sentence(BOB, sid, "s1", "accepted")),
        (AccessDenied, lambda: service.sign_off(BOB, sid, "accept", "r", active_ms=1.0)),
        (AccessDenied, lambda: service.session_state(BOB, sid)),
        (AccessDenied, lambda: service.record_event("mallory", sid, "view", {}, None)),
        (AccessDenied, lambda: service.decide_sentence(ADMIN[0], sid, "s1", "deleted")),  # admins read, never write
        (NotFound, lambda: service.record_event(ALICE, 9999, "view", {}, None)),
        (NotFound, lambda: service.open_session(ALICE, 9999)),
        (InvalidInput, lambda: service.decide_sentence(ALICE, sid, "s1", "maybe")),
        (InvalidInput, lambda: service.decide_sentence(ALICE, sid, "s1", "edited")),  # no text
        (InvalidInput, lambda: service.decide_sentence(ALICE, sid, "s1", "edited", final_text="x",
                                                       error_category="typo")),
        (InvalidInput, lambda: service.decide_box(ALICE, sid, None, "added", box=(0.5, 0.5, 0.1, 0.1))),
        (InvalidInput, lambda: service.decide_box(ALICE, sid, None, "added", box=(0.1, 0.1, 1.5, 0.9))),
        (InvalidInput, lambda: service.decide_box(ALICE, sid, None, "added")),
        (InvalidInput, lambda: service.decide_box(ALICE, sid, "s1", "moved")),
        (InvalidInput, lambda: service.record_event(ALICE, sid, "", {}, None)),
        (InvalidInput, lambda: service.record_event(ALICE, sid, "view", {}, -5.0)),
        (InvalidInput, lambda: service.record_event(ALICE, str(sid), "view", {}, None)),
        (InvalidInput, lambda: service.record_event(ALICE, sid, "view", {"x": {1, 2}}, None)),
        (InvalidInput, lambda: service.record_event(ALICE, sid, "view", {"x": "y" * 70_000}, None)),
        (InvalidInput, lambda: service.session_state(ALICE, "1")),
        (InvalidInput, lambda: service.sign_off(ALICE, sid, "perhaps", "r", active_ms=1.0)),
        (InvalidInput, lambda: service.sign_off(ALICE, sid, "accept", "r", active_ms=float("nan"))),
        (InvalidInput, lambda: service.add_sentence(ALICE, sid, "   ")),
    ]
    before = snapshot(service.engine)
    for error, call in refusals:
        with pytest.raises(error) as info:
            call()
        message = str(info.value)
        assert message and "\n" not in message
    assert snapshot(service.engine) == before


def test_admin_reads_unblinded_sessions_but_not_blinded_ones(service):
    study_ids, _ = populate(service, 2)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    assert service.session_state(ADMIN[0], sid).reader == ALICE


def test_session_opened_before_its_draft_gets_the_draft_when_reopened(service):
    study_ids, model_id = populate(service, 1, drafts=False)
    state = service.open_session(ALICE, study_ids[0])
    assert state.draft is None and not service.worklist(ALICE)[0].has_draft
    service.save_draft(study_ids[0], model_id, bundle("late"))
    assert service.open_session(ALICE, study_ids[0]).draft["sentences"][0]["text"] == "Sentence 1 of late."


def test_finetune_runs_one_at_a_time_with_valid_transitions(service):
    _, model_id = populate(service, 1)
    run = service.start_finetune_run(base_model_version_id=model_id, params={"lora_rank": 8},
                                     inputs={"sessions": 12}, split={"val_fraction": 0.2})
    with pytest.raises(InvalidTransition):
        service.start_finetune_run(base_model_version_id=model_id, params={})
    with pytest.raises(InvalidTransition):
        service.update_finetune_run(run, status="succeeded")  # pending -> succeeded skips running
    with pytest.raises(InvalidInput):
        service.update_finetune_run(run, progress=1.5)
    service.update_finetune_run(run, status="running", progress=0.25, message="epoch 1")
    candidate = service.register_model_version("gazex", "v2", "h2", parent_id=model_id)
    service.update_finetune_run(run, status="succeeded", metrics={"val_loss": 0.7},
                                candidate_model_version_id=candidate.id)
    with pytest.raises(InvalidTransition):
        service.update_finetune_run(run, status="running")
    (record,) = service.finetune_runs()
    assert record["status"] == "succeeded" and record["progress"] == 1.0 and record["metrics"] == {"val_loss": 0.7}
    assert record["candidate_model_version_id"] == candidate.id and record["heartbeat_at"] is not None
    second = service.start_finetune_run(base_model_version_id=candidate.id, params={})
    service.update_finetune_run(second, status="failed", message="out of memory")
    assert [r["status"] for r in service.finetune_runs()] == ["succeeded", "failed"]


def test_frozen_split_first_assignment_wins_and_never_changes(service):
    uids = [f"uid{i}" for i in range(200)]
    first = service.frozen_split(uids, 0.2, seed=1)
    assert set(first.values()) == {"train", "val"} and 20 <= list(first.values()).count("val") <= 60
    again = service.frozen_split(uids + ["new1", "new2"], 0.9, seed=99)
    assert {u: again[u] for u in uids} == first and set(again) == set(uids) | {"new1", "new2"}


def test_signed_reviews_since_returns_corrections_of_that_model_or_later(service):
    study_ids, v1 = populate(service, 2)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Better sentence.")
    service.sign_off(ALICE, sid, "modify", "FINDINGS: Better sentence.", active_ms=5.0, accept_rest=True)
    service.amend(ALICE, sid, "FINDINGS: Best sentence.", "wording")
    open_sid = service.open_session(BOB, study_ids[1]).session_id
    assert open_sid  # unsigned: not a correction yet
    (review,) = service.signed_reviews_since(v1)
    assert review["study_uid"] == "1.2.826.0.1.0" and review["final_report"] == "FINDINGS: Best sentence."
    assert review["sentences"][0]["final_text"] == "Better sentence." and review["draft"]["sentences"]
    v2 = service.register_model_version("gazex", "v2", "h2", parent_id=v1, status="active")
    assert service.signed_reviews_since(v2.id) == []


def test_a_run_whose_process_died_is_failed_after_its_heartbeat_stops(service, clock):
    _, model_id = populate(service, 1)
    run = service.start_finetune_run(base_model_version_id=model_id, params={})
    service.update_finetune_run(run, status="running", progress=0.1)
    clock.advance(minutes=5)
    assert service.fail_stale_finetune_runs(max_silence_s=600) == []
    clock.advance(minutes=6)
    assert service.fail_stale_finetune_runs(max_silence_s=600) == [run]
    assert service.get_finetune_run(run)["status"] == "failed"
    assert service.start_finetune_run(base_model_version_id=model_id, params={}) != run
