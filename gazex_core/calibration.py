"""Calibrated sentence confidence: the probability that a drafted sentence is true.

Every sentence of an EvidenceBundle carries one ``confidence``. With a calibrator in the model directory it is
the **calibrated probability that the sentence is true** - for a stated finding ("Small left pleural
effusion."), a negative statement ("No pneumothorax.") and a normal statement ("The heart size is normal.")
alike. It is computed in two steps:

1. **The statement score** (:func:`statement`): the sentence's text is read with the project's one text-to-label
   mapping (:mod:`gazex_core.labeler`) and scored with the finding head's probabilities ``p``:

   * ``finding`` - the sentence states (or suspects) at least one observation: the product over the
     observations it mentions of ``p(L)`` when stated, ``1 - p(L)`` when negated;
   * ``negative`` - it only negates observations: the product of ``1 - p(L)``;
   * ``normal`` - it names no observation: in the impression ``p(No Finding)``; in the findings the product
     of ``1 - p(L)`` over the observations of its ABCDEF region (``vocab.LABEL_REGION``, devices excluded;
     1.0 for a region without any, such as the airway).

2. **The calibrator** (:class:`Calibrator`): one isotonic (monotone, non-decreasing) map per statement kind from
   the score to the observed frequency of true sentences, fitted on drafts of the validation split by
   ``gazex calibrate fit`` (training/calibration.py, where "true" is defined against the synthetic ground
   truth) and clipped to [0.01, 0.99]: no drafted sentence is certain.

The calibrator lives in the model directory as ``calibration.json`` (:data:`CALIBRATION_FILE`; sorted keys, so
refitting writes the same bytes); it is part of the model version (:func:`gazex_core.checkpoint.model_identity`)
and read by :func:`gazex_core.checkpoint.load_calibration`. A model directory without it keeps the legacy,
uncalibrated confidence (the mean probability of the sentence's tokens, capped by the finding head's
probability of its label), and the bundle says so (``EvidenceBundle.confidence_calibrated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import labeler
from .vocab import CHEXPERT_LABELS, LABEL_REGION

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = "gazex.calibration/1"
KINDS = ("finding", "negative", "normal")
CLIP = (0.01, 0.99)
CALIBRATED_MEANING = ("calibrated probability that the sentence is true (stated findings, negative and normal "
                      "statements alike), fitted on the validation split")
RAW_MEANING = ("uncalibrated: mean probability of the sentence's words, capped by the finding head's probability "
               "of its label")


@dataclass(frozen=True)
class Statement:
    """What a sentence claims, as the calibrator sees it: its kind and the finding head's score for it."""

    kind: str  # one of KINDS
    score: float  # 0-1, the finding head's probability that the claim holds (independence assumed)
    stated: tuple[str, ...] = ()  # observations stated present (or suspected)
    negated: tuple[str, ...] = ()  # observations stated absent


def statement(text: str, section: str, region: str | None, probs: dict[str, float]) -> Statement:
    """The kind and score of a sentence (see the module docstring); ``probs``: label -> finding-head probability."""
    stated, negated = labeler.stated_and_negated(text)
    if stated or negated:
        score = np.prod([probs.get(lab, 0.5) for lab in stated] + [1.0 - probs.get(lab, 0.5) for lab in negated])
        return Statement("finding" if stated else "negative", float(score), stated, negated)
    if section == "impression":
        return Statement("normal", float(probs.get("No Finding", 0.5)))
    in_region = [lab for lab, r in LABEL_REGION.items() if r == region and lab != "Support Devices"]
    return Statement("normal", float(np.prod([1.0 - probs.get(lab, 0.5) for lab in in_region])))


@dataclass
class Calibrator:
    """Per statement kind, an isotonic map given by its breakpoints (score -> probability, linear between)."""

    points: dict[str, tuple[list[float], list[float]]]
    meta: dict[str, str] = field(default_factory=dict)

    def confidence(self, st: Statement) -> float:
        xs, ys = self.points[st.kind]
        return float(np.clip(np.interp(st.score, xs, ys), *CLIP))

    def to_json(self) -> str:
        body = {"format": CALIBRATION_FORMAT, "meaning": CALIBRATED_MEANING, **self.meta,
                "kinds": {k: {"score": [round(float(x), 6) for x in xs], "probability": [round(float(y), 6) for y in ys]}
                          for k, (xs, ys) in sorted(self.points.items())}}
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CALIBRATION_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibrator":
        try:
            body = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the calibrator ({exc})") from exc
        if body.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"{path}: not a {CALIBRATION_FORMAT} file (format {body.get('format')!r})")
        kinds = body.get("kinds", {})
        missing = [k for k in KINDS if k not in kinds]
        if missing:
            raise ValueError(f"{path}: no calibration for statement kind(s) {', '.join(missing)}")
        points = {k: (list(map(float, v["score"])), list(map(float, v["probability"]))) for k, v in kinds.items()}
        meta = {k: v for k, v in body.items() if k not in ("format", "meaning", "kinds")}
        return cls(points, meta)


def expected_calibration_error(confidence, truth, bins: int = 10) -> float:
    """ECE: over equal-width confidence bins, the sample-weighted mean |observed frequency - mean confidence|."""
    conf, hit = np.asarray(confidence, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(hit[sel].mean() - conf[sel].mean())
    return float(total / max(len(conf), 1))


def head_probabilities(findings: list[tuple[str, float]]) -> dict[str, float]:
    """A bundle's ``findings`` list -> label -> probability, every CheXpert label present."""
    probs = dict(findings)
    return {lab: float(probs.get(lab, 0.5)) for lab in CHEXPERT_LABELS}


__all__ = ["CALIBRATION_FILE", "CALIBRATION_FORMAT", "KINDS", "Statement", "statement", "Calibrator",
           "expected_calibration_error", "head_probabilities", "CALIBRATED_MEANING", "RAW_MEANING"]
