"""Edits that break copies of the loader fixtures (tests/fixtures/<dataset>/), and a plain-data view of a
LoadResult so two loads can be compared. Used by tests/test_loaders_broken.py and test_loaders_properties.py."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from training.data.loaders import (
    EgdCxrLoader,
    IuXrayLoader,
    MimicCxrLoader,
    MsCxrLoader,
    ReflacxLoader,
    SyntheticLoader,
    VindrCxrLoader,
)
from training.data.types import LoadIssue, LoadResult

FIXTURES = Path(__file__).parent / "fixtures"
MIMIC = FIXTURES / "mimic"

LOADERS: dict[str, Callable[[Path], Any]] = {
    "mimic": lambda root: MimicCxrLoader(root),
    "reflacx": lambda root: ReflacxLoader(root, mimic_root=MIMIC, raw_gaze=True),
    "egd": lambda root: EgdCxrLoader(root, mimic_root=MIMIC, gaze="both"),
    "vindr": lambda root: VindrCxrLoader(root),
    "ms_cxr": lambda root: MsCxrLoader(root, mimic_root=MIMIC),
    "synthetic": lambda root: SyntheticLoader(root),
    "iu_xray": lambda root: IuXrayLoader(root / "ecgen-radiology", image_root=Path("/images"), view_table=root / "views.csv"),
}


def copy_fixture(dataset: str, target: Path) -> Path:
    root = target / dataset
    shutil.copytree(FIXTURES / dataset, root)
    return root


def load(dataset: str, root: Path) -> LoadResult:
    return LOADERS[dataset](root).load()


# ----------------------------------------------------------------------------- line edits (1-based file lines)


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode().splitlines(keepends=True)


def _save(path: Path, lines: list[str]) -> None:
    path.write_bytes("".join(lines).encode())


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")):] or "\n"


def data_lines(path: Path) -> list[int]:
    """File line numbers of the non-blank lines after the header."""
    return [n for n, line in enumerate(_lines(path), start=1) if n > 1 and line.strip()]


def header_columns(path: Path) -> list[str]:
    return next(csv.reader([_lines(path)[0]]))


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    """Replace one cell (re-quoting the row only where csv needs it)."""
    lines = _lines(path)
    position = header_columns(path).index(column)
    record = next(csv.reader([lines[line - 1]]))
    record[position] = value
    out = io.StringIO()
    csv.writer(out, lineterminator=_ending(lines[line - 1])).writerow(record)
    lines[line - 1] = out.getvalue()
    _save(path, lines)


def edit_line(path: Path, line: int, change: Callable[[str], str]) -> None:
    lines = _lines(path)
    ending = _ending(lines[line - 1])
    lines[line - 1] = change(lines[line - 1].rstrip("\r\n")) + ending
    _save(path, lines)


def drop_line(path: Path, line: int) -> None:
    lines = _lines(path)
    del lines[line - 1]
    _save(path, lines)


def duplicate_line(path: Path, line: int, at: int | None = None) -> int:
    """Copy ``line`` to just after it (or before line ``at``); returns the copy's line number."""
    lines = _lines(path)
    copy = lines[line - 1].rstrip("\r\n") + _ending(lines[line - 1])
    if not lines[-1].endswith("\n"):
        lines[-1] += _ending(lines[line - 1])
    where = line if at is None else at - 1
    lines.insert(where, copy)
    _save(path, lines)
    return where + 1


def insert_line(path: Path, before: int, text: str) -> None:
    lines = _lines(path)
    lines.insert(before - 1, text + _ending(lines[0]))
    _save(path, lines)


def append_line(path: Path, text: str) -> int:
    lines = _lines(path)
    if not lines[-1].endswith("\n"):
        lines[-1] += _ending(lines[0])
    lines.append(text + _ending(lines[0]))
    _save(path, lines)
    return len(lines)


def rename_header(path: Path, change: Callable[[str], str], columns: list[str] | None = None) -> None:
    """Apply ``change`` to the header names (all, or just ``columns``)."""
    names = header_columns(path)
    names = [change(n) if columns is None or n in columns else n for n in names]
    edit_line(path, 1, lambda _: ",".join(names))


def drop_column(path: Path, column: str) -> None:
    position = header_columns(path).index(column)
    lines = _lines(path)
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        record = next(csv.reader([line]))
        del record[position]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=_ending(line)).writerow(record)
        out.append(buffer.getvalue())
    _save(path, out)


def trailing_commas(path: Path) -> None:
    """A trailing comma on every data row (the header left alone)."""
    lines = _lines(path)
    for n in data_lines(path):
        lines[n - 1] = lines[n - 1].rstrip("\r\n") + "," + _ending(lines[n - 1])
    _save(path, lines)


def header_only(path: Path) -> None:
    _save(path, _lines(path)[:1])


# ----------------------------------------------------------------------------- comparing loads


def plain(value: Any) -> Any:
    """Studies (dataclasses, arrays, paths, floats) as comparable plain data; NaN compares equal to NaN."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return value.name
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, np.generic):
        return plain(value.item())
    return value


def studies_view(result: LoadResult) -> list:
    return [plain(s) for s in result.studies]


def issue_at(issues: list[LoadIssue], filename: str, line: int | None) -> bool:
    """An issue names this file at this line (or a file-level issue when ``line`` is None)."""
    return any(i.file.endswith(filename) and (i.row == line or (i.problem.startswith("rows ") and _lists(i.problem, line)))
               for i in issues)


def _lists(problem: str, line: int | None) -> bool:
    listed = problem.split(":", 1)[0].removeprefix("rows ").split(" (")[0]
    return str(line) in [part.strip() for part in listed.split(",")]


def assert_well_formed(issues: list[LoadIssue]) -> None:
    """One line each, ``file:line: problem`` or ``file: problem``, never a traceback."""
    for issue in issues:
        text = str(issue)
        assert "\n" not in text and "Traceback" not in text, text
        assert issue.file and issue.problem, text
        assert issue.row is None or issue.row >= 1, text
