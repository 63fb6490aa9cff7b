"""app.handlers against a real SQLite file, real synthetic studies and the real GazeX model."""

from __future__ import annotations

import pytest

from app import handlers, plots
from conftest_app import ADMIN, OTHER, READER, world  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def _open(world, reader, index):
    study_id = world.studies[index][0]
    return handlers.open_study(world.service, reader, study_id, world.context.image_payload)


def test_login_uses_the_database(world):
    assert handlers.check_login(world.service, *READER)
    assert not handlers.check_login(world.service, READER[0], "wrong-password")
    assert not handlers.check_login(world.service, "nobody", READER[1])
    assert not handlers.check_login(world.service, "", "")


def test_worklist_lists_every_study_with_status_and_draft(world):
    rows = handlers.worklist_rows(world.service, OTHER[0])
    assert [row[-1] for row in rows] == [s[0] for s in world.studies]
    assert {row[2] for row in rows} == {"unread"}
    assert {row[3] for row in rows} == {"ready"}
    assert handlers.worklist_rows(world.service, OTHER[0], "signed") == []
    with pytest.raises(handlers.BadInput):
        handlers.worklist_rows(world.service, OTHER[0], "'; drop table studies; --")


def test_open_study_builds_the_workstation_value_from_the_draft(world):
    value, state = _open(world, READER[0], 0)
    assert value["session_id"] == state.session_id and value["study_key"] == world.studies[0][1]
    assert value["readonly"] is False
    draft = world.service.get_draft(world.studies[0][0])[1]
    assert [s["id"] for s in value["sentences"]] == [s["id"] for s in draft["sentences"]]
    assert all(s["status"] == "pending" for s in value["sentences"])
    from app.workstation.component import evidence_links

    links = evidence_links(draft["sentences"])  # an impression sentence restating a finding shares its box
    assert len(value["boxes"]) == sum(1 for s in draft["sentences"] if s["observation_box"]) - len(links)
    assert sorted(i for b in value["boxes"] for i in b["also"]) == sorted(links)
    assert value["findings"] == draft["findings"]
    image = value["image"]
    assert "png_b64" not in image  # the pixels come from the image route, not in the value
    study_image = world.context.image_payload(world.studies[0][2])
    assert image["study_key"] == world.studies[0][1] and image["sha256"] == study_image.sha256
    assert image["url"] == f"gazex/image/{world.studies[0][1]}/{study_image.sha256}"
    assert study_image.values.shape == (image["disp_height"], image["disp_width"])
    assert (image["width"], image["height"]) == (draft["image"]["width"], draft["image"]["height"])
    assert study_image.values.std() > 100  # a real radiograph, not a blank


def test_decisions_are_written_at_once_and_restored_on_reopen(world):
    value, state = _open(world, READER[0], 0)
    sid = state.session_id
    first = value["sentences"][0]["id"]
    svc, who = world.service, READER[0]
    ack = handlers.record_event(svc, who, sid, "play", {"speed": 1}, 1_700_000_000_000)
    assert ack["ok"] and ack["seq"] >= 1
    ack = handlers.decide_sentence(svc, who, sid, first, "edited", "Edited by the reader.", "severity", True,
                                   1_700_000_000_500, 812.0)
    assert ack["ok"] and ack["decision"] == "edited"
    handlers.add_sentence(svc, who, sid, "A human-added sentence.", "impression", None, 1_700_000_001_000, 400.0)
    drawn = handlers.decide_box(svc, who, sid, None, "added", [0.1, 0.2, 0.3, 0.4], first, 1_700_000_002_000, 950.0)
    assert drawn["ok"] and drawn["box_id"]
    if value["boxes"]:
        handlers.decide_box(svc, who, sid, value["boxes"][0]["id"], "rejected", None, None, 1_700_000_003_000, 300.0)

    reopened, state2 = _open(world, READER[0], 0)
    assert state2.session_id == sid
    by_id = {s["id"]: s for s in reopened["sentences"]}
    assert by_id[first]["status"] == "edited" and by_id[first]["final_text"] == "Edited by the reader."
    added = [s for s in reopened["sentences"] if s["status"] == "added"]
    assert [s["final_text"] for s in added] == ["A human-added sentence."]
    boxes = {b["id"]: b for b in reopened["boxes"]}
    assert boxes[drawn["box_id"]]["status"] == "added"
    assert boxes[drawn["box_id"]]["x_min"] == pytest.approx(0.1)
    if value["boxes"]:
        assert boxes[value["boxes"][0]["id"]]["status"] == "rejected"
    decision = next(d for d in state2.sentences if d.sentence_id == first)
    assert decision.duration_ms == pytest.approx(812.0) and decision.error_category == "severity"


