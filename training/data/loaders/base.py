"""What every dataset loader shares: the interface, issue collection, checked CSV reading, lazy image sizes.

A loader reads a dataset and returns :class:`LoadResult`: the studies it could read and one
:class:`LoadIssue` per thing it skipped (file, row, problem), never a bare traceback.

Row numbers in issues are **file line numbers** (the header is line 1, the first data row is
line 2), so ``sed -n 7p file.csv`` shows the offending row (for files without multi-line fields).
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from gazex_core.evidence import Box
from training.data.types import LoadIssue, LoadResult

HEADER_LINES = 1
MAX_ROW_ISSUES_PER_FILE = 20  # beyond this, one summary issue per file and problem kind


class Issues:
    """Collects LoadIssues; caps per-row issues per file so a broken 1M-row file stays readable."""

    def __init__(self, max_per_file: int = MAX_ROW_ISSUES_PER_FILE):
        self.items: list[LoadIssue] = []
        self.max_per_file = max_per_file
        self._per_file: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def add(self, file: str | Path, row: int | None, problem: str) -> None:
        key = str(file)
        if row is not None:
            count = self._per_file.get(key, 0) + 1
            self._per_file[key] = count
            if count > self.max_per_file:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
        self.items.append(LoadIssue(key, row, _one_line(problem)))

    def add_rows(self, file: str | Path, rows: Iterable[int], problem: str) -> None:
        """One issue for many rows with the same problem (e.g. gaze outside the image)."""
        rows = list(rows)
        if not rows:
            return
        if len(rows) == 1:
            self.items.append(LoadIssue(str(file), rows[0], _one_line(problem)))
            return
        shown = ", ".join(str(r) for r in rows[:8])
        more = f" (+{len(rows) - 8} more)" if len(rows) > 8 else ""
        self.items.append(LoadIssue(str(file), rows[0], _one_line(f"rows {shown}{more}: {problem}")))

    def finish(self) -> list[LoadIssue]:
        for file, n in self._suppressed.items():
            self.items.append(LoadIssue(file, None, f"{n} more row issues not listed"))
        self._suppressed.clear()
        return self.items


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class DatasetLoader(ABC):
    """One public dataset format. ``load()`` returns a LoadResult; constructing one reads nothing."""

    source: str = ""

    @abstractmethod
    def load(self) -> LoadResult: ...

    def __call__(self) -> LoadResult:
        return self.load()


# ----------------------------------------------------------------------------- CSV reading


def read_csv(
    path: Path,
    required: Iterable[str],
    issues: Issues,
    *,
    text: str | None = None,
    label: str | None = None,
    only: Iterable[str] | None = None,
) -> pd.DataFrame | None:
    """A CSV as strings (no NA guessing), or None with an issue when missing/unreadable/lacking columns.

    ``text`` reads from a string instead of ``path`` (members of archives); ``label`` names it in
    issues; ``only`` parses just these columns (big gaze tables).
    """
    name = label or str(path)
    required = list(required)
    keep = set(only) | set(required) if only is not None else None
    try:
        source: Any = io.StringIO(text) if text is not None else path
        usecols = (lambda c: str(c).strip() in keep) if keep is not None else None
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=False, usecols=usecols)
    except FileNotFoundError:
        issues.add(name, None, "file not found")
        return None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        issues.add(name, None, f"unreadable CSV: {exc}")
        return None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        issues.add(name, None, f"missing column(s) {', '.join(repr(c) for c in missing)}")
        return None
    return frame


def line_of(index: int) -> int:
    """File line of the pandas row ``index`` (0-based data row)."""
    return index + HEADER_LINES + 1


def numeric_columns(
    frame: pd.DataFrame, columns: Iterable[str], file: str | Path, issues: Issues, *, allow_empty: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse columns to float. Returns the arrays and a mask of rows where all parsed.

    Lines come from the frame's index (a filtered frame keeps its file rows).
    A non-empty value that is not a number is an issue naming file, line, column and value; an
    empty value is an issue unless ``allow_empty`` (then it is NaN and the row stays valid).
    """
    ok = np.ones(len(frame), dtype=bool)
    values: dict[str, np.ndarray] = {}
    for col in columns:
        raw = frame[col].astype(str).str.strip()
        parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        empty = (raw == "").to_numpy()
        bad = np.isnan(parsed) & ~empty if allow_empty else np.isnan(parsed)
        bad |= np.isinf(parsed)
        for i in np.nonzero(bad & ok)[0]:
            value = raw.iloc[i]
            what = "is empty" if value == "" else f"value {value!r} is not a number"
            issues.add(file, line_of(int(frame.index[i])), f"column {col!r} {what}")
        ok &= ~bad
        values[col] = parsed
    return values, ok


