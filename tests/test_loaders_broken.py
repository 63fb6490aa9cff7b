"""The broken-input corpus: each variant breaks one thing in a copy of a valid loader fixture
(tests/fixtures/<dataset>/) and asserts that the load does not raise, that the problem is one issue
naming the file, the line and (for a value) the column, and that the rest of the file still loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from loader_mutations import (
    append_line,
    assert_well_formed,
    copy_fixture,
    drop_column,
    drop_line,
    duplicate_line,
    edit_line,
    header_only,
    insert_line,
    load,
    rename_header,
    set_cell,
    studies_view,
    trailing_commas,
)
from training.data.types import LoadResult

STUDY_A, SUBJECT_A, DICOM_A = "50414267", "10000032", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
DICOM_C = "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714"
R1 = "main_data/P300R100001"
META3 = "main_data/metadata_phase_3.csv"
FIX = f"{R1}/fixations.csv"
WORDS = f"{R1}/timestamps_transcription.csv"
ELLIPSES = f"{R1}/anomaly_location_ellipses.csv"
SYN_FIX = "reflacx/main_data/P300R000001/fixations.csv"


@dataclass
class Variant:
    id: str
    dataset: str
    edit: Callable[[Path], None]
    issue: tuple[str, int | None, tuple[str, ...]] | None  # file name, line, words the problem contains
    check: Callable[[LoadResult], None] | None = None


def cell(file: str, line: int, column: str, value: str) -> Callable[[Path], None]:
    return lambda root: set_cell(root / file, line, column, value)


def one(result: LoadResult, **where):
    found = [s for s in result.studies if all((s.meta.get(k) if k == "reading_id" else getattr(s, k)) == v for k, v in where.items())]
    assert len(found) == 1, [s.study_id for s in result.studies]
    return found[0]


def reflacx_fixations(n: int) -> Callable[[LoadResult], None]:
    def check(result):
        assert len(one(result, study_id=STUDY_A).gaze[0].fixations) == n
    return check


def no_reflacx_study(result: LoadResult) -> None:
    assert result.studies == []


def mimic_a_labels(**expected) -> Callable[[LoadResult], None]:
    def check(result):
        labels = one(result, study_id=STUDY_A).labels
        for name, value in expected.items():
            label = name.replace("_", " ")
            assert (labels.get(label, "absent") if value == "absent" else labels[label]) == value, labels
    return check


def both_mimic_studies(result: LoadResult) -> None:
    assert sorted(s.study_id for s in result.studies) == [STUDY_A, "52222222"]


def reflacx_phase1_duplicate(root: Path) -> None:
    table = (root / META3).read_bytes().decode().splitlines()
    (root / "main_data/metadata_phase_1.csv").write_text(table[0] + "\n" + table[1] + "\n")


def synthetic_reading_header_only(root: Path) -> None:
    header_only(root / SYN_FIX)


VARIANTS = [
    # ------------------------------------------------------------------ REFLACX
    Variant("reflacx-ppd-abc", "reflacx", cell(FIX, 3, "angular_resolution_x_pixels_per_degree", "abc"),
            ("fixations.csv", 3, ("'angular_resolution_x_pixels_per_degree'", "'abc'")), reflacx_fixations(4)),
    Variant("reflacx-ppd-inf", "reflacx", cell(FIX, 2, "angular_resolution_y_pixels_per_degree", "inf"),
            ("fixations.csv", 2, ("'angular_resolution_y_pixels_per_degree'", "'inf'")), reflacx_fixations(4)),
    Variant("reflacx-ppd-negative", "reflacx", cell(FIX, 2, "angular_resolution_x_pixels_per_degree", "-3"),
            ("fixations.csv", 2, ("'angular_resolution_x_pixels_per_degree'", "'-3'")), reflacx_fixations(4)),
    Variant("reflacx-certainty-inf", "reflacx", cell(META3, 2, "Pleural abnormality", "inf"),
            ("metadata_phase_3.csv", 2, ("'Pleural abnormality'", "'inf'")),
            lambda r: ("Pleural Effusion" not in one(r, study_id=STUDY_A).labels) or pytest.fail("label kept")),
    Variant("reflacx-certainty-text", "reflacx", cell(META3, 2, "Atelectasis", "likely"),
            ("metadata_phase_3.csv", 2, ("'Atelectasis'", "'likely'")), reflacx_fixations(4)),
    Variant("reflacx-size-zero", "reflacx", cell(META3, 2, "image_size_x", "0"),
            ("metadata_phase_3.csv", 2, ("'image_size_x'", "'0'", "image size")), no_reflacx_study),
    Variant("reflacx-size-negative", "reflacx", cell(META3, 2, "image_size_x", "-64"),
            ("metadata_phase_3.csv", 2, ("'image_size_x'", "'-64'")), no_reflacx_study),
    Variant("reflacx-size-huge", "reflacx", cell(META3, 2, "image_size_x", "1e30"),
            ("metadata_phase_3.csv", 2, ("'image_size_x'", "'1e30'")), no_reflacx_study),
    Variant("reflacx-size-fraction", "reflacx", cell(META3, 2, "image_size_y", "80.5"),
            ("metadata_phase_3.csv", 2, ("'image_size_y'", "'80.5'")), no_reflacx_study),
    Variant("reflacx-discarded-typo", "reflacx", cell(META3, 2, "eye_tracking_data_discarded", "Ture"),
            ("metadata_phase_3.csv", 2, ("'eye_tracking_data_discarded'", "'Ture'")), no_reflacx_study),
    Variant("reflacx-discarded-empty", "reflacx", cell(META3, 2, "eye_tracking_data_discarded", ""),
            ("metadata_phase_3.csv", 2, ("'eye_tracking_data_discarded'",)), no_reflacx_study),
    Variant("reflacx-duplicate-reading-row", "reflacx", lambda root: duplicate_line(root / META3, 2, at=7),
            ("metadata_phase_3.csv", 7, ("repeats line 2",)), reflacx_fixations(4)),
    Variant("reflacx-duplicate-reading-id", "reflacx",
            lambda root: (duplicate_line(root / META3, 2, at=7), set_cell(root / META3, 7, "split", "train")),
            ("metadata_phase_3.csv", 7, ("duplicate reading id", "'P300R100001'")), reflacx_fixations(4)),
    Variant("reflacx-duplicate-reading-across-phases", "reflacx", reflacx_phase1_duplicate,
            ("metadata_phase_3.csv", 2, ("duplicate reading id", "metadata_phase_1.csv:2")),
            lambda r: [s.meta["phase"] for s in r.studies] == [1] or pytest.fail("expected phase 1 only")),
    Variant("reflacx-fixations-header-only", "reflacx", lambda root: header_only(root / FIX),
            ("fixations.csv", None, ("no fixation rows",)), no_reflacx_study),
    Variant("reflacx-transcript-stray-comma", "reflacx", lambda root: edit_line(root / WORDS, 3, lambda t: t.replace("left", "le,ft")),
            ("timestamps_transcription.csv", 3, ("4 fields", "header has 3")),
            lambda r: [s.text for s in one(r, study_id=STUDY_A).gaze[0].sentences]
            == ["Small pleural effusion.", "No pneumothorax."] or pytest.fail("other words lost")),
    Variant("reflacx-fixations-lower-case-header", "reflacx", lambda root: rename_header(root / FIX, str.upper), None,
            reflacx_fixations(4)),
    Variant("reflacx-metadata-spaced-header", "reflacx", lambda root: rename_header(root / META3, lambda n: f"  {n.title()} "),
            None, reflacx_fixations(4)),
    Variant("reflacx-fixations-trailing-comma", "reflacx", lambda root: trailing_commas(root / FIX),
            ("fixations.csv", 2, ("trailing comma",)), reflacx_fixations(4)),
    Variant("reflacx-fixations-short-row", "reflacx", lambda root: edit_line(root / FIX, 9, lambda t: t.rsplit(",", 3)[0]),
            ("fixations.csv", 9, ("fields missing",)), reflacx_fixations(3)),
    Variant("reflacx-blank-line-keeps-line-numbers", "reflacx", lambda root: insert_line(root / FIX, 4, ""),
            ("fixations.csv", 7, ("'y_position'", "'abc'")), reflacx_fixations(4)),
    Variant("reflacx-ellipse-certainty-inf", "reflacx", cell(ELLIPSES, 2, "certainty", "inf"),
            ("anomaly_location_ellipses.csv", 2, ("'certainty'", "'inf'")),
            lambda r: one(r, study_id=STUDY_A).findings == [] or pytest.fail("ellipse kept")),
    Variant("reflacx-ellipse-label-typo", "reflacx", cell(ELLIPSES, 2, "Pleural abnormality", "Ture"),
            ("anomaly_location_ellipses.csv", 2, ("'Pleural abnormality'", "'Ture'")), reflacx_fixations(4)),
    Variant("reflacx-support-devices-typo", "reflacx", cell(META3, 2, "Support devices", "maybe"),
            ("metadata_phase_3.csv", 2, ("'Support devices'", "'maybe'")),
            lambda r: "Support Devices" not in one(r, study_id=STUDY_A).labels or pytest.fail("label kept")),
    Variant("reflacx-subject-id-prefixed", "reflacx", cell(META3, 2, "subject_id", f"p{SUBJECT_A}"), None,
            lambda r: one(r, study_id=STUDY_A).subject_id == SUBJECT_A or pytest.fail("not normalised")),
    Variant("reflacx-subject-id-garbage", "reflacx", cell(META3, 2, "subject_id", "patient A"),
            ("metadata_phase_3.csv", 2, ("'subject_id'", "'patient A'")), reflacx_fixations(4)),
    Variant("reflacx-metadata-missing-column", "reflacx", lambda root: drop_column(root / META3, "image_size_y"),
            ("metadata_phase_3.csv", None, ("missing column", "'image_size_y'")), no_reflacx_study),
    Variant("reflacx-gaze-timestamp-nan", "reflacx", cell("gaze_data/P300R100001/gaze.csv", 3, "timestamp_sample", "nan"),
            ("gaze.csv", 3, ("'timestamp_sample'", "'nan'")),
            lambda r: one(r, study_id=STUDY_A).gaze[0].samples.shape == (3, 3) or pytest.fail("row count")),
    Variant("reflacx-chest-box-text", "reflacx", cell(f"{R1}/chest_bounding_box.csv", 2, "xmin", "left"),
            ("chest_bounding_box.csv", 2, ("'xmin'", "'left'")),
            lambda r: one(r, study_id=STUDY_A).meta["chest_box_px"] is None or pytest.fail("box kept")),
    Variant("reflacx-fixation-x-inf", "reflacx", cell(FIX, 2, "x_position", "inf"),
            ("fixations.csv", 2, ("'x_position'", "'inf'")), reflacx_fixations(3)),
    # ------------------------------------------------------------------ MIMIC-CXR
    Variant("mimic-chexpert-trailing-comma", "mimic", lambda root: trailing_commas(root / "mimic-cxr-2.0.0-chexpert.csv"),
            ("mimic-cxr-2.0.0-chexpert.csv", 2, ("trailing comma",)), mimic_a_labels(Atelectasis=1.0, Cardiomegaly=-1.0)),
    Variant("mimic-chexpert-lower-case-header", "mimic",
            lambda root: rename_header(root / "mimic-cxr-2.0.0-chexpert.csv", str.lower), None,
            mimic_a_labels(Atelectasis=1.0, Pneumothorax=0.0)),
    Variant("mimic-chexpert-missing-label-column", "mimic", lambda root: drop_column(root / "mimic-cxr-2.0.0-chexpert.csv", "Edema"),
            ("mimic-cxr-2.0.0-chexpert.csv", 1, ("missing label column", "'Edema'")), mimic_a_labels(Edema="absent", Atelectasis=1.0)),
    Variant("mimic-chexpert-study-id-float", "mimic", cell("mimic-cxr-2.0.0-chexpert.csv", 2, "study_id", f"{STUDY_A}.0"), None,
            mimic_a_labels(Atelectasis=1.0)),
    Variant("mimic-chexpert-study-id-prefixed", "mimic", cell("mimic-cxr-2.0.0-chexpert.csv", 2, "study_id", f"s{STUDY_A}"), None,
            mimic_a_labels(Atelectasis=1.0)),
    Variant("mimic-chexpert-study-id-garbage", "mimic", cell("mimic-cxr-2.0.0-chexpert.csv", 2, "study_id", "study-A"),
            ("mimic-cxr-2.0.0-chexpert.csv", 2, ("'study_id'", "'study-A'")), both_mimic_studies),
    Variant("mimic-chexpert-yes", "mimic", cell("mimic-cxr-2.0.0-chexpert.csv", 2, "Atelectasis", "yes"),
            ("mimic-cxr-2.0.0-chexpert.csv", 2, ("'Atelectasis'", "'yes'")), mimic_a_labels(Atelectasis="absent", Cardiomegaly=-1.0)),
    Variant("mimic-chexpert-inf", "mimic", cell("mimic-cxr-2.0.0-chexpert.csv", 2, "Pneumothorax", "inf"),
            ("mimic-cxr-2.0.0-chexpert.csv", 2, ("'Pneumothorax'", "'inf'")), mimic_a_labels(Pneumothorax="absent")),
    Variant("mimic-chexpert-duplicate-study", "mimic",
            lambda root: append_line(root / "mimic-cxr-2.0.0-chexpert.csv", f"{SUBJECT_A},{STUDY_A},0.0" + ",," * 6 + ","),
            ("mimic-cxr-2.0.0-chexpert.csv", 5, ("duplicate study_id", "first on line 2")), mimic_a_labels(Atelectasis=1.0)),
    Variant("mimic-chexpert-study-row-missing", "mimic", lambda root: drop_line(root / "mimic-cxr-2.0.0-chexpert.csv", 2),
            ("mimic-cxr-2.0.0-chexpert.csv", None, ("no row for study", STUDY_A)), both_mimic_studies),
    Variant("mimic-metadata-rows-zero", "mimic", cell("mimic-cxr-2.0.0-metadata.csv", 5, "Rows", "0"),
            ("mimic-cxr-2.0.0-metadata.csv", 5, ("'Rows'", "'0'")),
            lambda r: [s.study_id for s in r.studies] == [STUDY_A] or pytest.fail("study C kept")),
    Variant("mimic-metadata-columns-huge", "mimic", cell("mimic-cxr-2.0.0-metadata.csv", 3, "Columns", "1e30"),
            ("mimic-cxr-2.0.0-metadata.csv", 3, ("'Columns'", "'1e30'")), None),
    Variant("mimic-metadata-study-id-float", "mimic", cell("mimic-cxr-2.0.0-metadata.csv", 3, "study_id", f"{STUDY_A}.0"), None,
            mimic_a_labels(Atelectasis=1.0)),
    Variant("mimic-metadata-duplicate-dicom", "mimic",
            lambda root: (duplicate_line(root / "mimic-cxr-2.0.0-metadata.csv", 3),
                          set_cell(root / "mimic-cxr-2.0.0-metadata.csv", 4, "StudyTime", "1.0")),
            ("mimic-cxr-2.0.0-metadata.csv", 4, ("duplicate dicom_id",)), both_mimic_studies),
    Variant("mimic-split-duplicate-dicom", "mimic",
            lambda root: append_line(root / "mimic-cxr-2.0.0-split.csv", f"{DICOM_A},{STUDY_A},{SUBJECT_A},test"),
            ("mimic-cxr-2.0.0-split.csv", 5, ("duplicate dicom_id",)),
            lambda r: one(r, study_id=STUDY_A).split == "train" or pytest.fail("later row won")),
    # ------------------------------------------------------------------ EGD-CXR
    Variant("egd-label-yes", "egd", cell("master_sheet.csv", 2, "cardiomegaly__chx", "yes"),
            ("master_sheet.csv", 2, ("'cardiomegaly__chx'", "'yes'")),
            lambda r: ("Cardiomegaly" not in one(r, image_id=DICOM_A).labels
                       and one(r, image_id=DICOM_A).labels["Edema"] == 1.0) or pytest.fail("labels")),
    Variant("egd-study-id-float", "egd", cell("master_sheet.csv", 2, "study_id", f"{STUDY_A}.0"), None,
            lambda r: one(r, image_id=DICOM_A).study_id == STUDY_A or pytest.fail("not normalised")),
    Variant("egd-patient-id-garbage", "egd", cell("master_sheet.csv", 2, "patient_id", "anon"),
            ("master_sheet.csv", 2, ("'patient_id'", "'anon'")), None),
    Variant("egd-duplicate-dicom", "egd",
            lambda root: (duplicate_line(root / "master_sheet.csv", 2), set_cell(root / "master_sheet.csv", 3, "stay_id", "1")),
            ("master_sheet.csv", 3, ("duplicate dicom_id",)), lambda r: len(r.studies) == 2 or pytest.fail("count")),
    Variant("egd-fpogd-inf", "egd", cell("fixations.csv", 3, "FPOGD", "inf"),
            ("fixations.csv", 3, ("'FPOGD'", "'inf'")), None),
    Variant("egd-fixation-stray-comma", "egd", lambda root: edit_line(root / "fixations.csv", 5, lambda t: t.replace(",40,55", ",4,0,55")),
            ("fixations.csv", 5, ("fields", "header has")),
            lambda r: [(f.x, f.y) for f in one(r, image_id=DICOM_A).gaze[0].fixations] == [(12, 15), (30, 30)] or pytest.fail("rows")),
    Variant("egd-upper-case-header", "egd", lambda root: rename_header(root / "master_sheet.csv", str.upper), None,
            lambda r: one(r, image_id=DICOM_A).labels["Cardiomegaly"] == 1.0 or pytest.fail("labels lost")),
    # ------------------------------------------------------------------ VinDr, MS-CXR
    Variant("vindr-box-inf", "vindr", cell("train.csv", 5, "x_min", "inf"), ("train.csv", 5, ("'x_min'", "'inf'")), None),
    Variant("vindr-trailing-comma", "vindr", lambda root: trailing_commas(root / "train.csv"),
            ("train.csv", 2, ("trailing comma",)), lambda r: len(r.studies) == 2 or pytest.fail("count")),
    Variant("vindr-duplicate-row", "vindr", lambda root: duplicate_line(root / "train.csv", 5),
            ("train.csv", 6, ("repeats line 5",)), None),
    Variant("ms-cxr-width-zero", "ms_cxr", cell("MS_CXR_Local_Alignment_v1.1.0.csv", 2, "image_width", "0"),
            ("MS_CXR_Local_Alignment_v1.1.0.csv", 2, ("'image_width'", "'0'")), None),
    Variant("ms-cxr-height-text", "ms_cxr", cell("MS_CXR_Local_Alignment_v1.1.0.csv", 4, "image_height", "tall"),
            ("MS_CXR_Local_Alignment_v1.1.0.csv", 4, ("'image_height'", "'tall'")), None),
    # ------------------------------------------------------------------ synthetic
    Variant("synthetic-width-negative", "synthetic", cell("metadata.csv", 2, "width", "-64"),
            ("metadata.csv", 2, ("'width'", "'-64'")), lambda r: r.studies == [] or pytest.fail("kept")),
    Variant("synthetic-label-typo", "synthetic", cell("metadata.csv", 2, "Atelectasis", "Ture"),
            ("metadata.csv", 2, ("'Atelectasis'", "'Ture'")), None),
    Variant("synthetic-annotation-study-id-float", "synthetic", cell("annotations.csv", 2, "study_id", f"{STUDY_A}.0"), None,
            lambda r: len(r.studies[0].findings) == 2 or pytest.fail("finding lost")),
    Variant("synthetic-duplicate-reading", "synthetic", lambda root: append_line(root / "readings.csv", f"P300R000001,{STUDY_A},R9"),
            ("readings.csv", 4, ("duplicate reading_id",)), lambda r: len(r.studies[0].gaze) == 1 or pytest.fail("gaze")),
    Variant("synthetic-is-negative-typo", "synthetic", cell("report_sentences.csv", 4, "is_negative", "maybe"),
            ("report_sentences.csv", 4, ("'is_negative'", "'maybe'")), None),
    Variant("synthetic-fixations-header-only", "synthetic", synthetic_reading_header_only,
            ("fixations.csv", None, ("no fixation rows",)), lambda r: r.studies[0].gaze == [] or pytest.fail("empty gaze kept")),
]


@pytest.fixture(scope="module")
def baselines():
    cache: dict[str, LoadResult] = {}

    def get(dataset: str) -> LoadResult:
        if dataset not in cache:
            from loader_mutations import FIXTURES
            cache[dataset] = load(dataset, FIXTURES / dataset)
        return cache[dataset]

    return get


def test_corpus_has_one_variant_per_id_and_enough_of_them():
    assert len({v.id for v in VARIANTS}) == len(VARIANTS) >= 56


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_broken_input_is_reported_and_the_rest_loads(variant, tmp_path, baselines):
    root = copy_fixture(variant.dataset, tmp_path)
    variant.edit(root)
    result = load(variant.dataset, root)  # never raises
    assert_well_formed(result.issues)
    base = baselines(variant.dataset)
    if variant.issue is None:  # a harmless variation: same studies, no new issue
        assert studies_view(result) == studies_view(base)
        assert len(result.issues) == len(base.issues)
    else:
        filename, line, words = variant.issue
        matches = [i for i in result.issues if i.file.endswith(filename) and i.row == line and all(w in i.problem for w in words)]
        assert matches, f"no issue {filename}:{line} with {words}; got:\n" + "\n".join(map(str, result.issues))
    if variant.check is not None:
        variant.check(result)
