"""Signed reviews -> fine-tuning examples, through a real SQLite ReviewService (no model needed)."""

from __future__ import annotations

import pytest

from annotations_db.service import ReviewService
from training.finetune.corrections import examples_from_reviews, infer_label


def _sentence(sid, region, label, text, box=None, traj=True):
    return {"id": sid, "section": "findings", "region": region, "label": label, "text": text, "confidence": 0.9,
            "observation_box": box,
            "trajectory": [{"x": 0.4, "y": 0.5, "dwell_ms": 700.0,
                            "clue_box": {"x_min": 0.35, "y_min": 0.45, "x_max": 0.45, "y_max": 0.55}}] if traj else []}


DRAFT = {"schema": "gazex.evidence/1", "model": {"name": "gazex", "version": "t"}, "image": {"width": 100, "height": 100},
         "sentences": [
             _sentence("s1", "airway", None, "Trachea is midline."),
             _sentence("s2", "breathing", "Pleural Effusion", "Small left pleural effusion.",
                       {"x_min": 0.5, "y_min": 0.6, "x_max": 0.7, "y_max": 0.8}),
             _sentence("s3", "cardiac", "Cardiomegaly", "There is mild cardiomegaly.",
                       {"x_min": 0.3, "y_min": 0.4, "x_max": 0.7, "y_max": 0.7}),
             _sentence("s4", "everything_else", None, "No acute osseous abnormality."),
         ], "findings": [], "timing_ms": {}, "warnings": []}


@pytest.fixture()
def svc(tmp_path):
    service = ReviewService.open(None, data_dir=str(tmp_path))
    version = service.register_model_version("gazex", "v1", "h" * 64, path=str(tmp_path), status="active")
    service.create_reader("r1", "password123")
    study = service.register_study("S1", str(tmp_path / "x.dcm"), width=100, height=100)
    service.save_draft(study.id, version.id, DRAFT)
    yield service, study.id, version.id
    service.close()


def test_decisions_become_the_final_target_and_the_draft_stays_the_rejected_side(svc):
    service, study_id, version_id = svc
    sid = service.open_session("r1", study_id).session_id
    service.decide_sentence("r1", sid, "s1", "accepted")
    service.decide_sentence("r1", sid, "s2", "edited", final_text="Small right pleural effusion.",
                            error_category="location")
    service.decide_box("r1", sid, "s2", "moved", box=(0.1, 0.6, 0.3, 0.8))
    service.decide_sentence("r1", sid, "s3", "deleted", error_category="finding", clinically_significant=True)
    added = service.add_sentence("r1", sid, "Small right apical pneumothorax.")
    service.decide_box("r1", sid, None, "added", box=(0.1, 0.1, 0.3, 0.3), linked_sentence_id=added.sentence_id)
    service.sign_off("r1", sid, "modify", "edited report", active_ms=1000.0, accept_rest=True)

    [ex] = examples_from_reviews(service.signed_reviews_since(version_id))
    assert [b.text for b in ex.final] == ["Trachea is midline.", "Small right pleural effusion.",
                                          "Small right apical pneumothorax.", "No acute osseous abnormality."]
    effusion, ptx = ex.final[1], ex.final[2]
    assert effusion.label == "Pleural Effusion" and effusion.box.x_min == pytest.approx(0.1)
    assert len(effusion.clues) == 1  # the model's trajectory is kept for a kept sentence
    assert ptx.label == "Pneumothorax" and ptx.region == "breathing" and ptx.box.y_max == pytest.approx(0.3)
    assert ptx.clues == []
    assert [b.text for b in ex.deleted] == ["There is mild cardiomegaly."]
    assert [b.text for b in ex.draft] == [s["text"] for s in DRAFT["sentences"]]
    assert {c.decision for c in ex.box_changes} == {"moved", "added"}
    assert ex.n_corrections == 5 and ex.corrected


def test_an_accepted_review_is_an_uncorrected_example(svc):
    service, study_id, version_id = svc
    sid = service.open_session("r1", study_id).session_id
    service.decide_box("r1", sid, "s3", "rejected")
    service.sign_off("r1", sid, "modify", "ok", active_ms=10.0, accept_rest=True)
    [ex] = examples_from_reviews(service.signed_reviews_since(version_id))
    assert ex.final[2].box is None and ex.corrected  # a rejected box is a correction (-> <nobox>)

    service2_sid = None  # a second study accepted as is
    study = service.register_study("S2", "/nowhere.dcm", width=100, height=100)
    service.save_draft(study.id, version_id, DRAFT)
    service2_sid = service.open_session("r1", study.id).session_id
    service.sign_off("r1", service2_sid, "accept", "ok", active_ms=10.0, accept_rest=True)
    examples = {e.study_uid: e for e in examples_from_reviews(service.signed_reviews_since(version_id))}
    assert not examples["S2"].corrected and len(examples["S2"].final) == 4


@pytest.mark.parametrize("text,label", [
    ("Small left pleural effusion.", "Pleural Effusion"),
    ("No pleural effusion or pneumothorax.", None),
    ("There is an old healed left rib fracture.", "Fracture"),
    ("Heart size is normal.", None),
    ("Trachea midline.", None),  # "midline" is not a line
    ("Moderately enlarged heart.", "Cardiomegaly"),
    ("Right internal jugular central line tip in the SVC.", "Support Devices"),
])
def test_infer_label(text, label):
    assert infer_label(text) == label
