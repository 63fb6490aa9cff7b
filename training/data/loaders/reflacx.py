"""REFLACX (PhysioNet reflacx-xray-localization 1.0.0): gaze, dictation and ellipses on MIMIC-CXR images.

Layout::

    ROOT/main_data/metadata_phase_{1,2,3}.csv
    ROOT/main_data/<id>/fixations.csv, timestamps_transcription.csv, transcription.txt,
                        anomaly_location_ellipses.csv, chest_bounding_box.csv
    ROOT/gaze_data/<id>/gaze.csv            (optional, 1000 Hz raw samples)

One Study per **reading** (an image read by one radiologist): the dictated report, that reader's
gaze (fixations; raw samples with ``raw_gaze=True``) with timed sentences, the ellipses with
certainty >= ``certainty_threshold`` as findings (box = ellipse extent), labels from the metadata
certainty columns. Phase 1-2 images have 5 readings each, so ``study_id`` (the MIMIC study, parsed
from ``image``) repeats; ``meta["reading_id"]`` is unique. Positions are image pixels already (do
not rescale); gaze outside the image is dropped and reported.

The per-reading readers (:func:`read_fixations`, :func:`read_gaze_samples`, :func:`read_words`,
:func:`read_reading`) are reused by the synthetic loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazex_core.evidence import Box
from training.data.keyframes import split_sentences
from training.data.loaders.base import (
    DatasetLoader,
    parse_bool,
    Issues,
    bool_column,
    check_image,
    first_rows,
    image_size_columns,
    make_box,
    mimic_id,
    mimic_ids_from_path,
    mimic_image_path,
    numeric_columns,
    read_csv,
    register,
)
from training.data.loaders.reports import make_sentences, split_report_sentences
from training.data.types import Finding, Fixation, GazeRecording, LoadResult, Report, Study

METADATA_COLUMNS = ("id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id",
                    "image_size_x", "image_size_y")
FIXATION_COLUMNS = ("timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position")
GAZE_COLUMNS = ("timestamp_sample", "x_position", "y_position")
WORD_COLUMNS = ("word", "timestamp_start_word", "timestamp_end_word")
PPD_COLUMNS = ("angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree")
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
DEFAULT_PPD = (40.0, 40.0)
SAMPLE_RATE_HZ = 1000.0
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}

# REFLACX label column -> (CheXpert label, finer kind). None: no CheXpert counterpart (kept in meta).
REFLACX_LABELS: dict[str, tuple[str | None, str]] = {
    "Airway wall thickening": (None, "airway wall thickening"),
    "Atelectasis": ("Atelectasis", "atelectasis"),
    "Consolidation": ("Consolidation", "consolidation"),
    "Emphysema": (None, "emphysema"),
    "Enlarged cardiac silhouette": ("Cardiomegaly", "enlarged cardiac silhouette"),
    "Fibrosis": ("Lung Opacity", "fibrosis"),
    "Fracture": ("Fracture", "fracture"),
    "Groundglass opacity": ("Lung Opacity", "groundglass opacity"),
    "Mass": ("Lung Lesion", "mass"),
    "Nodule": ("Lung Lesion", "nodule"),
    "Pleural effusion": ("Pleural Effusion", "pleural effusion"),
    "Pleural thickening": ("Pleural Other", "pleural thickening"),
    "Pneumothorax": ("Pneumothorax", "pneumothorax"),
    "Pulmonary edema": ("Edema", "pulmonary edema"),
    "Wide mediastinum": ("Enlarged Cardiomediastinum", "wide mediastinum"),
    "Abnormal mediastinal contour": ("Enlarged Cardiomediastinum", "abnormal mediastinal contour"),
    "Acute fracture": ("Fracture", "acute fracture"),
    "Enlarged hilum": (None, "enlarged hilum"),
    "Hiatal hernia": (None, "hiatal hernia"),
    "High lung volume / emphysema": (None, "high lung volume / emphysema"),
    "Interstitial lung disease": ("Lung Opacity", "interstitial lung disease"),
    "Lung nodule or mass": ("Lung Lesion", "nodule or mass"),
    # Effusion or thickening; effusion is by far the commoner. kind keeps the original name.
    "Pleural abnormality": ("Pleural Effusion", "pleural abnormality"),
}
CERTAINTY_PROBABILITY = {1: 0.1, 2: 0.25, 3: 0.5, 4: 0.75, 5: 0.9}


# ----------------------------------------------------------------------------- per-reading files


def _outside(x: np.ndarray, y: np.ndarray, width: int | None, height: int | None) -> np.ndarray:
    out = (x < 0) | (y < 0)
    if width is not None and height is not None:
        out |= (x >= width) | (y >= height)
    return out


def read_fixations(path: Path, width: int | None, height: int | None, issues: Issues) -> tuple[list[Fixation], tuple[float, float]] | None:
    """fixations.csv -> (time-ordered fixations, pixels per degree). None (with an issue) if unusable or empty."""
    frame = read_csv(path, FIXATION_COLUMNS, issues, only=FIXATION_COLUMNS + PPD_COLUMNS)
    if frame is None:
        return None
    if len(frame) == 0:
        issues.add(path, None, "no fixation rows (header only); reading skipped")
        return None
    lines = frame.index.to_numpy()
    values, ok = numeric_columns(frame, FIXATION_COLUMNS, path, issues)
    start, end = values["timestamp_start_fixation"], values["timestamp_end_fixation"]
    x, y = values["x_position"], values["y_position"]
    for i in np.nonzero(ok & (end < start))[0]:
        issues.add(path, int(lines[i]), f"fixation ends ({end[i]} s) before it starts ({start[i]} s)")
    ok &= ~(end < start)
    ok &= _in_order(start, ok, lines, path, issues, "fixation start")
    outside = ok & _outside(x, y, width, height)
    issues.add_rows(path, [int(lines[i]) for i in np.nonzero(outside)[0]],
                    f"gaze outside the {width}x{height} image, dropped")
    ok &= ~outside
    if not ok.any():
        issues.add(path, None, "no usable fixation left; reading skipped")
        return None
    fixations = [Fixation(float(x[i]), float(y[i]), float(start[i]), float(end[i])) for i in np.nonzero(ok)[0]]
    return fixations, _pixels_per_degree(frame, ok, path, issues)


def _in_order(t: np.ndarray, ok: np.ndarray, lines: np.ndarray, path: Path, issues: Issues, what: str) -> np.ndarray:
    """Mask of rows whose time is not before the previous valid row's (out-of-order rows are issues)."""
    keep = np.ones(len(t), dtype=bool)
    last = -np.inf
    idx = np.nonzero(ok)[0]
    # Fast path: already ordered.
    if len(idx) == 0 or np.all(np.diff(t[idx]) >= 0):
        return keep
    for i in idx:
        if t[i] < last:
            issues.add(path, int(lines[i]), f"timestamps out of order: {what} {t[i]} s is before the previous row's {last} s")
            keep[i] = False
        else:
            last = t[i]
    return keep