def make_box(x_min: float, y_min: float, x_max: float, y_max: float) -> Box:
    """A pixel Box, or ValueError with a one-line message when max < min."""
    coords = [float(v) for v in (x_min, y_min, x_max, y_max)]
    if coords[2] < coords[0] or coords[3] < coords[1]:
        shown = ", ".join(f"{v:g}" for v in coords)
        raise ValueError(f"box (x_min, y_min, x_max, y_max) = ({shown}) has max < min")
    return Box(*coords)


def parse_bool(value: Any) -> bool | None:
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes", "t"):
        return True
    if text in ("false", "0", "0.0", "no", "f", ""):
        return False
    return None


def parse_label_value(value: Any) -> float | None:
    """CheXpert cell: 1.0 / 0.0 / -1.0, blank = not mentioned (None). Raises ValueError otherwise."""
    text = str(value).strip()
    if text == "":
        return None
    number = float(text)
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"label value {text!r} is not 1, 0, -1 or blank")
    return number


# ----------------------------------------------------------------------------- MIMIC paths and ids

MIMIC_RELATIVE = re.compile(r"(files/p\d{2}/p(\d+)/s(\d+)/([^/\\]+?))(\.dcm|\.jpg|\.png)?$")


def mimic_ids_from_path(path: str) -> tuple[str | None, str | None, str | None]:
    """(subject_id, study_id, dicom_id) from a MIMIC-CXR path like ``…files/p10/p10000032/s50414267/<id>.dcm``."""
    match = MIMIC_RELATIVE.search(str(path).replace("\\", "/"))
    if not match:
        return None, None, None
    return match.group(2), match.group(3), match.group(4)


def mimic_image_path(root: Path | None, image: str, image_format: str | None = None) -> Path | None:
    """Resolve a MIMIC image path (as written in REFLACX/EGD tables) against a MIMIC-CXR(-JPG) root.

    Tables give the path inside the release (``files/p10/…/<dicom_id>.dcm``, sometimes with a
    ``physionet.org/files/mimic-cxr/2.0.0/`` prefix). ``image_format="jpg"`` swaps .dcm for .jpg
    (MIMIC-CXR-JPG shares the DICOM's pixel grid).
    """
    match = MIMIC_RELATIVE.search(str(image).replace("\\", "/"))
    relative = match.group(1) + (match.group(5) or ".dcm") if match else str(image)
    if image_format:
        relative = str(Path(relative).with_suffix("." + image_format.lstrip(".")))
    if root is None:
        return Path(relative)
    return Path(root) / relative


def mimic_study_folder(subject_id: str, study_id: str) -> str:
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}"


# ----------------------------------------------------------------------------- lazy image headers

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only (no pixel decoding). Raises ValueError with one line."""
    path = Path(path)
    if not path.exists():
        raise ValueError("image file not found")
    if path.suffix.lower() in DICOM_SUFFIXES:
        return _dicom_size(path)
    try:
        from PIL import Image, UnidentifiedImageError

        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError):
        return _dicom_size(path)  # extension-less or misnamed DICOM


def _dicom_size(path: Path) -> tuple[int, int]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Rows", "Columns", "SOPClassUID"])
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"unreadable DICOM: {exc}") from None
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not rows or not cols:
        raise ValueError("DICOM has no image (no Rows/Columns)")
    return int(cols), int(rows)


def check_image(path: Path | None, file_label: str, row: int | None, issues: Issues) -> tuple[int, int] | None:
    """Header size of an image, or None with an issue naming the table row that pointed at it."""
    if path is None:
        return None
    try:
        return image_size(path)
    except ValueError as exc:
        issues.add(file_label, row, f"image {path}: {exc}")
        return None


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., DatasetLoader]] = {}


def register(*names: str) -> Callable[[type[DatasetLoader]], type[DatasetLoader]]:
    def wrap(cls: type[DatasetLoader]) -> type[DatasetLoader]:
        for name in names:
            _REGISTRY[name] = cls
        return cls

    return wrap


def dataset_kinds() -> list[str]:
    return sorted(_REGISTRY)


def load_dataset(kind: str, root: str | Path, **kwargs: Any) -> LoadResult:
    """``load_dataset("reflacx", "/data/reflacx", mimic_root=...)`` -> LoadResult."""
    key = kind.lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(dataset_kinds())}")
    return _REGISTRY[key](Path(root), **kwargs).load()


