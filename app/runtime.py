"""Wires the app's parts at start-up: the model version record, the shared inference worker and the
image loader. A model directory's identity comes from ``gazex_core.checkpoint`` (the same one fine-tuning
registers), so ``launch.py --model <adapter dir>`` finds the version fine-tuning registered.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from annotations_db.service import ModelVersionInfo, ReviewService
from gazex_core.checkpoint import model_identity, version_label

from .context import AppContext
from .image_payload import PayloadCache, load_study_image
from .inference_worker import InferenceWorker
from .model_switch import ModelSwitcher, load_gazex, load_version

log = logging.getLogger(__name__)


SERVER_MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = SERVER_MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for the server process. Each thread that allocates can otherwise get an arena of
    its own (up to 8 per core), and the Gradio/uvicorn worker threads, the inference worker and the image warm-up
    each keep freed memory in theirs: resident memory then creeps up with the studies reviewed. Must run before
    the process starts its threads (glibc fixes the limit when the first extra arena is made). A no-op off glibc
    (False)."""
    from gazex_core.malloc import M_ARENA_MAX, set_malloc_options

    return set_malloc_options({M_ARENA_MAX: arenas})


def default_model_path() -> Path:
    """The checkpoint shipped in the package (gazex_core/weights/gazex-tiny)."""
    from gazex_core.checkpoint import DEFAULT_MODEL_DIR

    return Path(DEFAULT_MODEL_DIR)


def ensure_model_version(service: ReviewService, model_path: Path, *, make_active: bool = True) -> ModelVersionInfo:
    """Registers the model directory (by its identity, once) and, if asked, makes it the active version.
    A fine-tuned adapter directory is found as the version fine-tuning registered (same identity)."""
    identity = model_identity(model_path)
    version = next((v for v in service.list_model_versions() if v.weights_hash == identity), None)
    if version is None:
        version = service.register_model_version("gazex", _free_label(service, version_label(model_path), identity),
                                                 identity, path=str(model_path), status="candidate")
    active = service.active_model_version()
    if make_active and (active is None or active.id != version.id):
        version = service.promote_model_version(version.id)
    return version


def _free_label(service: ReviewService, label: str, identity: str) -> str:
    """The directory's version label, or label@identity-prefix when another version already uses it."""
    taken = {v.version for v in service.list_model_versions()}
    return label if label not in taken else f"{label}@{identity[:8]}"


def _same_identity(version: ModelVersionInfo) -> bool:
    """The stored directory still holds the registered version (e.g. the shipped directory gained its input-check
    statistics since: that is a new version, so that no draft is attributed to a model that did not make it)."""
    try:
        return model_identity(version.path) == version.weights_hash
    except (OSError, ValueError):  # unreadable or not a gazex-tiny directory: the loader reports it
        return True


def choose_model(service: ReviewService, model_path: Path | None) -> tuple[ModelVersionInfo, Path]:
    """An explicit --model is registered and made active; otherwise the active version runs (its stored
    path; when that directory's identity changed, it is registered as a new version and made active), and on
    a fresh database the shipped default checkpoint is registered and made active."""
    if model_path is None:
        active = service.active_model_version()
        if active is not None and active.path and Path(active.path).exists():
            if _same_identity(active):
                return active, Path(active.path)
            model_path = Path(active.path)  # its files changed since registration: a new version, registered below
        else:
            model_path = default_model_path()
    return ensure_model_version(service, Path(model_path)), Path(model_path)


def read_image(path: str) -> Any:
    """The study's server-side file -> gazex_core LoadedImage (the one image reader of the project)."""
    from gazex_core import imaging

    return imaging.load_image(path)


def model_factory(model_path: Path, threads: int | None = None):
    """Loads GazeX on first use, on the inference thread (the UI is up before the model is)."""

    def load() -> Any:
        return load_gazex(model_path, threads)

    return load


def build_context(service: ReviewService, model_path: Path | None, *, review_only: bool = False,
                  start_worker: bool = True, threads: int | None = None, draft_out_of_scope: bool = False) -> AppContext:
    """review_only -> no model on this server (radiologists' machines without a GPU); drafts must exist.
    threads: torch threads of the model, for the first version and every switched-to one alike.
    draft_out_of_scope: draft studies the input check refuses anyway, every sentence marked out of scope."""
    worker = None
    if not review_only:
        version, path = choose_model(service, model_path)
        log.info("model version %s (%s) from %s", version.id, version.version, path)
        worker = InferenceWorker(service, model_factory(path, threads), read_image, version.id,
                                 draft_out_of_scope=draft_out_of_scope)
        if start_worker:
            worker.start()
            # follows promote/rollback without a restart
            ModelSwitcher(service, worker, loader=partial(load_version, threads=threads)).start()
    return AppContext(service=service, worker=worker, image_payload=PayloadCache(load_study_image))
