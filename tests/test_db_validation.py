"""Validation lives in the service: bad text (unpaired surrogates, NUL, control characters, over-long) and
out-of-range numbers and ids are refused with one line naming the field -- the same line on SQLite and PostgreSQL --
and change nothing."""

from __future__ import annotations

import pytest

from annotations_db import InvalidInput
from annotations_db.maintenance import snapshot
from annotations_db.provenance import DURATION_MAX_MS, ID_MAX, TEXT_MAX
from db_support import ADMIN, READERS, populate

ALICE = READERS[0][0]
BAD_TEXT = {
    "surrogate": ("Effusion \ud83d here.", "contains an unpaired surrogate (U+D83D) at character 10"),
    "nul": ("Effusion\x00.", "contains a NUL character (U+0000) at character 9"),
    "control": ("Bell\x07.", "contains a control character (U+0007) at character 5"),
    "c1 control": ("x\x85y", "contains a control character (U+0085) at character 2"),
    "over-long": ("x" * (TEXT_MAX + 1), f"is {TEXT_MAX + 1} characters long; the limit is {TEXT_MAX}"),
}


@pytest.fixture
def case(service):
    study_ids, model_id = populate(service, 2)
    sid = service.open_session(ALICE, study_ids[0]).session_id
    signed = service.open_session(ALICE, study_ids[1]).session_id
    service.sign_off(ALICE, signed, "accept", "FINDINGS: ok.", active_ms=1.0, accept_rest=True)
    return service, sid, signed, study_ids, model_id


def _text_calls(service, sid, signed, value):
    """(field named in the message, call) for every text a reader or the app can send."""
    return [
        ("final_text", lambda: service.decide_sentence(ALICE, sid, "s1", "edited", final_text=value)),
        ("the new sentence", lambda: service.add_sentence(ALICE, sid, value)),
        ("final_report", lambda: service.sign_off(ALICE, sid, "modify", value, active_ms=1.0, accept_rest=True)),
        ("the amended report", lambda: service.amend(ALICE, signed, value, "reason")),
        ("the reason for the amendment", lambda: service.amend(ALICE, signed, "FINDINGS: new.", value)),
        ("payload.question", lambda: service.record_event(ALICE, sid, "ask", {"question": value}, None)),
    ]


@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_bad_text_is_refused_naming_the_field_and_changes_nothing(case, kind):
    service, sid, signed, _, _ = case
    value, problem = BAD_TEXT[kind]
    before = snapshot(service.engine)
    for field, call in _text_calls(service, sid, signed, value):
        if kind == "over-long" and field == "payload.question":
            continue  # payload strings have the payload's own size limit (below)
        with pytest.raises(InvalidInput) as info:
            call()
        assert str(info.value) == f"{field} {problem}", kind
    assert snapshot(service.engine) == before


@pytest.mark.parametrize("value,problem", [
    ("s\ud800", "an unpaired surrogate"), ("s\x001", "a NUL character"), ("s\n1", "a control character"),
    ("s" * 41, "characters long"),
])
def test_bad_ids_and_names_are_refused(case, value, problem):
    service, sid, _, _, _ = case
    before = snapshot(service.engine)
    calls = [
        ("sentence_id", lambda: service.decide_sentence(ALICE, sid, value, "accepted")),
        ("box_id", lambda: service.decide_box(ALICE, sid, value, "rejected")),
        ("linked_sentence_id", lambda: service.decide_box(ALICE, sid, None, "added", box=(0.1, 0.1, 0.2, 0.2),
                                                          linked_sentence_id=value)),
        ("event_type", lambda: service.record_event(ALICE, sid, value * 2, {}, None)),  # limits 64 and 128
        ("username", lambda: service.create_reader(value * 2, "password-123", acting=ADMIN[0])),
        ("study_uid", lambda: service.register_study(value * 4, "/data/x.dcm")),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInput) as info:
            call()
        message = str(info.value)
        assert message.startswith(field) and problem in message and "\n" not in message, (field, message)
    assert snapshot(service.engine) == before


