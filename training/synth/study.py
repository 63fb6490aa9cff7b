"""One synthetic study, computed purely from (seed, index): image, findings, report, readings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .anatomy import Anatomy, finish, render_layers, sample_anatomy
from .dicom_io import DicomHeader, to_stored_pixels
from .findings import SynthFinding, adjust_anatomy, draw_findings, sample_findings
from .readers import READER_BY_ID, Reading, choose_readers, simulate_reading
from .report import SynthReport, build_report

DEFAULT_SIZE = 1024
# independent random streams per study, so e.g. changing the report wording leaves the image alone
STREAM_ANATOMY, STREAM_RENDER, STREAM_REPORT, STREAM_READERS, STREAM_HEADER = range(5)


def study_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


@dataclass(frozen=True)
class StudyIds:
    study_id: str
    subject_id: str
    dicom_id: str

    @property
    def folder(self) -> str:
        return f"files/p{self.subject_id[:2]}/p{self.subject_id}/s{self.study_id}"

    @property
    def image_path(self) -> str:
        return f"{self.folder}/{self.dicom_id}.dcm"

    @property
    def report_path(self) -> str:
        return f"{self.folder}.txt"


def study_ids(seed: int, index: int) -> StudyIds:
    """MIMIC-style ids, unique per index within a seed (multiplying by a number coprime to 10^7 is a bijection)."""
    study = 50_000_000 + (index * 7_919 + seed * 104_729) % 10_000_000
    subject = 10_000_000 + (index * 7_907 + seed * 15_485_863) % 10_000_000
    digest = hashlib.sha1(f"gazex-synth/{seed}/{index}".encode()).hexdigest()
    dicom = "-".join(digest[i : i + 8] for i in range(0, 40, 8))
    return StudyIds(str(study), str(subject), dicom)


def split_of(study_id: str) -> str:
    bucket = int(hashlib.sha1(study_id.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


@dataclass
class SynthStudy:
    seed: int
    index: int
    ids: StudyIds
    anatomy: Anatomy
    findings: list[SynthFinding]
    image: np.ndarray  # displayed intensity 0-1, 1 = white
    report: SynthReport
    readings: list[Reading] = field(default_factory=list)
    header: DicomHeader | None = None
    headroom: float = 1.0

    @property
    def split(self) -> str:
        return split_of(self.ids.study_id)

    def stored_pixels(self) -> np.ndarray:
        return to_stored_pixels(self.image, self.header.photometric, self.headroom)


def sample_study_findings(seed: int, index: int, size: int) -> tuple[Anatomy, list[SynthFinding]]:
    rng = study_rng(seed, index, STREAM_ANATOMY)
    anatomy = sample_anatomy(rng, size)
    return anatomy, sample_findings(rng, anatomy)


def render_image(seed: int, index: int, anatomy: Anatomy, findings: list[SynthFinding]) -> tuple[Anatomy, np.ndarray]:
    """Render the image with the given findings (a subset renders the same study without the others)."""
    rng = study_rng(seed, index, STREAM_RENDER)
    shaped = adjust_anatomy(anatomy, findings)
    layers = render_layers(shaped, rng)
    draw_findings(layers, shaped, findings)
    return shaped, finish(layers.combine(), rng, shaped.height)


def make_study(seed: int, index: int, size: int = DEFAULT_SIZE) -> SynthStudy:
    anatomy, findings = sample_study_findings(seed, index, size)
    shaped, image = render_image(seed, index, anatomy, findings)
    report = build_report(findings, study_rng(seed, index, STREAM_REPORT))
    reader_rng = study_rng(seed, index, STREAM_READERS)
    readings = [simulate_reading(READER_BY_ID[r], shaped, findings, report, reader_rng) for r in choose_readers(reader_rng)]
    ids = study_ids(seed, index)
    header_rng = study_rng(seed, index, STREAM_HEADER)
    header = DicomHeader(
        modality="DX" if header_rng.random() < 0.7 else "CR",
        photometric="MONOCHROME1" if header_rng.random() < 0.15 else "MONOCHROME2",
        pixel_spacing_mm=shaped.pixel_spacing_mm,
        patient_id=ids.subject_id,
        patient_sex="F" if shaped.has_breasts else "M",
        patient_age=f"{int(header_rng.integers(25, 90)):03d}Y",
        study_date=f"21{int(header_rng.integers(10, 90)):02d}{int(header_rng.integers(1, 13)):02d}{int(header_rng.integers(1, 29)):02d}",
        uid_key=f"gazex-synth/{seed}/{index}",
    )
    return SynthStudy(seed, index, ids, shaped, findings, image, report, readings, header, float(header_rng.uniform(0.85, 1.0)))
