"""The synthetic dataset written by ``gazex synth`` (docs/synthetic_format.md).

It is MIMIC-CXR layout (DICOM + report .txt) + REFLACX gaze (``reflacx/main_data``) + ground-truth
tables (metadata.csv, annotations.csv, report_sentences.csv, readings.csv). The MIMIC report
reader and the REFLACX per-reading readers are reused here. One Study per study: ground-truth
findings with boxes, report sentences with region/label (the report .txt gives raw text and
indication), the 14 labels from metadata.csv, one GazeRecording per reading (reader id from
readings.csv).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from gazex_core.vocab import CHEXPERT_LABELS, REGIONS, SECTIONS
from training.data.loaders.base import (
    make_box,
    DatasetLoader,
    Issues,
    check_image,
    line_of,
    numeric_columns,
    parse_bool,
    read_csv,
    register,
)
from training.data.loaders.mimic import read_report
from training.data.loaders.reflacx import read_reading
from training.data.types import Finding, LoadResult, Report, ReportSentence, Study

METADATA_COLUMNS = ("study_id", "subject_id", "dicom_id", "image_path", "report_path", "split", "width", "height")
ANNOTATION_COLUMNS = ("study_id", "label", "x_min", "y_min", "x_max", "y_max")
SENTENCE_COLUMNS = ("study_id", "sentence_index", "section", "text")
READING_COLUMNS = ("reading_id", "study_id", "reader_id")
BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


@register("synthetic", "synth")
@dataclass
class SyntheticLoader(DatasetLoader):
    root: Path
    check_images: bool = True  # read each DICOM header (not pixels); unreadable -> issue, study skipped
    raw_gaze: bool = True  # use reflacx/gaze_data/<id>/gaze.csv when it was written (--raw-gaze)
    source: str = field(default="synthetic", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        root = Path(self.root)
        meta_path = root / "metadata.csv"
        meta = read_csv(meta_path, METADATA_COLUMNS, issues)
        if meta is None:
            return LoadResult([], issues.finish())
        sizes, ok = numeric_columns(meta, ["width", "height"], meta_path, issues)
        findings = read_annotations(root / "annotations.csv", issues)
        sentences = read_report_sentences(root / "report_sentences.csv", issues)
        readings = read_readings(root / "readings.csv", issues)
        studies = []
        for i, row in enumerate(meta.to_dict("records")):
            if not ok[i]:
                continue
            study = self._study(row, int(sizes["width"][i]), int(sizes["height"][i]), line_of(i), issues)
            if study is None:
                continue
            study.findings = findings.get(study.study_id, [])
            study.gaze = self._gaze(readings.get(study.study_id, []), study, issues)
            if study.study_id in sentences:
                raw, indication = (study.report.raw_text, study.report.indication) if study.report else (None, None)
                study.report = Report(sentences=sentences[study.study_id], raw_text=raw, indication=indication)
            studies.append(study)
        return LoadResult(studies, issues.finish())

    def _study(self, row: dict, width: int, height: int, line: int, issues: Issues) -> Study | None:
        root = Path(self.root)
        image_path = root / str(row["image_path"]).strip()
        if self.check_images:
            size = check_image(image_path, str(root / "metadata.csv"), line, issues)
            if size is None:
                return None
            if size != (width, height):
                issues.add(root / "metadata.csv", line, f"width/height {width}x{height} differ from the image's {size[0]}x{size[1]}")
                return None
        try:
            labels = {c: (1.0 if parse_bool(row[c]) else 0.0) for c in CHEXPERT_LABELS if c in row}
        except KeyError:
            labels = {}
        report_path = str(row["report_path"]).strip()
        return Study(
            study_id=str(row["study_id"]).strip(),
            source=self.source,
            image_path=image_path,
            width=width,
            height=height,
            image_id=str(row["dicom_id"]).strip(),
            subject_id=str(row["subject_id"]).strip(),
            split=str(row["split"]).strip() or None,
            report=read_report(root / report_path, issues) if report_path else None,
            labels=labels,
            meta={k: row[k] for k in ("pixel_spacing_mm", "photometric", "modality", "is_normal") if k in row},
        )

    def _gaze(self, readings: list[tuple[str, str]], study: Study, issues: Issues):
        base = Path(self.root) / "reflacx"
        out = []
        for reading_id, reader_id in readings:
            main_dir = base / "main_data" / reading_id
            if not main_dir.is_dir():
                issues.add(Path(self.root) / "readings.csv", None, f"reading folder reflacx/main_data/{reading_id} not found")
                continue
            gaze_dir = base / "gaze_data" / reading_id if self.raw_gaze else None
            recording = read_reading(main_dir, gaze_dir, reader_id, study.width, study.height, issues)
            if recording is not None:
                out.append(recording)
        return out


def read_annotations(path: Path, issues: Issues) -> dict[str, list[Finding]]:
    frame = read_csv(path, ANNOTATION_COLUMNS, issues)
    if frame is None:
        return {}
    boxes, ok = numeric_columns(frame, BOX_COLUMNS, path, issues, allow_empty=True)
    out: dict[str, list[Finding]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        if not ok[i]:
            continue
        label = str(row["label"]).strip()
        if label not in CHEXPERT_LABELS:
            issues.add(path, line_of(i), f"label {label!r} is not a CheXpert label")
            continue
        coords = [boxes[c][i] for c in BOX_COLUMNS]
        try:
            box = None if any(np.isnan(coords)) else make_box(*(float(c) for c in coords))
        except ValueError as exc:
            issues.add(path, line_of(i), str(exc))
            continue
        out.setdefault(str(row["study_id"]).strip(), []).append(Finding(
            label=label, box_px=box, kind=_opt(row, "kind"), laterality=_opt(row, "laterality"),
            location=_opt(row, "location"), severity=_opt(row, "severity")))
    return out


def read_report_sentences(path: Path, issues: Issues) -> dict[str, list[ReportSentence]]:
    frame = read_csv(path, SENTENCE_COLUMNS, issues)
    if frame is None:
        return {}
    index, ok = numeric_columns(frame, ["sentence_index"], path, issues)
    rows: dict[str, list[tuple[float, ReportSentence]]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        if not ok[i]:
            continue
        section, region, label = str(row["section"]).strip(), _opt(row, "region"), _opt(row, "label")
        problem = (f"section {section!r} not in {SECTIONS}" if section not in SECTIONS
                   else f"region {region!r} not in {REGIONS}" if region is not None and region not in REGIONS
                   else f"label {label!r} is not a CheXpert label" if label is not None and label not in CHEXPERT_LABELS
                   else None)
        if problem:
            issues.add(path, line_of(i), problem)
            continue
        sentence = ReportSentence(text=str(row["text"]).strip(), section=section, region=region, label=label,
                                  is_negative=bool(parse_bool(row.get("is_negative", ""))))
        rows.setdefault(str(row["study_id"]).strip(), []).append((index["sentence_index"][i], sentence))
    return {sid: [s for _, s in sorted(items, key=lambda p: p[0])] for sid, items in rows.items()}


def read_readings(path: Path, issues: Issues) -> dict[str, list[tuple[str, str]]]:
    if not path.exists():
        return {}
    frame = read_csv(path, READING_COLUMNS, issues)
    if frame is None:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for row in frame.to_dict("records"):
        out.setdefault(row["study_id"].strip(), []).append((row["reading_id"].strip(), row["reader_id"].strip()))
    return out


def _opt(row: dict, key: str) -> str | None:
    value = str(row.get(key, "") or "").strip()
    return value or None


def load_synthetic(root: str | Path, **kwargs) -> LoadResult:
    """``load_synthetic(DIR)`` -> LoadResult of the synthetic studies under DIR."""
    return SyntheticLoader(Path(root), **kwargs).load()


__all__ = ["SyntheticLoader", "load_synthetic"]
