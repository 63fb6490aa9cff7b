"""The EvidenceBundle: the contract between the model and everything else.

Every drafted sentence carries its evidence: the ordered inspection trajectory
that led to it and the observation box where the finding is. Coordinates are
normalised to the original image (0-1, origin top-left).

JSON form (schema ``gazex.evidence/4``)::

    {"schema": "gazex.evidence/4", "model": {"name", "version"},
     "image": {"width", "height", "modality", "body_part", "view_position"},
     "input_check": {"score", "threshold", "passed", "reasons": [...]} | null,
     "confidence": {"calibrated": bool, "meaning": str},
     "sentences": [{"id", "section", "region", "label", "text", "confidence", "out_of_scope",
                    "observation_box": {"x_min","y_min","x_max","y_max"} | null,
                    "trajectory": [{"x","y","dwell_ms","clue_box"}]}],
     "findings": [{"label","probability"}], "timing_ms": {...}, "warnings": [...],
     "scope_warnings": [...]}

``scope_warnings`` are the header checks of :func:`gazex_core.imaging.drafting_scope` (a body part or view
position that is not chest / PA / AP); ``warnings`` are everything else (image look, draft cut off...).
``input_check`` is :class:`gazex_core.input_check.InputCheck` (header reasons and the model's feature score
against its threshold); a sentence is ``out_of_scope`` when the study failed it and was drafted anyway.
A sentence's ``confidence`` is, when ``confidence.calibrated`` is true, the calibrated probability that the
sentence is true (:mod:`gazex_core.calibration`: stated findings, negative and normal statements alike);
otherwise the legacy, uncalibrated score (mean probability of the sentence's words, capped by the finding
head's probability of its label). ``confidence.meaning`` says which, in words.
Version 2 added the image's header facts and ``scope_warnings``, version 3 ``input_check`` and
``out_of_scope``, version 4 ``confidence``; version 1-3 bundles (stored drafts) still read, with those empty
(no check recorded, sentences not marked, confidences uncalibrated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .calibration import CALIBRATED_MEANING, RAW_MEANING
from .input_check import InputCheck
from .vocab import REGIONS, SECTIONS, check_label

SCHEMA = "gazex.evidence/4"
READABLE_SCHEMAS = ("gazex.evidence/1", "gazex.evidence/2", "gazex.evidence/3", SCHEMA)
HEADER_FIELDS = ("modality", "body_part", "view_position")


class EvidenceError(ValueError):
    """An EvidenceBundle (or part of one) that breaks the schema."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned box. Units are whatever the holder says (normalised 0-1 in a bundle, pixels in annotations)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        if not (self.x_max >= self.x_min and self.y_max >= self.y_min):
            raise EvidenceError(f"box has max < min: {self}")

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2)

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x_max, other.x_max) - max(self.x_min, other.x_min))
        iy = max(0.0, min(self.y_max, other.y_max) - max(self.y_min, other.y_min))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.x_min * sx, self.y_min * sy, self.x_max * sx, self.y_max * sy)

    def normalised(self, width: float, height: float) -> "Box":
        """Pixel box -> 0-1 box, clipped to the image."""
        b = self.scaled(1.0 / width, 1.0 / height)
        return b.clipped(1.0, 1.0)

    def to_pixels(self, width: float, height: float) -> "Box":
        return self.scaled(width, height)

    def clipped(self, width: float, height: float) -> "Box":
        def c(v: float, hi: float) -> float:
            return min(max(v, 0.0), hi)

        return Box(c(self.x_min, width), c(self.y_min, height), c(self.x_max, width), c(self.y_max, height))

    def to_dict(self) -> dict[str, float]:
        return {"x_min": self.x_min, "y_min": self.y_min, "x_max": self.x_max, "y_max": self.y_max}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Box | None":
        if d is None:
            return None
        try:
            return cls(float(d["x_min"]), float(d["y_min"]), float(d["x_max"]), float(d["y_max"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EvidenceError(f"box {d!r}: {exc}") from exc


@dataclass(frozen=True)
class TrajectoryPoint:
    """One step of the inspection trajectory: where the reader's eyes dwell, for how long, and the clue box there."""

    x: float
    y: float
    dwell_ms: float
    clue_box: Box | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "dwell_ms": self.dwell_ms,
            "clue_box": self.clue_box.to_dict() if self.clue_box else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrajectoryPoint":
        try:
            return cls(float(d["x"]), float(d["y"]), float(d["dwell_ms"]), Box.from_dict(d.get("clue_box")))
        except (KeyError, TypeError, ValueError) as exc:
            raise EvidenceError(f"trajectory point {d!r}: {exc}") from exc


@dataclass
class EvidenceSentence:
    id: str
    section: str
    text: str
    region: str | None = None
    label: str | None = None
    confidence: float = 1.0
    observation_box: Box | None = None
    trajectory: list[TrajectoryPoint] = field(default_factory=list)
    out_of_scope: bool = False  # drafted although the study failed the input check

    def validate(self) -> None:
        if self.section not in SECTIONS:
            raise EvidenceError(f"sentence {self.id}: section {self.section!r} not in {SECTIONS}")
        if self.region is not None and self.region not in REGIONS:
            raise EvidenceError(f"sentence {self.id}: region {self.region!r} not in {REGIONS}")
        try:
            check_label(self.label)
        except ValueError as exc:
            raise EvidenceError(f"sentence {self.id}: {exc}") from exc
        if not 0.0 <= self.confidence <= 1.0:
            raise EvidenceError(f"sentence {self.id}: confidence {self.confidence} outside 0-1")
        boxes = [self.observation_box] + [p.clue_box for p in self.trajectory]
        for box in boxes:
            if box is not None and not (0 <= box.x_min <= box.x_max <= 1 and 0 <= box.y_min <= box.y_max <= 1):
                raise EvidenceError(f"sentence {self.id}: box {box} is not normalised to 0-1")
        for p in self.trajectory:
            if not (0 <= p.x <= 1 and 0 <= p.y <= 1) or p.dwell_ms < 0:
                raise EvidenceError(f"sentence {self.id}: trajectory point {p} outside the image or negative dwell")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "region": self.region,
            "label": self.label,
            "text": self.text,
            "confidence": self.confidence,
            "out_of_scope": self.out_of_scope,
            "observation_box": self.observation_box.to_dict() if self.observation_box else None,
            "trajectory": [p.to_dict() for p in self.trajectory],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvidenceSentence":
        try:
            return cls(
                id=str(d["id"]),
                section=d["section"],
                text=d["text"],
                region=d.get("region"),
                label=d.get("label"),
                confidence=float(d.get("confidence", 1.0)),
                observation_box=Box.from_dict(d.get("observation_box")),
                trajectory=[TrajectoryPoint.from_dict(p) for p in d.get("trajectory", [])],
                out_of_scope=bool(d.get("out_of_scope", False)),
            )
        except KeyError as exc:
            raise EvidenceError(f"sentence {d.get('id', '?')}: missing field {exc}") from exc


@dataclass
class EvidenceBundle:
    model_name: str
    model_version: str
    image_width: int
    image_height: int
    sentences: list[EvidenceSentence] = field(default_factory=list)
    findings: list[tuple[str, float]] = field(default_factory=list)
    timing_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    scope_warnings: list[str] = field(default_factory=list)
    image_header: dict[str, str | None] = field(default_factory=dict)  # HEADER_FIELDS; empty without a DICOM header
    input_check: InputCheck | None = None  # None in bundles written before schema 3
    confidence_calibrated: bool = False  # sentence confidences are calibrated probabilities (schema 4 on)

    @property
    def confidence_meaning(self) -> str:
        return CALIBRATED_MEANING if self.confidence_calibrated else RAW_MEANING

    @property
    def low_confidence(self) -> bool:
        return bool(self.warnings or self.scope_warnings or (self.input_check and not self.input_check.passed))

    @property
    def all_warnings(self) -> list[str]:
        """Scope warnings first (what the reader must check about the study), then the others."""
        return list(self.scope_warnings) + list(self.warnings)

    def sentence(self, sentence_id: str) -> EvidenceSentence:
        for s in self.sentences:
            if s.id == sentence_id:
                return s
        raise KeyError(sentence_id)

    def report_text(self) -> str:
        parts = []
        for section in SECTIONS:
            text = " ".join(s.text for s in self.sentences if s.section == section)
            if text:
                parts.append(f"{section.upper()}: {text}")
        return "\n\n".join(parts)

    def positive_labels(self) -> set[str]:
        return {s.label for s in self.sentences if s.label and s.label != "No Finding"}

    def validate(self) -> "EvidenceBundle":
        if self.image_width <= 0 or self.image_height <= 0:
            raise EvidenceError(f"image size {self.image_width}x{self.image_height} is not positive")
        seen: set[str] = set()
        for s in self.sentences:
            if s.id in seen:
                raise EvidenceError(f"duplicate sentence id {s.id}")
            seen.add(s.id)
            s.validate()
        for label, p in self.findings:
            check_label(label)
            if not 0.0 <= p <= 1.0:
                raise EvidenceError(f"finding {label}: probability {p} outside 0-1")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "model": {"name": self.model_name, "version": self.model_version},
            "image": {"width": self.image_width, "height": self.image_height,
                      **{k: self.image_header.get(k) for k in HEADER_FIELDS}},
            "input_check": self.input_check.to_dict() if self.input_check else None,
            "confidence": {"calibrated": self.confidence_calibrated, "meaning": self.confidence_meaning},
            "sentences": [s.to_dict() for s in self.sentences],
            "findings": [{"label": label, "probability": p} for label, p in self.findings],
            "timing_ms": dict(self.timing_ms),
            "warnings": list(self.warnings),
            "scope_warnings": list(self.scope_warnings),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvidenceBundle":
        if d.get("schema") not in READABLE_SCHEMAS:
            raise EvidenceError(f"schema {d.get('schema')!r} is not one of {READABLE_SCHEMAS}")
        try:
            return cls(
                model_name=d["model"]["name"],
                model_version=d["model"]["version"],
                image_width=int(d["image"]["width"]),
                image_height=int(d["image"]["height"]),
                sentences=[EvidenceSentence.from_dict(s) for s in d.get("sentences", [])],
                findings=[(f["label"], float(f["probability"])) for f in d.get("findings", [])],
                timing_ms={k: float(v) for k, v in d.get("timing_ms", {}).items()},
                warnings=list(d.get("warnings", [])),
                scope_warnings=list(d.get("scope_warnings", [])),
                image_header={k: d["image"].get(k) for k in HEADER_FIELDS if d["image"].get(k) is not None},
                input_check=InputCheck.from_dict(d["input_check"]) if d.get("input_check") else None,
                confidence_calibrated=bool((d.get("confidence") or {}).get("calibrated", False)),
            ).validate()
        except (KeyError, TypeError) as exc:
            raise EvidenceError(f"bundle is missing or mistypes field {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "EvidenceBundle":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"bundle is not JSON: {exc}") from exc
