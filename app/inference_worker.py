"""One shared model instance and one background thread that runs every inference.

Readers' requests never run the model on Gradio's threads: drafts are queued (low priority)
and questions (high priority, a reader is waiting) are queued as futures on the same thread,
so a server holds exactly one model in memory however many readers are signed in, and the
UI stays responsive while drafts are computed.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from annotations_db.service import ReviewService
from gazex_core.imaging import OutOfScopeError

log = logging.getLogger(__name__)

ASK_PRIORITY = 0
DRAFT_PRIORITY = 1


@dataclass
class DraftProgress:
    total: int = 0
    done: int = 0
    failed: int = 0
    refused: int = 0  # out of scope for drafting (gazex_core's input check): expected, not a failure
    current: str | None = None
    model_loaded: bool = False
    model_error: str | None = None
    last_error: str | None = None
    last_refusal: str | None = None
    seconds_per_draft: list[float] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.refused

    def as_text(self) -> str:
        if self.model_error:
            return f"Model failed to load: {self.model_error}"
        if self.total == 0:
            return "Drafts: none queued."
        pending = self.total - self.finished
        text = f"Drafts: {self.done}/{self.total} computed"
        if self.failed:
            text += f", {self.failed} failed ({self.last_error})"
        if self.refused:
            text += f", {self.refused} not drafted as out of scope ({self.last_refusal})"
        if pending:
            text += f" — computing {self.current or '…'}"
            if self.seconds_per_draft:
                eta = pending * sorted(self.seconds_per_draft)[len(self.seconds_per_draft) // 2]
                text += f", about {eta:.0f} s left"
        else:
            text += " — all drafts ready."
        return text


class InferenceWorker:
    """Owns the model; runs drafts and questions one at a time on a single daemon thread."""

    def __init__(self, service: ReviewService, model_factory: Callable[[], Any], read_image: Callable[[str], Any],
                 model_version_id: int | None, *, draft_out_of_scope: bool = False):
        self._service = service
        self._model_factory = model_factory
        self._read_image = read_image
        self._model_version_id = model_version_id
        self.draft_out_of_scope = draft_out_of_scope  # draft refused studies anyway, every sentence marked out of scope
        self._model: Any = None
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._queued: set[int] = set()
        self.progress = DraftProgress()
        self._thread = threading.Thread(target=self._run, name="gazex-inference", daemon=True)
        self._stopping = threading.Event()

    # --- lifecycle --------------------------------------------------------------
    def start(self) -> "InferenceWorker":
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._tasks.put((-1, next(self._counter), None))
        self._thread.join(timeout_s)

    @property
    def model_version_id(self) -> int | None:
        return self._model_version_id

    # --- public API (any thread) -----------------------------------------------
    def enqueue_drafts(self, studies: list[tuple[int, str, str]]) -> int:
        """Queues (study_id, study_uid, image_path) for drafting unless a draft of this model version exists."""
        added = 0
        for study_id, study_uid, image_path in studies:
            with self._lock:
                if study_id in self._queued:
                    continue
                if self._service.get_draft(study_id, self._model_version_id) is not None:
                    continue
                self._queued.add(study_id)
                self.progress.total += 1
            self._tasks.put((DRAFT_PRIORITY, next(self._counter), ("draft", study_id, study_uid, image_path)))
            added += 1
        return added

    def ask(self, image_path: str, question: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Blocks the calling (request) thread, not the UI, until the model thread has answered."""
        future: Future = Future()
        self._tasks.put((ASK_PRIORITY, next(self._counter), ("ask", image_path, question, future)))
        return future.result(timeout=timeout_s)

    def switch_model(self, model_factory: Callable[[], Any], model_version_id: int | None) -> Future:
        """Swaps the model on the model thread between two tasks (re-fine-tuning: app/model_switch.py), so a
        draft is always saved with the version of the model that made it. The future resolves to the new
        version id, or to the load error (the old model keeps serving)."""
        future: Future = Future()
        self._tasks.put((ASK_PRIORITY - 1, next(self._counter), ("switch", model_factory, model_version_id, future)))
        return future

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every queued draft is done (for launch scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            p = self.progress
            if p.model_error or (p.finished >= p.total and self._tasks.empty()):
                return not p.model_error
            time.sleep(0.1)
        return False

    # --- the model thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            _, _, task = self._tasks.get()
            if task is None:
                break
            if task[0] == "switch":
                self._switch(*task[1:])
                continue
            try:
                self._ensure_model()
            except Exception as exc:  # noqa: BLE001 - shown in the UI, the server keeps serving reviews
                log.exception("model failed to load")
                self.progress.model_error = f"{type(exc).__name__}: {exc}"
                self._fail(task, exc)
                continue
            if task[0] == "draft":
                self._draft(*task[1:])
            else:
                self._ask(*task[1:])

    def _ensure_model(self) -> None:
        if self._model is None:
            self._model = self._model_factory()
            self.progress.model_loaded = True

    def _switch(self, model_factory: Callable[[], Any], model_version_id: int | None, future: Future) -> None:
        try:
            model = model_factory()
        except Exception as exc:  # noqa: BLE001 - reported to the caller; the old model keeps serving
            future.set_exception(exc)
            return
        self._model_factory, self._model, self._model_version_id = model_factory, model, model_version_id
        self.progress.model_loaded, self.progress.model_error = True, None
        future.set_result(model_version_id)

    def _fail(self, task: tuple, exc: Exception) -> None:
        if task[0] == "ask":
            task[-1].set_exception(exc)
        else:
            self.progress.failed += 1

    def _draft(self, study_id: int, study_uid: str, image_path: str) -> None:
        self.progress.current = study_uid
        started = time.perf_counter()
        try:
            image = self._read_image(image_path)
            bundle = (self._model.analyze(image, draft_out_of_scope=True) if self.draft_out_of_scope
                      else self._model.analyze(image))
            self._service.save_draft(study_id, self._model_version_id, bundle.to_dict())
            self.progress.done += 1
            self.progress.seconds_per_draft.append(time.perf_counter() - started)
        except OutOfScopeError as exc:  # an expected refusal (header or input check): one line, no traceback
            log.info("study %s not drafted: %s", study_uid, exc)
            self.progress.refused += 1
            self.progress.last_refusal = f"{study_uid}: {exc}"
        except Exception as exc:  # noqa: BLE001 - one bad study must not stop the queue
            log.exception("draft of %s failed", study_uid)
            self.progress.failed += 1
            self.progress.last_error = f"{study_uid}: {type(exc).__name__}: {exc}"
        finally:
            self.progress.current = None

    def _ask(self, image_path: str, question: str, future: Future) -> None:
        try:
            answer = self._model.ask(self._read_image(image_path), question)
            future.set_result(answer_to_dict(answer))
        except Exception as exc:  # noqa: BLE001 - delivered to the waiting request
            future.set_exception(exc)


def answer_to_dict(answer: Any) -> dict[str, Any]:
    """Normalises the model's answer (a dict, an object with .text/.answer and .box, or a string)."""
    if isinstance(answer, str):
        return {"answer": answer, "box": None}
    if isinstance(answer, dict):
        text = answer.get("answer", answer.get("text", ""))
        box = answer.get("box")
    else:
        text = getattr(answer, "answer", None) or getattr(answer, "text", "")
        box = getattr(answer, "box", None)
    if box is not None and hasattr(box, "to_dict"):
        box = box.to_dict()
    return {"answer": str(text), "box": box}
