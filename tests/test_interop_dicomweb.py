"""DICOMweb against a real Orthanc: pull (QIDO-RS + WADO-RS) into a study set, de-identified; push (STOW-RS)."""

from __future__ import annotations

import pytest

from annotations_db import ReviewService
from interop import dicomweb
from interop_support import files_containing, identifier_needles, make_cr, read_dicom


def test_pull_imports_the_chest_films_de_identified_and_refuses_the_rest(tmp_path, orthanc_url):
    sources = tmp_path / "pacs"
    sources.mkdir()
    originals = [make_cr(sources / f"cr{i}.dcm", seed=10 + i, AccessionNumber="PULL-1") for i in range(2)]
    make_cr(sources / "ct.dcm", seed=20, modality="CT", AccessionNumber="PULL-1")
    assert dicomweb.push(orthanc_url, sorted(sources.iterdir())) == 3
    service = ReviewService.open(None, data_dir=str(tmp_path / "site"))
    report = dicomweb.pull(service, orthanc_url, study_set="from-pacs", data_dir=tmp_path / "site",
                           filters={"AccessionNumber": "PULL-1"})
    assert report.summary().startswith("imported 2, skipped 1")
    ((name, reason),) = report.skipped
    assert name.startswith("127.0.0.1:") and "Modality CT is out of scope" in reason
    studies = service.study_set_studies("from-pacs")
    assert len(studies) == 2
    assert files_containing(tmp_path / "site", identifier_needles(originals)) == []
    assert {read_dicom(s.image_path).PatientIdentityRemoved for s in studies} == {"YES"}
    again = dicomweb.pull(service, orthanc_url, study_set="from-pacs", data_dir=tmp_path / "site",
                          filters={"AccessionNumber": "PULL-1"})
    assert again.summary().startswith("imported 0, skipped 3 (2 duplicate")
    assert [r["source"] for r in service.import_runs("from-pacs")] == ["dicomweb", "dicomweb"]
    service.close()


def test_push_then_query_and_retrieve_back(tmp_path, orthanc_url):
    original = make_cr(tmp_path / "x.dcm", seed=30)
    dicomweb.push(orthanc_url, [tmp_path / "x.dcm"])
    (instance,) = dicomweb.find_instances(orthanc_url, original["StudyInstanceUID"])
    assert instance["sop_uid"] == original["SOPInstanceUID"]
    back = dicomweb.retrieve_instance(orthanc_url, original["StudyInstanceUID"], instance["series_uid"],
                                      instance["sop_uid"])
    assert back.pixel_array.shape == (256, 256)


def test_an_unreachable_pacs_is_one_line_naming_the_server(tmp_path):
    from interop_support import _free_port

    port = _free_port()
    service = ReviewService.open(None, data_dir=str(tmp_path / "site"))
    with pytest.raises(dicomweb.PacsError) as refused:
        dicomweb.pull(service, f"http://127.0.0.1:{port}/dicom-web", study_set="x", data_dir=tmp_path / "site")
    service.close()
    message = str(refused.value)
    assert message == f"PACS 127.0.0.1:{port} unreachable (the study query: connection refused or no route)"


def test_the_pacs_commands_push_and_pull(tmp_path, orthanc_url, capsys):
    from interop_support import gazex_interop

    make_cr(tmp_path / "cli.dcm", seed=80, AccessionNumber="CLI-1")
    assert gazex_interop(["pacs", "push", orthanc_url, str(tmp_path / "cli.dcm")]) == 0
    assert capsys.readouterr().out.startswith("stored 1 instances on ")
    site = str(tmp_path / "site")
    assert gazex_interop(["pacs", "pull", orthanc_url, "--filter", "AccessionNumber=CLI-1", "--study-set", "cli",
                          "--data-dir", site]) == 0
    assert "imported 1, skipped 0; study set 'cli'" in capsys.readouterr().out
