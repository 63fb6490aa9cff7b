"""`gazex import PATH...`: files, folders and zip archives of DICOM, PNG and JPEG into a named study set.

Each file is checked, de-identified (interop/deid.py), written under the installation's own path
``<data dir>/imported/<study uid>/<instance uid>.<ext>``, its pixels validated by gazex_core.imaging, and
registered. A file that fails any step is refused with one line naming it and the reason, and leaves nothing
behind (its staged copy is removed; it is registered only after its file is in place). Names shown in the
report are the ones the user gave; they are never stored, logged or put in a path of ours.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import uuid
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from pydicom.errors import InvalidDicomError

from gazex_core.imaging import DEFAULT_LIMITS, ImageInputError, drafting_scope, load_image

from .deid import (PNG_SIGNATURE, Deidentifier, InstallationKey, Linkage, append_linkage, read_header, strip_jpeg,
                   strip_png, write_dataset)

log = logging.getLogger(__name__)

IMPORT_DIR = "imported"
MAX_FILE_BYTES = DEFAULT_LIMITS.max_file_bytes
MAX_ZIP_BYTES = 8 * 1024 * 1024 * 1024
STAGED_NAME = "image"  # what the image reader calls a staged file in its messages (never the user's name)
DICOM_EXTENSIONS = {".dcm", ".dicom", ".dic"}
EXTENSION_KINDS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", **{e: "dicom" for e in DICOM_EXTENSIONS}}

ProgressCallback = Callable[[int, int], None]


class Refused(Exception):
    """One input refused; the message is the one-line reason (never containing header values)."""


@dataclass(frozen=True)
class ImportedStudy:
    study_id: int
    study_uid: str
    image_path: str


@dataclass
class ImportReport:
    imported: list[ImportedStudy] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name as given, reason)

    def summary(self) -> str:
        reasons = Counter(reason_kind(reason) for _, reason in self.skipped)
        text = f"imported {len(self.imported)}, skipped {len(self.skipped)}"
        if reasons:
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in reasons.most_common()) + ")"
        return text

    def lines(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self.skipped]


@dataclass(frozen=True)
class Candidate:
    path: Path  # where the bytes are now (maybe a temporary extraction)
    name: str  # what the user calls it (relative to what they gave)


def import_paths(service, paths: Iterable[str | Path], *, study_set: str, data_dir: str | Path,
                 linkage_file: str | Path | None = None, progress: bool | ProgressCallback = False,
                 source: str = "file") -> ImportReport:
    """Imports every file under ``paths`` into ``study_set``; returns what was imported and what was refused."""
    data_dir = Path(data_dir)
    importer = Importer(service, data_dir, study_set)
    started = datetime.now(timezone.utc)
    report = ImportReport()
    linkage: list[Linkage] = []
    with tempfile.TemporaryDirectory(prefix="gazex-import-") as scratch, importer.staging_area() as staging:
        candidates = list(_expand(paths, Path(scratch), report))
        outcomes = (_prepare_outcome(c.path, staging, importer.deid) for c in candidates)
        for done, (candidate, outcome) in enumerate(zip(candidates, _progress(outcomes, progress, len(candidates))),
                                                     start=1):
            try:
                imported = importer.commit(_unwrap(outcome))
            except Refused as exc:
                report.skipped.append((candidate.name, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one odd file must not stop the batch; no values in the line
                log.error("import of one file failed unexpectedly: %s", type(exc).__name__)
                report.skipped.append((candidate.name, f"could not be imported ({type(exc).__name__})"))
            else:
                report.imported.append(imported)
                if outcome.linkage is not None:
                    linkage.append(outcome.linkage)
            if callable(progress):
                progress(done, len(candidates))
    if linkage_file is not None and linkage:
        append_linkage(Path(linkage_file), linkage)
    reasons = Counter(reason_kind(reason) for _, reason in report.skipped)
    service.record_import_run(study_set, source, len(report.imported), len(report.skipped), dict(reasons), started)
    log.info("import into study set %s: %s", study_set, report.summary())
    return report


@dataclass
class Prepared:
    """One file made ready to register: its de-identified copy staged and its pixels validated."""

    study_uid: str = ""
    sop_uid: str = ""
    staged: Path | None = None
    suffix: str = ""
    meta: dict = field(default_factory=dict)
    width: int = 0
    height: int = 0
    linkage: Linkage | None = None
    refused: str | None = None  # the one-line reason instead of all of the above


def prepare(path: Path, staging: Path, deid: Deidentifier) -> Prepared:
    """Sniffs, de-identifies and stages one file, then validates its pixels; raises Refused. No database access."""
    with quiet_original_header():
        return _prepare(path, staging, deid)


class _QuietWhileReadingOriginals(logging.Filter):
    """pydicom logs and warns about invalid values by quoting them (a malformed birth date, a name): while this
    thread handles an original header those records are dropped, so no header value reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_THREAD, "reading_original", False)


