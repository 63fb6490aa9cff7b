"""MIMIC-CXR (DICOM) / MIMIC-CXR-JPG: images, free-text reports, CheXpert labels, official split.

Layout (PhysioNet)::

    ROOT/files/p10/p10000032/s50414267/<dicom_id>.dcm | .jpg
    ROOT/files/p10/p10000032/s50414267.txt           the report (MIMIC-CXR only; pass reports_root for JPG)
    ROOT/mimic-cxr-2.0.0-metadata.csv(.gz)           dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, ...
    ROOT/mimic-cxr-2.0.0-chexpert.csv(.gz)           subject_id, study_id + 14 CheXpert columns (1 / 0 / -1 / blank)
    ROOT/mimic-cxr-2.0.0-split.csv(.gz)              dicom_id, study_id, subject_id, split (train / validate / test)

One Study per MIMIC study: its first frontal image (PA before AP), the report's FINDINGS and
IMPRESSION sentences, the CheXpert labels. Without a metadata table the images are found by
walking ``files/``. Image sizes come from the file header (``check_images``, default) or the
metadata's Rows/Columns; pixels are never decoded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gazex_core.vocab import CHEXPERT_LABELS
from training.data.loaders.base import (
    DatasetLoader,
    Issues,
    check_image,
    first_rows,
    image_size_columns,
    label_columns,
    mimic_id_column,
    mimic_study_folder,
    read_csv,
    register,
)
from training.data.loaders.reports import parse_mimic_report
from training.data.types import LoadResult, Report, Study

FRONTAL_VIEWS = ("PA", "AP")
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "valid": "val", "test": "test"}


def find_table(root: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".csv.gz"):
        path = root / f"{stem}{suffix}"
        if path.exists():
            return path
    return None


@dataclass
class MimicImage:
    dicom_id: str
    subject_id: str
    study_id: str
    view: str | None = None
    width: int | None = None
    height: int | None = None
    line: int | None = None  # row in the table it came from


def read_chexpert_labels(path: Path, issues: Issues) -> dict[str, dict[str, float | None]]:
    """study_id -> {CheXpert label: 1.0 / 0.0 / -1.0 / None}.

    A missing label column is one issue (that label stays unknown for every study); a bad cell is an
    issue naming its column (that label stays unknown for the study); a bad or repeated study id is
    an issue and the row is skipped.
    """
    frame = read_csv(path, ["subject_id", "study_id"], issues, optional=CHEXPERT_LABELS)
    if frame is None:
        return {}
    present = [c for c in CHEXPERT_LABELS if c in frame.columns]
    absent = [c for c in CHEXPERT_LABELS if c not in frame.columns]
    if absent:
        issues.add(path, 1, f"missing label column(s) {', '.join(repr(c) for c in absent)}; those labels stay unknown")
    study_ids, ok = mimic_id_column(frame, "study_id", path, issues)
    ok &= first_rows(study_ids, frame.index, path, issues, "study_id") | ~ok
    labels: dict[str, dict[str, float | None]] = {}
    for i, (line, values) in enumerate(zip(frame.index, frame.to_dict("records"))):
        if ok[i]:
            labels[study_ids[i]] = label_columns(values, present, path, int(line), issues)
    return labels


def read_split(path: Path, issues: Issues) -> dict[str, str]:
    """dicom_id -> train / val / test."""
    frame = read_csv(path, ["dicom_id", "split"], issues, optional=["study_id", "subject_id"])
    if frame is None:
        return {}
    dicom_ids = frame["dicom_id"].str.strip().tolist()
    first = first_rows(dicom_ids, frame.index, path, issues, "dicom_id")
    out = {}
    for i, (line, split) in enumerate(zip(frame.index, frame["split"])):
        name = SPLIT_NAMES.get(str(split).strip().lower())
        if not first[i]:
            continue
        if name is None:
            issues.add(path, int(line), f"column 'split': value {split!r} is not train/validate/test")
            continue
        out[dicom_ids[i]] = name
    return out


def read_report(path: Path, issues: Issues) -> Report | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        issues.add(path, None, "report not found")
        return None
    except OSError as exc:
        issues.add(path, None, f"unreadable report: {exc}")
        return None
    report = parse_mimic_report(text)
    if not report.sentences:
        issues.add(path, None, "report has no FINDINGS or IMPRESSION text")
    return report


@register("mimic-cxr", "mimic", "mimic-cxr-jpg")
@dataclass
class MimicCxrLoader(DatasetLoader):
    """MIMIC-CXR / MIMIC-CXR-JPG under ``root``.

    image_format: "dcm" (MIMIC-CXR) or "jpg" (MIMIC-CXR-JPG). reports_root: where the ``sNNN.txt``
    reports are (default ``root``). views: which ViewPosition values count as frontal (metadata only).
    """

    root: Path
    image_format: str = "dcm"
    reports_root: Path | None = None
    metadata_csv: Path | None = None
    chexpert_csv: Path | None = None
    split_csv: Path | None = None
    views: tuple[str, ...] = FRONTAL_VIEWS
    check_images: bool = True  # read each chosen image's header (not pixels); unreadable -> issue, study skipped
    require_report: bool = False
    source: str = field(default="mimic-cxr", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        root = Path(self.root)
        if not root.is_dir():
            issues.add(root, None, "dataset folder not found")
            return LoadResult([], issues.finish())
        images = self._images(root, issues)
        labels_path = self.chexpert_csv or find_table(root, "mimic-cxr-2.0.0-chexpert")
        labels = read_chexpert_labels(Path(labels_path), issues) if labels_path else {}
        split_path = self.split_csv or find_table(root, "mimic-cxr-2.0.0-split")
        splits = read_split(Path(split_path), issues) if split_path else {}
        studies = []
        for image in _one_frontal_per_study(images, self.views):
            study = self._study(root, image, labels, splits, issues, Path(labels_path) if labels_path else None)
            if study is not None:
                studies.append(study)
        return LoadResult(studies, issues.finish())

    # -- images -------------------------------------------------------------------------------

    def _images(self, root: Path, issues: Issues) -> list[MimicImage]:
        meta_path = self.metadata_csv or find_table(root, "mimic-cxr-2.0.0-metadata")
        if meta_path:
            return read_metadata(Path(meta_path), issues)
        return self._walk_images(root, issues)

    def _walk_images(self, root: Path, issues: Issues) -> list[MimicImage]:
        files = sorted((root / "files").glob(f"p*/p*/s*/*.{self.image_format}"))
        if not files:
            issues.add(root / "files", None, f"no .{self.image_format} images and no metadata table")
        out = []
        for path in files:
            subject, study = path.parent.parent.name[1:], path.parent.name[1:]
            out.append(MimicImage(path.stem, subject, study))
        return out

    def _image_table_label(self, root: Path) -> str:
        meta_path = self.metadata_csv or find_table(root, "mimic-cxr-2.0.0-metadata")
        return str(meta_path) if meta_path else str(root / "files")

    # -- one study ----------------------------------------------------------------------------

    def _study(self, root: Path, image: MimicImage, labels: dict, splits: dict, issues: Issues,
               labels_table: Path | None = None) -> Study | None:
        folder = mimic_study_folder(image.subject_id, image.study_id)
        image_path = root / folder / f"{image.dicom_id}.{self.image_format}"
        width, height = image.width, image.height
        if self.check_images:
            table = self._image_table_label(root)
            size = check_image(image_path, table, image.line, issues)
            if size is None:
                return None
            width, height = size  # the header is authoritative
        if labels_table is not None and image.study_id not in labels:
            issues.add(labels_table, None, f"no row for study {image.study_id} (image table line {image.line}); its labels stay unknown")
        report_root = Path(self.reports_root) if self.reports_root else root
        report = read_report(report_root / f"{folder}.txt", issues)
        if report is None and self.require_report:
            return None
        return Study(
            study_id=image.study_id,
            source=self.source,
            image_path=image_path,
            width=width,
            height=height,
            image_id=image.dicom_id,
            subject_id=image.subject_id,
            split=splits.get(image.dicom_id),
            report=report,
            labels=dict(labels.get(image.study_id, {})),
            meta={"view": image.view},
        )


def read_metadata(path: Path, issues: Issues) -> list[MimicImage]:
    frame = read_csv(path, ["dicom_id", "subject_id", "study_id"], issues, optional=["ViewPosition", "Rows", "Columns"])
    if frame is None:
        return []
    has_size = "Rows" in frame.columns and "Columns" in frame.columns
    sizes, ok = image_size_columns(frame, ("Rows", "Columns"), path, issues) if has_size else ({}, np.ones(len(frame), bool))
    subjects, subjects_ok = mimic_id_column(frame, "subject_id", path, issues)
    studies, studies_ok = mimic_id_column(frame, "study_id", path, issues)
    ok &= subjects_ok & studies_ok
    dicom_ids = frame["dicom_id"].str.strip().tolist()
    ok &= first_rows(dicom_ids, frame.index, path, issues, "dicom_id")
    views = frame["ViewPosition"].str.strip() if "ViewPosition" in frame.columns else pd.Series([""] * len(frame))
    out = []
    for i in np.nonzero(ok)[0]:
        if not dicom_ids[i]:
            issues.add(path, int(frame.index[i]), "column 'dicom_id': is empty")
            continue
        out.append(
            MimicImage(
                dicom_id=dicom_ids[i],
                subject_id=subjects[i],
                study_id=studies[i],
                view=views.iloc[i] or None,
                width=int(sizes["Columns"][i]) if has_size else None,
                height=int(sizes["Rows"][i]) if has_size else None,
                line=int(frame.index[i]),
            )
        )
    return out


def _one_frontal_per_study(images: list[MimicImage], views: tuple[str, ...]) -> list[MimicImage]:
    """First image of each study whose view is frontal (PA preferred), in table order.

    Images without a view (no metadata, or one of the ~16k blank ViewPositions) are kept only when
    the study has no image with a known frontal view.
    """
    by_study: dict[str, list[MimicImage]] = {}
    for image in images:
        by_study.setdefault(image.study_id, []).append(image)
    chosen = []
    for group in by_study.values():
        known = [im for im in group if im.view in views]
        if known:
            known.sort(key=lambda im: views.index(im.view))
            chosen.append(known[0])
        elif all(im.view is None for im in group):
            chosen.append(group[0])
    return chosen
