"""Writing one synthetic radiograph as a 12-bit DICOM (DX or CR), Explicit VR Little Endian.

The file is encoded here, element by element, rather than through pydicom's Dataset: the same
bytes pydicom 3 writes for this fixed set of elements (tests/test_synth_determinism.py checks
them against a stored digest), without pydicom's per-element overhead and its import in every
worker process. Reading synthetic files back goes through pydicom as usual.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_VALUE = 4095  # 12 bits stored
SOP_CLASS = {"DX": "1.2.840.10008.5.1.4.1.1.1.1", "CR": "1.2.840.10008.5.1.4.1.1.1"}  # DX for presentation / CR


@dataclass(frozen=True)
class DicomHeader:
    modality: str  # DX / CR
    photometric: str  # MONOCHROME2 / MONOCHROME1
    pixel_spacing_mm: float
    patient_id: str
    patient_sex: str
    patient_age: str
    study_date: str
    uid_key: str  # seeds the UIDs so the same study always gets the same ones


def to_stored_pixels(intensity: np.ndarray, photometric: str, headroom: float) -> np.ndarray:
    """Intensity 0-1 (1 = white) -> stored 12-bit values; MONOCHROME1 stores white as 0."""
    scaled = np.clip(intensity, 0, 1)
    scaled *= MAX_VALUE  # in place: the same arithmetic as clip(...) * MAX_VALUE * headroom, no temporaries
    scaled *= headroom
    values = np.round(scaled, out=scaled).astype(np.uint16)
    return (MAX_VALUE - values).astype(np.uint16) if photometric == "MONOCHROME1" else values


UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, as pydicom.uid.generate_uid uses it
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}


def uid(key: str, part: str) -> str:
    """``pydicom.uid.generate_uid(entropy_srcs=[key, part])``: the root and the SHA-512 of the
    sources as a decimal number, cut to 64 characters."""
    digest = hashlib.sha512((key + part).encode("utf-8")).hexdigest()
    return f"{UID_ROOT}{int(digest, 16)}"[:64]


def _element(tag: int, vr: str, value: bytes | str | int | list[str]) -> bytes:
    """One explicit-VR little-endian element; text is padded to even length (UI with NUL, others with space)."""
    if vr in ("US", "UL"):
        data = struct.pack("<H" if vr == "US" else "<I", value)
    else:
        if isinstance(value, list):
            value = "\\".join(value)
        data = value.encode("ascii") if isinstance(value, str) else value
        if len(data) % 2:
            data += b"\0" if vr in ("UI", "OB") else b" "
    group, number = tag >> 16, tag & 0xFFFF
    if vr in LONG_VRS:
        return struct.pack("<HH2s2xI", group, number, vr.encode(), len(data)) + data
    return struct.pack("<HH2sH", group, number, vr.encode(), len(data)) + data


def _file_meta(header: DicomHeader) -> bytes:
    elements = b"".join([
        _element(0x00020001, "OB", b"\0\1"),
        _element(0x00020002, "UI", SOP_CLASS[header.modality]),
        _element(0x00020003, "UI", uid(header.uid_key, "sop")),
        _element(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN),
        _element(0x00020012, "UI", "1.2.826.0.1.3680043.8.498.1"),
        _element(0x00020013, "SH", "GAZEX_SYNTH_1"),
    ])
    return _element(0x00020000, "UL", len(elements)) + elements


def _dataset(rows: int, columns: int, header: DicomHeader) -> list[bytes]:
    """The data elements before the pixel data, in tag order."""
    spacing = [f"{header.pixel_spacing_mm:.6f}"] * 2
    date = header.study_date
    elements = [
        (0x00080008, "CS", ["ORIGINAL", "PRIMARY"]),
        (0x00080016, "UI", SOP_CLASS[header.modality]),
        (0x00080018, "UI", uid(header.uid_key, "sop")),
        (0x00080020, "DA", date), (0x00080021, "DA", date), (0x00080023, "DA", date),
        (0x00080030, "TM", "120000"), (0x00080031, "TM", "120000"), (0x00080033, "TM", "120000"),
        (0x00080050, "SH", ""),
        (0x00080060, "CS", header.modality),
        *([(0x00080068, "CS", "FOR PRESENTATION")] if header.modality == "DX" else []),
        (0x00080070, "LO", "GazeX synthetic"),
        (0x00080090, "PN", ""),
        (0x00081030, "LO", "CHEST (PA)"),
        (0x00100010, "PN", f"SYNTHETIC^{header.patient_id}"),
        (0x00100020, "LO", header.patient_id),
        (0x00100030, "DA", ""),
        (0x00100040, "CS", header.patient_sex),
        (0x00101010, "AS", header.patient_age),
        (0x00180015, "CS", "CHEST"),
        (0x00181164, "DS", spacing),
        (0x00185101, "CS", "PA"),
        (0x0020000D, "UI", uid(header.uid_key, "study")),
        (0x0020000E, "UI", uid(header.uid_key, "series")),
        (0x00200010, "SH", "1"),
        (0x00200011, "IS", "1"),
        (0x00200013, "IS", "1"),
        (0x00200020, "CS", ["L", "F"]),
        (0x00200052, "UI", uid(header.uid_key, "frame")),
        (0x00280002, "US", 1),
        (0x00280004, "CS", header.photometric),
        (0x00280010, "US", rows),
        (0x00280011, "US", columns),
        (0x00280030, "DS", spacing),
        (0x00280100, "US", 16),
        (0x00280101, "US", 12),
        (0x00280102, "US", 11),
        (0x00280103, "US", 0),
        (0x00281050, "DS", "2048.0"),
        (0x00281051, "DS", "4096.0"),
        (0x00281052, "DS", "0.0"),
        (0x00281053, "DS", "1.0"),
        (0x00400254, "LO", "CHEST (PA)"),
    ]
    return [_element(tag, vr, value) for tag, vr, value in elements]


def write_dicom(path: Path, pixels: np.ndarray, header: DicomHeader) -> None:
    rows, columns = pixels.shape
    data = np.ascontiguousarray(pixels, dtype="<u2")
    with open(path, "wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        handle.write(_file_meta(header))
        handle.write(b"".join(_dataset(rows, columns, header)))
        handle.write(struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", data.nbytes))
        handle.write(data.data)
