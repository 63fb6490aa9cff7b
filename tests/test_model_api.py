"""The shipped checkpoint through the public API: analyze / ask / ground on synthetic DICOMs, bad input, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gazex_core.evidence import SCHEMA, EvidenceBundle
from gazex_core.imaging import ImageInputError, OutOfScopeError
from model_support import dataset, dicom_of, rows, shipped_model

REPO = Path(__file__).resolve().parents[1]


def _obvious_cases(root: Path):
    """(normal study, study with a large/moderate pleural effusion) from a small generated dataset."""
    meta = rows(root, "metadata.csv")
    anns = rows(root, "annotations.csv")
    normal = next(r["study_id"] for r in meta if r["is_normal"] == "1")
    effusion = next(a["study_id"] for a in anns
                    if a["label"] == "Pleural Effusion" and a["severity"] in ("large", "moderate"))
    return normal, effusion


@pytest.fixture(scope="module")
def data():
    return dataset(n=40, seed=11)


def test_shipped_checkpoint_loads_by_default():
    gx = shipped_model()
    assert gx.config.model_type == "gazex"
    assert (gx.path / "model.safetensors").stat().st_size < 30 * 1024 * 1024


def test_analyze_returns_schema_valid_bundle_with_obvious_labels(data):
    gx = shipped_model()
    normal, effusion = _obvious_cases(data)
    b = gx.analyze(str(dicom_of(data, effusion)))
    again = EvidenceBundle.from_json(b.to_json())  # validates against gazex.evidence/1
    assert again.to_dict()["schema"] == SCHEMA
    assert b.image_width > 0 and b.sentences and b.findings
    assert "Pleural Effusion" in b.positive_labels()
    eff = [s for s in b.sentences if s.label == "Pleural Effusion"]
    assert eff[0].region == "breathing" and eff[0].observation_box is not None
    if gx.config.use_gaze:
        assert any(s.trajectory for s in b.sentences)
    regions = [s.region for s in b.sentences if s.section == "findings" and s.region]
    order = ["airway", "breathing", "cardiac", "diaphragm", "everything_else", "foreign_bodies"]
    assert regions == sorted(regions, key=order.index)  # ABCDEF reading order
    nb = gx.analyze(dicom_of(data, normal))
    assert "Pleural Effusion" not in nb.positive_labels()


def test_ask_and_ground_structures(data):
    gx = shipped_model()
    _, effusion = _obvious_cases(data)
    path = dicom_of(data, effusion)
    yes = gx.ask(path, "Is there a pleural effusion?")
    assert yes.text == "yes" and 0 <= yes.confidence <= 1
    assert gx.ask(path, "Is there a pneumothorax?").text in ("yes", "no")
    where = gx.ask(path, "Where is the pleural effusion?")
    assert where.text and (where.box is None or 0 <= where.box.x_min <= where.box.x_max <= 1)
    g = gx.ground(path, "There is a moderate left pleural effusion.")
    assert g.region == "breathing" and g.box is not None
    assert 0 <= g.box.x_min < g.box.x_max <= 1 and 0 <= g.box.y_min < g.box.y_max <= 1
    for p in g.trajectory:
        assert 0 <= p.x <= 1 and 0 <= p.y <= 1 and p.dwell_ms > 0
    json.dumps(g.to_dict()), json.dumps(where.to_dict())


def test_numpy_and_png_inputs_work(data, tmp_path):
    import cv2

    from gazex_core.imaging import load_image

    gx = shipped_model()
    _, effusion = _obvious_cases(data)
    img = load_image(dicom_of(data, effusion)).pixels
    assert gx.analyze(img).sentences
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), (img * 255).astype(np.uint8))
    assert gx.analyze(str(png)).sentences


def test_bad_inputs_give_clear_errors_or_warnings(tmp_path):
    gx = shipped_model()
    with pytest.raises(ImageInputError, match="blank"):
        gx.analyze(np.zeros((256, 256), np.uint8))
    with pytest.raises(ImageInputError, match="too small"):
        gx.analyze(np.random.rand(20, 20))
    corrupt = tmp_path / "broken.dcm"
    corrupt.write_bytes(b"\x00" * 128 + b"DICM" + b"garbage" * 50)
    with pytest.raises(ImageInputError) as exc:
        gx.analyze(corrupt)
    assert "\n" not in str(exc.value)
    with pytest.raises(ImageInputError, match="no such file"):
        gx.analyze(tmp_path / "missing.dcm")
    with pytest.raises(OutOfScopeError, match="not drafted: the image is unlike"):  # not a chest X-ray: refused
        gx.analyze(np.random.default_rng(0).random((300, 300)))
    noise = gx.analyze(np.random.default_rng(0).random((300, 300)), draft_out_of_scope=True)  # drafted on request
    assert noise.warnings and noise.low_confidence
    rgb = np.stack([np.random.default_rng(1).random((256, 256))] * 2 + [np.zeros((256, 256))], -1)
    assert any("RGB" in w for w in gx.analyze(rgb, draft_out_of_scope=True).warnings)
    with pytest.raises(ValueError):
        gx.ask(np.random.rand(128, 128), "  ")


def test_cli_analyze_json_and_one_line_error(data, tmp_path):
    _, effusion = _obvious_cases(data)
    out = subprocess.run([sys.executable, "-m", "training.cli", "analyze", str(dicom_of(data, effusion)), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    EvidenceBundle.from_json(out.stdout)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = subprocess.run([sys.executable, "-m", "training.cli", "ask", str(bad), "Is there a pneumothorax?"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "bad.png" in out.stderr


def test_one_instance_serves_several_threads(data):
    from concurrent.futures import ThreadPoolExecutor

    gx = shipped_model()
    paths = [dicom_of(data, r["study_id"]) for r in rows(data, "metadata.csv")[:4]]
    sequential = [gx.analyze(p).report_text() for p in paths]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda p: gx.analyze(p).report_text(), paths))
    assert parallel == sequential
