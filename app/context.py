"""What every part of the app shares: the context wired at start-up, the signed-in reader of a request,
and the draft-progress line. Its own module so that main.py, admin.py and admin_models.py all import it
and none imports another (no circle inside app/)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from annotations_db.service import ReviewService

from .inference_worker import InferenceWorker


@dataclass
class AppContext:
    service: ReviewService
    worker: InferenceWorker | None
    image_payload: Callable[[str], Any]  # image path -> app.image_payload.StudyImage (cached)
    title: str = "GazeX Review"
    data_dir: Path | None = None  # where imports go (interop); None: GAZEX_DATA_DIR or ~/.gazex


def request_username(request: Any) -> str | None:
    """The signed-in username for a gr.Request or the raw request a workstation server function gets."""
    if request is None:
        return None
    username = getattr(request, "username", None)
    if username:
        return username
    raw = getattr(request, "request", request)
    app = getattr(raw, "app", None)
    tokens = getattr(app, "tokens", None)
    cookie_id = getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return None
    cookies = getattr(raw, "cookies", {}) or {}
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token)


def drafts_pending(context: AppContext) -> bool:
    worker = context.worker
    if worker is None:
        return False
    p = worker.progress
    return not p.model_error and p.finished < p.total


def progress_text(context: AppContext) -> str:
    """The background drafting progress line (worklist and Admin tab)."""
    if context.worker is None:
        return "Review-only mode: no model loaded on this server."
    return context.worker.progress.as_text()