_THREAD = threading.local()
logging.getLogger("pydicom").addFilter(_QuietWhileReadingOriginals())


@contextmanager
def quiet_original_header() -> Iterator[None]:
    _THREAD.reading_original = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _THREAD.reading_original = False


def _prepare(path: Path, staging: Path, deid: Deidentifier) -> Prepared:
    kind = sniff_kind(path)
    if kind == "dicom":
        ds = _read_dicom(path)
        check_dicom_header(ds)
        clean, link = deid.dataset(ds)
        if not link.study_uid or not link.sop_uid:
            raise Refused("no Study/SOP Instance UID in the header")
        prepared = Prepared(link.study_uid, link.sop_uid, staging / f"{uuid.uuid4().hex}.dcm", ".dcm",
                            _dicom_meta(clean), linkage=link)
        _staged(prepared, lambda target: write_dataset(clean, target))
    else:
        try:
            data = path.read_bytes()
            clean = strip_png(data) if kind == "png" else strip_jpeg(data)
        except ValueError as exc:
            raise Refused(f"unreadable {kind.upper()} ({exc})") from None
        study_uid = deid.raster_uid(clean)
        suffix = ".png" if kind == "png" else ".jpg"
        prepared = Prepared(study_uid, deid.uid(study_uid), staging / f"{uuid.uuid4().hex}{suffix}", suffix,
                            {"modality": None, "format": kind})
        _staged(prepared, lambda target: target.write_bytes(clean))
    return prepared


def _staged(prepared: Prepared, write: Callable[[Path], None]) -> None:
    try:
        write(prepared.staged)
        image = _validated_pixels(prepared.staged)
    except BaseException:
        prepared.staged.unlink(missing_ok=True)
        raise
    prepared.width, prepared.height = image.width, image.height
    prepared.meta = {**prepared.meta, "source": "import", "deidentified": True, "warnings": image.warnings}


class Importer:
    """Registers prepared files into one study set of one installation (the database side of an import)."""

    def __init__(self, service, data_dir: Path, study_set: str):
        self.service = service
        self.root = data_dir / IMPORT_DIR
        self.deid = Deidentifier(InstallationKey.load_or_create(data_dir))
        self.study_set = service.create_study_set(study_set).name

    @contextmanager
    def staging_area(self) -> Iterator[Path]:
        """A staging folder of this run only, removed with whatever a refused or crashed file left in it."""
        staging = self.root / ".staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def import_file(self, path: Path, staging: Path) -> tuple[ImportedStudy, Linkage | None]:
        prepared = prepare(path, staging, self.deid)
        return self.commit(prepared), prepared.linkage

    def commit(self, prepared: Prepared) -> ImportedStudy:
        """Moves the staged file to its own path and registers it; a duplicate leaves nothing behind."""
        try:
            if self.service.find_study(prepared.study_uid) is not None:
                raise Refused("duplicate: this study is already imported (same de-identified Study Instance UID)")
            final = self.root / prepared.study_uid / f"{prepared.sop_uid}{prepared.suffix}"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(prepared.staged, final)
        finally:
            prepared.staged.unlink(missing_ok=True)
        try:
            meta = dict(prepared.meta)
            info = self.service.register_study(prepared.study_uid, str(final), width=prepared.width,
                                               height=prepared.height, meta=meta, sop_instance_uid=prepared.sop_uid,
                                               series_uid=meta.pop("series_uid", None))
            self.service.add_to_study_set(self.study_set, info.id)
        except Exception:
            if self.service.find_study(prepared.study_uid) is None:
                shutil.rmtree(final.parent, ignore_errors=True)
            raise
        return ImportedStudy(info.id, info.study_uid, info.image_path)


