"""Experiment design in the record: arm views, injected errors, questionnaires, progress, assign, close, and
bad input that changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from annotations_db import AccessDenied, InvalidInput, InvalidTransition, NotFound
from annotations_db.maintenance import snapshot
from db_support import ADMIN, READERS, populate

ALICE, BOB = READERS[0][0], READERS[1][0]
ARMS = ["unaided", "draft", "draft_trajectory"]


def _experiment(service, n=3, **kwargs):
    study_ids, _ = populate(service, n)
    options = dict(design="crossover", arms=ARMS, readers=[ALICE, BOB], study_ids=study_ids, washout_days=14,
                   seed=1, acting=ADMIN[0]) | kwargs
    return service.create_experiment("three arms", **options), study_ids


def test_each_arm_shows_exactly_its_content_and_the_injected_error(service, clock):
    experiment_id, study_ids = _experiment(service, injected={})
    error = service.mark_injected_error(experiment_id, study_ids[0], "false_finding", acting=ADMIN[0])
    seen = {}
    for period in (1, 2, 3):
        for item in service.worklist(ALICE, status="unread"):
            state = service.open_session(ALICE, item.study.id)
            seen[(item.study.id, state.arm)] = state.draft
            service.sign_off(ALICE, state.session_id, "accept", "report", active_ms=1000.0, accept_rest=True)
        clock.advance(days=14, minutes=1)
    for study_id in study_ids:
        assert seen[(study_id, "unaided")] is None
        draft, full = seen[(study_id, "draft")], seen[(study_id, "draft_trajectory")]
        assert [s["text"] for s in draft["sentences"]] == [s["text"] for s in full["sentences"]]
        assert all(s["trajectory"] == [] for s in draft["sentences"])
        assert all(s["trajectory"] for s in full["sentences"])
        assert [s["observation_box"] for s in draft["sentences"]] == [s["observation_box"] for s in full["sentences"]]
        assert any(s["id"] == error["sentence_id"] for s in full["sentences"]) == (study_id == study_ids[0])
    table = service.experiment_table(experiment_id)
    marked = [r for r in table if r["study_id"] == study_ids[0] and r["reader"] == ALICE]
    assert {r["arm"]: r["injected_detected"] for r in marked} == {"unaided": None, "draft": False,
                                                                   "draft_trajectory": False}


def test_deleting_the_injected_sentence_counts_as_detected(service):
    experiment_id, study_ids = _experiment(service, design="parallel", arms=["draft_trajectory"], readers=[ALICE])
    error = service.mark_injected_error(experiment_id, study_ids[1], "misplaced_box", acting=ADMIN[0])
    state = service.open_session(ALICE, study_ids[1])
    shown = {s["id"]: s for s in state.draft["sentences"]}[error["sentence_id"]]
    assert shown["observation_box"] == error["detail"]["shown"]["observation_box"] != error["detail"]["original"]["observation_box"]
    service.decide_box(ALICE, state.session_id, error["sentence_id"], "moved", box=(0.1, 0.1, 0.3, 0.5))
    service.sign_off(ALICE, state.session_id, "modify", "report", active_ms=1000.0, accept_rest=True)
    row = next(r for r in service.experiment_table(experiment_id) if r["study_id"] == study_ids[1])
    assert row["injected_kind"] == "misplaced_box" and row["injected_detected"] is True


def test_injected_errors_are_refused_when_impossible_late_or_twice(service):
    experiment_id, study_ids = _experiment(service)
    before = snapshot(service.engine)
    with pytest.raises(InvalidInput, match="no sentence where a wrong side error can be injected"):
        service.mark_injected_error(experiment_id, study_ids[0], "wrong_side", acting=ADMIN[0])
    with pytest.raises(InvalidInput, match="kind 'typo' is not one of"):
        service.mark_injected_error(experiment_id, study_ids[0], "typo", acting=ADMIN[0])
    with pytest.raises(NotFound):
        service.mark_injected_error(experiment_id, 999, "false_finding", acting=ADMIN[0])
    with pytest.raises(AccessDenied):
        service.mark_injected_error(experiment_id, study_ids[0], "false_finding", acting=ALICE)
    assert snapshot(service.engine) == before
    service.open_session(ALICE, service.worklist(ALICE)[0].study.id)
    opened = service.worklist(ALICE)[0].study.id
    with pytest.raises(InvalidTransition, match="already opened"):
        service.mark_injected_error(experiment_id, opened, "false_finding", acting=ADMIN[0])
    other = next(s for s in study_ids if s != opened)
    service.mark_injected_error(experiment_id, other, "missed_finding", acting=ADMIN[0])
    with pytest.raises(InvalidTransition, match="already has an injected error"):
        service.mark_injected_error(experiment_id, other, "false_finding", acting=ADMIN[0])


def test_create_with_a_bad_part_creates_nothing(service):
    study_ids, _ = populate(service, 3)
    before = snapshot(service.engine)
    bad = [(NotFound, dict(injected={999: "false_finding"})),
           (InvalidInput, dict(injected={study_ids[0]: "wrong_side"})),
           (InvalidInput, dict(questionnaires={"post_session": ["nasa_tlx", "mood"]})),
           (InvalidInput, dict(study_ids=study_ids[:2])),  # 3 arms cannot be balanced over 2 cases
           (NotFound, dict(readers=[ALICE, "nobody"]))]
    for error, override in bad:
        options = dict(design="crossover", arms=ARMS, readers=[ALICE, BOB], study_ids=study_ids, acting=ADMIN[0])
        with pytest.raises(error):
            service.create_experiment("bad", **(options | override))
    assert snapshot(service.engine) == before


def test_progress_shows_next_case_and_the_washout_opening_date(service, clock):
    experiment_id, _ = _experiment(service)
    progress = {p["reader"]: p for p in service.experiment_progress(experiment_id)}
    assert progress[ALICE]["state"] == "reading" and progress[ALICE]["next"]["period"] == 1
    for item in service.worklist(ALICE):
        state = service.open_session(ALICE, item.study.id)
        service.sign_off(ALICE, state.session_id, "accept", "report", active_ms=1000.0, accept_rest=True)
    alice = {p["reader"]: p for p in service.experiment_progress(experiment_id)}[ALICE]
    assert alice["state"] == "locked" and alice["done"] == 3 and alice["total"] == 9
    assert alice["opens_at"] is not None and (alice["opens_at"] - clock()).days == 13
    assert service.open_session(ALICE, alice["next"]["study_id"]).status == "signed"  # period 1's read, read-only
    clock.advance(days=14, minutes=1)
    assert {p["reader"]: p for p in service.experiment_progress(experiment_id)}[ALICE]["state"] == "reading"


def test_assign_adds_a_reader_with_their_own_schedule_and_close_stops_reading(service):
    experiment_id, study_ids = _experiment(service, readers=[ALICE])
    service.create_reader("carol", "carol-pass-1", "reader", acting=ADMIN[0])
    assert service.assign_readers(experiment_id, [BOB, "carol"], acting=ADMIN[0]) == 18
    assert service.get_experiment(experiment_id)["readers"] == [ALICE, BOB, "carol"]
    with pytest.raises(InvalidInput):
        service.assign_readers(experiment_id, [BOB], acting=ADMIN[0])
    service.close_experiment(experiment_id, acting=ADMIN[0])
    assert service.get_experiment(experiment_id)["status"] == "closed"
    with pytest.raises(InvalidTransition, match="closed"):
        service.open_session(BOB, study_ids[0], experiment_id=experiment_id)
    with pytest.raises(InvalidTransition, match="closed"):
        service.assign_readers(experiment_id, ["dave"], acting=ADMIN[0])


def test_questionnaires_are_validated_scored_and_stored_once(service):
    config = {"post_case": [{"id": "confidence", "type": "likert", "scale": 5, "text": "How sure are you?"},
                            {"id": "comment", "type": "text"}], "post_session": ["nasa_tlx", "sus"]}
    experiment_id, _ = _experiment(service, questionnaires=config)
    state = service.open_session(ALICE, service.worklist(ALICE)[0].study.id)
    with pytest.raises(InvalidTransition, match="not finished"):
        service.submit_questionnaire(ALICE, experiment_id, "post_case", {"confidence": 4}, session_id=state.session_id)
    service.sign_off(ALICE, state.session_id, "accept", "report", active_ms=1000.0, accept_rest=True)
    with pytest.raises(InvalidInput, match="'confidence' needs a whole number 1-5"):
        service.submit_questionnaire(ALICE, experiment_id, "post_case", {"confidence": 6}, session_id=state.session_id)
    with pytest.raises(AccessDenied):
        service.submit_questionnaire(BOB, experiment_id, "post_case", {"confidence": 3}, session_id=state.session_id)
    assert service.submit_questionnaire(ALICE, experiment_id, "post_case", {"confidence": 4, "comment": "ok"},
                                        session_id=state.session_id) is None
    tlx = dict(mental=60, physical=10, temporal=50, performance=30, effort=55, frustration=25)
    assert service.submit_questionnaire(ALICE, experiment_id, "nasa_tlx", tlx, period=1) == pytest.approx(230 / 6)
    sus = {f"q{i}": (4 if i % 2 else 2) for i in range(1, 11)}
    assert service.submit_questionnaire(ALICE, experiment_id, "sus", sus, period=1) == 75.0
    with pytest.raises(InvalidTransition, match="already answered"):
        service.submit_questionnaire(ALICE, experiment_id, "sus", sus, period=1)
    with pytest.raises(InvalidInput, match="period 7"):
        service.submit_questionnaire(ALICE, experiment_id, "sus", sus, period=7)
    responses = service.questionnaire_responses(experiment_id)
    assert [r["instrument"] for r in responses] == ["post_case", "nasa_tlx", "sus"]
    row = next(r for r in service.experiment_table(experiment_id) if r.get("session_id") == state.session_id)
    assert row["post_case"] == {"confidence": 4, "comment": "ok"}
