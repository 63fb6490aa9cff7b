"""What every dataset loader shares: the interface, issue collection, checked CSV reading, lazy image sizes.

A loader reads a dataset and returns :class:`LoadResult`: the studies it could read and one
:class:`LoadIssue` per thing it skipped (file, row, problem), never a bare traceback.

Row numbers in issues are **file line numbers** (the header is line 1, the first data row is
line 2), so ``sed -n 7p file.csv`` shows the offending row (for files without multi-line fields).
"""

from __future__ import annotations

import csv
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


def column_key(name: str) -> str:
    """How column names are compared: case and surrounding/inner whitespace do not matter."""
    return " ".join(str(name).split()).casefold()


def read_csv(
    path: Path,
    required: Iterable[str],
    issues: Issues,
    *,
    text: str | None = None,
    label: str | None = None,
    only: Iterable[str] | None = None,
    optional: Iterable[str] = (),
    unique_rows: bool = True,
) -> pd.DataFrame | None:
    """A CSV as strings (no NA guessing) indexed by **file line**, or None with one issue when the
    file is missing/unreadable or lacks a required column.

    Column names are matched to ``required``/``optional``/``only`` after normalising case and
    whitespace (``column_key``) and renamed to the expected spelling. Rows that do not fit the
    header are issues and dropped, the rest load: a row with more fields than the header (an
    unquoted delimiter) or fewer; a trailing comma on every data row is ignored with one issue.
    With ``unique_rows`` a row repeating an earlier row exactly is an issue and dropped.
    ``text`` reads from a string instead of ``path`` (members of archives); ``label`` names it in
    issues; ``only`` keeps just these columns (big gaze tables).
    """
    name = label or str(path)
    required = list(required)
    try:
        content = text if text is not None else _read_text(Path(path))
    except FileNotFoundError:
        issues.add(name, None, "file not found")
        return None
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        issues.add(name, None, f"unreadable CSV: {exc}")
        return None
    content = content.lstrip("\ufeff")
    lines = content.splitlines()
    if not lines or not lines[0].strip():
        issues.add(name, None, "unreadable CSV: no header line")
        return None
    try:
        header = next(csv.reader([lines[0]]))
    except csv.Error as exc:
        issues.add(name, 1, f"unreadable header: {exc}")
        return None
    expected = [*required, *optional, *(only or ())]
    columns = _canonical_columns(header, expected, name, issues)
    missing = [c for c in required if c not in columns]
    if missing:
        issues.add(name, None, f"missing column(s) {', '.join(repr(c) for c in missing)}")
        return None
    keep = None if only is None else set(required) | set(only)
    positions = [i for i, c in enumerate(columns) if c is not None and (keep is None or c in keep)]
    source = io.StringIO(content) if text is not None else Path(path)  # pandas reads a file faster itself
    frame = _fast_frame(source, content, lines, header, positions, columns) if '"' not in content else None
    if frame is not None:
        keys = lines[1:]  # the fast path has one row per line
    else:
        frame, keys = _checked_frame(content, header, positions, columns, name, issues)
    if unique_rows and len(frame):
        frame = _drop_repeated_rows(frame, keys, name, issues)
    return frame


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    return path.read_bytes().decode("utf-8")


def _named_width(header: list[str]) -> int:
    """Fields up to the last named one (a trailing comma on the header line names no column)."""
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1
    return width


def _canonical_columns(header: list[str], expected: list[str], name: str, issues: Issues) -> list[str | None]:
    """Header names renamed to the expected spelling; None for a repeated or unnamed trailing column."""
    by_key = {column_key(c): c for c in expected}
    out: list[str | None] = []
    seen: dict[str, int] = {}
    for position, raw in enumerate(header):
        if position >= _named_width(header):
            out.append(None)
            continue
        column = by_key.get(column_key(raw), " ".join(str(raw).split()))
        if column in seen:
            issues.add(name, 1, f"column {column!r}: appears twice (fields {seen[column] + 1} and {position + 1}); "
                                "the second is ignored")
            out.append(None)
            continue
        seen[column] = position
        out.append(column)
    return out


