"""Writing one study's files (DICOM, report, REFLACX folders) and its rows of the dataset tables."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gazex_core.vocab import CHEXPERT_LABELS

from .dicom_io import write_dicom
from .readers import SCREEN, Reading, raw_gaze
from .report import report_text
from .study import SynthStudy, study_rng

METADATA_COLUMNS = [
    "study_id", "subject_id", "dicom_id", "image_path", "report_path", "split", "width", "height",
    "pixel_spacing_mm", "photometric", "modality", "is_normal", "readers", *CHEXPERT_LABELS,
]
ANNOTATION_COLUMNS = ["study_id", "dicom_id", "finding_id", "label", "kind", "laterality", "location", "severity",
                      "x_min", "y_min", "x_max", "y_max"]
# negated_labels and finding_id extend the contract: what a negative rules out, which annotation a sentence states
SENTENCE_COLUMNS = ["study_id", "sentence_index", "section", "region", "label", "is_negative", "text",
                    "negated_labels", "finding_id"]
READING_COLUMNS = ["reading_id", "study_id", "reader_id"]
CHEXPERT_COLUMNS = ["subject_id", "study_id", *sorted(CHEXPERT_LABELS)]
REFLACX_LABELS = [
    "Abnormal mediastinal contour", "Acute fracture", "Atelectasis", "Consolidation", "Enlarged cardiac silhouette",
    "Enlarged hilum", "Groundglass opacity", "Hiatal hernia", "High lung volume / emphysema",
    "Interstitial lung disease", "Lung nodule or mass", "Pleural abnormality", "Pneumothorax", "Pulmonary edema",
]
REFLACX_META_COLUMNS = ["id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id",
                        "image_size_x", "image_size_y", *REFLACX_LABELS, "Support devices", "Other"]
KIND_TO_REFLACX = {
    "cardiomegaly": "Enlarged cardiac silhouette", "enlarged_cardiomediastinum": "Abnormal mediastinal contour",
    "pleural_effusion": "Pleural abnormality", "pneumothorax": "Pneumothorax", "consolidation": "Consolidation",
    "atelectasis": "Atelectasis", "nodule": "Lung nodule or mass", "mass": "Lung nodule or mass", "edema": "Pulmonary edema",
}
FIXATION_COLUMNS = [
    "timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position", "pupil_area_normalized",
    "angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree", "window_level", "window_width",
    "xmin_shown_from_image", "ymin_shown_from_image", "xmax_shown_from_image", "ymax_shown_from_image",
    "xmin_in_screen_coordinates", "ymin_in_screen_coordinates", "xmax_in_screen_coordinates", "ymax_in_screen_coordinates",
]
GAZE_COLUMNS = ["timestamp_sample", *FIXATION_COLUMNS[2:]]
SPLIT_REFLACX = {"train": "train", "val": "validate", "test": "test"}


def reading_id(index: int, reader_id: str) -> str:
    """REFLACX phase-3 style id, unique per (study index, reader)."""
    return f"P300R{(index * 5 + int(reader_id[1:]) - 1) % 1_000_000:06d}"


def csv_text(columns: list[str], rows: list[list], crlf: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def write_text(path: Path, text: str, make_folder: bool = True) -> None:
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        handle.write(text)


def label_values(study: SynthStudy) -> dict[str, int]:
    positives = {f.label for f in study.findings}
    values = {label: int(label in positives) for label in CHEXPERT_LABELS}
    values["No Finding"] = int(not positives)
    return values


def chexpert_values(study: SynthStudy) -> dict[str, str]:
    """MIMIC-CXR chexpert table: 1.0 stated, 0.0 ruled out in the report, blank not mentioned."""
    positives = {f.label for f in study.findings}
    negated = set().union(*(s.negated for s in study.report.sentences))
    out = {label: "1.0" if label in positives else "0.0" if label in negated else "" for label in CHEXPERT_LABELS}
    out["No Finding"] = "" if positives else "1.0"
    return out


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def write_study(study: SynthStudy, out: Path, raw: bool) -> dict[str, list[list]]:
    """Write the study's files under ``out``; return its rows for each dataset table."""
    ids = study.ids
    image_path = out / ids.image_path
    image_path.parent.mkdir(parents=True, exist_ok=True)
    write_dicom(image_path, study.stored_pixels(), study.header)
    write_text(out / ids.report_path, report_text(study.report), make_folder=False)  # the image's folder is beside it
    height, width = study.image.shape
    labels = label_values(study)
    reading_ids = [reading_id(study.index, r.reader_id) for r in study.readings]
    rows: dict[str, list[list]] = {
        "metadata": [[ids.study_id, ids.subject_id, ids.dicom_id, ids.image_path, ids.report_path, study.split, width,
                      height, fmt(study.header.pixel_spacing_mm, 6), study.header.photometric, study.header.modality,
                      labels["No Finding"], "|".join(r.reader_id for r in study.readings),
                      *[labels[label] for label in CHEXPERT_LABELS]]],
        "annotations": [
            [ids.study_id, ids.dicom_id, i, f.label, f.device or f.kind, f.laterality or "", f.location or "",
             f.severity or "", *[fmt(v) for v in f.box]]
            for i, f in enumerate(study.findings) if f.box
        ],
        "sentences": [
            [ids.study_id, i, s.section, s.region, s.label or "", int(s.is_negative), s.text, "|".join(sorted(s.negated)),
             "" if s.finding_index is None else s.finding_index]
            for i, s in enumerate(study.report.sentences)
        ],
        "readings": [[rid, ids.study_id, r.reader_id] for rid, r in zip(reading_ids, study.readings)],
        "chexpert": [[ids.subject_id, ids.study_id, *[chexpert_values(study)[c] for c in CHEXPERT_COLUMNS[2:]]]],
        "reflacx": [],
    }
    for k, (rid, reading) in enumerate(zip(reading_ids, study.readings)):
        write_reading(out / "reflacx", rid, reading, study, raw, k)
        rows["reflacx"].append(reflacx_metadata_row(rid, study))
    return rows


