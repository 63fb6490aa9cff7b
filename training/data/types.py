"""The objects every loader returns, whatever the source format.

One study = one frontal image, its report, its ground-truth findings (with a box
each where known), and zero or more gaze recordings (one per reader). Pixel
coordinates are in the original image's pixel grid (origin top-left); times are
seconds from the start of the recording (the REFLACX convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gazex_core.evidence import Box


@dataclass
class Finding:
    """One ground-truth finding. ``box_px`` is in original-image pixels."""

    label: str  # CheXpert name
    box_px: Box | None = None
    kind: str | None = None  # finer type, e.g. "nodule", "mass", "pacemaker"
    laterality: str | None = None  # left / right / bilateral / midline
    location: str | None = None  # e.g. "upper zone", "base", "perihilar"
    severity: str | None = None  # small / moderate / large
    certainty: float = 1.0
    phrase: str | None = None  # the sentence/phrase that grounds it (MS-CXR style)
    reader_id: str | None = None  # who drew it, when a dataset has several readers per image (VinDr, REFLACX)


@dataclass
class ReportSentence:
    text: str
    section: str = "findings"  # findings / impression
    region: str | None = None  # ABCDEF region when known
    label: str | None = None  # CheXpert label it states as present; None for negatives/normal statements
    is_negative: bool = False


@dataclass
class Report:
    sentences: list[ReportSentence] = field(default_factory=list)
    raw_text: str | None = None
    indication: str | None = None

    def section_text(self, section: str) -> str:
        return " ".join(s.text for s in self.sentences if s.section == section)


@dataclass
class Fixation:
    x: float
    y: float
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class TimedSentence:
    """A dictated sentence with its start and end time (REFLACX timestamps_transcription)."""

    text: str
    start_s: float
    end_s: float


@dataclass
class GazeRecording:
    reader_id: str
    fixations: list[Fixation] = field(default_factory=list)
    sentences: list[TimedSentence] = field(default_factory=list)
    # Raw samples as an (N, 3) array of t_s, x_px, y_px; None when only fixations exist.
    samples: np.ndarray | None = None
    pixels_per_degree: tuple[float, float] = (40.0, 40.0)
    sample_rate_hz: float | None = None


@dataclass
class Study:
    study_id: str
    source: str  # "synthetic", "reflacx", "egd-cxr", "mimic-cxr", "iu-xray", "vindr-cxr", "ms-cxr"
    image_path: Path | None
    width: int | None = None
    height: int | None = None
    image_id: str | None = None  # dicom_id / image file id
    subject_id: str | None = None
    split: str | None = None  # train / val / test
    report: Report | None = None
    findings: list[Finding] = field(default_factory=list)
    labels: dict[str, float | None] = field(default_factory=dict)  # CheXpert: 1, 0, -1 (uncertain), None
    gaze: list[GazeRecording] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def positive_labels(self) -> set[str]:
        return {k for k, v in self.labels.items() if v == 1 and k != "No Finding"}


@dataclass
class LoadIssue:
    """One skipped row or file, reported instead of crashing the whole load."""

    file: str
    row: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" if self.row is not None else self.file
        return f"{where}: {self.problem}"


@dataclass
class LoadResult:
    studies: list[Study]
    issues: list[LoadIssue] = field(default_factory=list)

    def __iter__(self):
        return iter(self.studies)

    def __len__(self) -> int:
        return len(self.studies)
