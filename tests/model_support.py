"""Shared helpers for the model tests (tests/test_model_*.py): small synthetic datasets and the shipped model."""

from __future__ import annotations

import csv
import functools
import tempfile
from pathlib import Path

from training.synth import generate


@functools.lru_cache(maxsize=None)
def dataset(n: int = 12, seed: int = 11, size: int = 384) -> Path:
    out = Path(tempfile.mkdtemp(prefix=f"gazex-model-{seed}-"))
    return generate(n, out, seed=seed, size=size, workers=1, raw_gaze=False, progress=False)


def rows(root: Path, name: str) -> list[dict]:
    with open(root / name, newline="") as fh:
        return list(csv.DictReader(fh))


def dicom_of(root: Path, study_id: str) -> Path:
    for r in rows(root, "metadata.csv"):
        if r["study_id"] == study_id:
            return root / r["image_path"]
    raise KeyError(study_id)


@functools.lru_cache(maxsize=1)
def shipped_model():
    from gazex_core.inference import GazeX

    return GazeX()
