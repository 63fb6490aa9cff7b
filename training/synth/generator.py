"""Orchestration: generate N studies in parallel and write the dataset tables.

Each study depends only on (seed, index), and the tables are written in index order, so the
output is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from .resources import iu_sentences, lung_masks, nih_box_centres
from .study import DEFAULT_SIZE, make_study
from .writer import (
    ANNOTATION_COLUMNS, CHEXPERT_COLUMNS, METADATA_COLUMNS, READING_COLUMNS, REFLACX_META_COLUMNS, SENTENCE_COLUMNS,
    csv_text, write_study, write_text,
)

TABLES = {
    "metadata": ("metadata.csv", METADATA_COLUMNS, False),
    "annotations": ("annotations.csv", ANNOTATION_COLUMNS, False),
    "sentences": ("report_sentences.csv", SENTENCE_COLUMNS, False),
    "readings": ("readings.csv", READING_COLUMNS, False),
    "chexpert": ("mimic-cxr-2.0.0-chexpert.csv", CHEXPERT_COLUMNS, False),
    "reflacx": ("reflacx/main_data/metadata_phase_3.csv", REFLACX_META_COLUMNS, True),
}
MIN_SIZE = 128


def _one(index: int, seed: int, size: int, out: Path, raw_gaze: bool) -> dict[str, list[list]]:
    return write_study(make_study(seed, index, size), out, raw_gaze)


def _worker_setup() -> None:
    """One OpenCV thread per worker process: the pool already has a process per core, and OpenCV's
    own threads on top of it only contend (its results do not depend on the thread count).
    The workers are spawned, not forked: a forked child that touches the thread pool OpenCV had
    started in its parent waits forever."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Let glibc keep the frames a study frees for the next one. By default every array over
    128 KiB is its own mmap, returned to the kernel when freed, so each of a study's ~40
    full-frame temporaries is zeroed page by page again (~5,000 page faults, 10-20 % of a
    study's CPU time at 1024 px). A no-op where the C library is not glibc (False)."""
    from gazex_core.malloc import M_MMAP_THRESHOLD, M_TOP_PAD, M_TRIM_THRESHOLD, set_malloc_options

    return set_malloc_options({M_MMAP_THRESHOLD: 32 << 20,  # glibc's largest; bigger blocks still get their own mmap
                        M_TRIM_THRESHOLD: 512 << 20, M_TOP_PAD: 64 << 20})


def check_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".gazex_write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None


def _warm_caches() -> None:
    """Load the real data files once in the parent: their disk caches are built here, not by every
    worker, and a missing file is reported before any worker starts."""
    lung_masks(), iu_sentences(), nih_box_centres()


def generate(
    n: int, out: str | Path, seed: int = 0, size: int = DEFAULT_SIZE, workers: int | None = None,
    raw_gaze: bool = False, progress: bool = True,
) -> Path:
    """Generate ``n`` synthetic studies into ``out`` (layout: docs/synthetic_format.md). Returns ``out``."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if size < MIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_SIZE} px, got {size}")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    check_output_dir(out)
    _warm_caches()
    job = partial(_one, seed=seed, size=size, out=out, raw_gaze=raw_gaze)
    tables: dict[str, list[list]] = {name: [] for name in TABLES}
    bar = tqdm(total=n, desc="synth", unit="study", disable=not progress)
    if workers == 1:
        results = map(job, range(n))
        _collect(results, tables, bar)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_setup) as pool:
            _collect(pool.map(job, range(n), chunksize=max(1, min(4, n // (workers * 4)))), tables, bar)
    bar.close()
    for name, (filename, columns, crlf) in TABLES.items():
        write_text(out / filename, csv_text(columns, tables[name], crlf=crlf))
    return out


def _collect(results, tables, bar) -> None:
    for rows in results:
        for name, table_rows in rows.items():
            tables[name].extend(table_rows)
        bar.update(1)
