"""A signed review out as TID 1500 SR + GSPS + text + JSON; read back, the record is the same; STOW to Orthanc."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from annotations_db import ReviewService
from interop import dicomweb
from interop.importer import import_paths
from interop.sr import FINDINGS_LAYER, STATUS_CODES, TRAJECTORY_LAYER, ExportError, export_review
from interop_support import files_containing, gazex_interop, identifier_needles, make_cr

ADMIN, READER = ("chief", "chief-pass-1"), ("alice", "alice-pass-1")
SIZE = 256
LABELS = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Atelectasis")


def _bundle() -> dict:
    sentences = []
    for i, label in enumerate(LABELS, start=1):
        box = {"x_min": 0.1 * i, "y_min": 0.2, "x_max": 0.1 * i + 0.15, "y_max": 0.6}
        sentences.append({"id": f"s{i}", "section": "findings", "region": None, "label": label,
                          "text": f"{label} sentence.", "confidence": 0.8, "observation_box": box,
                          "trajectory": [{"x": 0.5, "y": 0.5, "dwell_ms": 300, "clue_box": None},
                                         {"x": 0.1 * i, "y": 0.4, "dwell_ms": 200, "clue_box": None}]})
    return {"schema": "gazex.evidence/1", "model": {"name": "gazex-tiny", "version": "v3"},
            "image": {"width": SIZE, "height": SIZE}, "sentences": sentences, "findings": [], "timing_ms": {},
            "warnings": []}


@pytest.fixture
def signed_review(tmp_path):
    """An imported (de-identified) CR, drafted and reviewed with every kind of decision, then signed."""
    make_cr(tmp_path / "film.dcm", seed=40, size=SIZE)
    service = ReviewService.open(None, data_dir=str(tmp_path / "site"))
    (study,) = import_paths(service, [tmp_path / "film.dcm"], study_set="s", data_dir=tmp_path / "site").imported
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    model = service.register_model_version("gazex-tiny", "v3", "h3", status="active")
    service.save_draft(study.study_id, model.id, _bundle())
    sid = service.open_session(READER[0], study.study_id).session_id
    service.decide_box(READER[0], sid, "s1", "accepted")
    service.decide_sentence(READER[0], sid, "s2", "edited", final_text="Small left pleural effusion.",
                            error_category="severity", clinically_significant=False)
    service.decide_box(READER[0], sid, "s2", "resized", box=(0.2, 0.3, 0.4, 0.7))
    service.decide_sentence(READER[0], sid, "s3", "deleted", error_category="finding", clinically_significant=True)
    service.decide_box(READER[0], sid, "s3", "rejected")
    drawn = service.decide_box(READER[0], sid, None, "added", box=(0.6, 0.6, 0.8, 0.9))
    service.sign_off(READER[0], sid, "modify", "FINDINGS: Cardiomegaly. Small left pleural effusion.", active_ms=9000,
                     accept_rest=True)  # s4 was never looked at: accepted at sign-off (issue 9), not silently
    yield service, sid, drawn.box_id, tmp_path
    service.close()


EXPECTED_STATUS = {"s1": "accepted", "s2": "edited", "s3": "rejected", "s4": "accepted_at_signoff"}


def test_sr_round_trip_has_the_boxes_statuses_and_observers_of_the_record(signed_review):
    service, sid, drawn_id, tmp_path = signed_review
    paths = export_review(service, READER[0], sid, tmp_path / "out")
    state = service.session_state(READER[0], sid)
    sr = hd.sr.srread(paths.sr)
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "VERIFIED"
    groups = sr.content.get_planar_roi_measurement_groups()
    by_id = {g.tracking_identifier: g for g in groups}
    assert set(by_id) == {"s1", "s2", "s3", "s4", drawn_id}
    expected = {**EXPECTED_STATUS, drawn_id: "added"}
    for tracking_id, group in by_id.items():
        (evaluation,) = group.get_qualitative_evaluations()
        assert evaluation.value == STATUS_CODES[expected[tracking_id]]
    boxes = {b.box_id: b for b in state.boxes}
    for tracking_id in ("s2", drawn_id):
        b = boxes[tracking_id]
        points = np.asarray(by_id[tracking_id].roi.value)
        want = np.array([[b.x_min, b.y_min], [b.x_max, b.y_min], [b.x_max, b.y_max], [b.x_min, b.y_max],
                         [b.x_min, b.y_min]]) * SIZE
        assert np.allclose(points, want, atol=1e-3)
    drafted = np.asarray(by_id["s4"].roi.value)
    assert np.allclose(drafted[0], [0.4 * SIZE, 0.2 * SIZE], atol=1e-3)  # accepted unchanged: the model's own box
    assert by_id["s1"].finding_type.value == "8186001"
    (person,) = sr.content.get_observer_contexts(observer_type=codes.DCM.Person)
    (device,) = sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    assert str(person.observer_identifying_attributes.name).rstrip("^") == READER[0]
    assert device.observer_identifying_attributes.model_name == "gazex-tiny v3"
    source = pydicom.dcmread(state.study.image_path, stop_before_pixels=True)
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID


def test_gsps_has_boxes_and_trajectories_on_their_own_layers(signed_review):
    service, sid, drawn_id, tmp_path = signed_review
    gsps = pydicom.dcmread(export_review(service, READER[0], sid, tmp_path / "out").gsps)
    assert [layer.GraphicLayer for layer in gsps.GraphicLayerSequence] == [FINDINGS_LAYER, TRAJECTORY_LAYER]
    layers = {a.GraphicLayer: a for a in gsps.GraphicAnnotationSequence}
    boxes = {o.TrackingID: o for o in layers[FINDINGS_LAYER].GraphicObjectSequence}
    assert set(boxes) == {"s1", "s2", "s3", "s4", drawn_id}
    assert all(o.GraphicType == "POLYLINE" and o.NumberOfGraphicPoints == 5 for o in boxes.values())
    texts = sorted(t.UnformattedTextValue for t in layers[FINDINGS_LAYER].TextObjectSequence)
    assert "rejected: Pneumothorax" in texts and "accepted_at_signoff: Atelectasis" in texts
    paths = layers[TRAJECTORY_LAYER].GraphicObjectSequence
    assert len(paths) == 4
    assert np.allclose(np.array(paths[0].GraphicData, dtype=float).reshape(-1, 2),
                       [[0.5 * SIZE, 0.5 * SIZE], [0.1 * SIZE, 0.4 * SIZE]])
    assert float(gsps.SoftcopyVOILUTSequence[0].WindowWidth) == 3000


def test_report_and_json_and_no_identifier_in_any_export(signed_review):
    service, sid, drawn_id, tmp_path = signed_review
    assert gazex_interop(["export-review", str(sid), "--out", str(tmp_path / "cli"),
                          "--data-dir", str(tmp_path / "site")]) == 0
    out = tmp_path / "cli"
    assert (out / "report.txt").read_text() == "FINDINGS: Cardiomegaly. Small left pleural effusion.\n"
    record = json.loads((out / "review.json").read_text())
    assert {f["tracking_id"]: f["status"] for f in record["findings"]} == {**EXPECTED_STATUS, drawn_id: "added"}
    assert record["signoff"]["decision"] == "modify" and record["reader"] == READER[0]
    assert files_containing(out, identifier_needles([make_cr(tmp_path / "again.dcm", seed=40)])) == []


def test_an_unsigned_review_is_refused(signed_review):
    service, _, _, _ = signed_review
    study = service.find_study(service.study_set_studies("s")[0].study_uid)
    service.create_reader("bob", "bob-pass-123", "reader", acting=ADMIN[0])
    open_id = service.open_session("bob", study.id).session_id
    with pytest.raises(ExportError, match=f"review session {open_id} is not signed"):
        export_review(service, "bob", open_id, "/nonexistent/never-written")


def test_stow_the_export_to_orthanc_then_qido_and_wado_back(signed_review, orthanc_url):
    service, sid, drawn_id, tmp_path = signed_review
    paths = export_review(service, READER[0], sid, tmp_path / "out")
    image = service.session_state(READER[0], sid).study.image_path
    assert dicomweb.push(orthanc_url, [image, paths.sr, paths.gsps]) == 3
    study_uid = pydicom.dcmread(paths.sr).StudyInstanceUID
    instances = dicomweb.find_instances(orthanc_url, study_uid)
    classes = {i["sop_class_uid"] for i in instances}
    assert {"1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.11.1"} <= classes  # Comprehensive 3D SR, GSPS
    sr_instance = next(i for i in instances if i["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.88.34")
    back = dicomweb.retrieve_instance(orthanc_url, study_uid, sr_instance["series_uid"], sr_instance["sop_uid"])
    groups = hd.sr.Comprehensive3DSR.from_dataset(back).content.get_planar_roi_measurement_groups()
    assert {g.tracking_identifier for g in groups} == {"s1", "s2", "s3", "s4", drawn_id}


def test_a_finding_nobody_decided_stays_drafted_and_rejection_wins():
    from types import SimpleNamespace as Decision

    from interop.sr import finding_status

    assert finding_status(None, None) == "drafted"  # e.g. a draft rejected as a whole at sign-off
    assert finding_status(Decision(decision="accepted"), Decision(decision="deleted")) == "rejected"
    assert finding_status(Decision(decision="resized"), Decision(decision="accepted_at_signoff")) == "edited"
    assert finding_status(None, Decision(decision="accepted_at_signoff")) == "accepted_at_signoff"
