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
    DatasetLoader,
    Issues,
    bool_column,
    check_image,
    first_rows,
    image_size_columns,
    make_box,
    mimic_id,
    numeric_columns,
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
META_EXTRA = ("pixel_spacing_mm", "photometric", "modality", "is_normal")
OPTIONAL_FINDING_COLUMNS = ("kind", "laterality", "location", "severity")


def study_key(value) -> str:
    """Study/subject ids as written by ``gazex synth`` are MIMIC digits; ``s50414267`` or ``50414267.0``
    (a spreadsheet round trip) join with ``50414267``. Other ids are kept as they are."""
    return mimic_id(value) or str(value).strip()


def _label_flags(meta, path: Path, issues: Issues) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 14 label columns (1/0, true/false) as 1.0/0.0; an unparseable cell is an issue and the row is skipped."""
    ok = np.ones(len(meta), dtype=bool)
    labels = {}
    for column in CHEXPERT_LABELS:
        if column in meta.columns:
            flags, column_ok = bool_column(meta, column, path, issues, empty=None)
            labels[column] = np.where(flags, 1.0, 0.0)
            ok &= column_ok
    return labels, ok


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
        meta = read_csv(meta_path, METADATA_COLUMNS, issues, optional=(*CHEXPERT_LABELS, *META_EXTRA))
        if meta is None:
            return LoadResult([], issues.finish())
        sizes, ok = image_size_columns(meta, ["width", "height"], meta_path, issues)
        labels, labels_ok = _label_flags(meta, meta_path, issues)
        ok &= labels_ok
        study_ids = [study_key(v) for v in meta["study_id"]]
        ok &= first_rows(study_ids, meta.index, meta_path, issues, "study_id")
        findings = read_annotations(root / "annotations.csv", issues)
        sentences = read_report_sentences(root / "report_sentences.csv", issues)
        readings = read_readings(root / "readings.csv", issues)
        studies = []
        for i, (line, row) in enumerate(zip(meta.index, meta.to_dict("records"))):
            if not ok[i]:
                continue
            row["study_id"] = study_ids[i]
            study = self._study(row, int(sizes["width"][i]), int(sizes["height"][i]), int(line), issues)
            if study is None:
                continue
            study.labels = {c: labels[c][i] for c in labels}
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
        report_path = str(row["report_path"]).strip()
        return Study(
            study_id=row["study_id"],
            source=self.source,
            image_path=image_path,
            width=width,
            height=height,
            image_id=str(row["dicom_id"]).strip(),
            subject_id=study_key(row["subject_id"]),
            split=str(row["split"]).strip() or None,
            report=read_report(root / report_path, issues) if report_path else None,
            meta={k: row[k] for k in META_EXTRA if k in row},
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
    frame = read_csv(path, ANNOTATION_COLUMNS, issues, optional=OPTIONAL_FINDING_COLUMNS)
    if frame is None:
        return {}
    boxes, ok = numeric_columns(frame, BOX_COLUMNS, path, issues, allow_empty=True)
    out: dict[str, list[Finding]] = {}
    for i, (line, row) in enumerate(zip(frame.index, frame.to_dict("records"))):
        if not ok[i]:
            continue
        label = str(row["label"]).strip()
        if label not in CHEXPERT_LABELS:
            issues.add(path, int(line), f"column 'label': value {label!r} is not a CheXpert label")
            continue
        coords = [boxes[c][i] for c in BOX_COLUMNS]
        if 0 < sum(np.isnan(coords)) < len(coords):
            issues.add(path, int(line), "box is partly empty (give all four coordinates or none); row skipped")
            continue
        try:
            box = None if any(np.isnan(coords)) else make_box(*(float(c) for c in coords))
        except ValueError as exc:
            issues.add(path, int(line), str(exc))
            continue
        out.setdefault(study_key(row["study_id"]), []).append(Finding(
            label=label, box_px=box, kind=_opt(row, "kind"), laterality=_opt(row, "laterality"),
            location=_opt(row, "location"), severity=_opt(row, "severity")))
    return out


def read_report_sentences(path: Path, issues: Issues) -> dict[str, list[ReportSentence]]:
    frame = read_csv(path, SENTENCE_COLUMNS, issues, optional=("region", "label", "is_negative"))
    if frame is None:
        return {}
    index, ok = numeric_columns(frame, ["sentence_index"], path, issues)
    negative, negative_ok = (bool_column(frame, "is_negative", path, issues) if "is_negative" in frame.columns
                             else (np.zeros(len(frame), bool), np.ones(len(frame), bool)))
    ok &= negative_ok
    keys = [f"{study_key(s)} #{n:g}" for s, n in zip(frame["study_id"], index["sentence_index"])]
    ok &= first_rows(keys, frame.index, path, issues, "sentence (study_id #sentence_index)") | ~ok
    rows: dict[str, list[tuple[float, ReportSentence]]] = {}
    for i, (line, row) in enumerate(zip(frame.index, frame.to_dict("records"))):
        if not ok[i]:
            continue
        section, region, label = str(row["section"]).strip(), _opt(row, "region"), _opt(row, "label")
        problem = (f"section {section!r} not in {SECTIONS}" if section not in SECTIONS
                   else f"region {region!r} not in {REGIONS}" if region is not None and region not in REGIONS
                   else f"label {label!r} is not a CheXpert label" if label is not None and label not in CHEXPERT_LABELS
                   else None)
        if problem:
            issues.add(path, int(line), problem)
            continue
        sentence = ReportSentence(text=str(row["text"]).strip(), section=section, region=region, label=label,
                                  is_negative=bool(negative[i]))
        rows.setdefault(study_key(row["study_id"]), []).append((index["sentence_index"][i], sentence))
    return {sid: [s for _, s in sorted(items, key=lambda p: p[0])] for sid, items in rows.items()}


def read_readings(path: Path, issues: Issues) -> dict[str, list[tuple[str, str]]]:
    if not path.exists():
        return {}
    frame = read_csv(path, READING_COLUMNS, issues)
    if frame is None:
        return {}
    reading_ids = frame["reading_id"].str.strip().tolist()
    first = first_rows(reading_ids, frame.index, path, issues, "reading_id")
    out: dict[str, list[tuple[str, str]]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        if first[i]:
            out.setdefault(study_key(row["study_id"]), []).append((reading_ids[i], row["reader_id"].strip()))
    return out


def _opt(row: dict, key: str) -> str | None:
    value = str(row.get(key, "") or "").strip()
    return value or None


def load_synthetic(root: str | Path, **kwargs) -> LoadResult:
    """``load_synthetic(DIR)`` -> LoadResult of the synthetic studies under DIR."""
    return SyntheticLoader(Path(root), **kwargs).load()


__all__ = ["SyntheticLoader", "load_synthetic"]
