"""Every server-side exception of a workstation server function becomes an answer -- a one-line refusal the browser
shows and never retries, or a retryable error -- so one bad item never stalls the review. Real databases (SQLite and
PostgreSQL through the db fixtures); no model is needed for these handlers."""

from __future__ import annotations

import pytest

from annotations_db import ReviewService
from annotations_db.engine import make_engine
from annotations_db.maintenance import snapshot
from app import handlers
from db_support import ADMIN, READERS, populate

ALICE = READERS[0][0]
HANDLERS = {"record_event": handlers.record_event, "decide_sentence": handlers.decide_sentence,
            "add_sentence": handlers.add_sentence, "decide_box": handlers.decide_box, "sign_off": handlers.sign_off}


@pytest.fixture
def sid(service):
    study_ids, _ = populate(service, 1)
    return service.open_session(ALICE, study_ids[0]).session_id


def _refused(answer: dict) -> str:
    assert answer["ok"] is False and answer["retry"] is False, answer
    assert answer["error"] and "\n" not in answer["error"] and len(answer["error"]) <= 300, answer
    return answer["error"]


def test_bad_browser_input_is_refused_in_one_line_and_changes_nothing(service, sid):
    cases = [
        ("decide_sentence", {"session_id": sid, "sentence_id": "s1", "decision": "edited", "final_text": "a\ud800b"},
         "final_text contains an unpaired surrogate"),
        ("decide_sentence", {"session_id": sid, "sentence_id": "s1", "decision": "edited", "final_text": "a\x00"},
         "final_text contains a NUL character"),
        ("decide_sentence", {"session_id": sid, "sentence_id": "s1", "decision": "edited", "final_text": "x" * 20_001},
         "final_text is 20001 characters long"),
        ("decide_sentence", {"session_id": 2**63, "sentence_id": "s1", "decision": "accepted"},
         "session_id 9223372036854775808 is out of range"),
        ("decide_sentence", {"session_id": sid, "sentence_id": "s1\ud800", "decision": "accepted"},
         "sentence_id contains an unpaired surrogate"),
        ("decide_sentence", [sid], "bad arguments"),
        ("decide_box", {"session_id": sid, "box_id": "s1", "decision": "moved", "box": [0.2, 0.2, 1.01, 0.5]},
         "box x_max 1.01 is out of range (0-1)"),
        ("decide_box", {"session_id": sid, "box_id": None, "decision": "added",
                        "box": {"x_min": 0.1, "y_min": 0.1, "x_max": 0.2, "y_max": 0.2}, "duration_ms": -5},
         "duration_ms -5 is out of range"),
        ("add_sentence", {"session_id": sid, "text": "Bell\x07"}, "the new sentence contains a control character"),
        ("record_event", {"session_id": sid, "event_type": "ask", "payload": {"q": "\x00"}},
         "payload.q contains a NUL character"),
        ("record_event", {"session_id": "12; drop table", "event_type": "zoom"}, "session_id must be a whole number"),
        ("sign_off", {"session_id": sid, "decision": "accept", "final_report": "r\ud800", "active_ms": 1},
         "final_report contains an unpaired surrogate"),
        ("sign_off", {"session_id": sid, "decision": "maybe", "final_report": "r"}, "decision 'maybe' is not one of"),
    ]
    before = snapshot(service.engine)
    for name, data, message in cases:
        error = _refused(handlers.call_with_args(HANDLERS[name], (service, ALICE), data))
        assert error.startswith(message), (name, error)
    assert snapshot(service.engine) == before


