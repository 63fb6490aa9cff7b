"""The service's public records and refusals (the contract of annotations_db.service).

Re-exported by ``annotations_db.service`` and ``annotations_db``; the app imports them from there.
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


class InvalidInput(ReviewError, ValueError):
    """A value outside its vocabulary or range (unknown decision, box outside 0-1, empty text, ...)."""


class PendingItems(InvalidTransition):
    """Sign-off refused: draft sentences/boxes are still undecided and "accept the rest" was not chosen."""

    def __init__(self, sentences: list[str], boxes: list[str]) -> None:
        self.sentences, self.boxes = list(sentences), list(boxes)
        super().__init__(f"{_count(len(sentences), 'sentence')} and {_count(len(boxes), 'box', 'boxes')} still "
                         "pending: decide them, or sign with accept_rest (recorded as accepted at sign-off)")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


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
    status: str  # "unread" | "viewed" (opened, nothing decided) | "in_progress" | "signed" | "closed"
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
    duration_ms: float | None  # client-measured: item first shown or selected -> decision (see service docstring)
    replayed: bool = False  # this call repeated an earlier decision_id: acknowledged, nothing new recorded


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
    replayed: bool = False  # this call repeated an earlier decision_id: acknowledged, nothing new recorded


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
