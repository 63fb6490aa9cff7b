"""Dataset loaders: each reads its real-format fixtures (tests/fixtures/<dataset>/, built by
tests/fixtures/build_loader_fixtures.py) into the expected Study objects, and every deliberate bad
row/file becomes one LoadIssue naming the file, the line and the problem while the valid rows load."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import numpy as np
import pytest

from gazex_core.evidence import Box
from training.data.loaders import (
    EgdCxrLoader,
    IuXrayLoader,
    MimicCxrLoader,
    MsCxrLoader,
    ReflacxLoader,
    SyntheticLoader,
    VindrCxrLoader,
    dataset_kinds,
    image_size,
    load_dataset,
)
from training.data.loaders.reports import parse_mimic_report
from training.data.types import LoadIssue

F = Path(__file__).parent / "fixtures"
SUBJECT_A, STUDY_A, DICOM_A = "10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
STUDY_C, DICOM_C = "52222222", "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714"
TXV_DATA = Path(list(importlib.util.find_spec("torchxrayvision").submodule_search_locations)[0]) / "data"


def issue_lines(issues: list[LoadIssue]) -> list[tuple[str, int | None]]:
    return [(Path(i.file.split(":")[0]).name, i.row) for i in issues]


def find_issue(issues: list[LoadIssue], filename: str, row: int | None, *words: str) -> LoadIssue:
    for issue in issues:
        if Path(issue.file).name.endswith(filename) and issue.row == row and all(w in issue.problem for w in words):
            return issue
    raise AssertionError(f"no issue {filename}:{row} with {words}; got:\n" + "\n".join(map(str, issues)))


def assert_one_line(issues: list[LoadIssue]) -> None:
    for issue in issues:
        assert "\n" not in str(issue) and "Traceback" not in str(issue)


# ----------------------------------------------------------------------------- MIMIC-CXR


def test_mimic_loads_frontal_image_report_labels_split():
    result = MimicCxrLoader(F / "mimic").load()
    studies = {s.study_id: s for s in result}
    assert sorted(studies) == [STUDY_A, STUDY_C]
    a = studies[STUDY_A]
    assert a.image_id == DICOM_A  # the PA image, not the lateral listed first
    assert a.image_path == F / "mimic" / f"files/p10/p{SUBJECT_A}/s{STUDY_A}/{DICOM_A}.dcm"
    assert (a.width, a.height, a.split, a.subject_id) == (64, 80, "train", SUBJECT_A)
    assert a.labels["Atelectasis"] == 1.0 and a.labels["Cardiomegaly"] == -1.0 and a.labels["Pneumothorax"] == 0.0
    assert a.labels["Edema"] is None
    findings = [s for s in a.report.sentences if s.section == "findings"]
    impression = [s for s in a.report.sentences if s.section == "impression"]
    assert [s.text for s in findings] == [
        "There is a small left pleural effusion with adjacent atelectasis.",
        "No pneumothorax is seen.",
        "The cardiac silhouette is top normal.",
        "A 1.5 cm nodule projects over the right upper lobe.",
    ]
    assert [s.text for s in impression] == ["Small left pleural effusion.", "Right upper lobe nodule, recommend CT."]
    assert findings[0].label == "Pleural Effusion" and findings[0].region == "breathing"
    assert findings[1].is_negative and findings[1].label is None
    assert findings[3].label == "Lung Lesion"
    assert a.report.indication == "___F with cough and fever, evaluate for pneumonia."
    c = studies[STUDY_C]
    assert (c.width, c.height, c.split, c.report) == (72, 60, "val", None)
    assert c.labels["No Finding"] == 1.0


def test_mimic_bad_rows_and_files_are_one_line_issues():
    issues = MimicCxrLoader(F / "mimic").load().issues
    assert_one_line(issues)
    find_issue(issues, "mimic-cxr-2.0.0-metadata.csv", 2, "'Rows'", "'abc'")
    find_issue(issues, "mimic-cxr-2.0.0-chexpert.csv", 4, "'2.0'")
    find_issue(issues, "mimic-cxr-2.0.0-split.csv", 4, "holdout")
    find_issue(issues, "mimic-cxr-2.0.0-metadata.csv", 4, "no image")  # a DICOM SR, not an image
    find_issue(issues, "mimic-cxr-2.0.0-metadata.csv", 6, "unreadable DICOM")  # a text file named .dcm
    find_issue(issues, "s52222222.txt", None, "report not found")
    assert len(issues) == 6


def test_mimic_without_metadata_walks_the_files(tmp_path):
    result = MimicCxrLoader(F / "mimic", metadata_csv=tmp_path / "absent.csv").load()
    assert find_issue(result.issues, "absent.csv", None, "file not found")
    result = MimicCxrLoader(F / "mimic", metadata_csv=None, chexpert_csv=None).load()
    assert {s.study_id for s in result} == {STUDY_A, STUDY_C}


def test_mimic_section_parser_falls_back_to_last_paragraph():
    text = (F / "mimic/files/p11/p11000011/s51111111.txt").read_text()
    report = parse_mimic_report(text)
    assert [s.text for s in report.sentences] == ["Lungs are clear without focal consolidation."]
    assert report.sentences[0].is_negative


def test_image_size_reads_headers_not_pixels(monkeypatch):
    import pydicom

    calls = []
    real = pydicom.dcmread

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", spy)
    assert image_size(F / "mimic" / f"files/p10/p{SUBJECT_A}/s{STUDY_A}/{DICOM_A}.dcm") == (64, 80)
    assert calls and all(c.get("stop_before_pixels") for c in calls)


# ----------------------------------------------------------------------------- REFLACX


def reflacx():
    return ReflacxLoader(F / "reflacx", mimic_root=F / "mimic", raw_gaze=True).load()


def test_reflacx_reading_becomes_study_with_gaze_sentences_ellipses():
    result = reflacx()
    assert len(result) == 1
    study = result.studies[0]
    assert (study.study_id, study.image_id, study.subject_id) == (STUDY_A, DICOM_A, SUBJECT_A)
    assert study.image_path == F / "mimic" / f"files/p10/p{SUBJECT_A}/s{STUDY_A}/{DICOM_A}.dcm"
    assert (study.width, study.height, study.split) == (64, 80, "val")
    assert study.meta["reading_id"] == "P300R100001" and study.meta["phase"] == 3
    (rec,) = study.gaze
    assert [(f.x, f.y, f.start_s, f.end_s) for f in rec.fixations] == [
        (10, 12, 0.1, 0.35), (12, 14, 0.4, 0.7), (50, 60, 0.8, 1.1), (52, 62, 2.1, 2.6)]
    assert rec.pixels_per_degree == (20.0, 22.0)
    assert [(s.text, s.start_s, s.end_s) for s in rec.sentences] == [
        ("Small left pleural effusion.", 1.0, 2.5), ("No pneumothorax.", 3.0, 4.0)]
    assert rec.samples.shape == (4, 3) and rec.sample_rate_hz == 1000.0
    assert rec.samples[:, 0].tolist() == [0.1, 0.101, 0.102, 0.105]
    (finding,) = study.findings  # the certainty-2 ellipse is below the threshold
    assert finding.label == "Pleural Effusion" and finding.kind == "pleural abnormality"
    assert finding.box_px == Box(40, 50, 62, 75) and finding.certainty == 0.75
    assert study.labels["Pleural Effusion"] == 1.0 and study.labels["Atelectasis"] == 0.0
    assert study.labels["Support Devices"] == 1.0 and study.labels["No Finding"] == 0.0
    assert study.meta["other_labels"] == {"Enlarged hilum": 3}
    assert study.meta["chest_box_px"] == Box(2, 3, 62, 78)
    assert [s.text for s in study.report.sentences] == ["Small left pleural effusion.", "No pneumothorax."]


def test_reflacx_bad_input_is_reported_per_file_and_line():
    issues = reflacx().issues
    assert_one_line(issues)
    fix = "P300R100001/fixations.csv"
    find_issue(issues, "metadata_phase_3.csv", 6, "image_size_x", "'n/a'")
    find_issue(issues, fix.split("/")[-1], 6, "'y_position'", "'abc'")
    find_issue(issues, "fixations.csv", 7, "out of order")
    find_issue(issues, "fixations.csv", 8, "ends", "before it starts")
    find_issue(issues, "fixations.csv", 5, "outside the 64x80 image")
    find_issue(issues, "gaze.csv", 6, "outside the 64x80 image")
    find_issue(issues, "metadata_phase_3.csv", 4, "P300R100003 not found")
    find_issue(issues, "fixations.csv", None, "missing column", "'y_position'")
    assert len(issues) == 8  # the discarded reading (P300R100002) and the blink row are not issues


def test_reflacx_keyframes_run_on_loaded_gaze():
    from training.data.keyframes import sentence_keyframes

    study = reflacx().studies[0]
    rec = study.gaze[0]
    rec.samples = None  # fixations only
    frames = sentence_keyframes(rec, study.width, study.height)
    assert len(frames) == 2 and frames[0].n_points > 0


def test_reflacx_check_images_rejects_a_wrongly_sized_image(tmp_path):
    import shutil

    root = tmp_path / "reflacx"
    shutil.copytree(F / "reflacx", root)
    shutil.copytree(root / "main_data/P300R100001", root / "main_data/P300R100006")
    table = root / "main_data/metadata_phase_3.csv"
    image_c = f"files/p12/p12000012/s{STUDY_C}/{DICOM_C}.dcm"  # 72x60 on disk
    row = f"P300R100006,train,False,{image_c},{DICOM_C},12000012,64,80" + ",0" * 14 + ",False,\r\n"
    table.write_bytes(table.read_bytes() + row.encode())
    result = ReflacxLoader(root, mimic_root=F / "mimic", check_images=True).load()
    assert [s.meta["reading_id"] for s in result] == ["P300R100001"]
    find_issue(result.issues, "metadata_phase_3.csv", 7, "is 72x60 but image_size_x/y say 64x80")
    unchecked = ReflacxLoader(root, mimic_root=F / "mimic").load()
    assert len(unchecked) == 2


# ----------------------------------------------------------------------------- EGD-CXR


def egd(gaze="both"):
    return EgdCxrLoader(F / "egd", mimic_root=F / "mimic", gaze=gaze).load()


def test_egd_loads_gaze_in_dicom_pixels_transcript_and_anatomy():
    studies = {s.image_id: s for s in egd()}
    assert set(studies) == {DICOM_A, DICOM_C}
    a = studies[DICOM_A]
    assert (a.study_id, a.subject_id, a.width, a.height) == (STUDY_A, SUBJECT_A, 64, 80)
    assert a.labels["Cardiomegaly"] == 1.0 and a.labels["Edema"] == 1.0 and a.labels["Pneumothorax"] == 0.0
    assert a.labels["Atelectasis"] is None
    (rec,) = a.gaze
    # Swept rows: a fixation ends at Time and lasted FPOGD.
    assert [(f.x, f.y, round(f.start_s, 3), f.end_s) for f in rec.fixations] == [(12, 15, 0.3, 0.8), (40, 55, 1.6, 2.1)]
    assert rec.samples.shape == (6, 3) and rec.sample_rate_hz == 60.0
    assert [(s.text, s.start_s, s.end_s) for s in rec.sentences] == [
        ("enlarged cardiac silhouette with pulmonary edema.", 0.9, 2.6), ("no pneumothorax.", 3.0, 3.7)]
    assert a.report.raw_text.startswith("Enlarged cardiac silhouette")
    boxes = a.meta["anatomy_boxes_px"]
    assert boxes["cardiac silhouette"] == Box(20, 40, 50, 70)  # file order x1, x2, y1, y2
    assert boxes["right lung"] == Box(2.5, 5, 30, 75) and "left lung" not in boxes
    assert rec.pixels_per_degree[0] == pytest.approx(36.0 * 64 / (1920 - 534 - 534))
    c = studies[DICOM_C]
    assert [(f.x, f.y) for f in c.gaze[0].fixations] == [(20, 25)] and c.report is None


def test_egd_bad_rows_and_calibration_screens():
    issues = egd().issues
    assert_one_line(issues)
    find_issue(issues, "fixations.csv", 6, "'X_ORIGINAL'", "'x'")
    find_issue(issues, "fixations.csv", 4, "outside the image")
    find_issue(issues, "fixations.csv", 7, "out of order")
    find_issue(issues, "eye_gaze.csv", 9, "outside the image")
    find_issue(issues, "bounding_boxes.csv", 4, "max < min")
    find_issue(issues, "transcript.json", None, "unreadable transcript JSON")
    assert len(issues) == 6  # calibration-screen rows (line 2) are dropped quietly


def test_egd_without_images_keeps_size_unknown():
    studies = EgdCxrLoader(F / "egd").load().studies
    assert all(s.width is None for s in studies)
    assert studies[0].image_path == Path(f"files/p10/p{SUBJECT_A}/s{STUDY_A}/{DICOM_A}.dcm")


# ----------------------------------------------------------------------------- IU X-Ray


def iu(root):
    return IuXrayLoader(root, image_root=Path("/images"), view_table=F / "iu_xray/views.csv").load()


def check_iu(result):
    studies = {s.study_id: s for s in result}
    assert set(studies) == {"CXR1", "CXR2"}
    one, two = studies["CXR1"], studies["CXR2"]
    assert one.image_id == "CXR1_1_IM-0001-4001"  # the PA one by the view table, not the first listed
    assert one.image_path == Path("/images/CXR1_1_IM-0001-4001.png")
    assert one.labels["No Finding"] == 1.0 and one.labels["Cardiomegaly"] == 0.0
    assert one.report.indication == "Positive TB test"
    assert [s.section for s in one.report.sentences] == ["findings", "findings", "impression"]
    assert two.image_id == "CXR2_IM-0652-1001"
    assert two.labels == {"Cardiomegaly": 1.0, "Pleural Effusion": 1.0, "No Finding": 0.0}
    assert "Pulmonary Artery/enlarged" in two.meta["mesh_major"]
    issues = result.issues
    assert_one_line(issues)
    find_issue(issues, "3.xml", None, "CXR3 has no image")
    find_issue(issues, "4.xml", None, "malformed XML")
    assert len(issues) == 2


def test_iu_xray_folder_of_xml():
    check_iu(iu(F / "iu_xray/ecgen-radiology"))


def test_iu_xray_reads_a_tgz_in_place(tmp_path):
    archive = tmp_path / "reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(F / "iu_xray/ecgen-radiology", arcname="ecgen-radiology")
    result = iu(archive)
    check_iu(result)
    assert result.issues[0].file.startswith(str(archive) + ":ecgen-radiology/")


def test_iu_xray_real_nlmcxr_tarball():
    result = IuXrayLoader(TXV_DATA / "NLMCXR_reports.tgz").load()
    assert len(result) == 3955 - 104  # 104 reports have no image (data_formats.md)
    assert len(result.issues) == 104 and all("no image" in i.problem for i in result.issues)
    normal = sum(1 for s in result if s.labels.get("No Finding") == 1.0)
    assert 1300 <= normal <= 1391  # major == normal in 1,391 reports, minus those without an image


# ----------------------------------------------------------------------------- VinDr-CXR


def test_vindr_boxes_per_reader_and_label_union():
    result = VindrCxrLoader(F / "vindr").load()
    studies = {s.study_id: s for s in result}
    normal, abn = studies["50a418190bc3fb1ef1633bf9678929b3"], studies["9a5094b2563a1ef3ff50dc5c7ff71345"]
    assert normal.findings == [] and normal.labels["No Finding"] == 1.0 and normal.labels["Cardiomegaly"] == 0.0
    assert [(f.label, f.reader_id) for f in abn.findings] == [
        ("Cardiomegaly", "R10"), ("Cardiomegaly", "R9"), ("Enlarged Cardiomediastinum", "R10"), ("Pleural Other", "R8")]
    assert abn.findings[0].box_px == Box(691, 1375, 1653, 1831)
    assert abn.findings[2].kind == "aortic enlargement"
    assert [o["class_name"] for o in abn.meta["other_findings"]] == ["Other lesion"]
    assert abn.labels == {"Cardiomegaly": 1.0, "Enlarged Cardiomediastinum": 1.0, "Pleural Other": 1.0, "No Finding": 0.0}
    assert_one_line(result.issues)
    find_issue(result.issues, "train.csv", 9, "'x_min'", "'abc'")
    find_issue(result.issues, "train.csv", 10, "no box")
    find_issue(result.issues, "train.csv", 11, "max < min")
    assert len(result.issues) == 3


def test_vindr_real_vinbigdata_table():
    result = VindrCxrLoader(TXV_DATA / "vinbigdata-train.csv.gz").load()
    assert len(result) == 15000 and result.issues == []
    assert sum(1 for s in result if s.labels.get("No Finding") == 1.0) == 10606
    assert all(len({f.reader_id for f in s.findings}) <= 3 for s in result)


# ----------------------------------------------------------------------------- MS-CXR


def test_ms_cxr_phrase_boxes():
    result = MsCxrLoader(F / "ms_cxr", mimic_root=F / "mimic").load()
    studies = {s.image_id: s for s in result}
    a, c = studies[DICOM_A], studies[DICOM_C]
    assert (a.study_id, a.subject_id, a.width, a.height) == (STUDY_A, SUBJECT_A, 64, 80)
    assert a.image_path == F / "mimic" / f"files/p10/p{SUBJECT_A}/s{STUDY_A}/{DICOM_A}.jpg"
    assert [(f.label, f.box_px, f.phrase) for f in a.findings] == [
        ("Pleural Effusion", Box(36, 50, 56, 72), "small left pleural effusion"),
        ("Atelectasis", Box(30, 45, 45, 57), "adjacent atelectasis")]
    assert [s.text for s in a.report.sentences] == ["small left pleural effusion", "adjacent atelectasis"]
    assert a.labels == {"Pleural Effusion": 1.0, "Atelectasis": 1.0, "No Finding": 0.0}
    assert [f.label for f in c.findings] == ["Pneumothorax"] and c.meta["ms_cxr_split"] == "test"
    assert_one_line(result.issues)
    find_issue(result.issues, "MS_CXR_Local_Alignment_v1.1.0.csv", 5, "outside the 72x60 image")
    find_issue(result.issues, "MS_CXR_Local_Alignment_v1.1.0.csv", 6, "'y'", "'x'")
    find_issue(result.issues, "MS_CXR_Local_Alignment_v1.1.0.csv", 7, "'Nodule'")
    assert len(result.issues) == 3


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_hand_written_layout():
    result = SyntheticLoader(F / "synthetic").load()
    (study,) = result.studies
    assert (study.study_id, study.source, study.width, study.height, study.split) == (STUDY_A, "synthetic", 64, 80, "train")
    assert [(f.label, f.kind, f.box_px) for f in study.findings] == [
        ("Pleural Effusion", "pleural_effusion", Box(36, 50, 60, 74)), ("Lung Lesion", "nodule", Box(10, 12, 18, 20))]
    assert [(s.text, s.label, s.is_negative) for s in study.report.sentences] == [
        ("There is a small left pleural effusion.", "Pleural Effusion", False),
        ("A 1.5 cm nodule projects over the right upper lobe.", "Lung Lesion", False),
        ("No pneumothorax is seen.", None, True)]
    assert study.report.indication == "___F with cough and fever, evaluate for pneumonia."  # from the MIMIC .txt
    assert study.positive_labels() == {"Lung Lesion", "Atelectasis", "Pleural Effusion"}
    (rec,) = study.gaze
    assert rec.reader_id == "R1" and rec.pixels_per_degree == (7.0, 7.0)
    assert [(f.x, f.y) for f in rec.fixations] == [(48, 62), (50, 60), (14, 16)]
    assert rec.samples.shape == (3, 3)
    assert [s.text for s in rec.sentences] == ["There is a small left pleural effusion."]
    issues = result.issues
    assert_one_line(issues)
    find_issue(issues, "metadata.csv", 4, "'width'", "'wide'")
    find_issue(issues, "metadata.csv", 3, "no image")
    find_issue(issues, "annotations.csv", 4, "'Pleural Blob'")
    find_issue(issues, "report_sentences.csv", 5, "region 'lungs'")
    find_issue(issues, "fixations.csv", 5, "outside the 64x80 image")
    find_issue(issues, "readings.csv", None, "P300R000002 not found")
    assert len(issues) == 6


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    import training.synth as synth
    out = tmp_path_factory.mktemp("synth")
    return synth.generate(2, out, seed=5, size=256, workers=1, raw_gaze=True, progress=False) or out


def test_synthetic_generated_set_loads_cleanly(generated):
    result = load_dataset("synthetic", generated)
    assert result.issues == [] and len(result) == 2
    for study in result:
        assert (study.width, study.height) == image_size(study.image_path)
        assert study.report.sentences and study.gaze
        for finding in study.findings:
            if finding.box_px is not None:
                assert 0 <= finding.box_px.x_min <= finding.box_px.x_max <= study.width
        for rec in study.gaze:
            assert rec.fixations and rec.sentences and rec.samples is not None
            xs, ys = rec.samples[:, 1], rec.samples[:, 2]
            assert xs.min() >= 0 and xs.max() < study.width and ys.min() >= 0 and ys.max() < study.height
            assert np.all(np.diff(rec.samples[:, 0]) >= 0)


# ----------------------------------------------------------------------------- registry and missing input


def test_registry_knows_every_format():
    assert {"synthetic", "reflacx", "egd-cxr", "mimic-cxr", "iu-xray", "vindr-cxr", "ms-cxr"} <= set(dataset_kinds())
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("chexpert-plus", F)


@pytest.mark.parametrize("kind", ["synthetic", "reflacx", "egd-cxr", "mimic-cxr", "iu-xray", "vindr-cxr", "ms-cxr"])
def test_missing_dataset_is_an_issue_not_a_traceback(kind, tmp_path):
    result = load_dataset(kind, tmp_path / "nowhere")
    assert result.studies == []
    assert len(result.issues) >= 1
    assert_one_line(result.issues)
    assert "nowhere" in result.issues[0].file


def test_many_bad_rows_are_capped_with_a_summary(tmp_path):
    rows = [f"img{i:03d},Cardiomegaly,3,R1,abc,1,2,3" for i in range(30)] + ["good,Cardiomegaly,3,R1,1,1,2,3"]
    (tmp_path / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n" + "\n".join(rows) + "\n")
    result = load_dataset("vindr", str(tmp_path))
    assert [s.study_id for s in result] == ["good"]
    assert len(result.issues) == 21
    assert [i.row for i in result.issues[:20]] == list(range(2, 22))
    assert result.issues[-1].row is None and "10 more row issues" in result.issues[-1].problem
