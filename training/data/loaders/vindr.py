"""VinDr-CXR box table (Kaggle VinBigData ``train.csv``; torchxrayvision ``data/vinbigdata-train.csv.gz``).

Columns: ``image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max`` (original DICOM px;
empty for "No finding"). One Study per image; every reader's box is a Finding (``reader_id`` =
rad_id; 3 readers per image, boxes are not fused here). Class names map to CheXpert where the
meaning matches; the others (Calcification, Other lesion) stay in ``meta["other_findings"]`` with
their boxes. Image labels are the union over readers (torchxrayvision's convention). Images are
at ``image_root/<image_id><image_ext>`` (``.dicom`` in the Kaggle release).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazex_core.evidence import Box
from gazex_core.vocab import CHEXPERT_LABELS
from training.data.loaders.base import (
    DatasetLoader,
    Issues,
    check_image,
    make_box,
    numeric_columns,
    read_csv,
    register,
)
from training.data.types import Finding, LoadResult, Study

COLUMNS = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")
BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
NO_FINDING = "No finding"
VINDR_TO_CHEXPERT: dict[str, str | None] = {
    "Aortic enlargement": "Enlarged Cardiomediastinum",
    "Atelectasis": "Atelectasis",
    "Calcification": None,
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "ILD": "Lung Opacity",
    "Infiltration": "Lung Opacity",
    "Lung Opacity": "Lung Opacity",
    "Nodule/Mass": "Lung Lesion",
    "Other lesion": None,
    "Pleural effusion": "Pleural Effusion",
    "Pleural thickening": "Pleural Other",
    "Pneumothorax": "Pneumothorax",
    "Pulmonary fibrosis": "Lung Opacity",
}


@register("vindr-cxr", "vindr", "vinbigdata")
@dataclass
class VindrCxrLoader(DatasetLoader):
    """root: the CSV itself (.csv / .csv.gz) or a folder holding ``train.csv``."""

    root: Path
    image_root: Path | None = None
    image_ext: str = ".dicom"
    read_sizes: bool = False  # open each image header (needs image_root) to get its size and check boxes
    source: str = field(default="vindr-cxr", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        path = Path(self.root)
        if path.is_dir():
            path = path / "train.csv"
        frame = read_csv(path, COLUMNS, issues)
        if frame is None:
            return LoadResult([], issues.finish())
        names = frame["class_name"].str.strip().to_numpy()
        no_finding = names == NO_FINDING
        boxes, box_ok = numeric_columns(frame, BOX_COLUMNS, path, issues, allow_empty=True)
        has_box = np.all([~np.isnan(boxes[c]) for c in BOX_COLUMNS], axis=0)
        image_ids = frame["image_id"].str.strip().to_numpy()
        rad_ids = frame["rad_id"].str.strip().to_numpy()
        lines = frame.index.to_numpy()
        studies: dict[str, Study] = {}
        unreadable: set[str] = set()
        for i in range(len(frame)):
            image_id = image_ids[i]
            if not box_ok[i] or image_id in unreadable:
                continue
            if names[i] not in VINDR_TO_CHEXPERT and not no_finding[i]:
                issues.add(path, int(lines[i]), f"unknown class_name {names[i]!r}")
                continue
            if not no_finding[i] and not has_box[i]:
                issues.add(path, int(lines[i]), f"{names[i]!r} row has no box")
                continue
            study = studies.get(image_id) or self._new_study(image_id, path, int(lines[i]), issues)
            if study is None:
                unreadable.add(image_id)
                continue
            studies[image_id] = study
            if no_finding[i]:
                continue
            try:
                box = make_box(*(float(boxes[c][i]) for c in BOX_COLUMNS))
            except ValueError as exc:
                issues.add(path, int(lines[i]), str(exc))
                continue
            if study.width and (box.x_max > study.width or box.y_max > study.height or box.x_min < 0 or box.y_min < 0):
                issues.add(path, int(lines[i]), f"box {box.to_dict()} outside the {study.width}x{study.height} image")
                continue
            self._add_box(study, names[i], box, rad_ids[i])
        for study in studies.values():
            _set_labels(study)
        return LoadResult(list(studies.values()), issues.finish())

    def _new_study(self, image_id: str, table: Path, line: int, issues: Issues) -> Study | None:
        image_path = Path(self.image_root) / f"{image_id}{self.image_ext}" if self.image_root else None
        size = None
        if self.read_sizes and image_path is not None:
            size = check_image(image_path, str(table), line, issues)
            if size is None:
                return None
        return Study(study_id=image_id, source=self.source, image_path=image_path, image_id=image_id,
                     width=size[0] if size else None, height=size[1] if size else None,
                     meta={"other_findings": []})

    @staticmethod
    def _add_box(study: Study, class_name: str, box: Box, rad_id: str) -> None:
        label = VINDR_TO_CHEXPERT[class_name]
        if label is None:
            study.meta["other_findings"].append({"class_name": class_name, "box_px": box, "reader_id": rad_id})
        else:
            study.findings.append(Finding(label=label, box_px=box, kind=class_name.lower(), reader_id=rad_id))


def _set_labels(study: Study) -> None:
    positive = {f.label for f in study.findings}
    if positive or study.meta["other_findings"]:
        study.labels = {label: 1.0 for label in positive}
        study.labels["No Finding"] = 0.0
    else:  # every reader said "No finding"
        study.labels = {label: (1.0 if label == "No Finding" else 0.0) for label in CHEXPERT_LABELS}