def reflacx_metadata_row(rid: str, study: SynthStudy) -> list:
    certainty = {label: 0 for label in REFLACX_LABELS}
    for f in study.findings:
        if f.kind in KIND_TO_REFLACX:
            certainty[KIND_TO_REFLACX[f.kind]] = 5
    devices = any(f.kind == "support_device" for f in study.findings)
    height, width = study.image.shape
    return [rid, SPLIT_REFLACX[study.split], False, study.ids.image_path, study.ids.dicom_id, study.ids.subject_id,
            width, height, *[certainty[label] for label in REFLACX_LABELS], devices, ""]


def display_geometry(study: SynthStudy) -> list[int]:
    """The whole image shown, fitted to the 4K screen's height and centred (no zoom or pan)."""
    height, width = study.image.shape
    scale = SCREEN[1] / height
    x0 = int(round((SCREEN[0] - width * scale) / 2))
    return [0, 0, width, height, x0, 0, x0 + int(round(width * scale)), SCREEN[1]]


def write_reading(root: Path, rid: str, reading: Reading, study: SynthStudy, raw: bool, k: int) -> None:
    folder = root / "main_data" / rid
    ppd = int(round(reading.pixels_per_degree))
    shown = display_geometry(study)
    window = [fmt(reading.window_level, 5), fmt(reading.window_width, 5)]
    fixation_rows = [
        [fmt(f[0], 3), fmt(f[1], 3), int(f[2]), int(f[3]), fmt(p, 5), ppd, ppd, *window, *shown]
        for f, p in zip(reading.fixations.tolist(), reading.pupil.tolist())  # Python floats: the same text, faster
    ]
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "fixations.csv", csv_text(FIXATION_COLUMNS, fixation_rows, crlf=True), make_folder=False)
    words = [[w, fmt(a, 3), fmt(b, 3)] for w, a, b in reading.words]
    write_text(folder / "timestamps_transcription.csv", csv_text(["word", "timestamp_start_word", "timestamp_end_word"], words, crlf=True),
               make_folder=False)
    write_text(folder / "transcription.txt", reading.transcription, make_folder=False)
    box = chest_box(study)
    write_text(folder / "chest_bounding_box.csv", csv_text(["xmin", "ymin", "xmax", "ymax"], [box], crlf=True), make_folder=False)
    if raw:
        samples = raw_gaze(reading, study_rng(study.seed, study.index, 100 + k))
        gaze_rows = [
            [fmt(t, 3), int(round(x)), int(round(y)), fmt(1.0, 5), ppd, ppd, *window, *shown] for t, x, y in samples.tolist()
        ]
        write_text(root / "gaze_data" / rid / "gaze.csv", csv_text(GAZE_COLUMNS, gaze_rows, crlf=True))


def chest_box(study: SynthStudy) -> list[int]:
    a = study.anatomy
    x0, y0, x1, y1 = a.lung_box
    return [int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(max(y1, a.heart_bottom)))]
