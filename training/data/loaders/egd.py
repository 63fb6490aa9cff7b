"""EGD-CXR (PhysioNet egd-cxr 1.0.0): one radiologist's Gazepoint gaze and dictation on 1,083 MIMIC-CXR PA images.

Layout::

    ROOT/master_sheet.csv        dicom_id, path, study_id, patient_id, image_*_pad, *__chx labels, ...
    ROOT/fixations.csv           Gazepoint columns + X_ORIGINAL, Y_ORIGINAL (DICOM px, -1 = off the image)
    ROOT/eye_gaze.csv            the same columns, raw ~60 Hz samples
    ROOT/bounding_boxes.csv      dicom_id, bbox_name, x1, x2, y1, y2   (anatomy; note the x1, x2, y1, y2 order)
    ROOT/audio_segmentation_transcripts/<dicom_id>/transcript.json   full_text, time_stamped_text[phrase, begin_time, end_time]

One Study per image. Rows whose DICOM_ID is not in master_sheet are the interleaved calibration
screens and are dropped quietly (documented). Gaze with X/Y_ORIGINAL = -1 (off the image) is dropped
and reported once per file. A fixation row is Gazepoint's last sample of the fixation ("swept"), so
it ends at ``Time (in secs)`` and started FPOGD seconds before, on the same per-image clock as the
transcript. Anatomy boxes go to ``meta["anatomy_boxes_px"]`` (they are not findings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gazex_core.evidence import Box
from gazex_core.vocab import CHEXPERT_LABELS
from training.data.keyframes import split_sentences
from training.data.loaders.base import (
    make_box,
    DatasetLoader,
    Issues,
    check_image,
    first_rows,
    label_columns,
    mimic_id,
    mimic_image_path,
    numeric_columns,
    read_csv,
    register,
)
from training.data.loaders.reports import make_sentences, split_report_sentences
from training.data.types import Fixation, GazeRecording, LoadResult, Report, Study, TimedSentence

MASTER_COLUMNS = ("dicom_id", "path", "study_id", "patient_id")
GAZE_ID_COLUMNS = ("DICOM_ID", "Time (in secs)", "X_ORIGINAL", "Y_ORIGINAL")
FIXATION_COLUMNS = GAZE_ID_COLUMNS + ("FPOGD",)
BOX_COLUMNS = ("dicom_id", "bbox_name", "x1", "x2", "y1", "y2")
PAD_COLUMNS = ("image_left_pad", "image_right_pad")
SCREEN_WIDTH_PX = 1920
SAMPLE_RATE_HZ = 60.0
# Screen pixels per degree: Dell S2719DGF (27", 1920 px over 59.8 cm) at an assumed ~65 cm viewing
# distance (the distance is NOT KNOWN). Image px/deg = this x DICOM width / displayed width.
SCREEN_PX_PER_DEGREE = 36.0
READER_ID = "egd-radiologist"
_CHEXPERT_BY_KEY = {label.lower(): label for label in CHEXPERT_LABELS}


@register("egd-cxr", "egd")
@dataclass
class EgdCxrLoader(DatasetLoader):
    """EGD-CXR under ``root``.

    gaze: "fixations" (fixations.csv), "samples" (eye_gaze.csv as raw samples) or "both".
    mimic_root/image_format: resolve master_sheet ``path`` against MIMIC-CXR(-JPG); with a root the
    image header is read for the size (needed to check gaze bounds and pixels per degree).
    """

    root: Path
    mimic_root: Path | None = None
    image_format: str | None = None
    gaze: str = "fixations"
    source: str = field(default="egd-cxr", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        root = Path(self.root)
        master_path = root / "master_sheet.csv"
        master = read_csv(master_path, MASTER_COLUMNS, issues, optional=PAD_COLUMNS + ("cxr_exam_indication", "Normal", "CHF", "pneumonia"))
        if master is None:
            return LoadResult([], issues.finish())
        studies = self._studies_from_master(master, master_path, issues)
        known = {s.image_id for s in studies}
        fixations: dict[str, list[Fixation]] = {}
        samples: dict[str, np.ndarray] = {}
        if self.gaze in ("fixations", "both"):
            fixations = read_egd_fixations(root / "fixations.csv", known, issues)
        if self.gaze in ("samples", "both"):
            samples = read_egd_samples(root / "eye_gaze.csv", known, issues)
        boxes = read_anatomy_boxes(root / "bounding_boxes.csv", issues)
        for study in studies:
            dicom_id = study.image_id or ""
            recording = GazeRecording(reader_id=READER_ID, pixels_per_degree=study.meta.pop("ppd"))
            if self.gaze in ("fixations", "both"):
                recording.fixations = fixations.get(dicom_id, [])
            if self.gaze in ("samples", "both") and dicom_id in samples:
                recording.samples = samples[dicom_id]
                recording.sample_rate_hz = SAMPLE_RATE_HZ
            report, sentences = read_transcript(root / "audio_segmentation_transcripts" / dicom_id / "transcript.json", issues)
            recording.sentences = sentences
            study.report = report
            _drop_outside(study, recording, issues, root)
            study.gaze = [recording] if (recording.fixations or recording.samples is not None) else []
            study.meta["anatomy_boxes_px"] = boxes.get(dicom_id, {})
        return LoadResult(studies, issues.finish())

    def _studies_from_master(self, master: pd.DataFrame, path: Path, issues: Issues) -> list[Study]:
        pads, pads_ok = (numeric_columns(master, PAD_COLUMNS, path, issues)
                         if all(c in master.columns for c in PAD_COLUMNS) else ({}, np.zeros(len(master), bool)))
        dicom_ids = master["dicom_id"].str.strip().tolist()
        first = first_rows(dicom_ids, master.index, path, issues, "dicom_id")
        label_cols = [c for c in master.columns if _chexpert_name(c)]
        studies = []
        for i, (line, row) in enumerate(zip(master.index, master.to_dict("records"))):
            line = int(line)
            dicom_id = dicom_ids[i]
            if not dicom_id:
                issues.add(path, line, "column 'dicom_id': is empty")
                continue
            ids = self._ids(row, path, line, issues)
            if not first[i] or ids is None:
                continue
            image_path = mimic_image_path(self.mimic_root, row["path"], self.image_format)
            size = None
            if self.mimic_root is not None:
                size = check_image(image_path, str(path), line, issues)
                if size is None:
                    continue
            labels = {_chexpert_name(c): v for c, v in label_columns(row, label_cols, path, line, issues).items()}
            ppd = (40.0, 40.0)
            if size is not None and pads_ok[i]:
                shown = SCREEN_WIDTH_PX - pads["image_left_pad"][i] - pads["image_right_pad"][i]
                if shown > 0:
                    ppd = (SCREEN_PX_PER_DEGREE * size[0] / shown,) * 2
            studies.append(Study(
                study_id=ids[0],
                source=self.source,
                image_path=image_path,
                width=size[0] if size else None,
                height=size[1] if size else None,
                image_id=dicom_id,
                subject_id=ids[1],
                labels=labels,
                meta={"ppd": ppd, "indication": str(row.get("cxr_exam_indication", "")).strip() or None,
                      "classes": {k: row[k] for k in ("Normal", "CHF", "pneumonia") if k in row}},
            ))
        return studies

    @staticmethod
    def _ids(row: dict, path: Path, line: int, issues: Issues) -> tuple[str, str] | None:
        """(study_id, patient_id) as MIMIC digits; a malformed one is an issue and the row is skipped."""
        out = []
        for column in ("study_id", "patient_id"):
            value = mimic_id(row[column])
            if value is None:
                issues.add(path, line, f"column {column!r}: value {str(row[column]).strip()!r} is not a MIMIC id (digits)")
                return None
            out.append(value)
        return out[0], out[1]


def _chexpert_name(column: str) -> str | None:
    """``cardiomegaly__chx`` -> Cardiomegaly; None for other columns."""
    if not str(column).lower().endswith("_chx"):
        return None
    key = str(column)[: -len("_chx")].rstrip("_").replace("_", " ").strip().lower()
    return _CHEXPERT_BY_KEY.get(key)


def _gaze_rows(path: Path, required: tuple[str, ...], known: set[str], issues: Issues):
    """Rows of a Gazepoint export that belong to known images, with numeric columns parsed."""
    frame = read_csv(path, required, issues, only=required)
    if frame is None:
        return None
    ids = frame["DICOM_ID"].str.strip()
    frame = frame[ids.isin(known).to_numpy()]  # calibration screens are not in master_sheet
    values, ok = numeric_columns(frame, required[1:], path, issues)
    return frame.index.to_numpy(), ids[frame.index].to_numpy(), values, ok


def _off_image(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x < 0) | (y < 0)


def read_egd_fixations(path: Path, known: set[str], issues: Issues) -> dict[str, list[Fixation]]:
    parsed = _gaze_rows(path, FIXATION_COLUMNS, known, issues)
    if parsed is None:
        return {}
    index, ids, v, ok = parsed
    x, y, t, dur = v["X_ORIGINAL"], v["Y_ORIGINAL"], v["Time (in secs)"], v["FPOGD"]
    off = ok & _off_image(x, y)
    issues.add_rows(path, [int(index[i]) for i in np.nonzero(off)[0]],
                    "gaze outside the image (X_ORIGINAL/Y_ORIGINAL = -1), dropped")
    bad_dur = ok & (dur < 0)
    for i in np.nonzero(bad_dur)[0]:
        issues.add(path, int(index[i]), f"negative fixation duration FPOGD {dur[i]}")
    keep = ok & ~off & ~bad_dur
    out: dict[str, list[Fixation]] = {}
    last_end: dict[str, float] = {}
    for i in np.nonzero(keep)[0]:
        if t[i] < last_end.get(ids[i], -np.inf):
            issues.add(path, int(index[i]),
                       f"timestamps out of order: Time {t[i]} s is before the previous row's {last_end[ids[i]]} s")
            continue
        last_end[ids[i]] = t[i]
        out.setdefault(ids[i], []).append(Fixation(float(x[i]), float(y[i]), float(t[i] - dur[i]), float(t[i])))
    return out


def read_egd_samples(path: Path, known: set[str], issues: Issues) -> dict[str, np.ndarray]:
    parsed = _gaze_rows(path, GAZE_ID_COLUMNS, known, issues)
    if parsed is None:
        return {}
    index, ids, v, ok = parsed
    x, y, t = v["X_ORIGINAL"], v["Y_ORIGINAL"], v["Time (in secs)"]
    off = ok & _off_image(x, y)
    issues.add_rows(path, [int(index[i]) for i in np.nonzero(off)[0]],
                    "gaze outside the image (X_ORIGINAL/Y_ORIGINAL = -1), dropped")
    keep = ok & ~off
    out = {}
    for dicom_id in np.unique(ids[keep]):
        rows = keep & (ids == dicom_id)
        block = np.column_stack([t[rows], x[rows], y[rows]])
        order_ok = np.concatenate([[True], np.diff(block[:, 0]) >= 0])
        if not order_ok.all():
            bad_lines = [int(j) for j in index[rows][~order_ok]]
            issues.add_rows(path, bad_lines, "timestamps out of order, dropped")
            block = block[order_ok]
        out[str(dicom_id)] = block
    return out


def read_anatomy_boxes(path: Path, issues: Issues) -> dict[str, dict[str, Box]]:
    if not path.exists():
        return {}
    frame = read_csv(path, BOX_COLUMNS, issues)
    if frame is None:
        return {}
    v, ok = numeric_columns(frame, ("x1", "x2", "y1", "y2"), path, issues)
    out: dict[str, dict[str, Box]] = {}
    for i in np.nonzero(ok)[0]:
        try:
            box = make_box(v["x1"][i], v["y1"][i], v["x2"][i], v["y2"][i])  # file order is x1, x2, y1, y2
        except ValueError as exc:
            issues.add(path, int(frame.index[i]), str(exc))
            continue
        out.setdefault(frame["dicom_id"].iloc[i].strip(), {})[frame["bbox_name"].iloc[i].strip()] = box
    return out


def read_transcript(path: Path, issues: Issues) -> tuple[Report | None, list[TimedSentence]]:
    """transcript.json -> (report from full_text, timed sentences from time_stamped_text)."""
    if not path.exists():
        issues.add(path, None, "transcript not found")
        return None, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        full_text = str(data.get("full_text", "")).strip()
        phrases = data.get("time_stamped_text", []) or []
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as exc:
        issues.add(path, None, f"unreadable transcript JSON: {exc}")
        return None, []
    words: list[tuple[str, float, float]] = []
    for n, item in enumerate(phrases):
        try:
            phrase, begin, end = str(item["phrase"]).strip(), float(item["begin_time"]), float(item["end_time"])
        except (KeyError, TypeError, ValueError) as exc:
            issues.add(path, n, f"time_stamped_text[{n}] unusable: {exc}")
            continue
        body = phrase.rstrip(".").strip()
        if body:
            words.append((body, begin, end))
        if phrase.endswith("."):
            words.append((".", end, end))
    report = Report(sentences=make_sentences(split_report_sentences(full_text), "findings"), raw_text=full_text) if full_text else None
    return report, split_sentences(words)


def _drop_outside(study: Study, recording: GazeRecording, issues: Issues, root: Path) -> None:
    """With a known image size, drop gaze beyond it (X/Y_ORIGINAL past the DICOM edge)."""
    if study.width is None or study.height is None:
        return
    w, h = study.width, study.height
    inside = [f for f in recording.fixations if f.x < w and f.y < h]
    if len(inside) < len(recording.fixations):
        issues.add(root / "fixations.csv", None,
                   f"{len(recording.fixations) - len(inside)} fixations of {study.image_id} beyond the {w}x{h} image, dropped")
        recording.fixations = inside
    if recording.samples is not None:
        s = recording.samples
        keep = (s[:, 1] < w) & (s[:, 2] < h)
        if not keep.all():
            issues.add(root / "eye_gaze.csv", None,
                       f"{int((~keep).sum())} samples of {study.image_id} beyond the {w}x{h} image, dropped")
            recording.samples = s[keep]