def _pixels_per_degree(frame, ok: np.ndarray, path: Path, issues: Issues) -> tuple[float, float]:
    """Median angular resolution over the kept rows; a bad value is an issue and left out of the median."""
    present = [c for c in PPD_COLUMNS if c in frame.columns]
    if len(present) < len(PPD_COLUMNS):
        return DEFAULT_PPD
    values, _ = numeric_columns(frame, PPD_COLUMNS, path, issues, allow_empty=True)
    out = []
    for col in PPD_COLUMNS:
        v = values[col][ok]
        non_positive = ok & (values[col] <= 0)
        for i in np.nonzero(non_positive)[0]:
            issues.add(path, int(frame.index[i]), f"column {col!r}: value {frame[col].iloc[i].strip()!r} is not a positive "
                                                  "resolution; left out of the median")
        v = v[np.isfinite(v) & (v > 0)]
        out.append(float(np.median(v)) if len(v) else None)
    if None in out:
        return DEFAULT_PPD
    return out[0], out[1]


def read_gaze_samples(path: Path, width: int | None, height: int | None, issues: Issues) -> np.ndarray | None:
    """gaze.csv -> (N, 3) array t_s, x, y. Blank positions are blinks (dropped quietly)."""
    frame = read_csv(path, GAZE_COLUMNS, issues, only=GAZE_COLUMNS)
    if frame is None:
        return None
    values, ok = numeric_columns(frame, ["timestamp_sample"], path, issues)
    pos, pos_ok = numeric_columns(frame, ["x_position", "y_position"], path, issues, allow_empty=True)
    t, x, y = values["timestamp_sample"], pos["x_position"], pos["y_position"]
    lines = frame.index.to_numpy()
    ok &= pos_ok
    ok &= _in_order(t, ok, lines, path, issues, "sample")
    blink = np.isnan(x) | np.isnan(y)
    outside = ok & ~blink & _outside(x, y, width, height)
    issues.add_rows(path, [int(lines[i]) for i in np.nonzero(outside)[0]],
                    f"gaze outside the {width}x{height} image, dropped")
    keep = ok & ~blink & ~outside
    return np.column_stack([t[keep], x[keep], y[keep]])


