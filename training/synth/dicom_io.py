"""Writing one synthetic radiograph as a 12-bit DICOM (DX or CR) with pydicom."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

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


def uid(key: str, part: str) -> str:
    return generate_uid(entropy_srcs=[key, part])


def write_dicom(path: Path, pixels: np.ndarray, header: DicomHeader) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS[header.modality]
    meta.MediaStorageSOPInstanceUID = uid(header.uid_key, "sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "GAZEX_SYNTH_1"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid(header.uid_key, "study")
    ds.SeriesInstanceUID = uid(header.uid_key, "series")
    ds.FrameOfReferenceUID = uid(header.uid_key, "frame")
    ds.Modality = header.modality
    ds.PatientName = f"SYNTHETIC^{header.patient_id}"
    ds.PatientID = header.patient_id
    ds.PatientSex = header.patient_sex
    ds.PatientAge = header.patient_age
    ds.PatientBirthDate = ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "GazeX synthetic"
    ds.StudyDescription = ds.PerformedProcedureStepDescription = "CHEST (PA)"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if header.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = header.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    spacing = f"{header.pixel_spacing_mm:.6f}"
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)

