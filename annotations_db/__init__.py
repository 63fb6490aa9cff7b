"""annotations_db: the review record (readers, studies, drafts, sessions, decisions, events, sign-offs,
experiments, fine-tune runs) behind ``ReviewService``. Imports neither gazex_core, training nor app."""

from .records import (AccessDenied, BoxDecision, EventAck, InvalidInput, InvalidTransition, ModelVersionInfo,
                      NotFound, PendingItems, ReaderInfo, ReviewError, SentenceDecision, SessionState, StudyInfo,
                      WorklistItem)
from .service import ReviewService

__all__ = [
    "AccessDenied", "BoxDecision", "EventAck", "InvalidInput", "InvalidTransition", "ModelVersionInfo", "NotFound",
    "PendingItems", "ReaderInfo", "ReviewError", "ReviewService", "SentenceDecision", "SessionState", "StudyInfo",
    "WorklistItem",
]