def _fast_frame(source: Any, content: str, lines: list[str], header: list[str], positions: list[int],
                columns: list[str | None]) -> pd.DataFrame | None:
    """pandas' C parser when every line has the header's field count (no quotes, no blank lines); else None."""
    # Equal totals and pandas' own refusal of a row with too many fields rule out misfit rows.
    if content.count(",") != (len(header) - 1) * len(lines):
        return None
    try:
        frame = pd.read_csv(source, header=None, skiprows=1, usecols=positions, dtype=str, encoding="utf-8",
                            keep_default_na=False, index_col=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    frame.columns = [columns[i] for i in positions]
    if len(frame) != len(lines) - 1:
        return None
    frame.index = pd.RangeIndex(2, len(frame) + 2)
    return frame


def _checked_frame(content: str, header: list[str], positions: list[int], columns: list[str | None],
                   name: str, issues: Issues) -> tuple[pd.DataFrame, list[tuple[str, ...]]]:
    """The exact path: the csv module, row by row, each misfit row an issue naming its line."""
    width = _named_width(header)
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(content, newline=""))
    next(reader, None)
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            issues.add(name, start, f"unreadable row: {exc}")
            continue
        if record and (len(record) > 1 or record[0].strip()):  # a blank line holds no data
            records.append((start, record))
    trailing = [line for line, r in records if len(r) > width and not any(v.strip() for v in r[width:])]
    # A trailing comma is unambiguous only when every data row has it (a spreadsheet export);
    # on some rows only, an empty last field may as well be a shifted row.
    accept_trailing = bool(trailing) and len(trailing) == len(records)
    if accept_trailing and len(header) == width:
        issues.add_rows(name, trailing, "trailing comma: every data row has an empty field after the last column; ignored")
    rows: list[list[str]] = []
    row_lines: list[int] = []
    keys: list[tuple[str, ...]] = []
    for line, record in records:
        if accept_trailing or len(header) > width:
            record = record[:width] if not any(v.strip() for v in record[width:]) else record
        if len(record) != width:
            what = "an unquoted delimiter in a value?" if len(record) > width else "fields missing"
            issues.add(name, line, f"row has {len(record)} fields but the header has {width} ({what}); row skipped")
            continue
        rows.append([record[i] for i in positions])
        row_lines.append(line)
        keys.append(tuple(record))
    data = {columns[i]: [r[k] for r in rows] for k, i in enumerate(positions)}
    return pd.DataFrame(data, index=pd.Index(row_lines, dtype=np.int64), dtype=str), keys


def _drop_repeated_rows(frame: pd.DataFrame, keys: list, name: str, issues: Issues) -> pd.DataFrame:
    """Drop rows that repeat an earlier row exactly (every field, ``keys`` one per row), each an issue."""
    if len(set(keys)) == len(keys):
        return frame
    first: dict = {}
    repeated = np.zeros(len(keys), dtype=bool)
    for i, (line, key) in enumerate(zip(frame.index, keys)):
        if key in first:
            issues.add(name, int(line), f"row repeats line {first[key]} exactly; ignored")
            repeated[i] = True
        else:
            first[key] = int(line)
    return frame[~repeated]


def line_of(index: int) -> int:
    """File line of a frame row label (``read_csv`` indexes rows by their file line)."""
    return int(index)