def test_bad_input_is_refused_and_changes_nothing(world):
    value, state = _open(world, READER[0], 0)
    sid = state.session_id
    fixed = (world.service, READER[0])
    cases = [
        (handlers.decide_sentence, [sid, value["sentences"][0]["id"], "maybe"]),
        (handlers.decide_box, [sid, None, "added", [0.5, 0.5, 0.1, 0.1]]),
        (handlers.decide_box, [sid, None, "added", None]),
        (handlers.decide_box, [sid, None, "added", ["a", 0, 1, 1]]),
        (handlers.record_event, ["not-a-number", "play", {}]),
        (handlers.record_event, [sid, "", {}]),
        (handlers.add_sentence, [sid, "   "]),
        (handlers.sign_off, [sid, "perhaps", "text"]),
        (handlers.decide_sentence, [sid, "s1", "edited", "x" * (handlers.TEXT_MAX + 1)]),
        (handlers.decide_sentence, [sid]),  # too few arguments
    ]
    before = world.service.session_state(READER[0], sid)
    for handler, args in cases:
        ack = handlers.call_with_args(handler, fixed, args)
        assert ack["ok"] is False and ack["retry"] is False and ack["error"], (handler.__name__, args)
    after = world.service.session_state(READER[0], sid)
    assert after.sentences == before.sentences and after.boxes == before.boxes


def test_a_reader_cannot_touch_another_readers_session(world):
    _, state = _open(world, READER[0], 0)
    ack = handlers.call_with_args(handlers.decide_sentence, (world.service, OTHER[0]),
                                  [state.session_id, "s1", "accepted"])
    assert ack == {"ok": False, "error": ack["error"], "retry": False}
    ack = handlers.call_with_args(handlers.record_event, (world.service, OTHER[0]),
                                  {"session_id": state.session_id, "event_type": "zoom"})
    assert ack["ok"] is False


def test_sign_off_makes_the_study_readonly_and_cannot_be_repeated(world):
    value, state = _open(world, READER[0], 1)
    sid = state.session_id
    for sentence in value["sentences"]:
        assert handlers.decide_sentence(world.service, READER[0], sid, sentence["id"], "accepted")["ok"]
    ack = handlers.sign_off(world.service, READER[0], sid, "accept", "FINDINGS: ...", 12_000.0, 3_000.0, 1_500.0,
                            1_700_000_009_000, True)  # accept the rest: the boxes nobody decided
    assert ack["ok"]
    again = handlers.call_with_args(handlers.sign_off, (world.service, READER[0]), [sid, "accept", "x", 1.0])
    assert again["ok"] is False
    reopened, _ = _open(world, READER[0], 1)
    assert reopened["readonly"] is True
    rows = {row[-1]: row for row in handlers.worklist_rows(world.service, READER[0])}
    assert rows[world.studies[1][0]][2] == "signed"
    timing = plots.reader_timing_rows(world.service, READER[0])
    assert [(r["active_s"], r["idle_s"], r["hidden_s"]) for r in timing] == [(12.0, 3.0, 1.5)]
    assert handlers.next_study_id(world.service, READER[0], world.studies[1][0]) == world.studies[2][0]


def test_ask_answers_with_the_shared_model(world):
    _, state = _open(world, OTHER[0], 2)
    answer = handlers.ask(world.service, world.context.worker, OTHER[0], state.session_id,
                          "Is there a pleural effusion?")
    assert answer["ok"] is True and isinstance(answer["answer"], str) and answer["answer"]
    box = answer["box"]
    assert box is None or 0 <= box["x_min"] < box["x_max"] <= 1
    refused = handlers.call_with_args(handlers.ask, (world.service, world.context.worker, OTHER[0]),
                                      [state.session_id, ""])
    assert refused["ok"] is False


def test_admin_actions_are_checked_on_the_server(world):
    with pytest.raises(handlers.AccessDenied):
        handlers.add_reader(world.service, READER[0], "sneaky", "password-123")
    with pytest.raises(handlers.ReviewError):  # the service's rule (one home for validation)
        handlers.add_reader(world.service, ADMIN[0], "bad name!", "password-123")
    with pytest.raises(handlers.ReviewError):
        handlers.add_reader(world.service, ADMIN[0], "shorty", "short")
    assert "reader3" in handlers.add_reader(world.service, ADMIN[0], "reader3", "password-333")
    assert handlers.check_login(world.service, "reader3", "password-333")
    assert "reader3" in [row[1] for row in handlers.readers_rows(world.service, ADMIN[0])]
    versions = handlers.model_version_rows(world.service, ADMIN[0])
    assert [row[3] for row in versions].count("active") == 1


def test_findings_figure_shows_every_probability(world):
    draft = world.service.get_draft(world.studies[0][0])[1]
    fig = plots.findings_figure(draft["findings"])
    assert sorted(fig.data[0].y) == sorted(f["label"] for f in draft["findings"])


def test_a_database_failure_is_answered_as_retryable(world, tmp_path):
    """A refusal is answered ({"ok": False, "retry": False}); a database failure is answered as retryable
    ({"ok": False, "retry": True}, one line), never raised (see tests/test_app_refusals.py for the rest)."""
    from annotations_db.service import ReviewService

    _, state = _open(world, READER[0], 2)
    broken = ReviewService.open(None, data_dir=str(tmp_path))  # a different, empty database
    broken.close()
    (tmp_path / "gazex.sqlite3").unlink()
    (tmp_path / "gazex.sqlite3").mkdir()  # the database file is gone and cannot be recreated
    answer = handlers.call_with_args(handlers.record_event, (broken, READER[0]), [state.session_id, "zoom", {}])
    assert answer["ok"] is False and answer["retry"] is True
    assert "unable to open database" in answer["error"] and "\n" not in answer["error"]
