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
import uuid
import zipfile
from collections import Counter
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
        reasons = Counter(_reason_kind(reason) for _, reason in self.skipped)
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
    with tempfile.TemporaryDirectory(prefix="gazex-import-") as scratch:
        candidates = list(_expand(paths, Path(scratch), report))
        for done, candidate in enumerate(_progress(candidates, progress), start=1):
            try:
                imported, link = importer.import_file(candidate.path)
            except Refused as exc:
                report.skipped.append((candidate.name, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one odd file must not stop the batch; no values in the line
                log.error("import of one file failed unexpectedly: %s", type(exc).__name__)
                report.skipped.append((candidate.name, f"could not be imported ({type(exc).__name__})"))
            else:
                report.imported.append(imported)
                if link is not None:
                    linkage.append(link)
            if callable(progress):
                progress(done, len(candidates))
    if linkage_file is not None and linkage:
        append_linkage(Path(linkage_file), linkage)
    reasons = Counter(_reason_kind(reason) for _, reason in report.skipped)
    service.record_import_run(study_set, source, len(report.imported), len(report.skipped), dict(reasons), started)
    log.info("import into study set %s: %s", study_set, report.summary())
    return report


class Importer:
    """Imports one file at a time into one study set of one installation."""

    def __init__(self, service, data_dir: Path, study_set: str):
        self.service = service
        self.root = data_dir / IMPORT_DIR
        self.staging = self.root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.deid = Deidentifier(InstallationKey.load_or_create(data_dir))
        self.study_set = service.create_study_set(study_set).name

    def import_file(self, path: Path) -> tuple[ImportedStudy, Linkage | None]:
        kind = sniff_kind(path)
        if kind == "dicom":
            return self._import_dicom(path)
        return self._import_raster(path, kind), None

    def _import_dicom(self, path: Path) -> tuple[ImportedStudy, Linkage]:
        ds = _read_dicom(path)
        check_dicom_header(ds)
        clean, link = self.deid.dataset(ds)
        if not link.study_uid or not link.sop_uid:
            raise Refused("no Study/SOP Instance UID in the header")
        self._refuse_duplicate(link.study_uid)
        staged = self.staging / f"{uuid.uuid4().hex}.dcm"
        try:
            write_dataset(clean, staged)
            return self._register(staged, link.study_uid, link.sop_uid, ".dcm", _dicom_meta(clean)), link
        finally:
            staged.unlink(missing_ok=True)

    def _import_raster(self, path: Path, kind: str) -> ImportedStudy:
        try:
            data = path.read_bytes()
            clean = strip_png(data) if kind == "png" else strip_jpeg(data)
        except ValueError as exc:
            raise Refused(f"unreadable {kind.upper()} ({exc})") from None
        study_uid = self.deid.raster_uid(clean)
        self._refuse_duplicate(study_uid)
        suffix = ".png" if kind == "png" else ".jpg"
        staged = self.staging / f"{uuid.uuid4().hex}{suffix}"
        try:
            staged.write_bytes(clean)
            meta = {"modality": None, "format": kind}
            return self._register(staged, study_uid, self.deid.uid(study_uid), suffix, meta)
        finally:
            staged.unlink(missing_ok=True)

    def _refuse_duplicate(self, study_uid: str) -> None:
        if self.service.find_study(study_uid) is not None:
            raise Refused("duplicate: this study is already imported (same de-identified Study Instance UID)")

    def _register(self, staged: Path, study_uid: str, sop_uid: str, suffix: str, meta: dict) -> ImportedStudy:
        image = _validated_pixels(staged)
        final = self.root / study_uid / f"{sop_uid}{suffix}"
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        try:
            meta = {**meta, "source": "import", "deidentified": True, "warnings": image.warnings}
            info = self.service.register_study(study_uid, str(final), width=image.width, height=image.height,
                                               meta=meta, sop_instance_uid=sop_uid,
                                               series_uid=meta.pop("series_uid", None))
            self.service.add_to_study_set(self.study_set, info.id)
        except Exception:
            if self.service.find_study(study_uid) is None:
                shutil.rmtree(final.parent, ignore_errors=True)
            raise
        return ImportedStudy(info.id, info.study_uid, info.image_path)


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


def _reason_kind(reason: str) -> str:
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


def _progress(items: list[Candidate], progress: bool | ProgressCallback) -> Iterable[Candidate]:
    if progress is True:
        from tqdm import tqdm

        return tqdm(items, desc="import", unit="file")
    return items
