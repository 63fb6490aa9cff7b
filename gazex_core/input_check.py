"""The input check: is this study like the ones the model was trained on, and may it be drafted?

Every ``GazeX.analyze`` runs it before drafting and puts the result in the EvidenceBundle (``input_check``).
It joins two kinds of reasons:

* **header reasons** from :func:`gazex_core.imaging.drafting_scope`: a modality GazeX does not draft for
  (CT, MR, US...), a body part that is not the chest, a view that is not PA / AP;
* **the feature score**: the Mahalanobis distance of the model's own encoder features from those of the
  training studies. The encoder output (an 8 x 8 grid of d-dimensional vectors for a 128 x 128 input) is
  averaged over the grid; the score is the squared Mahalanobis distance of that d-vector from the training
  mean, under the training covariance (shrunk towards a multiple of the identity), divided by d (about 1
  for a typical training study). Chosen by measured AUROC over an energy score on the finding head (0.52)
  and a Mahalanobis distance on the finding logits (0.87); the per-position variant separated as well but
  let fewer in-distribution studies through (docs/model_card.md, "Input check").

The statistics live in the model directory in one file, ``input_check.safetensors`` (:data:`STATS_FILE`):

    tensors   mean (d,) float32: training mean of the grid-averaged encoder output
              precision (d, d) float32: inverse of its shrunk training covariance
    metadata  one key, "gazex.input_check", holding a JSON object (sorted keys, so that refitting writes the
              same bytes): format "gazex.input_check/1", threshold (score above it -> flagged), feature,
              fitted_on (the studies the statistics were fitted on), threshold_rule, n_fit, shrinkage

They are fitted by ``gazex input-check fit`` (training/input_check.py): deterministic (the training
split of ``gazex synth --seed 0`` studies, float64 sums, fixed shrinkage). The file is part of the model
version: :func:`gazex_core.checkpoint.model_identity` hashes it, and :func:`gazex_core.checkpoint.load_input_stats`
is where it is read. A model directory without the file gets header reasons only (``score`` None).

A study that fails the check gets no draft by default (:class:`InputRefused`, a one-line reason); drafting it
anyway marks every sentence ``out_of_scope``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .imaging import OutOfScopeError

STATS_FILE = "input_check.safetensors"
STATS_FORMAT = "gazex.input_check/1"
META_KEY = "gazex.input_check"  # one metadata key: safetensors does not keep the order of several
FEATURE = "encoder output averaged over the grid; squared Mahalanobis distance / d"


class InputRefused(OutOfScopeError):
    """A study the input check flags, refused before drafting. ``input_check`` holds the full result."""

    def __init__(self, message: str, input_check: "InputCheck"):
        super().__init__(message)
        self.input_check = input_check


@dataclass
class InputCheck:
    """What the bundle records: the feature score and its threshold (None without statistics), the verdict,
    and every reason (header reasons first, then the feature score's)."""

    score: float | None
    threshold: float | None
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: why the study is out of scope."""
        return "; ".join(self.reasons) if self.reasons else "within the training distribution"

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold, "passed": self.passed, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputCheck":
        score, threshold = d.get("score"), d.get("threshold")
        return cls(score=None if score is None else float(score), threshold=None if threshold is None else float(threshold),
                   passed=bool(d["passed"]), reasons=[str(r) for r in d.get("reasons", [])])


@dataclass
class FeatureStats:
    """Training statistics of the encoder output and the threshold on the score."""

    mean: np.ndarray  # (d,)
    precision: np.ndarray  # (d, d)
    threshold: float
    meta: dict[str, str] = field(default_factory=dict)

    def score(self, memory: np.ndarray) -> float:
        """memory (P, d) of one image -> squared Mahalanobis distance of its grid average, divided by d."""
        diff = np.asarray(memory, dtype=np.float64).mean(axis=0) - self.mean
        return float(diff @ self.precision @ diff / len(self.mean))

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(directory) / STATS_FILE
        meta = {**self.meta, "format": STATS_FORMAT, "threshold": repr(float(self.threshold)), "feature": FEATURE}
        save_file({"mean": self.mean.astype(np.float32), "precision": self.precision.astype(np.float32)}, str(path),
                  metadata={META_KEY: json.dumps({k: str(v) for k, v in meta.items()}, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
            if meta.get("format") != STATS_FORMAT:
                raise ValueError(f"{path}: not a {STATS_FORMAT} file (format {meta.get('format')!r})")
            mean, precision = handle.get_tensor("mean"), handle.get_tensor("precision")
        return cls(mean.astype(np.float64), precision.astype(np.float64), float(meta["threshold"]), meta)


def fit_stats(memories: np.ndarray, shrinkage: float = 0.1) -> FeatureStats:
    """Mean and shrunk covariance of the grid-averaged (N, P, d) training features (threshold unset)."""
    feats = np.asarray(memories, dtype=np.float64).mean(axis=1)
    mean = feats.mean(axis=0)
    centred = feats - mean
    cov = centred.T @ centred / max(len(centred) - 1, 1)
    target = np.eye(cov.shape[0]) * np.trace(cov) / cov.shape[0]
    precision = np.linalg.inv((1 - shrinkage) * cov + shrinkage * target)
    return FeatureStats(mean, precision, float("nan"), {"n_fit": str(len(feats)), "shrinkage": repr(shrinkage)})


def feature_reason(score: float, threshold: float) -> str:
    return (f"the image is unlike the synthetic chest films the model was trained on (input score {score:.2f} "
            f"above the threshold {threshold:.2f})")


def combine(header_reasons: list[str], score: float | None, threshold: float | None) -> InputCheck:
    """The input check from the header reasons and the feature score (None: no statistics in the model)."""
    reasons = list(header_reasons)
    if score is not None and threshold is not None and not score <= threshold:
        reasons.append(feature_reason(score, threshold))
    return InputCheck(score=score, threshold=threshold, passed=not reasons, reasons=reasons)


__all__ = ["STATS_FILE", "STATS_FORMAT", "InputCheck", "InputRefused", "FeatureStats", "fit_stats", "combine",
           "feature_reason"]
