"""Decision kind "accepted_at_signoff" and idempotent replay of browser calls, on SQLite and PostgreSQL.

The workstation (issue 9) signs with pending items only after the reader chose "accept the rest": those items are
recorded as ``accepted_at_signoff``, never as ordinary accepts. It also keeps unacknowledged calls in the browser
and sends them again after a reload or a server restart: the same call (same client timestamp) must not be
recorded twice.
"""

from __future__ import annotations

import pytest

from annotations_db import InvalidInput
from annotations_db.maintenance import snapshot
from db_support import READERS, populate

ALICE = READERS[0][0]
TS = 1_767_000_000_000.0


def test_accepted_at_signoff_is_its_own_decision_kind(service, tmp_path):
    study_ids, _ = populate(service, 1)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    service.decide_sentence(ALICE, sid, "s1", "accepted", duration_ms=1200.0)
    rest = service.decide_sentence(ALICE, sid, "s2", "accepted_at_signoff", duration_ms=0.0)
    assert rest.decision == "accepted_at_signoff" and rest.final_text == "Sentence 2 of 1.2.826.0.1.0."
    box = service.decide_box(ALICE, sid, "s1", "accepted_at_signoff")
    assert box.decision == "accepted_at_signoff" and box.x_min == pytest.approx(0.1)
    with pytest.raises(InvalidInput):
        service.decide_sentence(ALICE, sid, "s3", "accepted_at_signoff", error_category="finding")
    service.decide_sentence(ALICE, sid, "s3", "deleted")
    service.decide_box(ALICE, sid, "s2", "accepted_at_signoff")
    service.sign_off(ALICE, sid, "modify", "FINDINGS: ...", active_ms=1000.0)  # nothing pending: no choice needed
    state = service.session_state(ALICE, sid)
    assert {d.sentence_id: d.decision for d in state.sentences} == {
        "s1": "accepted", "s2": "accepted_at_signoff", "s3": "deleted"}
    assert {b.box_id: b.decision for b in state.boxes} == {"s1": "accepted_at_signoff", "s2": "accepted_at_signoff"}
    out = tmp_path / "provenance.csv"
    service.export_provenance_csv(str(out))
    text = out.read_text()
    assert "ai_accepted_at_signoff" in text and "ai_accepted," in text


def test_a_replayed_call_is_recorded_once(service):
    study_ids, _ = populate(service, 1)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    for _ in range(2):  # the browser sends everything twice (ack lost, then the page came back)
        service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Edited once.", client_ts=TS)
        added = service.add_sentence(ALICE, sid, "A human sentence.", client_ts=TS + 1)
        drawn = service.decide_box(ALICE, sid, None, "added", box=(0.1, 0.1, 0.3, 0.3), client_ts=TS + 2)
        service.decide_box(ALICE, sid, "s1", "rejected", client_ts=TS + 3)
        assert (added.sentence_id, drawn.box_id) == ("h1", "b1")
    rows = snapshot(service.engine)
    assert len(rows["sentence_decisions"]) == 2 and len(rows["box_decisions"]) == 2
    # a later, different decision on the same item is new (different client timestamp)
    service.decide_sentence(ALICE, sid, "s1", "accepted", client_ts=TS + 4)
    assert len(snapshot(service.engine)["sentence_decisions"]) == 3
    first = service.sign_off(ALICE, sid, "modify", "FINDINGS: x.", active_ms=10.0, client_ts=TS + 5, accept_rest=True)
    again = service.sign_off(ALICE, sid, "modify", "FINDINGS: x.", active_ms=10.0, client_ts=TS + 5, accept_rest=True)
    assert again.pop("replayed") is True and again == first and len(snapshot(service.engine)["signoffs"]) == 1