def test_a_pending_sign_off_is_refused_with_the_pending_items_and_accept_rest_signs(service, sid):
    answer = handlers.call_with_args(handlers.sign_off, (service, ALICE),
                                     {"session_id": sid, "decision": "accept", "final_report": "F.", "active_ms": 9})
    assert _refused(answer).startswith("3 sentences and 2 boxes still pending")
    assert answer["pending"] == {"sentences": ["s1", "s2", "s3"], "boxes": ["s1", "s2"]}
    signed = handlers.call_with_args(handlers.sign_off, (service, ALICE), {
        "session_id": sid, "decision": "accept", "final_report": "F.", "active_ms": 9, "accept_rest": True,
        "decision_id": "sign-1"})
    assert signed["ok"] is True and "replayed" not in signed
    again = handlers.call_with_args(handlers.sign_off, (service, ALICE), {
        "session_id": sid, "decision": "accept", "final_report": "F.", "active_ms": 9, "accept_rest": True,
        "decision_id": "sign-1"})
    assert again["ok"] is True and again["replayed"] is True
    assert again["signoff"]["signoff_id"] == signed["signoff"]["signoff_id"]


def test_a_replayed_decision_is_acknowledged_and_a_refused_one_does_not_block_later_ones(service, sid):
    fixed = (service, ALICE)
    first = handlers.call_with_args(handlers.decide_sentence, fixed, {
        "session_id": sid, "sentence_id": "s1", "decision": "accepted", "decision_id": "u-1", "duration_ms": 640})
    refused = handlers.call_with_args(handlers.decide_sentence, fixed, {
        "session_id": sid, "sentence_id": "s2", "decision": "edited", "final_text": "\ud800", "decision_id": "u-2"})
    later = handlers.call_with_args(handlers.decide_sentence, fixed, {
        "session_id": sid, "sentence_id": "s3", "decision": "deleted", "decision_id": "u-3"})
    replay = handlers.call_with_args(handlers.decide_sentence, fixed, {
        "session_id": sid, "sentence_id": "s1", "decision": "accepted", "decision_id": "u-1", "duration_ms": 640})
    assert first["ok"] and later["ok"] and replay["ok"] and replay["replayed"] is True
    _refused(refused)
    assert {d.sentence_id: d.decision for d in service.session_state(ALICE, sid).sentences} == {
        "s1": "accepted", "s3": "deleted"}


def test_an_unexpected_server_error_is_a_one_line_refusal(service, sid):
    def broken(service, reader, session_id):
        raise KeyError("boom\nsecond line")

    error = _refused(handlers.call_with_args(broken, (service, ALICE), [sid]))
    assert error == "server error (KeyError): 'boom\\nsecond line'"

    def inner_type_error(service, reader, session_id):
        return len(session_id)  # a bug inside a handler, not a wrong call

    assert _refused(handlers.call_with_args(inner_type_error, (service, ALICE), [sid])).startswith(
        "server error (TypeError)")


def test_a_database_that_does_not_answer_is_a_retryable_error(db_url, tmp_path):
    """The database is unreachable: SQLite's directory is gone, PostgreSQL's server refuses the connection."""
    unreachable = (f"sqlite:///{tmp_path / 'gone' / 'gazex.sqlite3'}" if db_url.startswith("sqlite")
                   else "postgresql+psycopg://gazex@127.0.0.1:1/gazex")
    service = ReviewService(make_engine(unreachable))
    try:
        for name, data in (("record_event", [1, "zoom", {}]), ("decide_sentence", [1, "s1", "accepted"])):
            answer = handlers.call_with_args(HANDLERS[name], (service, ALICE), data)
            assert answer["ok"] is False and answer["retry"] is True, answer
            assert answer["error"].startswith("temporarily unavailable, retrying: ") and "\n" not in answer["error"]
    finally:
        service.close()


def test_admin_add_reader_uses_the_service_rule(service):
    service.create_reader(*ADMIN, "admin")
    assert "dr.x@example.org" in handlers.add_reader(service, ADMIN[0], " dr.x@example.org ", "password-123")
    with pytest.raises(handlers.ReviewError, match="username must be 1-64 letters, digits or ._-@"):
        handlers.add_reader(service, ADMIN[0], "bad name!", "password-123")