def _prepare_outcome(path: Path, staging: Path, deid: Deidentifier) -> Prepared:
    try:
        return prepare(path, staging, deid)
    except Refused as exc:
        return Prepared(refused=str(exc))
    except Exception as exc:  # noqa: BLE001 - reported as that file's line; no header values in it
        return Prepared(refused=f"could not be imported ({type(exc).__name__})")


def _unwrap(outcome: Prepared) -> Prepared:
    if outcome.refused is not None:
        raise Refused(outcome.refused)
    return outcome


# --- checks ---------------------------------------------------------------------------------------------------

def sniff_kind(path: Path) -> str:
    """'dicom' | 'png' | 'jpeg' from the content; Refused for empty, huge, text, unknown or misnamed files."""
    size = path.stat().st_size
    if size == 0:
        raise Refused("empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise Refused(f"file is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit")
    with open(path, "rb") as handle:
        head = handle.read(132)
    kind = _kind_of(head)
    if kind is None:
        raise Refused("a text file, not a DICOM, PNG or JPEG image" if _looks_like_text(head) else
                      "not a DICOM, PNG or JPEG image (unrecognised content)")
    claimed = EXTENSION_KINDS.get(path.suffix.lower())
    if claimed is not None and claimed != kind:
        raise Refused(f"wrong extension: named {path.suffix.lower()} but the content is {kind.upper()}")
    return kind


def _kind_of(head: bytes) -> str | None:
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _read_dicom(path: Path):
    try:
        return read_header(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise Refused(f"unreadable DICOM (truncated or corrupt: {type(exc).__name__})") from None


def check_dicom_header(ds) -> None:
    """What de-identification itself cannot accept; image and scope checks are gazex_core.imaging's."""
    if "PixelData" not in ds:
        raise Refused("no pixel data (not an image)")
    if str(ds.get("BurnedInAnnotation", "NO")).upper() == "YES":
        raise Refused("burned-in annotation: the pixels may show identifying text")


def _validated_pixels(staged: Path):
    """The staged (de-identified) file read by the one image reader, then its drafting scope checked."""
    try:
        image = load_image(staged, name=STAGED_NAME)
        image.warnings = list(image.warnings) + drafting_scope(image)
        return image
    except ImageInputError as exc:
        raise Refused(str(exc).removeprefix(f"{STAGED_NAME}: ")) from None
    except Exception as exc:  # noqa: BLE001 - a decoder's own error on a damaged stream
        raise Refused(f"pixels cannot be read ({type(exc).__name__})") from None


def _dicom_meta(ds) -> dict:
    return {"modality": str(ds.get("Modality", "")), "body_part": str(ds.get("BodyPartExamined", "") or ""),
            "view_position": str(ds.get("ViewPosition", "") or ""), "format": "dicom",
            "series_uid": str(ds.get("SeriesInstanceUID", "") or "") or None}


def reason_kind(reason: str) -> str:
    """The reason's category (the text before any detail), for counts that never name a file."""
    return reason.split(" (")[0].split(":")[0].split(";")[0].strip()


# --- inputs ------------------------------------------------------------------------------------------------

def _expand(paths: Iterable[str | Path], scratch: Path, report: ImportReport) -> Iterator[Candidate]:
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _expand_file(child, f"{path.name}/{child.relative_to(path)}", scratch, report)
        elif path.is_file():
            yield from _expand_file(path, path.name, scratch, report)
        else:
            report.skipped.append((str(given), "no such file or folder"))


def _expand_file(path: Path, name: str, scratch: Path, report: ImportReport) -> Iterator[Candidate]:
    if path.suffix.lower() != ".zip":
        yield Candidate(path, name)
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                report.skipped.append((name, f"archive expands beyond {MAX_ZIP_BYTES // 2**30} GiB; not extracted"))
                return
            target = scratch / uuid.uuid4().hex
            for index, member in enumerate(members):
                extracted = target / str(index) / Path(member.filename).name
                extracted.parent.mkdir(parents=True)
                with archive.open(member) as src, open(extracted, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                yield Candidate(extracted, f"{name}:{member.filename}")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        report.skipped.append((name, f"unreadable zip archive ({type(exc).__name__})"))


def _progress(items: Iterable, progress: bool | ProgressCallback, total: int) -> Iterable:
    if progress is True:
        from tqdm import tqdm

        return tqdm(items, desc="import", unit="file", total=total)
    return items
