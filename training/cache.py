"""Preprocessed training cache: downscaled images + precomputed task records (key-frame targets).

``build_cache(data_dir, cache_dir, image_size)`` reads every study of a synthetic (or MIMIC/REFLACX-layout)
dataset once, writes

    cache_dir/images_<S>.npy     uint8 (N, S, S) grey images, resized (stretched) to S x S
    cache_dir/records.json       one record per study (training.tasks.study_record), same order

and afterwards epochs only index these. The cache build shows a progress bar and runs in ``workers`` processes.
Studies are read with engineer B's loader when it exists (``training.data.loaders.synthetic``) and otherwise
with the small reader below, which follows docs/synthetic_format.md.
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core.imaging import load_image, resize_square
from training.data.types import Finding, Fixation, GazeRecording, Report, ReportSentence, Study
from gazex_core.evidence import Box
from gazex_core.vocab import CHEXPERT_LABELS

CACHE_VERSION = 1


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _f(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None


def read_synthetic(data_dir: str | Path) -> list[Study]:
    """Minimal reader of the synthetic layout (docs/synthetic_format.md)."""
    from training.data.keyframes import split_sentences

    root = Path(data_dir)
    meta = _rows(root / "metadata.csv")
    if not meta:
        raise FileNotFoundError(f"{root}: no metadata.csv (not a synthetic dataset directory)")
    anns: dict[str, list[dict]] = {}
    for r in _rows(root / "annotations.csv"):
        anns.setdefault(r["study_id"], []).append(r)
    sents: dict[str, list[dict]] = {}
    for r in _rows(root / "report_sentences.csv"):
        sents.setdefault(r["study_id"], []).append(r)
    readings: dict[str, list[tuple[str, str]]] = {}
    for r in _rows(root / "readings.csv"):
        readings.setdefault(r["study_id"], []).append((r["reading_id"], r["reader_id"]))
    studies = []
    for m in meta:
        sid = m["study_id"]
        findings = []
        for a in anns.get(sid, []):
            coords = [_f(a.get(k)) for k in ("x_min", "y_min", "x_max", "y_max")]
            box = Box(*coords) if None not in coords else None  # type: ignore[arg-type]
            findings.append(Finding(label=a["label"], box_px=box, kind=a.get("kind") or None,
                                    laterality=a.get("laterality") or None, location=a.get("location") or None,
                                    severity=a.get("severity") or None))
        rs = sorted(sents.get(sid, []), key=lambda r: int(r["sentence_index"]))
        report = Report(sentences=[ReportSentence(text=r["text"], section=r["section"], region=r.get("region") or None,
                                                  label=r.get("label") or None,
                                                  is_negative=str(r.get("is_negative", "")).lower() in ("1", "true", "yes"))
                                   for r in rs])
        gaze = []
        for reading_id, reader_id in readings.get(sid, []):
            d = root / "reflacx" / "main_data" / reading_id
            fx = _rows(d / "fixations.csv")
            words = [(w["word"], float(w["timestamp_start_word"]), float(w["timestamp_end_word"]))
                     for w in _rows(d / "timestamps_transcription.csv")]
            if not fx or not words:
                continue
            ppd = (_f(fx[0].get("angular_resolution_x_pixels_per_degree")) or 40.0,
                   _f(fx[0].get("angular_resolution_y_pixels_per_degree")) or 40.0)
            gaze.append(GazeRecording(
                reader_id=reader_id,
                fixations=[Fixation(float(r["x_position"]), float(r["y_position"]), float(r["timestamp_start_fixation"]),
                                    float(r["timestamp_end_fixation"])) for r in fx],
                sentences=split_sentences(words), pixels_per_degree=ppd))
        labels = {k: (1.0 if m.get(k) in ("1", "1.0") else 0.0) for k in CHEXPERT_LABELS if k in m}
        studies.append(Study(study_id=sid, source="synthetic", image_path=root / m["image_path"],
                             width=int(float(m["width"])), height=int(float(m["height"])), split=m.get("split"),
                             report=report, findings=findings, labels=labels, gaze=gaze))
    return studies


def load_studies(data_dir: str | Path) -> list[Study]:
    try:
        from training.data.loaders.synthetic import load_synthetic  # engineer B's loader, when present
    except ImportError:
        return read_synthetic(data_dir)
    result = load_synthetic(data_dir)
    return list(result.studies if hasattr(result, "studies") else result)


def _process(args: tuple[Study, int]) -> tuple[np.ndarray, dict]:
    from training.tasks import study_record

    study, size = args
    img = load_image(study.image_path)
    if study.width is None or study.height is None:
        study.width, study.height = img.width, img.height
    small = (resize_square(img.pixels, size) * 255.0 + 0.5).astype(np.uint8)
    rec = study_record(study)
    rec["image_path"] = str(study.image_path) if study.image_path is not None else None
    return small, rec


def build_cache(data_dir: str | Path, cache_dir: str | Path, image_size: int, workers: int = 1,
                limit: int | None = None) -> Path:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    img_path = cache_dir / f"images_{image_size}.npy"
    rec_path = cache_dir / "records.json"
    if img_path.exists() and rec_path.exists():
        return cache_dir
    studies = load_studies(data_dir)
    if limit:
        studies = studies[:limit]
    images = np.zeros((len(studies), image_size, image_size), np.uint8)
    records: list[dict] = []
    jobs = [(s, image_size) for s in studies]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            it = ex.map(_process, jobs, chunksize=8)
            for i, (im, rec) in enumerate(tqdm(it, total=len(jobs), desc="cache", unit="study")):
                images[i] = im
                records.append(rec)
    else:
        for i, job in enumerate(tqdm(jobs, desc="cache", unit="study")):
            images[i], rec = _process(job)
            records.append(rec)
    np.save(cache_dir / f".tmp_{os.getpid()}.npy", images)
    os.replace(cache_dir / f".tmp_{os.getpid()}.npy", img_path)
    rec_path.write_text(json.dumps({"version": CACHE_VERSION, "data_dir": str(data_dir), "records": records}))
    return cache_dir


def load_cache(cache_dir: str | Path, image_size: int) -> tuple[np.ndarray, list[dict]]:
    cache_dir = Path(cache_dir)
    images = np.load(cache_dir / f"images_{image_size}.npy", mmap_mode="r")
    records = json.loads((cache_dir / "records.json").read_text())["records"]
    return images, records
