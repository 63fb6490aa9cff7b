"""Test scaffolding for interop: DICOM files full of identifiers, and a real Orthanc on loopback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage

# Identifying values planted in every test file; none may survive an import anywhere.
IDENTIFIERS = {
    "PatientName": "SMITHERSON^JANE^Q", "PatientID": "MRN-4471-X9", "PatientBirthDate": "19480517",
    "PatientAddress": "17 Larkspur Lane, Springfield", "PatientTelephoneNumbers": "555-0142-77",
    "OtherPatientIDs": "ALT-88213", "InstitutionName": "Saint Elsewhere General", "InstitutionAddress":
    "400 Harbor Road, Shelbyville", "ReferringPhysicianName": "KILDARE^JAMES", "PerformingPhysicianName":
    "QUINCY^MARGARET", "OperatorsName": "TECHWORTH^ALAN", "AccessionNumber": "ACC-99120-7", "StudyID": "STU-55731",
    "StudyDescription": "CHEST PA for Smitherson follow-up", "SeriesDescription": "PA erect Smitherson",
    "DeviceSerialNumber": "SN-XR-40017", "StationName": "XRAYROOM-ELSE-3", "ImageComments":
    "patient Smitherson moved", "PatientAge": "078Y", "PatientSex": "F", "StudyDate": "20240317",
    "SeriesDate": "20240317", "ContentDate": "20240318", "ProtocolName": "Smitherson protocol",
    "AdditionalPatientHistory": "prior TB at Elsewhere", "PatientComments": "Smitherson prefers mornings",
}
PRIVATE_VALUE = "PRIVATE-SMITHERSON-TAG"


def make_cr(path: Path, *, study_uid: str | None = None, sop_uid: str | None = None, size: int = 256,
            seed: int = 0, modality: str = "CR", frames: int = 1, syntax: str = ExplicitVRLittleEndian,
            **overrides) -> dict[str, str]:
    """Writes a small chest-like CR full of identifiers; returns its original identifiers (UIDs included)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = np.exp(-(((xx - 0.3) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((xx - 0.7) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    pixels = (3000 - 2200 * lungs + rng.normal(0, 40, (size, size))).clip(0, 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CR_SOP_CLASS
    ids = {"StudyInstanceUID": study_uid or generate_uid(), "SeriesInstanceUID": generate_uid(),
           "SOPInstanceUID": sop_uid or generate_uid()}
    ds.file_meta.MediaStorageSOPInstanceUID = ids["SOPInstanceUID"]
    ds.SOPClassUID = CR_SOP_CLASS
    for keyword, value in {**IDENTIFIERS, **ids}.items():
        setattr(ds, keyword, value)
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, "CHEST", "PA"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    if frames > 1:
        ds.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    ds.PixelData = pixels.tobytes()
    if ds.file_meta.TransferSyntaxUID.is_compressed:  # an unsupported syntax only needs to look the part
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([pixels.tobytes()])
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0011, "SMITHERSON CORP", create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)
    ds.save_as(path, enforce_file_format=True)
    return {**IDENTIFIERS, **ids, **overrides}


def identifier_needles(originals: list[dict[str, str]]) -> set[bytes]:
    """Byte strings that must appear nowhere after an import (names in DICOM PN form and plain parts too)."""
    needles = {PRIVATE_VALUE.encode()}
    for ids in originals:
        for keyword, value in ids.items():
            if keyword == "PatientSex":  # one letter: too short to search for; checked on the headers instead
                continue
            needles.add(str(value).encode())
    needles |= {b"SMITHERSON", b"Smitherson", b"Elsewhere"}
    return needles


def files_containing(root: Path, needles: set[bytes]) -> list[str]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits += [f"{path.relative_to(root)}: {needle!r}" for needle in needles if needle in data]
    return hits


def read_dicom(path: str | Path) -> Dataset:
    return pydicom.dcmread(str(path))


def gazex_interop(argv: list[str]) -> int:
    """Runs `gazex <argv>` with only interop's subcommands (as training.cli composes them; no torch import)."""
    import argparse

    from interop.cli import add_subcommands

    parser = argparse.ArgumentParser(prog="gazex")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


# --- a real Orthanc with its DICOMweb plugin on loopback -----------------------------------------------------

ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_existing(paths: tuple[str, ...]) -> str | None:
    import glob

    for pattern in paths:
        found = sorted(glob.glob(pattern.replace(".so.1.7", ".so*")))
        if found:
            return found[0]
    return None


@pytest.fixture(scope="session")
def orthanc_url(tmp_path_factory):
    """Base DICOMweb URL of a throwaway Orthanc (temporary storage, free ports, loopback clients only)."""
    import json
    import subprocess
    import time

    import requests

    binary, plugin = _first_existing(ORTHANC_BINARIES), _first_existing(DICOMWEB_PLUGINS)
    if binary is None or plugin is None:
        pytest.fail("the Orthanc tests need Debian's orthanc and orthanc-dicomweb packages (scripts/test.sh "
                    "installs them)", pytrace=False)
    root = tmp_path_factory.mktemp("orthanc")
    http_port = _free_port()
    config = {"Name": "gazex-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": http_port, "DicomPort": _free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [plugin], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
              "StableAge": 1}
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")
    process = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited at start ({root / 'orthanc.log'})", pytrace=False)
            try:
                if requests.get(f"{base}/dicom-web/studies", timeout=2).status_code == 200:
                    break
            except requests.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Orthanc did not answer within 60 s", pytrace=False)
            time.sleep(0.2)
        yield f"{base}/dicom-web"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
