"""Decision kinds, sign-off with pending items, idempotent decisions (decision_id), viewed vs in-progress sessions
and per-decision durations -- on SQLite and PostgreSQL."""

from __future__ import annotations

import csv

import pytest

from annotations_db import InvalidInput, InvalidTransition, PendingItems
from annotations_db.maintenance import snapshot
from db_support import READERS, populate

ALICE = READERS[0][0]


def _open(service, index: int = 0, n_studies: int = 1) -> int:
    study_ids, _ = populate(service, n_studies)
    return service.open_session(ALICE, study_ids[index]).session_id


def test_signing_with_pending_items_is_refused_naming_how_many(service):
    sid = _open(service)
    service.decide_sentence(ALICE, sid, "s1", "accepted")
    before = snapshot(service.engine)
    with pytest.raises(PendingItems) as info:
        service.sign_off(ALICE, sid, "accept", "FINDINGS: ...", active_ms=1.0)
    assert str(info.value).startswith("2 sentences and 2 boxes still pending")
    assert (info.value.sentences, info.value.boxes) == (["s2", "s3"], ["s1", "s2"])
    assert service.pending_items(ALICE, sid) == {"sentences": ["s2", "s3"], "boxes": ["s1", "s2"]}
    assert snapshot(service.engine) == before and service.session_state(ALICE, sid).status == "open"


def test_accept_the_rest_records_its_own_kind_and_exports_it_apart(service, tmp_path):
    sid = _open(service)
    service.decide_sentence(ALICE, sid, "s1", "accepted", duration_ms=900.0)
    service.decide_sentence(ALICE, sid, "s2", "deleted")  # its box leaves with it: not pending
    service.sign_off(ALICE, sid, "accept", "FINDINGS: ...", active_ms=1.0, accept_rest=True)
    state = service.session_state(ALICE, sid)
    assert {d.sentence_id: d.decision for d in state.sentences} == {
        "s1": "accepted", "s2": "deleted", "s3": "accepted_at_signoff"}
    assert {b.box_id: b.decision for b in state.boxes} == {"s1": "accepted_at_signoff"}
    rest = next(d for d in state.sentences if d.sentence_id == "s3")
    assert rest.final_text == rest.original_text and rest.duration_ms is None
    out = tmp_path / "provenance.csv"
    service.export_provenance_csv(str(out))
    rows = {r["sentence_id"]: r for r in csv.DictReader(out.open())}
    assert (rows["s1"]["provenance"], rows["s3"]["provenance"]) == ("ai_accepted", "ai_accepted_at_signoff")
    assert (rows["s1"]["explicit_decision"], rows["s3"]["explicit_decision"]) == ("True", "False")


def test_a_reject_accepts_nothing_and_needs_no_choice(service):
    sid = _open(service)
    service.sign_off(ALICE, sid, "reject", "Draft unusable.", active_ms=1.0)
    state = service.session_state(ALICE, sid)
    assert state.status == "signed" and state.sentences == [] and state.boxes == []


def test_a_replayed_decision_id_is_acknowledged_once(service):
    sid = _open(service)
    first = service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Once.", decision_id="d-1")
    again = service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Once.", decision_id="d-1")
    assert (first.replayed, again.replayed) == (False, True) and again.final_text == "Once."
    added = [service.add_sentence(ALICE, sid, "Human.", decision_id="d-2") for _ in range(2)]
    drawn = [service.decide_box(ALICE, sid, None, "added", box=(0.1, 0.1, 0.3, 0.3), decision_id="d-3")
             for _ in range(2)]
    assert [a.sentence_id for a in added] == ["h1", "h1"] and [d.box_id for d in drawn] == ["b1", "b1"]
    rows = snapshot(service.engine)
    assert len(rows["sentence_decisions"]) == 2 and len(rows["box_decisions"]) == 1
    with pytest.raises(InvalidInput, match="decision_id d-1 was already used for a different decision"):
        service.decide_sentence(ALICE, sid, "s2", "deleted", decision_id="d-1")
    signed = service.sign_off(ALICE, sid, "modify", "F.", active_ms=1.0, accept_rest=True, decision_id="d-4")
    # after the sign-off, a decision replayed from a reopened tab is still acknowledged (nothing new)
    assert service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Once.", decision_id="d-1").replayed
    replay = service.sign_off(ALICE, sid, "modify", "F.", active_ms=1.0, accept_rest=True, decision_id="d-4")
    assert replay.pop("replayed") is True and replay == signed
    with pytest.raises(InvalidTransition):
        service.decide_sentence(ALICE, sid, "s1", "accepted", decision_id="d-5")  # new decisions still refused


def test_opening_is_viewed_and_the_first_decision_makes_it_in_progress(service):
    sid = _open(service)
    assert [i.status for i in service.worklist(ALICE)] == ["viewed"]
    service.record_event(ALICE, sid, "zoom", {"level": 2}, None)
    assert [i.status for i in service.worklist(ALICE, status="viewed")][0] == "viewed"
    service.decide_box(ALICE, sid, "s1", "accepted", duration_ms=2_350.0)
    assert [i.status for i in service.worklist(ALICE)] == ["in_progress"]
    assert service.session_state(ALICE, sid).boxes[0].duration_ms == 2_350.0
    service.sign_off(ALICE, sid, "accept", "F.", active_ms=1.0, accept_rest=True)
    assert [i.status for i in service.worklist(ALICE)] == ["signed"]
