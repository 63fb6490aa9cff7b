"""`gazex import`: de-identification everywhere, consistent remapping, duplicates, bad input one line each."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from annotations_db import ReviewService
from interop.deid import IDENTIFYING_KEYWORDS, KEY_FILE_NAME
from interop.importer import import_paths
from interop_support import (IDENTIFIERS, files_containing, gazex_interop as gazex, identifier_needles, make_cr,
                             read_dicom)



def _open(data_dir: Path) -> ReviewService:
    return ReviewService.open(None, data_dir=str(data_dir))


def _import(data_dir: Path, paths, **kwargs):
    service = _open(data_dir)
    try:
        return service, import_paths(service, paths, study_set=kwargs.pop("study_set", "site"), data_dir=data_dir,
                                     **kwargs)
    finally:
        service.close()


def test_no_identifier_survives_in_files_database_logs_payloads_or_output(tmp_path, caplog, capsys):
    patient_dir = tmp_path / "incoming" / "SMITHERSON_JANE_MRN-4471-X9"
    patient_dir.mkdir(parents=True)
    originals = [make_cr(patient_dir / f"img{i}.dcm", seed=i) for i in range(2)]
    archive_src = tmp_path / "img_zip.dcm"
    originals.append(make_cr(archive_src, seed=5))
    with zipfile.ZipFile(tmp_path / "incoming" / "batch.zip", "w") as archive:
        archive.write(archive_src, "Smitherson/x.dcm")
    data_dir = tmp_path / "site"
    caplog.set_level(logging.DEBUG)
    assert gazex(["import", str(tmp_path / "incoming"), "--data-dir", str(data_dir), "--study-set", "pilot"]) == 0
    output = capsys.readouterr()
    assert "imported 3, skipped 0" in output.out

    needles = identifier_needles(originals)
    assert files_containing(data_dir, needles) == []  # image files, SQLite database + WAL, key
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert [n for n in needles if n.decode() in logged + output.out + output.err] == []

    service = _open(data_dir)
    studies = service.study_set_studies("pilot")
    assert len(studies) == 3
    from app.image_payload import load_study_image

    for study in studies:
        payload = json.dumps(load_study_image(study.image_path), default=str)
        rows = json.dumps([study.study_uid, study.image_path, study.meta])
        assert [n for n in needles if n.decode() in payload + rows] == []
        assert Path(study.image_path).is_relative_to(data_dir / "imported")
        header = read_dicom(study.image_path)
        assert header.PatientIdentityRemoved == "YES"
        assert not any(element.tag.is_private for element in header)
        for keyword in IDENTIFYING_KEYWORDS:
            assert str(header.get(keyword, "")) != str(IDENTIFIERS.get(keyword, "\0")), keyword
        assert header.PatientSex == "" and header.PatientBirthDate == "" and header.AccessionNumber == ""
    runs = service.import_runs("pilot")
    service.close()
    assert [(r["imported"], r["skipped"]) for r in runs] == [(3, 0)]


def test_invalid_header_values_quoting_the_patient_never_reach_logs_or_warnings(tmp_path, caplog):
    import warnings

    import pydicom
    from pydicom.config import IGNORE

    writing = pydicom.config.settings.writing_validation_mode
    pydicom.config.settings.writing_validation_mode = IGNORE  # write the malformed values a real PACS may hold
    try:
        make_cr(tmp_path / "odd.dcm", seed=9, PatientBirthDate="1948-SMITHERSON", StudyDate="2024-Smitherson",
                PatientAge="SMITHERSON")
    finally:
        pydicom.config.settings.writing_validation_mode = writing
    caplog.clear()  # what writing the test file said
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, report = _import(tmp_path / "site", [tmp_path / "odd.dcm"])
    assert report.summary() == "imported 1, skipped 0"
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert [line for line in said if "mithers" in line.lower()] == []
    assert files_containing(tmp_path / "site", {b"SMITHERSON", b"Smitherson"}) == []


def test_uids_and_dates_remap_the_same_way_under_one_key_and_differently_under_another(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    first = make_cr(source / "a.dcm", seed=1, StudyDate="20240101")
    later = make_cr(source / "b.dcm", seed=2, StudyDate="20240131")  # same patient, 30 days later
    site_a, site_b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    _import(site_a, [source])
    site_b.mkdir()
    shutil.copy(site_a / KEY_FILE_NAME, site_b / KEY_FILE_NAME)  # the same installation key, a fresh database
    _import(site_b, [source])
    _import(other, [source])

    def headers(site: Path) -> list:
        return sorted((read_dicom(p) for p in (site / "imported").rglob("*.dcm")), key=lambda d: d.StudyDate)

    a, b, c = headers(site_a), headers(site_b), headers(other)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate", "PatientID"):
        assert [d.get(keyword) for d in a] == [d.get(keyword) for d in b], keyword
    assert {d.StudyInstanceUID for d in a}.isdisjoint({d.StudyInstanceUID for d in c})
    assert {first["StudyInstanceUID"], later["StudyInstanceUID"]}.isdisjoint({d.StudyInstanceUID for d in a})
    from datetime import datetime

    days = [datetime.strptime(d.StudyDate, "%Y%m%d") for d in a]
    assert (days[1] - days[0]).days == 30 and a[0].StudyDate != "20240101"
    assert a[0].PatientID == a[1].PatientID != IDENTIFIERS["PatientID"]


def test_the_same_study_twice_is_a_duplicate_and_the_real_film_imports(tmp_path, capsys):
    data_dir = tmp_path / "site"
    films = [get_testdata_file(name) for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm")]
    assert gazex(["import", *films, "--data-dir", str(data_dir), "--quiet"]) == 0
    output = capsys.readouterr()
    assert "imported 1, skipped 1 (1 duplicate)" in output.out
    assert "RG1_J2KR.dcm: duplicate" in output.err
    assert gazex(["import", films[0], "--data-dir", str(data_dir), "--quiet"]) == 1
    assert "imported 0, skipped 1 (1 duplicate)" in capsys.readouterr().out
    service = _open(data_dir)
    (study,) = service.study_set_studies("imported")
    service.close()
    assert (study.width, study.height) == (1841, 1955)
    assert read_dicom(study.image_path).Modality == "CR"


def _write_bad_inputs(folder: Path) -> dict[str, str]:
    """Each bad file -> the words its one-line reason must contain."""
    (folder / "empty.dcm").write_bytes(b"")
    make_cr(folder / "good.dcm", seed=3)
    make_cr(folder / "truncated.dcm", seed=8)
    data = (folder / "truncated.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("Patient Smitherson, see chart\n")
    ok, png = cv2.imencode(".png", np.full((80, 80), 7, np.uint8))
    (folder / "picture.dcm").write_bytes(png.tobytes())
    make_cr(folder / "mpeg.dcm", seed=4, syntax="1.2.840.10008.1.2.4.100")
    make_cr(folder / "cine.dcm", seed=5, frames=3)
    make_cr(folder / "head_ct.dcm", seed=6, modality="CT")
    make_cr(folder / "huge.dcm", seed=7, Rows=60000, Columns=60000)
    return {"empty.dcm": "empty file", "truncated.dcm": "less than expected", "notes.txt": "text file",
            "picture.dcm": "wrong extension", "mpeg.dcm": "MPEG2 Main Profile / Main Level' is not supported",
            "cine.dcm": "multi-frame", "head_ct.dcm": "Modality CT is out of scope",
            "huge.dcm": "60000x60000 px, larger than the limit"}


def test_bad_input_is_one_line_each_and_the_rest_is_imported(tmp_path, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    expected = _write_bad_inputs(folder)
    data_dir = tmp_path / "site"
    assert gazex(["import", str(folder), "--data-dir", str(data_dir), "--quiet"]) == 0
    output = capsys.readouterr()
    assert f"imported 1, skipped {len(expected)}" in output.out
    lines = output.err.strip().splitlines()
    assert "Traceback" not in output.err
    assert len(lines) == len(expected)
    for name, words in expected.items():
        (line,) = [line for line in lines if line.startswith(f"batch/{name}: ")]
        assert words in line, line
    imported = [p for p in (data_dir / "imported").iterdir() if p.name != ".staging"]
    assert len(imported) == 1 and list((data_dir / "imported" / ".staging").iterdir()) == []


def test_png_and_jpeg_lose_their_metadata_and_keep_their_pixels(tmp_path):
    image = (np.add.outer(np.arange(200), np.arange(200)) % 256).astype(np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    text = b"tEXtAuthor\x00Smitherson"
    import zlib

    chunk = len(text[4:]).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "film.png").write_bytes(png[:33] + chunk + png[33:])
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    comment = b"\xff\xfe" + (len(b"Smitherson") + 2).to_bytes(2, "big") + b"Smitherson"
    (tmp_path / "in" / "film.jpg").write_bytes(jpeg[:2] + comment + jpeg[2:])
    service, report = _import(tmp_path / "site", [tmp_path / "in"])
    assert report.summary() == "imported 2, skipped 0"
    assert files_containing(tmp_path / "site", {b"Smitherson"}) == []
    stored_png = next((tmp_path / "site" / "imported").rglob("*.png"))
    assert np.array_equal(cv2.imread(str(stored_png), cv2.IMREAD_UNCHANGED), image)


@pytest.mark.postgres
def test_study_sets_on_both_backends(service):
    service.register_study("2.25.1", "/x/a.dcm")
    study = service.find_study("2.25.1")
    assert service.create_study_set("pilot").n_studies == 0
    assert service.add_to_study_set("pilot", study.id) is True
    assert service.add_to_study_set("pilot", study.id) is False
    assert [s.study_uid for s in service.study_set_studies("pilot")] == ["2.25.1"]
    assert [s.n_studies for s in service.study_sets()] == [1]
    run = service.record_import_run("pilot", "file", 1, 2, {"duplicate": 2}, service._now())
    assert service.import_runs("pilot")[0]["id"] == run

