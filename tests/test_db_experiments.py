"""Reader studies: blinded access, own-work worklists, crossover schedule and washout gating."""

from __future__ import annotations

from collections import Counter

import pytest

from annotations_db import AccessDenied, InvalidInput, InvalidTransition, NotFound
from annotations_db.experiments import schedule
from annotations_db.maintenance import snapshot
from db_support import ADMIN, READERS, populate

ALICE, BOB = READERS[0][0], READERS[1][0]
ARMS = ["ai_draft", "no_ai"]


def _crossover(service, n_studies=4, blinded=True):
    study_ids, _ = populate(service, n_studies)
    experiment_id = service.create_experiment("crossover pilot", design="crossover", arms=ARMS, readers=[ALICE, BOB],
                                              study_ids=study_ids, washout_days=28, blinded=blinded, seed=7,
                                              acting=ADMIN[0])
    return experiment_id, study_ids


def test_crossover_schedule_counterbalances_arms_and_randomises_order():
    slots = schedule("crossover", ARMS, ["r1", "r2", "r3", "r4"], list(range(1, 11)), seed=3)
    assert slots == schedule("crossover", ARMS, ["r1", "r2", "r3", "r4"], list(range(1, 11)), seed=3)
    for reader in ("r1", "r2", "r3", "r4"):
        mine = [s for s in slots if s.reader == reader]
        reads = Counter((s.study_id, s.arm) for s in mine)
        assert set(reads.values()) == {1} and len(reads) == 20  # every case once in each arm
        for period in (1, 2):
            assert Counter(s.arm for s in mine if s.period == period) == {"ai_draft": 5, "no_ai": 5}
    first_period_ai = {r: {s.study_id for s in slots if s.reader == r and s.period == 1 and s.arm == "ai_draft"}
                       for r in ("r1", "r2")}
    assert first_period_ai["r1"].isdisjoint(first_period_ai["r2"])  # AI-first cases alternate across readers
    orders = {r: [s.study_id for s in slots if s.reader == r and s.period == 1] for r in ("r1", "r2", "r3", "r4")}
    assert len({tuple(o) for o in orders.values()}) > 1


def test_blinded_reader_cannot_read_or_change_another_readers_session(service):
    experiment_id, study_ids = _crossover(service)
    alice_items = service.worklist(ALICE)
    assert len(alice_items) == 4 and Counter(i.arm for i in alice_items) == {"ai_draft": 2, "no_ai": 2}
    state = service.open_session(ALICE, alice_items[0].study.id)
    sid = state.session_id
    assert state.arm == alice_items[0].arm and (state.draft is None) == (state.arm == "no_ai")
    service.record_event(ALICE, sid, "view", {}, None)
    before = snapshot(service.engine)
    for call in (lambda: service.session_state(BOB, sid),
                 lambda: service.session_events(BOB, sid),
                 lambda: service.record_event(BOB, sid, "view", {}, None),
                 lambda: service.add_sentence(BOB, sid, "Bob was here."),
                 lambda: service.decide_box(BOB, sid, None, "added", box=(0.1, 0.1, 0.2, 0.2)),
                 lambda: service.sign_off(BOB, sid, "reject", "x", active_ms=1.0),
                 lambda: service.amend(BOB, sid, "x", "y"),
                 lambda: service.close_session(BOB, sid),
                 lambda: service.session_state(ADMIN[0], sid)):  # blinded: not even the admin reads it
        with pytest.raises(AccessDenied):
            call()
    assert snapshot(service.engine) == before
    bob_items = service.worklist(BOB)
    assert {i.status for i in bob_items} == {"unread"} and all(i.session_id != sid for i in bob_items)
    assert [i.session_id for i in service.worklist(ALICE) if i.session_id] == [sid]
    assert service.worklist(ALICE, experiment_id=experiment_id)[0].session_id == sid
    assert service.worklist(ALICE, status="viewed")[0].session_id == sid  # an event is not a decision


def test_unblinded_experiment_lets_the_admin_read_but_never_write(service):
    _, _ = _crossover(service, blinded=False)
    sid = service.open_session(ALICE, service.worklist(ALICE)[0].study.id).session_id
    assert service.session_state(ADMIN[0], sid).reader == ALICE
    with pytest.raises(AccessDenied):
        service.record_event(ADMIN[0], sid, "view", {}, None)
    with pytest.raises(AccessDenied):
        service.session_state(BOB, sid)


def test_second_period_opens_only_after_the_washout_with_the_other_arm(service, clock):
    _crossover(service)
    period1 = {i.study.id: i.arm for i in service.worklist(ALICE)}
    for study_id in period1:
        sid = service.open_session(ALICE, study_id).session_id
        service.sign_off(ALICE, sid, "accept", "report", active_ms=1_000.0, accept_rest=True)
    assert [i.status for i in service.worklist(ALICE)] == ["signed"] * 4  # period 2 hidden during washout
    some_study = next(iter(period1))
    assert service.open_session(ALICE, some_study).status == "signed"  # the finished read, read-only
    clock.advance(days=27)
    assert len(service.worklist(ALICE)) == 4
    clock.advance(days=1, minutes=1)
    items = service.worklist(ALICE)
    period2 = {i.study.id: i.arm for i in items if i.status == "unread"}
    assert len(items) == 8 and period2 == {s: ("no_ai" if a == "ai_draft" else "ai_draft") for s, a in period1.items()}
    state = service.open_session(ALICE, some_study)
    assert state.status == "open" and state.arm == period2[some_study]


def test_second_period_is_refused_while_the_first_is_unfinished(service, clock):
    experiment_id, _ = _crossover(service)
    first = service.worklist(ALICE)[0].study.id
    sid = service.open_session(ALICE, first).session_id
    service.sign_off(ALICE, sid, "accept", "report", active_ms=1_000.0, accept_rest=True)
    clock.advance(days=60)
    assert len(service.worklist(ALICE)) == 4
    assert service.open_session(ALICE, first).session_id == sid  # finished read; period 2 still locked


def test_creating_experiments_is_admin_only_and_validated(service):
    study_ids, _ = populate(service, 2)
    before = snapshot(service.engine)
    cases = [
        (AccessDenied, dict(acting=ALICE)),
        (InvalidInput, dict(arms=["a", "b", "c"])),
        (InvalidInput, dict(design="latin-square")),
        (InvalidInput, dict(readers=[ALICE, ALICE])),
        (InvalidInput, dict(washout_days=-1)),
        (NotFound, dict(readers=[ALICE, "nobody"])),
        (NotFound, dict(study_ids=[study_ids[0], 999])),
    ]
    for error, override in cases:
        kwargs = dict(design="crossover", arms=ARMS, readers=[ALICE, BOB], study_ids=study_ids, washout_days=28,
                      acting=ADMIN[0]) | override
        with pytest.raises(error):
            service.create_experiment("exp", **kwargs)
    assert snapshot(service.engine) == before
    service.create_experiment("exp", design="parallel", arms=ARMS, readers=[ALICE], study_ids=study_ids,
                              acting=ADMIN[0])
    with pytest.raises(InvalidTransition):
        service.create_experiment("exp", design="parallel", arms=ARMS, readers=[ALICE], study_ids=study_ids,
                                  acting=ADMIN[0])
    with pytest.raises(NotFound):
        service.open_session(BOB, study_ids[0], experiment_id=1)