def numeric_columns(
    frame: pd.DataFrame, columns: Iterable[str], file: str | Path, issues: Issues, *, allow_empty: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse columns to float. Returns the arrays and a mask of rows where all parsed.

    A non-empty value that is not a finite number is an issue naming file, line, column and value;
    an empty value is an issue unless ``allow_empty`` (then it is NaN and the row stays valid).
    """
    ok = np.ones(len(frame), dtype=bool)
    values: dict[str, np.ndarray] = {}
    for col in columns:
        raw = frame[col].astype(str).str.strip()
        parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        empty = (raw == "").to_numpy()
        bad = (np.isnan(parsed) & ~empty) if allow_empty else np.isnan(parsed)
        bad |= np.isinf(parsed)
        for i in np.nonzero(bad & ok)[0]:
            value = raw.iloc[i]
            what = "is empty" if value == "" else f"value {value!r} is not a finite number"
            issues.add(file, int(frame.index[i]), f"column {col!r}: {what}")
        ok &= ~bad
        values[col] = np.where(bad, np.nan, parsed)
    return values, ok


MAX_IMAGE_SIDE = 65535  # DICOM Rows/Columns are 16-bit


def image_size_columns(
    frame: pd.DataFrame, columns: Iterable[str], file: str | Path, issues: Issues
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Image sides: whole numbers 1..65535, else an issue naming the column and value (row not ok)."""
    values, ok = numeric_columns(frame, columns, file, issues)
    for col in columns:
        v = values[col]
        bad = ok & ((v < 1) | (v > MAX_IMAGE_SIDE) | (np.floor(v) != v))
        for i in np.nonzero(bad)[0]:
            issues.add(file, int(frame.index[i]), f"column {col!r}: value {frame[col].iloc[i].strip()!r} "
                                                  f"is not an image size (a whole number of pixels, 1-{MAX_IMAGE_SIDE})")
        ok &= ~bad
    return values, ok


def bool_column(frame: pd.DataFrame, column: str, file: str | Path, issues: Issues, *, empty: bool | None = False) -> tuple[np.ndarray, np.ndarray]:
    """A true/false column: (values, ok). An unparseable value is an issue naming the column (row not ok).
    ``empty`` is what a blank cell means (None: blank is an issue too)."""
    values = np.zeros(len(frame), dtype=bool)
    ok = np.ones(len(frame), dtype=bool)
    for i, raw in enumerate(frame[column].astype(str)):
        parsed = parse_bool(raw) if raw.strip() or empty is None else empty
        if parsed is None:
            issues.add(file, int(frame.index[i]), f"column {column!r}: value {raw.strip()!r} is not true/false")
            ok[i] = False
        else:
            values[i] = parsed
    return values, ok


def make_box(x_min: float, y_min: float, x_max: float, y_max: float) -> Box:
    """A pixel Box, or ValueError with a one-line message when max < min."""
    coords = [float(v) for v in (x_min, y_min, x_max, y_max)]
    if coords[2] < coords[0] or coords[3] < coords[1]:
        shown = ", ".join(f"{v:g}" for v in coords)
        raise ValueError(f"box (x_min, y_min, x_max, y_max) = ({shown}) has max < min")
    return Box(*coords)


def parse_bool(value: Any) -> bool | None:
    """true/false, 1/0, yes/no, t/f (any case); None when it is none of these (blank included)."""
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes", "t", "y"):
        return True
    if text in ("false", "0", "0.0", "no", "f", "n"):
        return False
    return None


def parse_label_value(value: Any, column: str | None = None) -> float | None:
    """CheXpert cell: 1.0 / 0.0 / -1.0, blank = not mentioned (None). Raises ValueError naming the column otherwise."""
    text = str(value).strip()
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number not in (1.0, 0.0, -1.0):
        where = f"column {column!r}: " if column else ""
        raise ValueError(f"{where}label value {text!r} is not 1, 0, -1 or blank")
    return number


def label_columns(row: dict, columns: Iterable[str], file: str | Path, line: int, issues: Issues) -> dict[str, float | None]:
    """CheXpert cells of one row; a bad cell is an issue naming its column and that label is left out."""
    labels: dict[str, float | None] = {}
    for column in columns:
        try:
            labels[column] = parse_label_value(row[column], column)
        except ValueError as exc:
            issues.add(file, line, f"{exc}; label left unknown")
    return labels


def first_rows(keys: Iterable[str], lines: Iterable[int], file: str | Path, issues: Issues, what: str) -> np.ndarray:
    """Mask of rows whose key is seen for the first time; a repeat is an issue naming the first line."""
    first: dict[str, int] = {}
    mask = []
    for key, line in zip(keys, lines):
        if not key:
            mask.append(True)  # an empty key is its own problem, reported where it is checked
        elif key in first:
            issues.add(file, int(line), f"duplicate {what} {key!r} (first on line {first[key]}); row ignored")
            mask.append(False)
        else:
            first[key] = int(line)
            mask.append(True)
    return np.array(mask, dtype=bool)


MIMIC_ID = re.compile(r"^[sp]?(\d{1,9})(?:\.0*)?$", re.IGNORECASE)


def mimic_id(value: Any) -> str | None:
    """A MIMIC subject/study id as digits: ``50414267``, ``s50414267`` and ``50414267.0`` all give
    ``"50414267"``; None when the value is not such an id."""
    match = MIMIC_ID.match(str(value).strip())
    return match.group(1) if match else None


def mimic_id_column(frame: pd.DataFrame, column: str, file: str | Path, issues: Issues) -> tuple[list[str], np.ndarray]:
    """Normalised ids of a MIMIC id column and a mask of rows where the id is valid (others are issues)."""
    ids, ok = [], np.ones(len(frame), dtype=bool)
    for i, raw in enumerate(frame[column].astype(str)):
        value = mimic_id(raw)
        if value is None:
            issues.add(file, int(frame.index[i]), f"column {column!r}: value {raw.strip()!r} is not a MIMIC id (digits)")
            ok[i] = False
        ids.append(value or "")
    return ids, ok


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


