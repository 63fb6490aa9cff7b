"""ReviewService: the only way the app and training touch the review record.

CONTRACT SKETCH written before the implementation so that the app and the
database can be built in parallel. Method names, arguments and the returned
dataclasses are the contract; the database work fills in the bodies (and may add
methods, but should not rename these). No SQL outside annotations_db.

Conventions
- Every write is one transaction; it commits before returning (durable on return).
- ``reader`` is the acting reader's username; every call that reads or writes a
  review session checks that the session belongs to that reader (admins may read
  all sessions unless the experiment is blinded). Violations raise AccessDenied.
- Invalid state transitions raise InvalidTransition and change nothing.
- Times: ``client_ts`` is the browser's epoch milliseconds; the server stamps its
  own UTC time on every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ReviewError(Exception):
    """Base class for refusals from the service (one-line, user-facing message)."""


class AccessDenied(ReviewError):
    pass


class InvalidTransition(ReviewError):
    pass


class NotFound(ReviewError):
    pass


@dataclass(frozen=True)
class ReaderInfo:
    id: int
    username: str
    role: str  # "reader" | "admin"
    display_name: str | None = None


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    name: str
    version: str
    parent_id: int | None
    weights_hash: str
    status: str  # "active" | "candidate" | "retired"
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where the weights / adapter live


@dataclass(frozen=True)
class StudyInfo:
    id: int
    study_uid: str
    image_path: str  # server-side file reference; never taken from the browser
    width: int | None
    height: int | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorklistItem:
    study: StudyInfo
    status: str  # "unread" | "in_progress" | "signed"
    position: int  # order in the worklist (experiment order when assigned)
    session_id: int | None
    arm: str | None  # experiment arm, e.g. "ai_draft" / "no_ai"
    has_draft: bool


@dataclass(frozen=True)
class SentenceDecision:
    sentence_id: str  # draft sentence id, or "h<n>" for a human-added sentence
    decision: str  # "accepted" | "edited" | "deleted" | "added"
    original_text: str | None
    final_text: str | None
    edit_distance: int
    error_category: str | None  # "finding" | "location" | "severity" | "style" | "other"
    clinically_significant: bool | None
    duration_ms: float | None  # time from sentence shown/first touched to decision


@dataclass(frozen=True)
class BoxDecision:
    box_id: str  # draft sentence id of the observation box, or "b<n>" for a drawn box
    decision: str  # "accepted" | "moved" | "resized" | "rejected" | "added"
    x_min: float | None  # normalised 0-1 final coordinates (None when rejected)
    y_min: float | None
    x_max: float | None
    y_max: float | None
    linked_sentence_id: str | None
    duration_ms: float | None


@dataclass(frozen=True)
class SessionState:
    """Everything needed to restore a study exactly as the reader left it."""

    session_id: int
    study: StudyInfo
    reader: str
    status: str  # "open" | "signed" | "closed"
    arm: str | None
    draft: dict[str, Any] | None  # EvidenceBundle JSON dict shown to the reader (None in a no-AI arm)
    draft_id: int | None
    sentences: list[SentenceDecision]
    boxes: list[BoxDecision]
    last_seq: int
    opened_at: datetime
    signoff: dict[str, Any] | None


@dataclass(frozen=True)
class EventAck:
    seq: int  # per-session sequence number assigned by the server
    server_ts: datetime


class ReviewService:
    """See module docstring. Construct with ``ReviewService.open(url)``."""

    # --- construction -------------------------------------------------
    @classmethod
    def open(cls, database_url: str | None = None, data_dir: str | None = None) -> "ReviewService":
        """SQLite file under data_dir by default (WAL, foreign keys, busy timeout);
        GAZEX_DATABASE_URL or database_url for PostgreSQL. Runs migrations to head."""
        raise NotImplementedError

    # --- readers ------------------------------------------------------
    def create_reader(self, username: str, password: str, role: str = "reader", *, acting: str | None = None) -> ReaderInfo:
        """acting must be an admin unless no reader exists yet (bootstrap)."""
        raise NotImplementedError

    def authenticate(self, username: str, password: str) -> ReaderInfo | None:
        raise NotImplementedError

    def list_readers(self) -> list[ReaderInfo]:
        raise NotImplementedError

    # --- studies, models, drafts --------------------------------------
    def register_study(self, study_uid: str, image_path: str, *, width: int | None = None, height: int | None = None,
                       meta: dict[str, Any] | None = None) -> StudyInfo:
        """Idempotent on study_uid."""
        raise NotImplementedError

    def get_study(self, study_id: int) -> StudyInfo:
        raise NotImplementedError

    def register_model_version(self, name: str, version: str, weights_hash: str, *, parent_id: int | None = None,
                               metrics: dict[str, Any] | None = None, status: str = "candidate",
                               path: str | None = None) -> ModelVersionInfo:
        raise NotImplementedError

    def active_model_version(self) -> ModelVersionInfo | None:
        raise NotImplementedError

    def list_model_versions(self) -> list[ModelVersionInfo]:
        raise NotImplementedError

    def promote_model_version(self, model_version_id: int) -> ModelVersionInfo:
        """Makes it active; the previous active becomes retired. Audited."""
        raise NotImplementedError

    def rollback_model_version(self) -> ModelVersionInfo:
        """Re-activates the parent of the active version (or the previously active one)."""
        raise NotImplementedError

    def save_draft(self, study_id: int, model_version_id: int, bundle: dict[str, Any]) -> int:
        """Stores the EvidenceBundle JSON dict; returns the draft id. One draft per study x model version."""
        raise NotImplementedError

    def get_draft(self, study_id: int, model_version_id: int | None = None) -> tuple[int, dict[str, Any]] | None:
        """The draft of the given (default: active) model version."""
        raise NotImplementedError

    # --- worklist and sessions ----------------------------------------
    def worklist(self, reader: str, *, experiment_id: int | None = None, status: str | None = None) -> list[WorklistItem]:
        raise NotImplementedError

    def open_session(self, reader: str, study_id: int, *, experiment_id: int | None = None) -> SessionState:
        """Opens (or reopens the reader's existing open session on) the study and returns its full state."""
        raise NotImplementedError

    def session_state(self, reader: str, session_id: int) -> SessionState:
        raise NotImplementedError

    def record_event(self, reader: str, session_id: int, event_type: str, payload: dict[str, Any],
                     client_ts: float | None) -> EventAck:
        """Append-only interaction log (view, play, zoom, window, tab_hidden, idle, keypress, ...)."""
        raise NotImplementedError

    def decide_sentence(self, reader: str, session_id: int, sentence_id: str, decision: str, *,
                        final_text: str | None = None, error_category: str | None = None,
                        clinically_significant: bool | None = None, client_ts: float | None = None,
                        duration_ms: float | None = None) -> SentenceDecision:
        """decision in accepted/edited/deleted. A later decision on the same sentence supersedes the earlier one
        (both stay in the audit log)."""
        raise NotImplementedError

    def add_sentence(self, reader: str, session_id: int, text: str, *, section: str = "findings",
                     after_sentence_id: str | None = None, client_ts: float | None = None,
                     duration_ms: float | None = None) -> SentenceDecision:
        raise NotImplementedError

    def decide_box(self, reader: str, session_id: int, box_id: str | None, decision: str, *,
                   box: tuple[float, float, float, float] | None = None, linked_sentence_id: str | None = None,
                   client_ts: float | None = None, duration_ms: float | None = None) -> BoxDecision:
        """decision in accepted/moved/resized/rejected/added; box_id None with decision 'added' draws a new box."""
        raise NotImplementedError

    def sign_off(self, reader: str, session_id: int, decision: str, final_report: str, *,
                 active_ms: float, idle_ms: float = 0.0, hidden_ms: float = 0.0,
                 client_ts: float | None = None) -> dict[str, Any]:
        """decision in accept/modify/reject. Immutable once written; signing twice is refused."""
        raise NotImplementedError

    def amend(self, reader: str, session_id: int, final_report: str, reason: str) -> dict[str, Any]:
        raise NotImplementedError

    # --- experiments ----------------------------------------------------
    def create_experiment(self, name: str, *, design: str, arms: list[str], readers: list[str], study_ids: list[int],
                          washout_days: int = 28, blinded: bool = True, seed: int = 0, acting: str) -> int:
        raise NotImplementedError

    # --- exports ---------------------------------------------------------
    def export_experiment_csv(self, experiment_id: int, path: str) -> int:
        raise NotImplementedError

    def export_provenance_csv(self, path: str) -> int:
        raise NotImplementedError

    # --- corrections for re-fine-tuning -----------------------------------
    def signed_reviews_since(self, model_version_id: int | None = None) -> list[dict[str, Any]]:
        """Signed-off sessions (draft, sentence and box decisions, final report) made on drafts of the given
        model version or later; input to `gazex finetune`."""
        raise NotImplementedError

    def start_finetune_run(self, *, base_model_version_id: int, params: dict[str, Any]) -> int:
        """Refused while another run is pending or running (one job at a time)."""
        raise NotImplementedError

    def update_finetune_run(self, run_id: int, *, status: str | None = None, progress: float | None = None,
                            metrics: dict[str, Any] | None = None, message: str | None = None,
                            candidate_model_version_id: int | None = None) -> None:
        raise NotImplementedError

    def finetune_runs(self) -> list[dict[str, Any]]:
        raise NotImplementedError
