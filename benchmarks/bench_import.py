"""`gazex import` of N chest DICOMs with de-identification, into a fresh SQLite installation.

Usage: nice -n 10 python benchmarks/bench_import.py [--n 500] [--size 1024] [--repeats 3]

Each file is a 12-bit MONOCHROME2 CR of size x size with the PS3.15 identifiers the tests plant (names,
IDs, dates, institution, private tags). Timed: the whole import_paths call (sniff, read, de-identify, write the
staged copy, decode and validate the pixels with gazex_core.imaging, scope check, register in the database, add
to the study set). Not timed: generating the inputs. Reports median and spread over repeats, the machine and
its load average at start and end (the machine is shared: note it next to any number you copy).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CR = "1.2.840.10008.5.1.4.1.1.1"


def write_inputs(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = np.exp(-(((xx - 0.3) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2)) + \
        np.exp(-(((xx - 0.7) / 0.12) ** 2 + ((yy - 0.5) / 0.25) ** 2))
    base = 3000 - 2200 * lungs
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CR
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = f"DOE^PATIENT{i}", f"MRN{i:06d}", "19500101"
        ds.InstitutionName, ds.AccessionNumber, ds.StudyDate, ds.StudyTime = "General", f"A{i}", "20240101", "101010"
        ds.ReferringPhysicianName, ds.StudyDescription = "REF^DOC", f"CHEST PA {i}"
        ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", size, size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2000, 3000
        ds.PixelData = (base + rng.normal(0, 40, base.shape)).clip(0, 4095).astype(np.uint16).tobytes()
        ds.private_block(0x0011, "BENCH", create=True).add_new(0x01, "LO", f"private {i}")
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)


def run_once(inputs: Path, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one import into a fresh installation."""
    from annotations_db import ReviewService
    from interop.importer import import_paths

    with tempfile.TemporaryDirectory(prefix="bench-import-site-") as site:
        service = ReviewService.open(None, data_dir=site)
        started, cpu_before = time.perf_counter(), os.times()
        report = import_paths(service, [inputs], study_set="bench", data_dir=site)
        elapsed, cpu_after = time.perf_counter() - started, os.times()
        service.close()
    if len(report.imported) != n:
        raise SystemExit(f"expected {n} imported, got {report.summary()}")
    return elapsed, (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-import-in-") as folder:
        write_inputs(Path(folder), args.n, args.size)
        runs = [run_once(Path(folder), args.n) for _ in range(args.repeats)]
    times, cpu = [wall for wall, _ in runs], [c for _, c in runs]
    print(f"import of {args.n} DICOMs ({args.size}x{args.size}, 12-bit) with de-identification: wall median "
          f"{statistics.median(times):.1f} s (range {min(times):.1f}-{max(times):.1f} s over {args.repeats} runs, "
          f"{args.n / statistics.median(times):.1f} files/s); CPU time median {statistics.median(cpu):.1f} s "
          f"(range {min(cpu):.1f}-{max(cpu):.1f} s); load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