def read_words(path: Path, issues: Issues) -> list[tuple[str, float, float]] | None:
    """timestamps_transcription.csv -> [(word, start_s, end_s)]."""
    frame = read_csv(path, WORD_COLUMNS, issues)
    if frame is None:
        return None
    values, ok = numeric_columns(frame, WORD_COLUMNS[1:], path, issues)
    start, end = values["timestamp_start_word"], values["timestamp_end_word"]
    lines = frame.index.to_numpy()
    for i in np.nonzero(ok & (end < start))[0]:
        issues.add(path, int(lines[i]), f"word ends ({end[i]} s) before it starts ({start[i]} s)")
    ok &= ~(end < start)
    ok &= _in_order(start, ok, lines, path, issues, "word start")
    words = frame["word"].astype(str).to_numpy()
    return [(str(words[i]).strip(), float(start[i]), float(end[i])) for i in np.nonzero(ok)[0]]


def read_box_csv(path: Path, issues: Issues) -> Box | None:
    """chest_bounding_box.csv (one row xmin, ymin, xmax, ymax)."""
    if not path.exists():
        return None
    frame = read_csv(path, BOX_COLUMNS, issues)
    if frame is None or len(frame) == 0:
        return None
    if len(frame) > 1:
        issues.add(path, int(frame.index[1]), f"{len(frame) - 1} extra row(s) after the first; ignored")
    values, ok = numeric_columns(frame.iloc[:1], BOX_COLUMNS, path, issues)
    if not ok[0]:
        return None
    try:
        return make_box(*(float(values[c][0]) for c in BOX_COLUMNS))
    except ValueError as exc:
        issues.add(path, int(frame.index[0]), str(exc))
        return None


def read_ellipses(path: Path, issues: Issues, certainty_threshold: int, reader_id: str | None) -> list[Finding]:
    """anomaly_location_ellipses.csv -> one Finding per (ellipse, CheXpert label it represents)."""
    if not path.exists():
        return []
    frame = read_csv(path, BOX_COLUMNS + ("certainty",), issues, optional=tuple(REFLACX_LABELS))
    if frame is None:
        return []
    values, ok = numeric_columns(frame, BOX_COLUMNS + ("certainty",), path, issues)
    ok &= _certainty_ok(values["certainty"], ok, frame, path, issues)
    label_cols = [c for c in frame.columns if c in REFLACX_LABELS and REFLACX_LABELS[c][0] is not None]
    flags = {}
    for col in label_cols:
        flags[col], col_ok = bool_column(frame, col, path, issues)
        ok &= col_ok
    findings = []
    for i in np.nonzero(ok)[0]:
        certainty = int(values["certainty"][i])
        if certainty < certainty_threshold:
            continue
        try:
            box = make_box(*(float(values[c][i]) for c in BOX_COLUMNS))
        except ValueError as exc:
            issues.add(path, int(frame.index[i]), str(exc))
            continue
        for col in label_cols:
            chexpert, kind = REFLACX_LABELS[col]
            if flags[col][i]:
                findings.append(Finding(label=chexpert, box_px=box, kind=kind,
                                        certainty=CERTAINTY_PROBABILITY.get(certainty, 1.0), reader_id=reader_id))
    return findings


def _certainty_ok(certainty: np.ndarray, ok: np.ndarray, frame, path: Path, issues: Issues) -> np.ndarray:
    """Certainty is a whole number 1-5 (REFLACX's scale); others are issues."""
    bad = ok & ~np.isin(certainty, list(CERTAINTY_PROBABILITY))
    for i in np.nonzero(bad)[0]:
        issues.add(path, int(frame.index[i]), f"column 'certainty': value {frame['certainty'].iloc[i].strip()!r} is not 1-5")
    return ~bad


def read_reading(
    main_dir: Path,
    gaze_dir: Path | None,
    reader_id: str,
    width: int | None,
    height: int | None,
    issues: Issues,
) -> GazeRecording | None:
    """One reading folder -> GazeRecording (fixations, timed sentences, raw samples when gaze_dir has them)."""
    fixation_result = read_fixations(main_dir / "fixations.csv", width, height, issues)
    if fixation_result is None:
        return None
    fixations, ppd = fixation_result
    words = read_words(main_dir / "timestamps_transcription.csv", issues) or []
    samples = None
    if gaze_dir is not None and (gaze_dir / "gaze.csv").exists():
        samples = read_gaze_samples(gaze_dir / "gaze.csv", width, height, issues)
    return GazeRecording(
        reader_id=reader_id,
        fixations=fixations,
        sentences=split_sentences(words),
        samples=samples,
        pixels_per_degree=ppd,
        sample_rate_hz=SAMPLE_RATE_HZ if samples is not None else None,
    )


