"""MS-CXR phrase grounding (PhysioNet ms-cxr; ``MS_CXR_Local_Alignment_v1.x.csv``).

Columns: ``dicom_id, category_name, label_text, path, x, y, w, h, image_width, image_height``
(v1.1.0 adds ``split``). ``x, y, w, h`` are pixels of the MIMIC-CXR-JPG image (same grid as the
DICOM), ``category_name`` is already a CheXpert name, ``label_text`` the grounded phrase. One Study
per image: a Finding per box (phrase attached), the phrases as the report's sentences, the
categories as positive labels. ``split`` is kept in ``meta["ms_cxr_split"]`` but not used as
Study.split (the dataset's split is not aligned with MIMIC's; let the caller decide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazex_core.evidence import Box
from gazex_core.vocab import CHEXPERT_LABELS, LABEL_REGION
from training.data.loaders.base import (
    DatasetLoader,
    Issues,
    image_size_columns,
    mimic_ids_from_path,
    mimic_image_path,
    numeric_columns,
    read_csv,
    register,
)
from training.data.types import Finding, LoadResult, Report, ReportSentence, Study

COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
NUMERIC = ("x", "y", "w", "h", "image_width", "image_height")


@register("ms-cxr", "mscxr")
@dataclass
class MsCxrLoader(DatasetLoader):
    """root: the CSV itself or a folder holding one ``MS_CXR_Local_Alignment_*.csv``."""

    root: Path
    mimic_root: Path | None = None
    image_format: str | None = None  # None keeps the table's extension (.jpg)
    source: str = field(default="ms-cxr", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        path = self._table(Path(self.root), issues)
        if path is None:
            return LoadResult([], issues.finish())
        frame = read_csv(path, COLUMNS, issues, optional=("split",))
        if frame is None:
            return LoadResult([], issues.finish())
        v, ok = numeric_columns(frame, NUMERIC[:4], path, issues)
        sizes, sizes_ok = image_size_columns(frame, NUMERIC[4:], path, issues)
        v.update(sizes)
        ok &= sizes_ok
        studies: dict[str, Study] = {}
        for i in np.nonzero(ok)[0]:
            row = frame.iloc[i]
            finding = self._finding(row, v, int(i), path, issues)
            if finding is None:
                continue
            dicom_id = row["dicom_id"].strip()
            study = studies.get(dicom_id) or self._new_study(row, int(v["image_width"][i]), int(v["image_height"][i]))
            studies[dicom_id] = study
            study.findings.append(finding)
            study.labels[finding.label] = 1.0
            study.report.sentences.append(ReportSentence(text=finding.phrase or "", label=finding.label,
                                                         region=LABEL_REGION.get(finding.label)))
        for study in studies.values():
            study.labels["No Finding"] = 0.0
            study.report.raw_text = " ".join(s.text for s in study.report.sentences)
        return LoadResult(list(studies.values()), issues.finish())

    @staticmethod
    def _table(root: Path, issues: Issues) -> Path | None:
        if root.is_file():
            return root
        found = sorted(root.glob("MS_CXR_Local_Alignment*.csv"))
        if not found:
            issues.add(root, None, "no MS_CXR_Local_Alignment*.csv found")
            return None
        return found[-1]

    @staticmethod
    def _finding(row, v: dict, i: int, path: Path, issues: Issues) -> Finding | None:
        label = row["category_name"].strip()
        if label not in CHEXPERT_LABELS:
            issues.add(path, int(row.name), f"category_name {label!r} is not a CheXpert label")
            return None
        x, y, w, h = (float(v[c][i]) for c in ("x", "y", "w", "h"))
        width, height = float(v["image_width"][i]), float(v["image_height"][i])
        if w <= 0 or h <= 0:
            issues.add(path, int(row.name), f"box w={w}, h={h} is empty")
            return None
        if x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1:
            issues.add(path, int(row.name), f"box x={x}, y={y}, w={w}, h={h} outside the {width:g}x{height:g} image")
            return None
        return Finding(label=label, box_px=Box(x, y, min(x + w, width), min(y + h, height)),
                       phrase=row["label_text"].strip())

    def _new_study(self, row, width: int, height: int) -> Study:
        subject_id, study_id, _ = mimic_ids_from_path(row["path"])
        meta = {"ms_cxr_split": row["split"].strip()} if "split" in row.index else {}
        return Study(
            study_id=study_id or row["dicom_id"].strip(),
            source=self.source,
            image_path=mimic_image_path(self.mimic_root, row["path"], self.image_format),
            width=width,
            height=height,
            image_id=row["dicom_id"].strip(),
            subject_id=subject_id,
            report=Report(),
            meta=meta,
        )
