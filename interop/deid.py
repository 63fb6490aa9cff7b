"""De-identification on the way in: the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile,
implemented as a keep-list, with the Retain Longitudinal Temporal Information (Modified Dates) option.

Why a keep-list: the Basic Profile's table lists hundreds of attributes to remove, blank or replace, and new
identifying attributes keep being added to the standard. Copying only the attributes this application needs
(the image pixel module, windowing, geometry, the header fields of the scope check) removes every attribute
the profile removes — and every private tag — by construction. ``KEEP`` below is the documented table.

Replacements are keyed by a per-installation secret (HMAC-SHA256), so the same original always maps to the
same value on this installation and to an unrelated one anywhere else:
- UIDs (study, series, instance, frame of reference): ``2.25.<first 128 bits of HMAC(key, uid)>``;
- Type 2 identifiers (birth date, sex, referring physician, accession number, study ID) are emptied;
- patient: ``PatientID`` becomes ``GX<HMAC(key, PatientID)[:16 hex]>``, ``PatientName`` the same as family name;
- dates: shifted back by 365-3650 days, one shift per patient (intervals between a patient's studies kept);
  times of day are kept (PS3.15 "Retain Longitudinal Temporal Information with Modified Dates").
Nothing original is returned except in ``Linkage`` — which only an explicit option writes, to its own file.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

KEY_FILE_NAME = "deid.key"
KEY_BYTES = 32
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 365, 3650

# Copied unchanged: none of these is in PS3.15 Table E.1-1 (or it is "K"/"C" and non-identifying here).
KEEP = (
    # SOP common / general image / equipment class (no instance identity)
    "SpecificCharacterSet", "SOPClassUID", "ImageType", "Modality", "Manufacturer", "ConversionType",
    "BodyPartExamined", "ViewPosition", "ImageLaterality", "Laterality", "PatientOrientation",
    "PresentationIntentType", "BurnedInAnnotation", "RecognizableVisualFeatures", "LossyImageCompression",
    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "StudyTime", "SeriesTime", "AcquisitionTime",
    "ContentTime", "InstanceNumber", "SeriesNumber",
    # image pixel module
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SmallestImagePixelValue",
    "LargestImagePixelValue", "PixelAspectRatio", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData", "PixelData",
    "FloatPixelData", "DoubleFloatPixelData",
    # modality / VOI LUT, presentation
    "RescaleIntercept", "RescaleSlope", "RescaleType", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "PresentationLUTShape",
    # geometry
    "PixelSpacing", "ImagerPixelSpacing", "PixelSpacingCalibrationType", "EstimatedRadiographicMagnificationFactor",
    "DistanceSourceToDetector", "DistanceSourceToPatient",
)
KEEP_TAGS = frozenset(Tag(tag_for_keyword(keyword)) for keyword in KEEP)
REMAP_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
SHIFT_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
# Type 2 attributes that PS3.15 says to empty ("Z"): kept present with a zero-length value, as the IODs require.
ZERO = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID")
PRESENT = ("StudyDate", "StudyTime")  # Type 2 of the General Study module: empty when the original had none

# What the tests check never survives an import (a subset of PS3.15 Table E.1-1, X/Z/D/U actions).
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex", "PatientAge",
    "PatientAddress", "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientNames", "PatientMotherBirthName",
    "MilitaryRank", "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "RequestingPhysician", "AccessionNumber", "StudyID", "StudyDescription", "SeriesDescription",
    "DeviceSerialNumber", "StationName", "ImageComments", "RequestAttributesSequence", "ProtocolName",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate", "SeriesDate", "ContentDate",
)

BASIC_PROFILE_CODES = (("113100", "Basic Application Confidentiality Profile"),
                       ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))


class InstallationKey:
    """The per-installation secret (32 random bytes in ``<data dir>/deid.key``, mode 600)."""

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("de-identification key must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, data_dir: str | Path) -> "InstallationKey":
        path = Path(data_dir) / KEY_FILE_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # created concurrently: read theirs
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(KEY_BYTES))
        return cls(bytes.fromhex(path.read_text().strip()))

    def digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Linkage:
    """Original -> new identifiers of one imported instance (only ever written to an explicit linkage file)."""

    original_patient_id: str
    original_study_uid: str
    original_sop_uid: str
    study_uid: str
    sop_uid: str
    date_shift_days: int


class Deidentifier:
    def __init__(self, key: InstallationKey):
        self._key = key

    def uid(self, original: str) -> str:
        return "2.25." + str(int.from_bytes(self._key.digest("uid", original)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        return "GX" + self._key.digest("patient", patient_id).hex()[:16].upper()

    def date_shift_days(self, patient_id: str) -> int:
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS
        return MIN_SHIFT_DAYS + int.from_bytes(self._key.digest("date", patient_id)[:4], "big") % span

    def raster_uid(self, content: bytes) -> str:
        return self.uid("raster:" + hashlib.sha256(content).hexdigest())

    def dataset(self, ds: Dataset) -> tuple[Dataset, Linkage]:
        """A new dataset holding only KEEP, remapped UIDs, shifted dates and the pseudonym."""
        patient_id = str(ds.get("PatientID", "") or "")
        shift = self.date_shift_days(patient_id)
        out = Dataset()
        for element in ds:
            if element.tag in KEEP_TAGS:
                out.add(element)
        for keyword in REMAP_UIDS:
            if ds.get(keyword):
                setattr(out, keyword, self.uid(str(ds[keyword].value)))
        for keyword in SHIFT_DATES:
            shifted = _shift_date(ds.get(keyword), shift)
            if shifted:
                setattr(out, keyword, shifted)
        out.PatientID = self.pseudonym(patient_id)
        out.PatientName = f"{out.PatientID}^"  # the pseudonym as family name (a one-component PN)
        for keyword in ZERO:
            setattr(out, keyword, "")
        for keyword in PRESENT:
            if keyword not in out:
                setattr(out, keyword, "")
        _mark_deidentified(out)
        out.file_meta = _file_meta(ds, out)
        return out, Linkage(patient_id, str(ds.get("StudyInstanceUID", "")), str(ds.get("SOPInstanceUID", "")),
                            str(out.get("StudyInstanceUID", "")), str(out.get("SOPInstanceUID", "")), shift)


def _shift_date(value: object, days: int) -> str | None:
    text = str(value or "").strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None  # malformed or empty dates are dropped, never copied
    try:
        return (date(int(text[:4]), int(text[4:6]), int(text[6:])) - timedelta(days=days)).strftime("%Y%m%d")
    except ValueError:
        return None


def _mark_deidentified(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = "GazeX PS3.15 Basic Profile keep-list, shifted dates, HMAC UIDs"
    codes = []
    for value, meaning in BASIC_PROFILE_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes


def _file_meta(original: Dataset, ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", original.file_meta.get("MediaStorageSOPClassUID"))
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
    meta.TransferSyntaxUID = original.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def write_dataset(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def append_linkage(path: Path, rows: list[Linkage]) -> None:
    """Appends to the site's linkage file (mode 600). Only called when the user asked for one."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(Linkage.__dataclass_fields__.keys())
        for row in rows:
            writer.writerow([getattr(row, name) for name in Linkage.__dataclass_fields__])


