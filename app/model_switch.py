"""Switching the served model version without a restart.

The database's active model version is the single source of truth (``gazex models promote/rollback`` or
the Admin tab change it). :class:`ModelSwitcher` polls it; when it differs from the version the inference
worker serves, it loads the new version on its own thread (a fine-tuned version is "base + LoRA adapter",
which ``gazex_core.checkpoint`` merges in memory) with the same thread count as the first model, and hands
it to the worker, which swaps models between two tasks - every draft is saved with the id of the version
that made it. :func:`load_gazex` is the app's one model loader (start-up and switches).
The app does not import ``training``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from annotations_db.service import ModelVersionInfo, ReviewService

log = logging.getLogger(__name__)


def inference_threads(threads: int | None = None) -> int | None:
    """Torch threads for the model: the explicit value, else GAZEX_INFERENCE_THREADS, else torch's default."""
    return threads or int(os.environ.get("GAZEX_INFERENCE_THREADS", "0")) or None


def load_gazex(model_path: str | Path, threads: int | None = None) -> Any:
    """The served model for any model directory (gazex-tiny checkpoint or adapter, Qwen2-VL base or adapter);
    the app's one loader."""
    from gazex_core.serving import open_model

    return open_model(Path(model_path), threads=inference_threads(threads))


def load_version(version: ModelVersionInfo, threads: int | None = None) -> Any:
    """A GazeX instance for a registered version."""
    if not version.path:
        raise FileNotFoundError(f"model version {version.id} has no stored path")
    return load_gazex(version.path, threads)


class ModelSwitcher:
    """Keeps the worker on the database's active version (``check`` once, or ``start`` polling)."""

    def __init__(self, service: ReviewService, worker: Any, *, poll_s: float = 5.0,
                 loader: Callable[[ModelVersionInfo], Any] = load_version):
        self.service, self.worker, self.poll_s, self.loader = service, worker, poll_s, loader
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wanted(self) -> ModelVersionInfo | None:
        return self.service.active_model_version()

    def check(self, timeout_s: float = 300.0) -> bool:
        """Switches the worker if the active version changed; True when a switch happened."""
        with self._lock:
            version = self.wanted()
            if version is None or version.id == self.worker.model_version_id:
                return False
            try:
                model = self.loader(version)
                self.worker.switch_model(lambda: model, version.id).result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - the old version keeps serving; shown in the Admin tab
                self.last_error = f"version {version.id}: {type(exc).__name__}: {exc}"
                log.exception("switching to model version %s failed", version.id)
                return False
            self.last_error = None
            log.info("now serving model version %s (%s)", version.id, version.version)
            return True

    def start(self) -> "ModelSwitcher":
        self._thread = threading.Thread(target=self._poll, name="gazex-model-switch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - e.g. the database briefly locked; try again next poll
                log.exception("model version poll failed")
