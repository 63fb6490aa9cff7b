"""The input check (gazex_core.input_check) with the real shipped model and its shipped statistics: out-of-scope
studies are refused with their reason, in-distribution studies pass, "draft anyway" marks every sentence, and
the CLI and the app's inference worker say it in one line. Deterministic: fixed seeds, fixed corpus files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gazex_core.checkpoint import (CALIBRATION_FILE, INPUT_STATS_FILE, MODEL_SIDE_FILES, load_calibration, load_input_stats,
                                   model_identity)
from gazex_core.evidence import EvidenceBundle
from gazex_core.imaging import ImageInputError, load_image
from gazex_core.inference import DEFAULT_MODEL_DIR
from gazex_core.input_check import STATS_FILE, InputRefused
from model_support import dataset, dicom_of, rows, shipped_model
from test_imaging_pipeline import corpus_file

FEATURE_REASON = "the image is unlike the synthetic chest films the model was trained on"


@pytest.fixture(scope="module")
def gx():
    return shipped_model()


def _refusal(gx, image) -> InputRefused:
    with pytest.raises(InputRefused) as exc:
        gx.analyze(image)
    assert "\n" not in str(exc.value) and " not drafted: " in str(exc.value)
    check = exc.value.input_check
    assert check.passed is False and check.threshold == gx.input_stats.threshold
    return exc.value


def test_the_shipped_model_carries_its_statistics(gx):
    assert STATS_FILE == INPUT_STATS_FILE and (DEFAULT_MODEL_DIR / STATS_FILE).is_file()
    stats = load_input_stats(DEFAULT_MODEL_DIR)
    assert stats is not None and stats.threshold == gx.input_stats.threshold and np.isfinite(stats.threshold)
    assert stats.mean.shape == (gx.config.d_model,) and "seed 0" in stats.meta["fitted_on"]


def test_a_ct_slice_is_refused_with_its_reason(gx):
    refusal = _refusal(gx, corpus_file("CT_small.dcm"))
    reasons = refusal.input_check.reasons
    assert str(refusal).startswith("CT_small.dcm: not drafted: Modality CT is out of scope for drafting")
    assert reasons[0].startswith("Modality CT is out of scope") and FEATURE_REASON in reasons[-1]
    assert refusal.input_check.score > refusal.input_check.threshold  # the pixels alone are out of scope too


def test_a_non_chest_radiograph_is_refused_with_its_reason(gx):
    refusal = _refusal(gx, corpus_file("RG3_UNCR.dcm"))  # a real CR of a tibia
    assert refusal.input_check.reasons[0] == "BodyPartExamined is EXTREMITY, not CHEST: the draft assumes a chest radiograph"
    # without its header (pixels only) the feature score alone refuses it
    pixels_only = _refusal(gx, load_image(corpus_file("RG3_UNCR.dcm")).pixels)
    assert len(pixels_only.input_check.reasons) == 1 and FEATURE_REASON in pixels_only.input_check.reasons[0]


def test_noise_is_refused_with_its_reason(gx):
    refusal = _refusal(gx, np.random.default_rng(0).random((300, 300)))
    assert refusal.input_check.reasons == [
        f"{FEATURE_REASON} (input score {refusal.input_check.score:.2f} above the threshold "
        f"{refusal.input_check.threshold:.2f})"]


def test_a_blank_image_is_refused_with_its_reason(gx):
    with pytest.raises(ImageInputError, match="blank"):  # exactly blank: the image reader refuses it
        gx.analyze(np.zeros((256, 256), np.uint8))
    near_blank = 0.5 + 0.01 * np.random.default_rng(0).random((256, 256))  # readable, but nothing to see
    assert FEATURE_REASON in _refusal(gx, near_blank).input_check.reasons[0]


def test_the_real_chest_film_is_flagged_until_a_model_trained_on_real_films_is_loaded(gx):
    refusal = _refusal(gx, corpus_file("RG1_UNCR.dcm"))
    assert len(refusal.input_check.reasons) == 1 and FEATURE_REASON in refusal.input_check.reasons[0]  # header is fine


def test_in_distribution_synthetic_test_studies_pass(gx):
    data = dataset()
    for row in rows(data, "metadata.csv"):
        bundle = gx.analyze(dicom_of(data, row["study_id"]))
        check = bundle.input_check
        assert check.passed and check.reasons == [] and check.score <= check.threshold, (row["study_id"], check)
        assert bundle.sentences and not any(s.out_of_scope for s in bundle.sentences)
        assert not any("out of scope" in w for w in bundle.warnings)


def test_draft_anyway_marks_every_sentence_out_of_scope(gx):
    bundle = gx.analyze(corpus_file("RG1_UNCR.dcm"), draft_out_of_scope=True)
    assert bundle.sentences and all(s.out_of_scope for s in bundle.sentences)
    assert bundle.input_check.passed is False and bundle.low_confidence
    assert any(w.startswith("drafted anyway although out of scope") for w in bundle.warnings)
    again = EvidenceBundle.from_json(bundle.to_json())
    assert again.input_check == bundle.input_check and all(s.out_of_scope for s in again.sentences)
    assert again.to_dict()["schema"] == "gazex.evidence/4"


def test_schema_2_bundles_still_read():
    old = {"schema": "gazex.evidence/2", "model": {"name": "gazex", "version": "v1"},
           "image": {"width": 10, "height": 10, "modality": "CR"}, "scope_warnings": [], "warnings": [], "findings": [],
           "timing_ms": {}, "sentences": [{"id": "s1", "section": "findings", "text": "Clear lungs.", "trajectory": []}]}
    bundle = EvidenceBundle.from_dict(old)
    assert bundle.input_check is None and bundle.sentences[0].out_of_scope is False
    assert bundle.to_dict()["input_check"] is None


@pytest.mark.parametrize("file, load", [(STATS_FILE, load_input_stats), (CALIBRATION_FILE, load_calibration)])
def test_each_model_side_file_is_part_of_the_model_identity(tmp_path, file, load):
    """The input-check statistics and the confidence calibrator are fitted on the model's outputs: removing one
    is another model version."""
    assert set(MODEL_SIDE_FILES) == {STATS_FILE, CALIBRATION_FILE}
    copy = tmp_path / "gazex-tiny"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    assert model_identity(copy) == model_identity(DEFAULT_MODEL_DIR)
    (copy / file).unlink()
    assert model_identity(copy) != model_identity(DEFAULT_MODEL_DIR) and load(copy) is None


def test_fitting_is_deterministic(tmp_path):
    from training.input_check import fit

    written = []
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(DEFAULT_MODEL_DIR, copy)
        (copy / STATS_FILE).unlink()
        fit(copy, n_train=8, n_val=4)
        written.append((copy / STATS_FILE).read_bytes())
    assert written[0] == written[1]


# --------------------------------------------------------------------------- the command line


def test_cli_refuses_in_one_line_and_drafts_anyway_on_request(tmp_path, capsys):
    from training.cli import main

    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), (np.random.default_rng(0).random((300, 300)) * 255).astype(np.uint8))
    assert main(["analyze", str(noise)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"gazex analyze: error: {noise.name}: not drafted: {FEATURE_REASON}")
    assert err.endswith("(--draft-out-of-scope drafts it anyway, every sentence marked out of scope)")
    assert main(["analyze", str(noise), "--draft-out-of-scope"]) == 0
    lines = capsys.readouterr().out.splitlines()
    drafted = [line for line in lines if line.startswith("[")]
    assert drafted and all("[OUT OF SCOPE]" in line for line in drafted)
    assert any(line.startswith("warning: drafted anyway although out of scope") for line in lines)


# --------------------------------------------------------------------------- the app's inference worker


def _worker_run(tmp_path: Path, image: Path, *, draft_out_of_scope: bool):
    from annotations_db import ReviewService
    from app.inference_worker import InferenceWorker
    from app.runtime import read_image

    service = ReviewService.open(f"sqlite:///{tmp_path / f'gazex-{draft_out_of_scope}.sqlite3'}")
    version = service.register_model_version("gazex", "shipped", model_identity(DEFAULT_MODEL_DIR), status="active",
                                             path=str(DEFAULT_MODEL_DIR))
    study = service.register_study("1.2.826.0.1.42", str(image), width=300, height=300)
    worker = InferenceWorker(service, shipped_model, read_image, version.id, draft_out_of_scope=draft_out_of_scope)
    worker.start()
    try:
        worker.enqueue_drafts([(study.id, study.study_uid, str(image))])
        assert worker.wait_idle(300)
    finally:
        worker.stop()
    return worker.progress, service.get_draft(study.id)


def test_the_app_refuses_without_a_traceback_and_drafts_anyway_when_asked(tmp_path, caplog):
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), (np.random.default_rng(0).random((300, 300)) * 255).astype(np.uint8))
    with caplog.at_level(logging.INFO, logger="app.inference_worker"):
        progress, draft = _worker_run(tmp_path, noise, draft_out_of_scope=False)
    assert draft is None and (progress.refused, progress.failed, progress.done) == (1, 0, 0)
    assert "1 not drafted as out of scope (1.2.826.0.1.42: noise.png: not drafted:" in progress.as_text()
    assert not [r for r in caplog.records if r.exc_info], "an expected refusal must not log a traceback"
    assert any("not drafted" in r.getMessage() for r in caplog.records)
    progress, draft = _worker_run(tmp_path, noise, draft_out_of_scope=True)
    assert progress.done == 1 and draft is not None
    sentences = draft[1]["sentences"]
    assert sentences and all(s["out_of_scope"] for s in sentences) and draft[1]["input_check"]["passed"] is False


def test_an_active_version_whose_directory_changed_is_registered_again(tmp_path):
    """A database that registered the shipped directory before it gained its statistics (old identity) gets
    the directory registered as a new version at start-up, so no new draft is attributed to the old one."""
    from annotations_db import ReviewService
    from app.runtime import choose_model

    service = ReviewService.open(f"sqlite:///{tmp_path / 'gazex.sqlite3'}")
    old = service.register_model_version("gazex", "gazex-tiny", "0" * 64, status="active", path=str(DEFAULT_MODEL_DIR))
    version, path = choose_model(service, None)
    assert version.id != old.id and version.weights_hash == model_identity(DEFAULT_MODEL_DIR)
    assert service.active_model_version().id == version.id and path == DEFAULT_MODEL_DIR
    assert choose_model(service, None)[0].id == version.id  # unchanged directory: the same version again
