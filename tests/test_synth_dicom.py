"""The DICOM files: valid, 12-bit, PA chest, MONOCHROME1 stored inverted, deterministic UIDs."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest

from gazex_core.imaging import load_image
from training.synth.study import make_study

from synth_support import SIZE, dataset


@pytest.fixture(scope="module")
def rows():
    root = dataset()
    return root, list(csv.DictReader(open(root / "metadata.csv")))


def test_every_dicom_reads_back_as_a_12_bit_pa_chest(rows):
    root, meta = rows
    uids = set()
    for row in meta:
        ds = pydicom.dcmread(root / row["image_path"])
        assert (ds.BitsStored, ds.BitsAllocated, ds.HighBit, ds.PixelRepresentation) == (12, 16, 11, 0)
        assert ds.Modality in ("DX", "CR") and ds.ViewPosition == "PA" and ds.BodyPartExamined == "CHEST"
        assert ds.PhotometricInterpretation == row["photometric"]
        assert (ds.Rows, ds.Columns) == (int(row["height"]), int(row["width"])) and ds.Rows == SIZE
        assert float(ds.PixelSpacing[0]) == pytest.approx(float(row["pixel_spacing_mm"]))
        assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(float(row["pixel_spacing_mm"]))
        assert ds.WindowWidth and ds.WindowCenter
        assert ds.PatientID == row["subject_id"] and "SYNTHETIC" in str(ds.PatientName)
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.max() <= 4095 and pixels.max() - pixels.min() > 2000
        uids.add(ds.StudyInstanceUID)
        uids.add(ds.SOPInstanceUID)
    assert len(uids) == 2 * len(meta)


def test_some_images_are_monochrome1():
    root = dataset(n=40, seed=8)
    kinds = [r["photometric"] for r in csv.DictReader(open(root / "metadata.csv"))]
    assert "MONOCHROME1" in kinds and kinds.count("MONOCHROME2") > kinds.count("MONOCHROME1")


def test_monochrome1_is_inverted_so_displayed_lungs_stay_dark():
    root = dataset(n=40, seed=8)
    for row in csv.DictReader(open(root / "metadata.csv")):
        shown = load_image(root / row["image_path"]).pixels  # the one image pipeline: VOI + MONOCHROME1
        stored = pydicom.dcmread(root / row["image_path"]).pixel_array.astype(np.float32) / 4095
        h, w = shown.shape
        lung = shown[int(h * 0.35) : int(h * 0.5), int(w * 0.2) : int(w * 0.3)].mean()  # patient-right mid lung
        abdomen = shown[int(h * 0.9) :, int(w * 0.4) : int(w * 0.6)].mean()
        assert lung < abdomen - 0.15, row["study_id"]
        if row["photometric"] == "MONOCHROME1":
            assert np.allclose(stored, 1 - shown)
            assert stored[int(h * 0.35) : int(h * 0.5), int(w * 0.2) : int(w * 0.3)].mean() > stored[int(h * 0.9) :, int(w * 0.4) : int(w * 0.6)].mean()


def test_pixels_match_the_rendered_study():
    study = make_study(7, 0, SIZE)
    root = dataset()
    shown = load_image(root / study.ids.image_path).pixels
    assert np.abs(shown - study.image * study.headroom).max() <= 1 / 4095 + 1e-6


def test_same_study_gets_same_uids():
    a, b = make_study(7, 1, 128), make_study(7, 1, 128)
    assert a.header == b.header and a.header.uid_key != make_study(7, 2, 128).header.uid_key
