"""Calibrated sentence confidence (gazex_core.calibration, training/calibration.py) with the real shipped model and
its shipped calibrator: monotone in the statement score, better calibrated than the legacy confidence on studies
never used for fitting, carried by every bundle, part of the model version. Deterministic: fixed seeds."""

from __future__ import annotations


import numpy as np
import pytest

from gazex_core.calibration import (CALIBRATION_FILE, KINDS, Calibrator, Statement, expected_calibration_error,
                                    head_probabilities, statement)
from gazex_core.checkpoint import load_calibration
from gazex_core.evidence import EvidenceBundle
from gazex_core.inference import DEFAULT_MODEL_DIR, GazeX
from model_support import shipped_model
from training.calibration import _side_holds, judge_studies, sentence_is_true, study_indices

HELD_OUT_SEED = 2026  # never used for fitting (the calibrator was fitted on seed 0's val split)


@pytest.fixture(scope="module")
def gx():
    return shipped_model()


def test_the_shipped_model_carries_its_calibrator(gx):
    assert (DEFAULT_MODEL_DIR / CALIBRATION_FILE).is_file() and gx.calibrator is not None
    assert set(gx.calibrator.points) == set(KINDS) and "val-split" in gx.calibrator.meta["fitted_on"]


def test_calibrated_confidence_is_monotone_in_the_score(gx):
    grid = np.linspace(0.0, 1.0, 2001)
    for kind in KINDS:
        conf = np.array([gx.calibrator.confidence(Statement(kind, float(x))) for x in grid])
        assert np.all(np.diff(conf) >= 0), kind
        assert conf.min() >= 0.01 and conf.max() <= 0.99  # no drafted sentence is certain
        assert conf[-1] > conf[0], f"{kind}: the calibrator ignores the score"


def test_statement_kinds_and_scores_follow_the_labeler():
    probs = {"Pleural Effusion": 0.9, "Pneumothorax": 0.2, "Cardiomegaly": 0.3, "Enlarged Cardiomediastinum": 0.1,
             "No Finding": 0.05}
    assert statement("Small left pleural effusion.", "findings", "breathing", probs) == Statement(
        "finding", 0.9, ("Pleural Effusion",), ())
    negative = statement("No pneumothorax.", "findings", "breathing", probs)
    assert negative.kind == "negative" and negative.score == pytest.approx(0.8)
    heart = statement("The heart size is normal.", "findings", "cardiac", probs)
    assert heart.kind == "normal" and heart.score == pytest.approx(0.7 * 0.9)
    assert statement("No acute cardiopulmonary process.", "impression", None, probs) == Statement("normal", 0.05)
    assert statement("Trachea midline.", "findings", "airway", probs).score == 1.0  # no finding lives in the airway


def test_truth_checks_finding_side_negation_and_region():
    truth = {"Pleural Effusion": {"left"}, "Cardiomegaly": {None}}
    assert sentence_is_true("Small left pleural effusion.", "findings", "breathing", truth)
    assert not sentence_is_true("Small right pleural effusion.", "findings", "breathing", truth)
    assert not sentence_is_true("There is a pneumothorax.", "findings", "breathing", truth)
    assert sentence_is_true("No pneumothorax.", "findings", "breathing", truth)
    assert not sentence_is_true("No pleural effusion.", "findings", "breathing", truth)
    assert not sentence_is_true("The heart size is normal.", "findings", "cardiac", truth)
    assert sentence_is_true("Trachea midline.", "findings", "airway", truth)
    assert not sentence_is_true("No acute cardiopulmonary process.", "impression", None, truth)
    assert sentence_is_true("No acute cardiopulmonary process.", "impression", None, {"Support Devices": {None}})
    assert _side_holds("Bilateral effusions.", {"left", "right"}) and not _side_holds("Left effusion.", {"right"})


def test_calibrated_ece_on_held_out_studies_is_below_the_uncalibrated(gx):
    legacy = GazeX(DEFAULT_MODEL_DIR)
    legacy.calibrator = None
    judged, _ = judge_studies(legacy, HELD_OUT_SEED, study_indices(HELD_OUT_SEED, "test", 40), "held-out drafts")
    truth = np.array([j.true for j in judged], dtype=float)
    before = expected_calibration_error([j.legacy for j in judged], truth)
    after = expected_calibration_error([gx.calibrator.confidence(Statement(j.kind, j.score)) for j in judged], truth)
    assert len(judged) > 200 and 0.0 < truth.mean() < 1.0
    assert after < before and after <= 0.10, (before, after)


def test_the_bundle_carries_the_calibrated_confidence(gx, tmp_path):
    from training.calibration import SIZE
    from training.synth import make_study
    from training.synth.dicom_io import write_dicom

    study = make_study(HELD_OUT_SEED, 3, SIZE)
    write_dicom(tmp_path / "study.dcm", study.stored_pixels(), study.header)
    bundle = gx.analyze(tmp_path / "study.dcm")
    probs = head_probabilities(bundle.findings)
    assert bundle.sentences and bundle.confidence_calibrated
    for s in bundle.sentences:
        assert s.confidence == gx.calibrator.confidence(statement(s.text, s.section, s.region, probs))
    data = bundle.to_dict()
    assert data["schema"] == "gazex.evidence/4" and data["confidence"]["calibrated"] is True
    assert "probability that the sentence is true" in data["confidence"]["meaning"]
    again = EvidenceBundle.from_json(bundle.to_json())
    assert again.confidence_calibrated and [s.confidence for s in again.sentences] == [s.confidence for s in bundle.sentences]


def test_older_bundles_read_as_uncalibrated():
    old = {"schema": "gazex.evidence/3", "model": {"name": "gazex", "version": "v1"}, "image": {"width": 10, "height": 10},
           "input_check": None, "scope_warnings": [], "warnings": [], "findings": [], "timing_ms": {},
           "sentences": [{"id": "s1", "section": "findings", "text": "Clear lungs.", "confidence": 0.59, "trajectory": []}]}
    bundle = EvidenceBundle.from_dict(old)
    assert bundle.confidence_calibrated is False and bundle.to_dict()["confidence"]["calibrated"] is False
    assert "uncalibrated" in bundle.confidence_meaning


def test_the_calibrator_file_round_trips_byte_for_byte(tmp_path):
    shipped = load_calibration(DEFAULT_MODEL_DIR)
    written = shipped.save(tmp_path)
    assert written.read_bytes() == (DEFAULT_MODEL_DIR / CALIBRATION_FILE).read_bytes()
    (tmp_path / CALIBRATION_FILE).write_text('{"format": "gazex.calibration/1", "kinds": {}}')
    with pytest.raises(ValueError, match="no calibration for statement kind"):
        Calibrator.load(tmp_path / CALIBRATION_FILE)


def test_the_workstation_is_told_the_confidence_is_calibrated(gx):
    from app.workstation.component import workstation_value

    pixels = np.zeros((64, 64), dtype=np.float32)
    base = {"schema": "gazex.evidence/4", "model": {"name": "gazex", "version": "v"}, "image": {"width": 64, "height": 64},
            "sentences": [], "findings": []}
    assert workstation_value({**base, "confidence": {"calibrated": True}}, pixels)["confidence_calibrated"] is True
    assert workstation_value(base, pixels)["confidence_calibrated"] is False


def test_the_cli_has_calibrate_fit_and_evaluate():
    from training.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["calibrate", "fit", "--n-val", "5"]).n_val == 5
    assert parser.parse_args(["calibrate", "evaluate", "--n-test", "7"]).n_test == 7