# --- raster files: metadata stripped at the byte level, pixels untouched ------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEEP_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"sBIT", b"sRGB", b"cHRM", b"iCCP", b"bKGD"}
JPEG_KEEP_APP = {0xE0, 0xEE}  # JFIF and Adobe (colour transform); EXIF/XMP (APP1...) and comments are dropped


def strip_png(data: bytes) -> bytes:
    """PNG without its text, time and EXIF chunks (tEXt, zTXt, iTXt, tIME, eXIf and any unknown chunk)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        if kind in PNG_KEEP_CHUNKS:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    raise ValueError("truncated PNG (no IEND chunk)")


def strip_jpeg(data: bytes) -> bytes:
    """JPEG without APPn (except JFIF/Adobe) and COM segments; the entropy-coded data is copied unchanged."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG file")
    out, pos = [b"\xff\xd8"], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("corrupt JPEG marker")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(data[pos:])
            return b"".join(out)
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if end > len(data):
            raise ValueError("truncated JPEG segment")
        is_app = 0xE0 <= marker <= 0xEF
        if marker != 0xFE and (not is_app or marker in JPEG_KEEP_APP):
            out.append(data[pos:end])
        pos = end
    raise ValueError("truncated JPEG (no image data)")


def read_header(path: Path) -> Dataset:
    """The full dataset (pixels deferred until written); raises pydicom's errors for the importer to word."""
    return pydicom.dcmread(str(path))
