"""Wires the app's parts at start-up: the model version record, the shared inference worker and the
image loader. The only place the app touches ``gazex_core``'s loading API.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from annotations_db.service import ModelVersionInfo, ReviewService

from .image_payload import PayloadCache, load_study_image
from .inference_worker import InferenceWorker
from .main import AppContext

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def default_model_path() -> Path:
    """The checkpoint shipped in the package (gazex_core/weights/gazex-tiny)."""
    from gazex_core.inference import DEFAULT_MODEL_DIR

    return Path(DEFAULT_MODEL_DIR)


def ensure_model_version(service: ReviewService, model_path: Path, *, make_active: bool = True) -> ModelVersionInfo:
    """Registers the checkpoint (by its weights hash, once) and, if asked, makes it the active version."""
    weights_hash = file_sha256(model_path)
    version = next((v for v in service.list_model_versions() if v.weights_hash == weights_hash), None)
    if version is None:
        version = service.register_model_version("gazex", model_path.name, weights_hash, path=str(model_path),
                                                 status="candidate")
    active = service.active_model_version()
    if make_active and (active is None or active.id != version.id):
        version = service.promote_model_version(version.id)
    return version


def choose_model(service: ReviewService, model_path: Path | None) -> tuple[ModelVersionInfo, Path]:
    """An explicit --model is registered and made active; otherwise the active version runs (its stored
    path), and on a fresh database the shipped default checkpoint is registered and made active."""
    if model_path is None:
        active = service.active_model_version()
        if active is not None and active.path and Path(active.path).exists():
            return active, Path(active.path)
        model_path = default_model_path()
    return ensure_model_version(service, Path(model_path)), Path(model_path)


def read_image(path: str) -> Any:
    """The study's server-side file -> gazex_core LoadedImage (the one image reader of the project)."""
    from gazex_core import imaging

    return imaging.load_image(path)


def model_factory(model_path: Path, threads: int | None = None):
    """Loads GazeX on first use, on the inference thread (the UI is up before the model is)."""
    threads = threads or int(os.environ.get("GAZEX_INFERENCE_THREADS", "0")) or None

    def load() -> Any:
        from gazex_core.adapters import resolve_checkpoint
        from gazex_core.inference import GazeX

        return GazeX(resolve_checkpoint(model_path), threads=threads)  # a fine-tuned version is base + adapter

    return load


def build_context(service: ReviewService, model_path: Path | None, *, review_only: bool = False,
                  start_worker: bool = True) -> AppContext:
    """review_only -> no model on this server (radiologists' machines without a GPU); drafts must exist."""
    worker = None
    if not review_only:
        version, path = choose_model(service, model_path)
        log.info("model version %s (%s) from %s", version.id, version.version, path)
        worker = InferenceWorker(service, model_factory(path), read_image, version.id)
        if start_worker:
            worker.start()
            from .model_switch import ModelSwitcher

            ModelSwitcher(service, worker).start()  # follows promote/rollback without a restart
    return AppContext(service=service, worker=worker, image_payload=PayloadCache(load_study_image))
