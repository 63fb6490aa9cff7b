"""Real data files from torchxrayvision's ``data/`` folder that the generator draws from.

Lung shapes come from the v7labs lung masks, finding locations from the NIH box list and
report wording from the IU X-Ray reports. Each loader is cached per process.
"""

from __future__ import annotations

import functools
import os
import gzip
import re
import tarfile
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

CANONICAL_MASK_SHAPE = (256, 256)  # (h, w) the lung masks are normalised to


class MissingDataFile(RuntimeError):
    """A torchxrayvision data file the generator needs is not installed."""


def data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("torchxrayvision")  # no import: that would load torch
    if spec is None or spec.origin is None:
        raise MissingDataFile("torchxrayvision is not installed; pip install torchxrayvision>=1.5")
    return Path(spec.origin).parent / "data"


def data_file(name: str) -> Path:
    path = data_dir() / name
    if not path.is_file():
        raise MissingDataFile(f"torchxrayvision data file {name} not found at {path}; reinstall torchxrayvision>=1.5")
    return path


def _two_lungs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a binary lung mask into (image-left, image-right) lungs, or None if it is not two lungs."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count < 3:
        return None
    order = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1] + 1
    a, b = order[0], order[1]
    if stats[b, cv2.CC_STAT_AREA] < 0.4 * stats[a, cv2.CC_STAT_AREA]:
        return None
    first, second = (a, b) if stats[a, cv2.CC_STAT_LEFT] < stats[b, cv2.CC_STAT_LEFT] else (b, a)
    return labels == first, labels == second


def _canonical_lungs(image: np.ndarray) -> np.ndarray | None:
    """Crop to the lungs' bounding box and resize to the canonical shape; channels = (image-left, image-right)."""
    scale = 512 / max(image.shape)
    if scale < 1:  # some masks are 5000 px; the shape survives downscaling and labelling gets 100x faster
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lungs = _two_lungs(image > 127)
    if lungs is None:
        return None
    union = lungs[0] | lungs[1]
    ys, xs = np.nonzero(union)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    if not 0.6 < h / w < 1.6:
        return None
    crop = [m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8) * 255 for m in lungs]
    size = (CANONICAL_MASK_SHAPE[1], CANONICAL_MASK_SHAPE[0])
    return np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in crop])


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "gazex-review"


def _disk_cached(name: str, source: Path, build) -> dict[str, np.ndarray]:
    """``build(source)``, a dict of arrays, cached on disk keyed by the source file's size (every
    process of the generator's pool loads these; decoding the sources each time costs seconds)."""
    cached = cache_dir() / f"{name}_{source.stat().st_size}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return {key: stored[key] for key in stored.files}
    arrays = build(source)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(cached)
    except OSError:
        pass  # an unwritable cache only costs time
    return arrays


@functools.lru_cache(maxsize=1)
def lung_masks() -> np.ndarray:
    """All usable real lung masks as uint8 (N, 2, 256, 256), in a fixed (sorted-name) order.

    Decoding the 517 masks takes ~15 s, so the result is cached on disk.
    """
    source = data_file("semantic_masks_v7labs_lungs.zip")
    return _disk_cached("lung_masks_v1", source, lambda path: {"masks": _decode_lung_masks(path)})["masks"]


def _decode_lung_masks(source: Path) -> np.ndarray:
    with zipfile.ZipFile(source) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        masks = []
        for name in names:
            image = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            canonical = None if image is None else _canonical_lungs(image)
            if canonical is not None:
                masks.append(canonical)
    if not masks:
        raise MissingDataFile("semantic_masks_v7labs_lungs.zip holds no usable two-lung masks")
    return np.stack(masks)


@functools.lru_cache(maxsize=1)
def nih_box_centres() -> dict[str, np.ndarray]:
    """NIH BBox_List_2017 box centres per finding label, normalised to 0-1 (boxes are on 1024 px images)."""
    centres = _disk_cached("nih_box_centres_v1", data_file("BBox_List_2017.csv.gz"), _read_nih_box_centres)
    return {label: centres[label] for label in sorted(centres)}


def _read_nih_box_centres(source: Path) -> dict[str, np.ndarray]:
    import pandas as pd

    with gzip.open(source, "rt") as handle:
        table = pd.read_csv(handle).iloc[:, :6]
    table.columns = ["image", "label", "x", "y", "w", "h"]
    centres = np.stack([(table.x + table.w / 2) / 1024, (table.y + table.h / 2) / 1024], axis=1)
    return {label: centres[(table.label == label).to_numpy()] for label in sorted(table.label.unique())}


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


@functools.lru_cache(maxsize=1)
def iu_sentences() -> tuple[str, ...]:
    """Distinct sentences of the real IU X-Ray FINDINGS and IMPRESSION sections, sorted, de-identified ones dropped."""
    stored = _disk_cached("iu_sentences_v1", data_file("NLMCXR_reports.tgz"),
                          lambda path: {"sentences": np.array(_read_iu_sentences(path))})
    return tuple(str(sentence) for sentence in stored["sentences"])


def _read_iu_sentences(source: Path) -> tuple[str, ...]:
    sentences: set[str] = set()
    with tarfile.open(source) as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(archive.extractfile(member).read())
            for node in root.iter("AbstractText"):
                if node.get("Label") in ("FINDINGS", "IMPRESSION") and node.text:
                    for sentence in _SENTENCE_SPLIT.split(node.text.strip()):
                        sentence = re.sub(r"\s+", " ", sentence).strip().rstrip(".") + "."
                        glued = re.search(r"[A-Za-z]\.[A-Za-z]", sentence)  # two sentences missing a space
                        if "XXXX" not in sentence and not glued and not re.match(r"^\d", sentence) and 8 < len(sentence) < 160:
                            sentences.add(sentence)
    return tuple(sorted(sentences))
