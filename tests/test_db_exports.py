"""CSV exports: experiment case x reader x arm table and the sentence provenance log (also via `gazex db`)."""

from __future__ import annotations

import csv

import pytest

from annotations_db import NotFound
from db_support import ADMIN, READERS, gazex_db, populate

ALICE, BOB = READERS[0][0], READERS[1][0]


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _review_one_case(service, study_id) -> int:
    sid = service.open_session(ALICE, study_id).session_id
    for i in range(3):
        service.record_event(ALICE, sid, "zoom", {"level": i}, 1_000.0 + i)
    service.decide_sentence(ALICE, sid, "s1", "edited", final_text="Sentence 1, corrected.", error_category="finding",
                            clinically_significant=True, duration_ms=1500.0)
    service.decide_sentence(ALICE, sid, "s2", "accepted")
    service.decide_sentence(ALICE, sid, "s2", "deleted", error_category="location")  # supersedes the accept
    service.add_sentence(ALICE, sid, "Human sentence.")
    service.decide_box(ALICE, sid, "s1", "resized", box=(0.1, 0.1, 0.5, 0.5))
    service.decide_box(ALICE, sid, "s2", "rejected")
    service.decide_box(ALICE, sid, None, "added", box=(0.6, 0.6, 0.7, 0.7), linked_sentence_id="h1")
    service.sign_off(ALICE, sid, "modify", "FINDINGS: ...", active_ms=20_000, idle_ms=4_000, hidden_ms=1_000,
                     accept_rest=True)
    return sid


def test_experiment_export_has_one_row_per_case_reader_arm_with_times_and_decisions(service, tmp_path):
    study_ids, _ = populate(service, 2)
    experiment_id = service.create_experiment("parallel", design="parallel", arms=["ai_draft", "no_ai"],
                                              readers=[ALICE, BOB], study_ids=study_ids, blinded=True,
                                              acting=ADMIN[0])
    ai_study = next(i.study.id for i in service.worklist(ALICE) if i.arm == "ai_draft")
    sid = _review_one_case(service, ai_study)
    out = tmp_path / "experiment.csv"
    assert service.export_experiment_csv(experiment_id, str(out)) == 4
    rows = _read(out)
    assert sorted((r["reader"], r["study_id"]) for r in rows) == sorted(
        (reader, str(s)) for reader in (ALICE, BOB) for s in study_ids)
    done = next(r for r in rows if r["session_id"] == str(sid))
    assert done["arm"] == "ai_draft" and done["status"] == "signed" and done["signoff_decision"] == "modify"
    assert float(done["active_ms"]) == 20_000 and float(done["idle_ms"]) == 4_000 and float(done["hidden_ms"]) == 1_000
    assert (done["sentences_edited"], done["sentences_deleted"], done["sentences_added"],
            done["sentences_undecided"], done["sentences_accepted_at_signoff"]) == ("1", "1", "1", "0", "1")
    assert (done["boxes_resized"], done["boxes_rejected"], done["boxes_added"]) == ("1", "1", "1")
    assert done["significant_errors"] == "1" and int(done["edit_distance_total"]) > 0
    assert done["events"] == "3" and done["decision_rows"] == "8" and done["model_version"] == "gazex:v1"
    assert {r["status"] for r in rows if r["session_id"] != str(sid)} == {"unread"}
    with pytest.raises(NotFound):
        service.export_experiment_csv(999, str(out))


def test_provenance_log_labels_every_sentence_of_signed_reviews(service, tmp_path):
    study_ids, model_id = populate(service, 2)
    _review_one_case(service, study_ids[0])
    service.open_session(ALICE, study_ids[1])  # open, not signed: not in the log
    out = tmp_path / "provenance.csv"
    assert service.export_provenance_csv(str(out)) == 4
    rows = {r["sentence_id"]: r for r in _read(out)}
    assert {k: r["provenance"] for k, r in rows.items()} == {
        "s1": "ai_edited", "s2": "ai_deleted", "s3": "ai_accepted_at_signoff", "h1": "human_added"}
    assert int(rows["s1"]["edit_distance"]) > 0 and rows["s1"]["error_category"] == "finding"
    assert rows["s1"]["clinically_significant"] == "True" and rows["s1"]["box_decision"] == "resized"
    assert rows["s2"]["history_rows"] == "2" and rows["s3"]["explicit_decision"] == "False"
    assert rows["h1"]["final_text"] == "Human sentence." and rows["h1"]["box_id"] == "b1"
    assert {r["model_version_id"] for r in rows.values()} == {str(model_id)}
    assert {r["model_version"] for r in rows.values()} == {"v1"}


def test_export_and_reader_commands(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAZEX_READER_PASSWORD", "boss-password")
    assert gazex_db(["db", "add-reader", "boss", "--role", "admin", "--url", db_url]) == 0
    monkeypatch.setenv("GAZEX_READER_PASSWORD", "reader-password")
    assert gazex_db(["db", "add-reader", "r1", "--url", db_url]) == 0
    assert gazex_db(["db", "readers", "--url", db_url]) == 0
    assert "boss\tadmin" in capsys.readouterr().out
    out = tmp_path / "p.csv"
    assert gazex_db(["db", "export-provenance", "--out", str(out), "--url", db_url]) == 0
    assert _read(out) == [] and out.read_text().startswith("session_id,")
    with pytest.raises(NotFound):
        gazex_db(["db", "export-experiment", "5", "--out", str(out), "--url", db_url])
    assert gazex_db(["db", "check", "--url", db_url]) == 0
