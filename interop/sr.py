"""A signed review out as DICOM and files: TID 1500 Comprehensive 3D SR, GSPS, the signed text, the decisions as JSON.

What each file holds
- ``sr.dcm``: one measurement group per finding (per box: the model's observation boxes and the boxes the reader
  drew): the box as a closed 5-point POLYLINE in pixel coordinates, a finding code, the review status as a
  qualitative evaluation, the radiologist as person observer and the model (name + version) as device observer;
  ``is_final``/``is_verified`` are set because only signed reviews are exported.
- ``gsps.dcm``: the boxes on graphic layer FINDINGS (with their status as text) and each sentence's inspection
  trajectory on layer TRAJECTORY, with the image's own VOI window.
- ``report.txt``: the signed report text (the current text when it was amended), ``review.json``: the
  EvidenceBundle shown to the reader with every current decision (schema ``gazex.review/1``).
Patient and study attributes are copied from the study's own (de-identified) image header by highdicom.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from gazex_core.evidence import Box

SCHEME = "99GAZEX"  # private coding scheme for what no standard code says (review status, unmapped labels)
REVIEW_STATUS = Code("REVIEW-STATUS", SCHEME, "AI result review status")
STATUSES = ("drafted", "accepted", "accepted_at_signoff", "edited", "rejected", "added")
STATUS_CODES = {
    "drafted": Code("DRAFTED", SCHEME, "Drafted by AI, no reader decision"),
    "accepted": Code("ACCEPTED", SCHEME, "Accepted by reader"),
    "accepted_at_signoff": Code("ACCEPTED-AT-SIGNOFF", SCHEME, "Accepted at sign-off without own decision"),
    "edited": Code("EDITED", SCHEME, "Edited by reader"),
    "rejected": Code("REJECTED", SCHEME, "Rejected by reader"),
    "added": Code("ADDED", SCHEME, "Added by reader"),
}
FINDING_CODES = {  # SNOMED CT where the concept is unambiguous; the rest in the private scheme
    "Cardiomegaly": Code("8186001", "SCT", "Cardiomegaly"),
    "Pleural Effusion": Code("60046008", "SCT", "Pleural effusion"),
    "Pneumothorax": Code("36118008", "SCT", "Pneumothorax"),
    "Edema": Code("19242006", "SCT", "Pulmonary edema"),
    "Atelectasis": Code("46621007", "SCT", "Atelectasis"),
    "Pneumonia": Code("233604007", "SCT", "Pneumonia"),
    "Consolidation": Code("95436008", "SCT", "Lung consolidation"),
}
GENERIC_FINDING = Code("404684003", "SCT", "Clinical finding")
CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")
MANUFACTURER = "GazeX Review"
SR_SERIES_NUMBER, GSPS_SERIES_NUMBER = 901, 902
FINDINGS_LAYER, TRAJECTORY_LAYER = "FINDINGS", "TRAJECTORY"


class ExportError(ValueError):
    """A review that cannot be exported (one line)."""


@dataclass(frozen=True)
class Finding:
    tracking_id: str  # draft sentence id, or the drawn box's id
    label: str | None
    text: str
    status: str
    box: Box  # normalised 0-1

    def polyline(self, width: int, height: int) -> np.ndarray:
        b = self.box.to_pixels(width, height)
        return np.array([[b.x_min, b.y_min], [b.x_max, b.y_min], [b.x_max, b.y_max], [b.x_min, b.y_max],
                         [b.x_min, b.y_min]], dtype=np.float32)


@dataclass(frozen=True)
class ExportedReview:
    sr: Path
    gsps: Path
    report: Path
    review_json: Path


def export_review(service, reader: str, session_id: int, out_dir: str | Path) -> ExportedReview:
    """Writes the four files of a signed review session into out_dir (created)."""
    state = service.session_state(reader, session_id)
    if state.signoff is None:
        raise ExportError(f"review session {session_id} is not signed; only signed reviews are exported")
    if not state.draft:
        raise ExportError(f"review session {session_id} has no AI draft to report on (no-AI arm)")
    source = _source_image(state.study.image_path, session_id)
    findings = review_findings(state)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExportedReview(out / "sr.dcm", out / "gsps.dcm", out / "report.txt", out / "review.json")
    build_sr(source, findings, state).save_as(paths.sr, enforce_file_format=True)
    build_gsps(source, findings, state).save_as(paths.gsps, enforce_file_format=True)
    paths.report.write_text(state.signoff["current_report"].rstrip() + "\n", encoding="utf-8")
    paths.review_json.write_text(json.dumps(review_record(state, findings), indent=1, default=str), encoding="utf-8")
    return paths


def _source_image(image_path: str, session_id: int) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(image_path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError):
        raise ExportError(f"review session {session_id}: the study image is not a DICOM file (imported from PNG or "
                          "JPEG); SR and GSPS need a DICOM source image") from None


# --- the review record -> findings ------------------------------------------------------------------------------

def review_findings(state) -> list[Finding]:
    """One finding per box: each draft observation box with its status, then each box the reader drew."""
    sentences = {d.sentence_id: d for d in state.sentences}
    boxes = {d.box_id: d for d in state.boxes}
    findings = []
    for sentence in state.draft.get("sentences", []):
        drafted = Box.from_dict(sentence.get("observation_box"))
        if drafted is None:
            continue
        box_decision, sentence_decision = boxes.get(sentence["id"]), sentences.get(sentence["id"])
        final = _decided_box(box_decision) or drafted
        text = sentence_decision.final_text if sentence_decision and sentence_decision.final_text else sentence["text"]
        findings.append(Finding(sentence["id"], sentence.get("label"), text,
                                finding_status(box_decision, sentence_decision), final))
    for decision in state.boxes:
        if decision.decision == "added" and _decided_box(decision):
            linked = sentences.get(decision.linked_sentence_id or "")
            findings.append(Finding(decision.box_id, None, linked.final_text if linked and linked.final_text else "",
                                    "added", _decided_box(decision)))
    return findings


def finding_status(box_decision, sentence_decision) -> str:
    """Rejected beats edited beats accepted; no decision at all stays 'drafted' (silence is not a decision)."""
    kinds = {d.decision for d in (box_decision, sentence_decision) if d is not None}
    if kinds & {"rejected", "deleted"}:
        return "rejected"
    if kinds & {"moved", "resized", "edited"}:
        return "edited"
    if "accepted" in kinds:
        return "accepted"
    if "accepted_at_signoff" in kinds:
        return "accepted_at_signoff"
    return "drafted"


def _decided_box(decision) -> Box | None:
    if decision is None or decision.x_min is None:
        return None
    return Box(decision.x_min, decision.y_min, decision.x_max, decision.y_max)


def review_record(state, findings: list[Finding]) -> dict[str, Any]:
    return {"schema": "gazex.review/1", "session_id": state.session_id, "study_uid": state.study.study_uid,
            "reader": state.reader, "signoff": state.signoff, "draft": state.draft,
            "sentences": [asdict(d) for d in state.sentences], "boxes": [asdict(d) for d in state.boxes],
            "findings": [{**asdict(f), "box": f.box.to_dict()} for f in findings]}


# --- SR ----------------------------------------------------------------------------------------------------------

def _model(state) -> tuple[str, str]:
    model = state.draft.get("model") or {}
    return str(model.get("name") or "gazex"), str(model.get("version") or "unknown")


def observation_context(state) -> hd.sr.ObservationContext:
    name, version = _model(state)
    person = hd.sr.ObserverContext(observer_type=codes.DCM.Person,
                                   observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                       name=person_name(state.reader)))
    device = hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                   observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                                       uid=pydicom.uid.generate_uid(entropy_srcs=[name, version]), name=name,
                                       manufacturer_name="GazeX", model_name=f"{name} {version}"))
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def build_sr(source: pydicom.Dataset, findings: list[Finding], state) -> hd.sr.Comprehensive3DSR:
    width, height = int(source.Columns), int(source.Rows)
    region_source = hd.sr.SourceImageForRegion.from_source_image(source)
    groups = [hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=finding.tracking_id),
        referenced_region=hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                            graphic_data=finding.polyline(width, height), source_image=region_source),
        finding_type=finding_code(finding.label),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(REVIEW_STATUS, STATUS_CODES[finding.status])])
        for finding in findings]
    report = hd.sr.MeasurementReport(observation_context=observation_context(state), procedure_reported=CHEST_XRAY,
                                     imaging_measurements=groups or None)
    return hd.sr.Comprehensive3DSR(
        evidence=[source], content=report, series_instance_uid=hd.UID(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True, is_final=True,
        is_verified=True, verifying_observer_name=person_name(state.reader), verifying_organization=MANUFACTURER)


def person_name(username: str) -> str:
    """A DICOM PN: a username has one component, which the trailing caret marks as the family name."""
    return username if "^" in username else f"{username}^"


def finding_code(label: str | None) -> Code:
    if not label:
        return GENERIC_FINDING
    return FINDING_CODES.get(label) or Code(label.upper().replace(" ", "-"), SCHEME, label)


# --- GSPS ----------------------------------------------------------------------------------------------------------

def build_gsps(source: pydicom.Dataset, findings: list[Finding], state) -> hd.pr.GrayscaleSoftcopyPresentationState:
    width, height = int(source.Columns), int(source.Rows)
    layers = [hd.pr.GraphicLayer(FINDINGS_LAYER, order=1, description="reviewed finding boxes"),
              hd.pr.GraphicLayer(TRAJECTORY_LAYER, order=2, description="the model's inspection trajectory")]
    boxes = [hd.pr.GraphicObject(hd.pr.GraphicTypeValues.POLYLINE, f.polyline(width, height),
                                 hd.pr.AnnotationUnitsValues.PIXEL, tracking_id=f.tracking_id, tracking_uid=hd.UID())
             for f in findings]
    labels = [hd.pr.TextObject(f"{f.status}: {f.label or f.tracking_id}", hd.pr.AnnotationUnitsValues.PIXEL,
                               anchor_point=tuple(float(v) for v in f.polyline(width, height)[0]),
                               anchor_point_visible=False, tracking_id=f"{f.tracking_id}-text", tracking_uid=hd.UID())
              for f in findings]
    paths = [hd.pr.GraphicObject(hd.pr.GraphicTypeValues.POLYLINE, points, hd.pr.AnnotationUnitsValues.PIXEL,
                                 tracking_id=f"{sentence_id}-trajectory", tracking_uid=hd.UID())
             for sentence_id, points in trajectories(state.draft, width, height)]
    annotations = []
    if boxes:
        annotations.append(hd.pr.GraphicAnnotation([source], layers[0], graphic_objects=boxes, text_objects=labels))
    if paths:
        annotations.append(hd.pr.GraphicAnnotation([source], layers[1], graphic_objects=paths))
    name, version = _model(state)
    return hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source], series_instance_uid=hd.UID(), series_number=GSPS_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=f"{name} {version}", software_versions=version, device_serial_number="none",
        content_label="GAZEX_REVIEW", content_description="Signed GazeX review: boxes and trajectories",
        graphic_annotations=annotations or None, graphic_layers=layers, content_creator_name=person_name(state.reader),
        voi_lut_transformations=_voi(source))


def trajectories(draft: dict[str, Any], width: int, height: int) -> list[tuple[str, np.ndarray]]:
    """Each sentence's trajectory as pixel points (a single point is drawn as a zero-length line)."""
    out = []
    for sentence in draft.get("sentences", []):
        points = [(float(p["x"]) * width, float(p["y"]) * height) for p in sentence.get("trajectory") or []]
        if points:
            if len(points) == 1:
                points = points * 2
            out.append((sentence["id"], np.array(points, dtype=np.float32)))
    return out


def _voi(source: pydicom.Dataset) -> list[hd.pr.SoftcopyVOILUTTransformation] | None:
    if "WindowCenter" not in source or "WindowWidth" not in source:
        return None
    first = (lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v))
    return [hd.pr.SoftcopyVOILUTTransformation(window_center=first(source.WindowCenter),
                                               window_width=first(source.WindowWidth))]
