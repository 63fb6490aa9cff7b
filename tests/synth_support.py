"""Shared helpers for the synthetic-generator tests: small datasets generated once per test session."""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pydicom

from training.synth import generate

SIZE = 256


@functools.lru_cache(maxsize=None)
def dataset(n: int = 12, seed: int = 7, workers: int = 1, raw_gaze: bool = False) -> Path:
    out = Path(tempfile.mkdtemp(prefix=f"gazex-synth-{seed}-{workers}-"))
    return generate(n, out, seed=seed, size=SIZE, workers=workers, raw_gaze=raw_gaze, progress=False)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dicom_pixels(root: Path) -> dict[str, np.ndarray]:
    """Every DICOM's stored pixel array, by relative path."""
    return {str(p.relative_to(root)): pydicom.dcmread(p).pixel_array for p in sorted(root.rglob("*.dcm"))}


def digest_without_pixels(root: Path) -> str:
    """One SHA-256 over every file's relative path and content, each DICOM's PixelData value left out: what must be identical on every CPU (reports,
    labels, boxes, gaze, headers); the pixels themselves go through CPU-specific SIMD paths (OpenCV, numpy)."""
    digest = hashlib.sha256()
    for name, content in tree_bytes(root).items():
        if name.endswith(".dcm"):
            content = content.replace(pydicom.dcmread(root / name).PixelData, b"")
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()