def dictated_report(main_dir: Path, recording: GazeRecording | None) -> Report | None:
    """transcription.txt (corrected text) as the report; the timed sentences when it is missing."""
    path = main_dir / "transcription.txt"
    if path.exists():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        return Report(sentences=make_sentences(split_report_sentences(text), "findings"), raw_text=text)
    if recording and recording.sentences:
        texts = [s.text for s in recording.sentences]
        return Report(sentences=make_sentences(texts, "findings"), raw_text=" ".join(texts))
    return None


# ----------------------------------------------------------------------------- the loader


@register("reflacx")
@dataclass
class ReflacxLoader(DatasetLoader):
    """REFLACX under ``root`` (the folder holding ``main_data/``).

    mimic_root: MIMIC-CXR(-JPG) root to resolve ``image`` against (None: keep the relative path).
    image_format: None keeps .dcm; "jpg" points at MIMIC-CXR-JPG (same pixel grid).
    raw_gaze: also read ``gaze_data/<id>/gaze.csv`` (1000 Hz; large).
    certainty_threshold: ellipses / labels count from this certainty (authors: >= 3, "Possibly").
    check_images: open each image header (needs mimic_root); skip readings whose image is unreadable
    or not the size in image_size_x/y (a resized JPG would misplace every gaze point).
    """

    root: Path
    mimic_root: Path | None = None
    image_format: str | None = None
    phases: tuple[int, ...] = (1, 2, 3)
    raw_gaze: bool = False
    certainty_threshold: int = 3
    check_images: bool = False
    reader_ids: dict[str, str] | None = None  # reading id -> reader id (REFLACX does not export it)
    source: str = field(default="reflacx", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        main = Path(self.root) / "main_data"
        tables = [(p, main / f"metadata_phase_{p}.csv") for p in self.phases]
        tables = [(p, t) for p, t in tables if t.exists()]
        if not tables:
            issues.add(main, None, "no metadata_phase_N.csv found")
            return LoadResult([], issues.finish())
        studies: list[Study] = []
        seen: dict[str, str] = {}  # reading id -> where it was first listed
        for phase, table in tables:
            studies.extend(self._load_phase(phase, table, seen, issues))
        return LoadResult(studies, issues.finish())

    def _load_phase(self, phase: int, table: Path, seen: dict[str, str], issues: Issues) -> list[Study]:
        frame = read_csv(table, METADATA_COLUMNS, issues, optional=(*REFLACX_LABELS, "Support devices", "Other"))
        if frame is None:
            return []
        sizes, ok = image_size_columns(frame, ["image_size_x", "image_size_y"], table, issues)
        discarded, discarded_ok = bool_column(frame, "eye_tracking_data_discarded", table, issues, empty=None)
        ok &= discarded_ok
        studies = []
        for i, (line, row) in enumerate(zip(frame.index, frame.to_dict("records"))):
            reading_id = str(row["id"]).strip()
            if not self._new_reading(reading_id, table, int(line), seen, issues) or not ok[i] or discarded[i]:
                continue
            study = self._study(phase, row, int(sizes["image_size_x"][i]), int(sizes["image_size_y"][i]),
                                table, int(line), issues)
            if study is not None:
                studies.append(study)
        return studies

    @staticmethod
    def _new_reading(reading_id: str, table: Path, line: int, seen: dict[str, str], issues: Issues) -> bool:
        if not reading_id:
            issues.add(table, line, "column 'id': is empty")
            return False
        if reading_id in seen:
            issues.add(table, line, f"column 'id': duplicate reading id {reading_id!r} (first at {seen[reading_id]}); row ignored")
            return False
        seen[reading_id] = f"{table.name}:{line}"
        return True

    def _study(self, phase: int, row: dict, width: int, height: int, table: Path, line: int, issues: Issues) -> Study | None:
        reading_id = str(row["id"]).strip()
        main_dir = Path(self.root) / "main_data" / reading_id
        if not main_dir.is_dir():
            issues.add(table, line, f"reading folder main_data/{reading_id} not found")
            return None
        image_path = mimic_image_path(self.mimic_root, row["image"], self.image_format)
        if self.check_images and self.mimic_root is not None and not _image_matches(image_path, width, height, table, line, issues):
            return None
        reader_id = (self.reader_ids or {}).get(reading_id, reading_id)
        gaze_dir = Path(self.root) / "gaze_data" / reading_id if self.raw_gaze else None
        recording = read_reading(main_dir, gaze_dir, reader_id, width, height, issues)
        if recording is None:
            return None
        subject_id, study_id, _ = mimic_ids_from_path(row["image"])
        if study_id is None:
            issues.add(table, line, f"column 'image': value {str(row['image']).strip()!r} is not a MIMIC-CXR image path; "
                                    "study id taken from the reading id")
        labels, other = reflacx_labels(row, self.certainty_threshold, table, line, issues)
        return Study(
            study_id=study_id or reading_id,
            source=self.source,
            image_path=image_path,
            width=width,
            height=height,
            image_id=str(row["dicom_id"]).strip(),
            subject_id=self._subject_id(row, subject_id, table, line, issues),
            split=SPLIT_NAMES.get(str(row["split"]).strip().lower()),
            report=dictated_report(main_dir, recording),
            findings=read_ellipses(main_dir / "anomaly_location_ellipses.csv", issues, self.certainty_threshold, reader_id),
            labels=labels,
            gaze=[recording],
            meta={"reading_id": reading_id, "phase": phase, "other_labels": other,
                  "chest_box_px": read_box_csv(main_dir / "chest_bounding_box.csv", issues)},
        )


    @staticmethod
    def _subject_id(row: dict, from_path: str | None, table: Path, line: int, issues: Issues) -> str | None:
        raw = str(row["subject_id"]).strip()
        if not raw:
            return from_path
        normalised = mimic_id(raw)
        if normalised is None:
            issues.add(table, line, f"column 'subject_id': value {raw!r} is not a MIMIC id (digits); "
                                    f"{'taken from the image path' if from_path else 'left unknown'}")
            return from_path
        return normalised


def _image_matches(image_path: Path, width: int, height: int, table: Path, line: int, issues: Issues) -> bool:
    """The image header exists, is an image, and has the metadata's size (gaze is in full-size DICOM px)."""
    size = check_image(image_path, str(table), line, issues)
    if size is None:
        return False
    if size != (width, height):
        issues.add(table, line, f"image {image_path} is {size[0]}x{size[1]} but image_size_x/y say {width}x{height}; "
                                "REFLACX coordinates refer to the full-size image (use it, or rescale)")
        return False
    return True


def reflacx_labels(row: dict, threshold: int, table: Path | str = "", line: int | None = None,
                   issues: Issues | None = None) -> tuple[dict[str, float | None], dict[str, int]]:
    """Metadata certainty columns -> CheXpert labels (1.0 if max certainty >= threshold else 0.0)
    and the labels with no CheXpert counterpart (name -> certainty).

    A certainty that is not a whole number 0-5 (blank = 0) is an issue naming its column; that
    label then stays unknown (absent), as does No Finding.
    """
    issues = issues if issues is not None else Issues()
    labels: dict[str, float | None] = {}
    other: dict[str, int] = {}
    unknown: set[str] = set()
    for col, (chexpert, _) in REFLACX_LABELS.items():
        if col not in row:
            continue
        certainty = _certainty(row[col])
        if certainty is None:
            issues.add(table, line, f"column {col!r}: value {str(row[col]).strip()!r} is not a certainty 0-5; label left unknown")
            unknown.add(chexpert or col)
            continue
        if chexpert is None:
            if certainty:
                other[col] = certainty
            continue
        value = 1.0 if certainty >= threshold else 0.0
        labels[chexpert] = max(labels.get(chexpert, 0.0) or 0.0, value)
    for label in unknown:
        labels.pop(label, None)
    if "Support devices" in row:
        devices = parse_bool(row["Support devices"]) if str(row["Support devices"]).strip() else False
        if devices is None:
            issues.add(table, line, f"column 'Support devices': value {str(row['Support devices']).strip()!r} is not true/false; "
                                    "label left unknown")
        else:
            labels["Support Devices"] = 1.0 if devices else 0.0
    if labels:
        other_positive = any(c >= threshold for c in other.values())
        if any(v == 1.0 for v in labels.values()) or other_positive:
            labels["No Finding"] = 0.0
        elif not unknown:
            labels["No Finding"] = 1.0
    extra = str(row.get("Other", "") or "").strip()
    if extra:
        other["Other"] = extra  # type: ignore[assignment]
    return labels, other


def _certainty(value) -> int | None:
    text = str(value).strip()
    if not text:
        return 0
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number in (0, 1, 2, 3, 4, 5) else None