@pytest.mark.parametrize("bad_id", [0, -1, ID_MAX + 1, 2**63, 2**80, 1.5, True, "7", None])
def test_out_of_range_ids_are_refused_on_both_backends(case, bad_id):
    service, sid, _, study_ids, model_id = case
    before = snapshot(service.engine)
    calls = [
        ("session_id", lambda: service.decide_sentence(ALICE, bad_id, "s1", "accepted")),
        ("session_id", lambda: service.record_event(ALICE, bad_id, "view", {}, None)),
        ("session_id", lambda: service.sign_off(ALICE, bad_id, "accept", "r", active_ms=1.0)),
        ("session_id", lambda: service.session_state(ALICE, bad_id)),
        ("study_id", lambda: service.open_session(ALICE, bad_id)),
        ("study_id", lambda: service.save_draft(bad_id, model_id, {"sentences": []})),
        ("model_version_id", lambda: service.save_draft(study_ids[0], bad_id, {"sentences": []})),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInput) as info:
            call()
        assert str(info.value).startswith(f"{field} "), str(info.value)
    assert snapshot(service.engine) == before


def test_a_whole_float_id_from_json_counts_as_that_id(case):
    service, sid, _, _, _ = case
    assert service.decide_sentence(ALICE, float(sid), "s1", "accepted").decision == "accepted"


@pytest.mark.parametrize("call,message", [
    (lambda s, sid: s.decide_box(ALICE, sid, "s1", "moved", box=(0.1, 0.1, 1.2, 0.5)),
     "box x_max 1.2 is out of range (0-1)"),
    (lambda s, sid: s.decide_box(ALICE, sid, "s1", "moved", box=(-0.01, 0.1, 0.5, 0.5)),
     "box x_min -0.01 is out of range (0-1)"),
    (lambda s, sid: s.decide_box(ALICE, sid, "s1", "moved", box=(0.1, float("nan"), 0.5, 0.5)),
     "box y_min must be a finite number, got nan"),
    (lambda s, sid: s.decide_sentence(ALICE, sid, "s1", "accepted", duration_ms=-1.0),
     "duration_ms -1.0 is out of range (0-6.048e+08)"),
    (lambda s, sid: s.decide_sentence(ALICE, sid, "s1", "accepted", duration_ms=DURATION_MAX_MS * 2),
     "duration_ms 1209600000.0 is out of range (0-6.048e+08)"),
    (lambda s, sid: s.decide_sentence(ALICE, sid, "s1", "accepted", client_ts=1e300),
     "client_ts 1e+300 is out of range (0-4.10244e+12)"),
    (lambda s, sid: s.record_event(ALICE, sid, "view", {"x": float("inf")}, None),
     "payload.x is inf; JSON has no NaN or infinity"),
    (lambda s, sid: s.record_event(ALICE, sid, "view", {"k\ud800": 1}, None),
     "payload key contains an unpaired surrogate (U+D800) at character 2"),
    (lambda s, sid: s.decide_sentence(ALICE, sid, "s1", "accepted", decision_id="has space"),
     "decision_id may hold only ASCII letters, digits and ._:-"),
    (lambda s, sid: s.sign_off(ALICE, sid, "accept", "r", active_ms=1.0, accept_rest="yes"),
     "accept_rest must be true or false, got 'yes'"),
])
def test_out_of_range_numbers_are_refused_not_clamped(case, call, message):
    service, sid, _, _, _ = case
    before = snapshot(service.engine)
    with pytest.raises(InvalidInput) as info:
        call(service, sid)
    assert str(info.value) == message
    assert snapshot(service.engine) == before


def test_usernames_follow_one_rule_and_bad_login_input_is_simply_no_login(service):
    service.create_reader(*ADMIN, "admin")
    assert service.create_reader("dr.jones@example.org", "password-123", acting=ADMIN[0]).username
    for name in ("", "a b", "x" * 65, "\ud800"):
        with pytest.raises(InvalidInput):
            service.create_reader(name, "password-123", acting=ADMIN[0])
    with pytest.raises(InvalidInput, match="password contains a NUL"):
        service.create_reader("nul", "password\x00123", acting=ADMIN[0])
    for username, password in (("\ud800", "x"), (ADMIN[0], "pass\ud800word"), ("a\x00", "x"), (None, None)):
        assert service.authenticate(username, password) is None
    assert service.authenticate(*ADMIN) is not None
